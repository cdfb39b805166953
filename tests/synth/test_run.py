"""The synth stage over a run store: layout, columns, resume, idempotence, errors, CLI."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from xsgpu.attributes import label_columns
from xsgpu.io.runstore import RunStore, RunStoreError
from xsgpu.preprocess import log_scale, make_thumbnails, resize_batch
from xsgpu.synth import generate_images, plan_synth_run, synth_partition, synthesize_run

ARGS = dict(n=150, size=16, seed=3, partition_size=64, images_per_run=25)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One store shared by the read-only tests (tests that modify a store copy it first)."""
    return synthesize_run(tmp_path_factory.mktemp("synth") / "run", **ARGS, progress=False)


@pytest.fixture
def run_copy(run, tmp_path):
    shutil.copytree(run.path, tmp_path / "copy")
    return RunStore.open(tmp_path / "copy")


def test_layout_columns_and_values(run):
    df = run.samples.read()
    assert list(df.columns[:8]) == ["sample_id", "source_uri", "frame", "run_id", "split", "is_synthetic",
                                    "labelled", "quantitative"]
    assert list(df.columns[8:]) == label_columns()
    assert df["sample_id"].dtype == np.int64 and df["frame"].dtype == np.int32
    assert df["source_uri"].iloc[7] == "synth://3/7"
    assert df[["is_synthetic", "labelled", "quantitative"]].all().all()
    assert np.array_equal(df["sample_id"].to_numpy(), np.arange(150))
    images, thumbs = run.images.open(), run.thumbs.open()
    assert images.shape == (150, 16, 16) and images.dtype == np.float16
    assert thumbs.shape == (150, 64, 64) and thumbs.dtype == np.uint8
    # rows are the 256-px detector's log_scale(counts, mask), shrunk as ingest shrinks a real frame
    b = generate_images(64, size=256, seed=3, start=64, images_per_run=25)
    ref = resize_batch(log_scale(b.counts, b.mask), 16)
    np.testing.assert_array_equal(images[64:128], ref.astype(np.float16))
    np.testing.assert_array_equal(thumbs[64:128], make_thumbnails(ref, size=64))
    np.testing.assert_array_equal(run.labels()[64:128], b.labels)
    assert run.stage_status()["synth"] == "done"
    assert run.manifest["params"]["synth"]["seed"] == 3 and run.manifest["params"]["synth"]["render"] == "detector"


def test_direct_rendering_is_the_generator_at_the_run_size(tmp_path):
    store = synthesize_run(tmp_path / "direct", n=40, size=16, seed=3, partition_size=40, images_per_run=20,
                           progress=False, render="direct")
    b = generate_images(40, size=16, seed=3, images_per_run=20)
    np.testing.assert_array_equal(store.images.open()[:], log_scale(b.counts, b.mask).astype(np.float16))
    with pytest.raises(ValueError, match="'render' parameter"):
        synthesize_run(tmp_path / "bad", n=4, size=16, progress=False, render="fast")


def test_split_is_by_run(run):
    df = run.samples.read()
    assert set(df["split"]) <= {"train", "val", "test"}
    assert (df.groupby("run_id")["split"].nunique() == 1).all()
    assert df["run_id"].nunique() == 6


def test_split_shares_over_many_runs():
    from xsgpu.synth.runs import make_run_spec

    splits = [make_run_spec(k, seed=0).split for k in range(200)]
    assert splits.count("train") / 200 == pytest.approx(0.8, abs=0.03)
    assert splits.count("val") / 200 == pytest.approx(0.1, abs=0.03)


def test_resume_regenerates_only_missing_partition_identically(run_copy):
    run = run_copy
    before = run.images.open()[:]
    labels = run.labels()
    (run.samples.path / "part-00001.parquet").unlink()
    run.images.open("r+")[64:128] = 0
    assert run.samples.pending() == [1]
    again = synthesize_run(run.path, **ARGS, progress=False)
    assert again.reload().manifest["stages"]["synth"]["generated"] == 64
    np.testing.assert_array_equal(again.images.open()[:], before)
    np.testing.assert_array_equal(again.labels(), labels)


def test_synth_partition_is_idempotent(run):
    assert synth_partition(run.path, 0) == 0


def test_plan_refuses_other_parameters(run):  # refuses before writing anything
    with pytest.raises(RunStoreError, match="made with other parameters .*'seed': \\(3, 4\\)"):
        plan_synth_run(run.path, **{**ARGS, "seed": 4})


def test_partition_of_a_non_synth_run_is_refused(tmp_path):
    RunStore.create(tmp_path / "other", n_samples=4, partition_size=4)
    with pytest.raises(RunStoreError, match="is not a synthetic run"):
        synth_partition(tmp_path / "other", 0)


def test_bad_n_message(tmp_path):
    with pytest.raises(ValueError, match="The 'n' parameter must be an integer >= 1. Got 0 instead."):
        plan_synth_run(tmp_path / "x", n=0)


@pytest.mark.slow  # spawns two worker processes (imports take ~10-30 s on a busy 2-core machine)
def test_workers_give_the_same_store(tmp_path, run):
    two = synthesize_run(tmp_path / "two", **ARGS, progress=False, workers=2)
    np.testing.assert_array_equal(two.images.open()[:], run.images.open()[:])
    np.testing.assert_array_equal(two.labels(), run.labels())


def test_cli_writes_and_resumes(tmp_path):
    from workflows.cli import main

    out = tmp_path / "cli"
    args = ["synth", "--n", "40", "--size", "16", "--out", str(out), "--partition-size", "32", "--no-progress"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "synth: 40 images (40 generated now" in r.output
    r = CliRunner().invoke(main, args)
    assert "(0 generated now" in r.output
    r = CliRunner().invoke(main, args[:4] + ["32"] + args[5:])
    assert r.exit_code != 0 and "other parameters" in r.output
    assert "Examples" in CliRunner().invoke(main, ["synth", "--help"]).output


def test_cli_gpu_request_without_gpu_is_a_clear_error(tmp_path):
    from xsgpu.backend import gpu_status
    from workflows.cli import main

    if gpu_status()[0]:
        pytest.skip("a GPU is available here")
    r = CliRunner().invoke(main, ["synth", "--n", "4", "--size", "16", "--out", str(tmp_path / "g"),
                                  "--device", "gpu", "--no-progress"])
    assert r.exit_code == 2
    assert "device='gpu' was requested" in r.output and "Hint: use device='cpu'" in r.output


def test_mean_counts_do_not_depend_on_size():
    means = [float(generate_images(3, size=s, seed=1).counts.mean()) for s in (64, 100, 256)]
    assert max(means) / min(means) < 1.01
