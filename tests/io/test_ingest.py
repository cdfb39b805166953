"""Ingest: every input accounted for, labels, read-time failures, resume after SIGKILL, the CLI."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from xsgpu.attributes import NAMES, label_columns
from xsgpu.io import RunStore, RunStoreError, read_any
from xsgpu.io.ingest import (
    SAMPLE_COLUMNS,
    IngestError,
    expand_paths,
    finish_ingest,
    ingest_partition,
    ingest_paths,
    plan_ingest,
    split_for_run,
)
from xsgpu.io.labels import LabelsError
from xsgpu.io.readers.examples import write_example_files
from xsgpu.io.readers.headers import header_columns
from xsgpu.preprocess import log_scale, resize_batch

SIZE = 16


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    examples = write_example_files(root / "runA", shape=(20, 28))
    bad = root / "runB"
    bad.mkdir()
    (bad / "empty.tif").write_bytes(b"")
    (bad / "notes.txt").write_text("beamline log")
    np.save(bad / "vector.npy", np.ones(10))
    np.save(bad / "volume.npy", np.ones((2, 2, 4, 4)))
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 48), dtype=np.uint8)).save(bad / "whole.jpg")
    raw = (bad / "whole.jpg").read_bytes()
    (bad / "cut.jpg").write_bytes(raw[: len(raw) // 2])  # header intact: passes the scan, fails the read
    (bad / ".hidden.tif").write_bytes(b"ignored")
    (root / ".cache").mkdir()
    (root / ".cache" / "x.npy").write_bytes(b"ignored")
    labels = pd.DataFrame([
        {"file": "runA/pilatus.tif", **{n: int(n == "Ring") for n in NAMES}},
        {"file": "eiger_master.h5", "frame": 1, **{n: int(n in ("BCC", "Higher orders")) for n in NAMES}},
    ])
    labels.to_csv(root / "labels.csv", index=False)
    return root, examples


def test_ingest_accounts_for_every_input(data, tmp_path):
    root, examples = data
    out = tmp_path / "run"
    store = ingest_paths([root], out, labels=root / "labels.csv", size=SIZE, partition_size=4, progress=False)
    samples = store.samples.read()
    errors = store.read_errors()
    n_expected = sum(e.n_frames for e in examples) + 2  # + whole.jpg + the truncated JPEG (an invalid row)
    assert list(samples.columns) == SAMPLE_COLUMNS + header_columns()  # no label metadata columns here
    assert samples["sample_id"].tolist() == list(range(n_expected))
    assert str(samples["frame"].dtype) == "int32" and str(samples["sample_id"].dtype) == "int64"
    assert all(samples[c].dtype == bool for c in ["is_synthetic", "labelled", "quantitative", "valid"] + label_columns())

    # every input is a sample or an error row; hidden files and the label file are not inputs
    inputs = {str(p) for p in root.rglob("*") if p.is_file() and not any(s.startswith(".") for s in p.parts)}
    inputs.discard(str(root / "labels.csv"))
    assert set(samples["source_uri"]) | set(errors["source_uri"]) == inputs
    by_file = dict(zip(errors["source_uri"].map(os.path.basename), errors["error_type"]))
    assert by_file == {"empty.tif": "EmptyFileError", "notes.txt": "UnsupportedFormatError",
                       "vector.npy": "FrameShapeError", "volume.npy": "FrameShapeError",
                       "cut.jpg": "CorruptFileError"}
    assert (errors["stage"] == "ingest").all()
    assert errors.set_index("error_type").loc["FrameShapeError", "message"].str.contains("dimension").all()

    # the read-time failure keeps its row: valid False, zero image and thumbnail, error row with its id
    cut = samples[samples["source_uri"].str.endswith("cut.jpg")].iloc[0]
    err = errors[errors["source_uri"].str.endswith("cut.jpg")].iloc[0]
    assert not cut["valid"] and err["sample_id"] == cut["sample_id"] and err["frame"] == 0
    images, thumbs = store.images.open(), store.thumbs.open()
    assert images.shape == (n_expected, SIZE, SIZE) and images.dtype == np.float16
    assert thumbs.shape == (n_expected, 64, 64) and thumbs.dtype == np.uint8
    assert not np.asarray(images[int(cut["sample_id"])]).any() and not np.asarray(thumbs[int(cut["sample_id"])]).any()
    assert samples["valid"].sum() == n_expected - 1

    # stored images are log_scale (masked) resized to SIZE, in float16
    row = samples[samples["source_uri"].str.endswith("pilatus.tif")].iloc[0]
    (fr,) = read_any(row["source_uri"])
    want = resize_batch(log_scale(fr.data, fr.mask)[None], SIZE)[0].astype(np.float16)
    np.testing.assert_array_equal(np.asarray(images[int(row["sample_id"])]), want)
    assert (row["height"], row["width"]) == (20, 28)
    assert np.asarray(thumbs[int(row["sample_id"])]).max() > 200

    # pictures are not quantitative; runs, splits and labels
    pics = samples[samples["format"].isin(["png", "jpeg", "tiff-picture"])]
    assert len(pics) == 5 and not pics["quantitative"].any()
    assert samples.loc[~samples["format"].isin(["png", "jpeg", "tiff-picture"]), "quantitative"].all()
    assert set(samples["run_id"]) == {"runA", "runB"}
    assert (samples["split"] == samples["run_id"].map(split_for_run)).all()
    assert not samples["is_synthetic"].any()
    lab = samples[samples["labelled"]]
    assert [(os.path.basename(u), f) for u, f in zip(lab["source_uri"], lab["frame"])] == [
        ("eiger_master.h5", 1), ("pilatus.tif", 0)]
    assert lab["y__ring"].tolist() == [False, True] and lab["y__bcc"].tolist() == [True, False]
    assert not samples.loc[~samples["labelled"], label_columns()].to_numpy().any()
    stage = store.reload().manifest["stages"]["ingest"]
    assert stage["status"] == "done" and stage["n_error_rows"] == 5 and stage["n_labelled"] == 2


def test_bad_labels_fail_before_any_work(data, tmp_path):
    root, _ = data
    bad = tmp_path / "bad.csv"
    pd.DataFrame([{"file": "nothere.tif", **{n: 0 for n in NAMES}}]).to_csv(bad, index=False)
    with pytest.raises(LabelsError, match=r"keys matching no image among the \d+ inputs: row 2: 'nothere.tif'"):
        ingest_paths([root], tmp_path / "run", labels=bad, size=SIZE, progress=False)
    pd.DataFrame([{"file": "image.npy", "Rings": 1, **{n: 0 for n in NAMES}}]).to_csv(bad, index=False)
    with pytest.raises(LabelsError, match=r"column\(s\) 'Rings' \(did you mean 'Ring'\?\)"):
        ingest_paths([root], tmp_path / "run", labels=bad, size=SIZE, progress=False)
    assert not (tmp_path / "run").exists()


def test_bad_arguments(data, tmp_path):
    root, _ = data
    with pytest.raises(IngestError, match=r"Input path\(s\) \['.*nope'\] do not exist and match no file"):
        ingest_paths([root, tmp_path / "nope"], tmp_path / "run", progress=False)
    with pytest.raises(IngestError, match=r"Input path\(s\) \['.*\*.xyz'\] do not exist"):
        ingest_paths([str(root / "*.xyz")], tmp_path / "run", progress=False)
    with pytest.raises(IngestError, match="The 'size' parameter of ingest must be an int in \\[8, 4096\\]. Got 0"):
        ingest_paths([root], tmp_path / "run", size=0, progress=False)
    with pytest.raises(IngestError, match="The 'partition_size' parameter of ingest must be an int >= 1"):
        ingest_paths([root], tmp_path / "run", partition_size=0, progress=False)
    with pytest.raises(IngestError, match="The 'n_workers' parameter of ingest must be an int >= 1. Got 0"):
        ingest_paths([root], tmp_path / "run", n_workers=0, progress=False)
    with pytest.raises(IngestError, match="The 'h5_dataset' parameter of ingest must be a non-empty str or None. Got '/'"):
        ingest_paths([root], tmp_path / "run", h5_dataset="/", progress=False)
    assert not (tmp_path / "run").exists()
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(IngestError, match="No input files found"):
        ingest_paths([tmp_path / "emptydir"], tmp_path / "run", progress=False)


def test_globs_and_dedup(data):
    root, _ = data
    files = expand_paths([str(root / "runA" / "*.tif"), root / "runA" / "pilatus.tif", str(root / "**" / "*.npz")])
    assert [os.path.basename(f) for f in files] == ["picture8.tif", "pilatus.tif", "stack.tif", "stack.npz"]


def test_eiger_data_files_are_read_once_through_their_master(tmp_path):
    import h5py

    d = tmp_path / "eiger" / "scan3"
    d.mkdir(parents=True)
    for i in (1, 2):
        with h5py.File(d / f"scan3_data_{i:06d}.h5", "w") as f:
            f.create_dataset("entry/data/data", data=np.full((2, 6, 6), i, np.uint16))
    with h5py.File(d / "scan3_master.h5", "w") as f:
        for i in (1, 2):
            f[f"entry/data/data_{i:06d}"] = h5py.ExternalLink(f"scan3_data_{i:06d}.h5", "entry/data/data")
    store = ingest_paths([d], tmp_path / "run", size=8, partition_size=8, progress=False)
    s = store.samples.read()
    assert s["source_uri"].map(os.path.basename).unique().tolist() == ["scan3_master.h5"]
    assert s["frame"].tolist() == [0, 1, 2, 3] and s["valid"].all()
    files = store.ingest_files.read().set_index("path")
    assert files.loc[str(d / "scan3_data_000001.h5"), "covered_by"] == str(d / "scan3_master.h5")
    assert files.loc[str(d / "scan3_master.h5"), "covered_by"] == ""
    assert len(store.read_errors()) == 0
    # a data file alone is still ingested as itself
    alone = ingest_paths([d / "scan3_data_000002.h5"], tmp_path / "run2", size=8, partition_size=8, progress=False)
    assert len(alone.samples.read()) == 2


def test_nothing_readable(data, tmp_path):
    root, _ = data
    with pytest.raises(IngestError, match=r"None of the inputs gave a readable frame \(3 error rows"):
        ingest_paths([root / "runB" / "empty.tif", root / "runB" / "notes.txt", root / "runB" / "vector.npy"],
                     tmp_path / "run", progress=False)
    assert len(RunStore.open(tmp_path / "run").read_errors()) == 3


def test_file_vanishing_after_the_plan(tmp_path):
    d = tmp_path / "exp1"
    d.mkdir()
    for i in range(3):
        np.save(d / f"f{i}.npy", np.full((2, 8, 8), i + 1.0))
    store = plan_ingest([d], tmp_path / "run", size=8, partition_size=4, progress=False)
    assert store.n_samples == 6 and store.samples.pending() == [0, 1]
    os.remove(d / "f1.npy")
    with pytest.raises(RunStoreError, match=r"partitions \[0, 1\] are not finished"):
        finish_ingest(store)
    assert ingest_partition(store.path, 0) == 2 and ingest_partition(store.path, 1) == 2
    counts = finish_ingest(store)
    assert counts == {"n_samples": 6, "n_valid": 4, "n_labelled": 0, "n_error_rows": 2}
    s = store.samples.read()
    assert s["valid"].tolist() == [True, True, False, False, True, True]
    e = store.read_errors().sort_values("sample_id")
    assert e["sample_id"].tolist() == [2, 3] and (e["error_type"] == "ReaderError").all()
    assert e["message"].str.contains("not a readable regular file").all()


def test_resume_refuses_changed_options_or_inputs(tmp_path):
    d = tmp_path / "exp1"
    d.mkdir()
    np.save(d / "a.npy", np.ones((3, 8, 8)))
    store = ingest_paths([d], tmp_path / "run", size=8, partition_size=2, progress=False)
    again = ingest_paths([d], tmp_path / "run", size=8, partition_size=2, progress=False)  # complete: no-op
    assert again.samples.read().equals(store.samples.read())
    with pytest.raises(IngestError, match=r"started with other options .*'size': \(8, 16\)"):
        ingest_paths([d], tmp_path / "run", size=16, partition_size=2, progress=False)
    with pytest.raises(IngestError, match=r"'partition_size': \(2, 1\)"):
        ingest_paths([d], tmp_path / "run", size=8, partition_size=1, progress=False)
    np.save(d / "b.npy", np.ones((8, 8)))
    with pytest.raises(IngestError, match=r"interrupted ingest of other inputs \(1 file\(s\) added, removed or "
                                          r"modified since, e.g. \['.*b.npy'\]\)"):
        ingest_paths([d], tmp_path / "run", size=8, partition_size=2, progress=False)


_SLOW_CLI = """
import sys, time
from xsgpu.io.runstore import RunStore
original = RunStore.write_partition
def slow(self, name, part, df, **kw):
    if getattr(name, "name", name) == "samples" and part >= 1:  # a schema Artifact or its name
        time.sleep(120)  # killed here: this partition's Zarr rows are written, its Parquet part is not
    return original(self, name, part, df, **kw)
RunStore.write_partition = slow
from workflows.cli import main
main(sys.argv[1:])
"""


def test_killed_ingest_resumes_without_duplicates(tmp_path):
    d = tmp_path / "beamtime" / "run7"
    d.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(3):
        np.save(d / f"stack{i}.npy", rng.integers(0, 1000, size=(3, 24, 24)).astype(np.int32))
    (d / "broken.tif").write_bytes(b"II*\x00" + b"\x00" * 20)
    args = ["ingest", str(d), "--out", str(tmp_path / "killed"), "--size", "8", "--partition-size", "2",
            "--no-progress"]
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_CLI, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    first = tmp_path / "killed" / "samples.parquet" / "part-00000.parquet"
    deadline = time.monotonic() + 120
    while not first.exists():
        assert proc.poll() is None, proc.communicate()[0].decode()
        assert time.monotonic() < deadline, "the first partition was never written"
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = RunStore.open(tmp_path / "killed")
    assert killed.samples.finished() == {0} and killed.manifest["stages"]["ingest"]["status"] == "running"

    resumed = ingest_paths([d], tmp_path / "killed", size=8, partition_size=2, progress=False)
    fresh = ingest_paths([d], tmp_path / "fresh", size=8, partition_size=2, progress=False)
    a, b = resumed.samples.read(), fresh.samples.read()
    assert a["sample_id"].tolist() == list(range(9)) and a["sample_id"].is_unique
    pd.testing.assert_frame_equal(a, b)
    for name in ("images", "thumbs"):
        np.testing.assert_array_equal(np.asarray(resumed.open_array(name)[:]), np.asarray(fresh.open_array(name)[:]))
    ea, eb = resumed.read_errors(), fresh.read_errors()
    pd.testing.assert_frame_equal(ea.reset_index(drop=True), eb.reset_index(drop=True))
    assert ea["error_type"].tolist() == ["CorruptFileError"]
    assert resumed.reload().manifest["stages"]["ingest"]["status"] == "done"


@pytest.mark.slow  # spawns two worker processes: ~15 s on the shared 2-core machine
def test_parallel_workers_give_the_same_run(data, tmp_path):
    root, _ = data
    one = ingest_paths([root / "runA"], tmp_path / "one", size=8, partition_size=4, progress=False)
    two = ingest_paths([root / "runA"], tmp_path / "two", size=8, partition_size=4, n_workers=2, progress=False)
    pd.testing.assert_frame_equal(one.samples.read(), two.samples.read())
    for name in ("images", "thumbs"):
        np.testing.assert_array_equal(np.asarray(one.open_array(name)[:]), np.asarray(two.open_array(name)[:]))


def test_threaded_scan_gives_the_same_plan(data, tmp_path):
    root, _ = data
    a = plan_ingest([root], tmp_path / "a", size=8, partition_size=4, progress=False)
    b = plan_ingest([root], tmp_path / "b", size=8, partition_size=4, n_workers=3, progress=False)
    pd.testing.assert_frame_equal(a.ingest_plan.read(), b.ingest_plan.read())
    pd.testing.assert_frame_equal(a.ingest_files.read().drop(columns="mtime_ns"),
                                  b.ingest_files.read().drop(columns="mtime_ns"))
    # empty.tif, notes.txt, vector.npy, volume.npy and labels.csv (an input here); cut.jpg fails later
    assert len(a.read_errors()) == 5


def test_progress_callback_counts_every_sample(tmp_path):
    d = tmp_path / "exp"
    d.mkdir()
    np.save(d / "a.npy", np.ones((5, 8, 8)))
    store = plan_ingest([d], tmp_path / "run", size=8, partition_size=8, progress=False)
    os.remove(d / "a.npy")  # every frame now fails to read, and still counts as processed
    seen = []
    assert ingest_partition(store.path, 0, on_sample=seen.append) == 0
    assert sum(seen) == 5


def test_cli(data, tmp_path):
    from workflows.cli import main

    root, _ = data
    runner = CliRunner()
    res = runner.invoke(main, ["ingest", "--help"])
    assert res.exit_code == 0 and "Examples:" in res.output and "--h5-dataset" in res.output
    res = runner.invoke(main, ["ingest", str(root / "runA"), "--out", str(tmp_path / "run"), "--size", "8",
                               "--partition-size", "8", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "Ingested 17 samples (17 readable, 0 labelled) from 13 files" in res.output
    res = runner.invoke(main, ["ingest", str(tmp_path / "missing"), "--out", str(tmp_path / "run2")])
    assert res.exit_code == 2 and "do not exist and match no file" in res.output
