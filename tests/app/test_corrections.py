"""Label corrections: recorded, read back, applied (latest wins) and exported as a label file."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from xsgpu.attributes import NAMES, label_columns, resolve_attribute
from xsgpu.io.corrections import (
    CORRECTIONS_COLUMNS, apply_corrections, corrected_labels, export_labels, read_corrections,
    record_correction,
)
from xsgpu.io.runstore import RunStore
from xsgpu.io.schema import SAMPLES, fill_samples


def _make_store(path, *, n=10, partition_size=4, seed=0) -> tuple[RunStore, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random((n, 17)) < 0.3
    store = RunStore.create(path, n_samples=n, partition_size=partition_size)
    for p in range(store.n_partitions):
        a, b = store.partition_bounds(p)
        df = pd.DataFrame({"sample_id": np.arange(a, b, dtype=np.int64),
                           "source_uri": [f"/data/run{i // 5}/img{i:03d}.tif" for i in range(a, b)],
                           "frame": np.zeros(b - a, dtype=np.int32),
                           "labelled": [i != 3 for i in range(a, b)]})
        for j, col in enumerate(label_columns()):
            df[col] = y[a:b, j]
        store.write_partition(SAMPLES, p, fill_samples(df))
    return store, y


@pytest.fixture
def store_y(tmp_path):
    return _make_store(tmp_path / "run")


def test_empty_log(store_y):
    store, y = store_y
    df = read_corrections(store)
    assert list(df.columns) == CORRECTIONS_COLUMNS and len(df) == 0
    np.testing.assert_array_equal(corrected_labels(store), y)


def test_record_read_apply(store_y):
    store, y = store_y
    ring = resolve_attribute("ring").index
    before = bool(y[5, ring])
    row = record_correction(store, sample_id=5, attribute="Ring", new=not before, note="weak ring missed",
                            user="ana")
    assert list(row.columns) == CORRECTIONS_COLUMNS
    assert row.iloc[0]["attribute"] == "ring" and row.iloc[0]["old"] == before
    assert row.iloc[0]["time"].endswith("+00:00")
    # a second correction of the same pair: old is the corrected value, and the latest wins
    row2 = record_correction(store, sample_id=5, attribute="y__ring", new=before, note="undo")
    assert row2.iloc[0]["old"] == (not before)
    record_correction(store, sample_id=9, attribute=0, new=1)
    log = read_corrections(store)
    assert len(log) == 3
    assert log["note"].tolist() == ["weak ring missed", "undo", ""]
    assert log["time"].is_monotonic_increasing
    fixed = corrected_labels(store)
    expected = y.copy()
    expected[9, 0] = True
    np.testing.assert_array_equal(fixed, expected)
    # the stored labels are untouched
    np.testing.assert_array_equal(store.labels(), y)


def test_apply_latest_wins_regardless_of_row_order():
    y = np.zeros((4, 17), dtype=bool)
    log = pd.DataFrame({"sample_id": [2, 2, 0], "attribute": ["bcc", "bcc", "fcc"], "new": [False, True, True],
                        "time": ["2026-01-02T00:00:00", "2026-01-01T00:00:00", "2026-01-01T00:00:00"]})
    out = apply_corrections(y, log)
    assert not out[2, 0] and out[0, 5] and out.sum() == 1
    assert not y.any(), "apply_corrections must not modify its input"


@pytest.mark.parametrize("kwargs, match", [
    ({"sample_id": 10, "attribute": "ring", "new": True}, r"'sample_id' parameter of record_correction must be an int in \[0, 10\)"),
    ({"sample_id": "3", "attribute": "ring", "new": True}, r"'sample_id' parameter .* Got '3' instead"),
    ({"sample_id": 1, "attribute": "donut", "new": True}, r"'attribute' parameter of record_correction must name one of the 17"),
    ({"sample_id": 1, "attribute": "ring", "new": 2}, r"'new' parameter of record_correction must be a bool"),
    ({"sample_id": 1, "attribute": "ring", "new": True, "note": 5}, r"'note' and 'user' parameters"),
])
def test_record_rejects_bad_input(store_y, kwargs, match):
    store, _ = store_y
    with pytest.raises(ValueError, match=match):
        record_correction(store, **kwargs)
    assert len(read_corrections(store)) == 0


def test_apply_rejects_bad_input():
    y = np.zeros((3, 17), dtype=bool)
    with pytest.raises(ValueError, match=r"must have shape \(n, 17\). Got shape \(3, 16\)"):
        apply_corrections(y[:, :16], pd.DataFrame())
    with pytest.raises(ValueError, match=r"sample ids \[7\] outside 0..2"):
        apply_corrections(y, pd.DataFrame({"sample_id": [7], "attribute": ["ring"], "new": [True]}))
    with pytest.raises(ValueError, match=r"unknown attributes \['donut'\]"):
        apply_corrections(y, pd.DataFrame({"sample_id": [1], "attribute": ["donut"], "new": [True]}))
    with pytest.raises(ValueError, match=r"needs a 'new' column"):
        apply_corrections(y, pd.DataFrame({"sample_id": [1], "attribute": ["ring"]}))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_labels(store_y, tmp_path, suffix):
    store, y = store_y
    record_correction(store, sample_id=2, attribute="fcc", new=not y[2, 5])
    record_correction(store, sample_id=3, attribute="halo", new=True, note="unlabelled, now labelled")
    out = tmp_path / f"labels{suffix}"
    table = export_labels(store, out)
    back = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    assert list(back.columns) == ["source_uri", "frame", "sample_id", *NAMES]
    expected = y.copy()
    expected[2, 5] = not y[2, 5]
    expected[3, 6] = True
    # sample 3 is unlabelled but was corrected, so it is written; all 10 rows are present
    assert back["sample_id"].tolist() == list(range(10))
    np.testing.assert_array_equal(back[list(NAMES)].to_numpy(), expected.astype(int))
    assert set(np.unique(back[list(NAMES)].to_numpy())) <= {0, 1}
    assert back["source_uri"].iloc[7] == "/data/run1/img007.tif" and (back["frame"] == 0).all()
    assert len(table) == len(back)


def test_export_skips_unlabelled_without_corrections(store_y, tmp_path):
    store, _ = store_y
    out = export_labels(store, tmp_path / "l.csv")
    assert 3 not in out["sample_id"].tolist() and len(out) == 9
    out_all = export_labels(store, tmp_path / "l.csv", include_unlabelled=True)
    assert len(out_all) == 10


def test_export_rejects_suffix(store_y, tmp_path):
    store, _ = store_y
    with pytest.raises(ValueError, match=r"'out_path' parameter of export_labels must end in .csv or .parquet"):
        export_labels(store, tmp_path / "labels.xlsx")
    assert not (tmp_path / "labels.xlsx").exists()


def test_cli_export_labels(store_y, tmp_path):
    from workflows.cli import main

    store, y = store_y
    record_correction(store, sample_id=0, attribute="bcc", new=not y[0, 0])
    runner = CliRunner()
    res = runner.invoke(main, ["export-labels", str(store.path), "--out", str(tmp_path / "x.parquet")])
    assert res.exit_code == 0, res.output
    assert "1 corrections applied" in res.output
    back = pd.read_parquet(tmp_path / "x.parquet")
    assert back.loc[0, "BCC"] == int(not y[0, 0])
    record_correction(store, sample_id=1, attribute="bcc", new=True)
    res = runner.invoke(main, ["export-labels", str(store.path), "--compact"])
    assert res.exit_code == 0 and (store.path / "labels_corrected.csv").exists()
    assert "Merged 2 correction files" in res.output and "2 corrections applied" in res.output
    assert len(list(store.corrections.path.glob("*.parquet"))) == 1
    res = runner.invoke(main, ["export-labels", str(tmp_path / "nope")])
    assert res.exit_code != 0 and "No run store at" in res.output
    res = runner.invoke(main, ["export-labels", "--help"])
    assert "xsgpu export-labels runs/demo --out labels.parquet" in res.output


def test_export_roundtrip_through_ingest(tmp_path):
    """export-labels writes what `xsgpu ingest --labels` reads: a re-ingest carries the corrected labels."""
    ingest = pytest.importorskip("xsgpu.io.ingest")
    rng = np.random.default_rng(3)
    data = tmp_path / "data" / "runA"
    data.mkdir(parents=True)
    np.save(data / "a.npy", rng.random((16, 16)).astype(np.float32) * 100)
    np.save(data / "b.npy", rng.random((2, 16, 16)).astype(np.float32) * 100)  # two frames
    labels = pd.DataFrame({"source_uri": [str(data / "a.npy"), str(data / "b.npy"), str(data / "b.npy")],
                           "frame": [0, 0, 1]})
    for name in NAMES:
        labels[name] = 0
    labels["Ring"] = [1, 0, 1]
    labels.to_csv(tmp_path / "labels.csv", index=False)
    store = ingest.ingest_paths([data], tmp_path / "run1", labels=tmp_path / "labels.csv", size=16,
                                partition_size=4, progress=False)
    y = store.labels()
    assert y.sum() == 2
    samples = store.samples.read()
    b1 = int(samples.index[(samples["source_uri"] == str(data / "b.npy")) & (samples["frame"] == 1)][0])
    record_correction(store, sample_id=b1, attribute="Ring", new=False, note="no ring")
    record_correction(store, sample_id=b1, attribute="Halo", new=True)
    export_labels(store, tmp_path / "fixed.csv")
    again = ingest.ingest_paths([data], tmp_path / "run2", labels=tmp_path / "fixed.csv", size=16,
                                partition_size=4, progress=False)
    np.testing.assert_array_equal(again.labels(), corrected_labels(store))
    assert again.samples.read()["labelled"].all()


def test_compact_corrections(store_y):
    from xsgpu.io.corrections import compact_corrections

    store, y = store_y
    assert compact_corrections(store) == 0
    for i in range(5):
        record_correction(store, sample_id=i, attribute="ring", new=bool(i % 2), note=f"n{i}")
    before = read_corrections(store)
    fixed = corrected_labels(store)
    assert compact_corrections(store) == 5
    files = list(store.corrections.path.glob("*.parquet"))
    assert len(files) == 1 and "compacted" in files[0].name
    pd.testing.assert_frame_equal(read_corrections(store), before)
    np.testing.assert_array_equal(corrected_labels(store), fixed)
    # recording after compaction: old is the compacted value, the newest wins
    row = record_correction(store, sample_id=1, attribute="ring", new=False)
    assert bool(row.iloc[0]["old"]) is True
    assert not corrected_labels(store)[1, resolve_attribute("ring").index]
