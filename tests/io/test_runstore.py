import json
import os

import numpy as np
import pandas as pd
import pytest

from xsgpu.attributes import label_columns
from xsgpu.errors import CorruptArtifact
from xsgpu.io.runstore import RunStore, RunStoreError
from xsgpu.io.schema import SAMPLES, SchemaError, fill_samples


def _samples(start, stop):
    df = pd.DataFrame({"sample_id": np.arange(start, stop)})
    for c in label_columns():
        df[c] = False
    return df


def test_partitions_and_resume(tmp_path):
    store = RunStore.create(tmp_path / "run", n_samples=10, partition_size=4, params={"seed": 1})
    assert store.n_partitions == 3 and store.partition_bounds(2) == (8, 10)
    store.write_partition(SAMPLES, 2, fill_samples(_samples(8, 10)), metadata={"k": 1})
    assert store.samples.pending() == [0, 1]
    assert not store.samples.exists()
    store.write_partition(SAMPLES, 0, fill_samples(_samples(0, 4)))
    store.write_partition(SAMPLES, 1, fill_samples(_samples(4, 8)))
    assert store.samples.exists()
    df = store.samples.read()
    assert df.sample_id.tolist() == list(range(10))
    assert store.samples.metadata() == {"k": 1} or store.samples.metadata() == {}
    assert store.labels().shape == (10, 17)
    again = RunStore.create(tmp_path / "run", n_samples=10, partition_size=4)
    assert again.samples.finished() == {0, 1, 2}
    with pytest.raises(RunStoreError, match="n_samples=10, partition_size=4; this call asks for 11, 4"):
        RunStore.create(tmp_path / "run", n_samples=11, partition_size=4)


def test_partition_must_hold_its_ids(tmp_path):
    store = RunStore.create(tmp_path / "run", n_samples=10, partition_size=4)
    with pytest.raises(ValueError, match="partition 1 must hold sample_id 4..7"):
        store.write_partition(SAMPLES, 1, fill_samples(_samples(0, 4)))


def test_no_temp_files_left_and_atomic_on_failure(tmp_path, monkeypatch):
    store = RunStore.create(tmp_path / "run", n_samples=4, partition_size=4)
    import pyarrow.parquet as pq

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", boom)
    with pytest.raises(OSError, match="disk full"):
        store.write_partition(SAMPLES, 0, fill_samples(_samples(0, 4)))
    monkeypatch.undo()
    assert store.samples.finished() == set()
    assert [f for f in os.listdir(store.samples.path)] == []


def test_open_errors(tmp_path):
    with pytest.raises(RunStoreError, match="does not exist"):
        RunStore.open(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunStoreError, match="manifest.json is missing"):
        RunStore.open(tmp_path / "empty")
    store = RunStore.create(tmp_path / "run", n_samples=4, partition_size=4)
    with pytest.raises(RunStoreError, match="the run has no predictions yet"):
        RunStore.open(store.path, require=["predictions"])
    man = json.loads(store.manifest_path.read_text())
    man["vocabulary"] = man["vocabulary"][:2] + man["vocabulary"][:1]
    store.manifest_path.write_text(json.dumps(man))
    with pytest.raises(RunStoreError, match="field 'vocabulary'.*share the name 'bcc'"):
        RunStore.open(store.path)


def test_errors_table_replaces_per_key(tmp_path):
    store = RunStore.create(tmp_path / "run", n_samples=4, partition_size=4)
    rows = [{"source_uri": "a.tif", "error_type": "ValueError", "message": "truncated"}]
    store.record_errors(rows, stage="ingest", key="00000")
    store.record_errors(rows, stage="ingest", key="00000")
    err = store.read_errors()
    assert len(err) == 1 and err.stage.tolist() == ["ingest"]
    store.record_errors([], stage="ingest", key="00000")
    assert len(store.read_errors()) == 0


def test_arrays(tmp_path):
    store = RunStore.create(tmp_path / "run", n_samples=10, partition_size=4)
    arr = store.images.create((10, 8, 8), np.float16)
    arr[4:8] = np.ones((4, 8, 8), np.float16)
    again = store.images.create((10, 8, 8), np.float16)
    assert float(np.asarray(again[5]).sum()) == 64
    assert tuple(store.images.open().chunks) == (4, 8, 8)
    with pytest.raises(RunStoreError, match="exists with shape"):
        store.images.create((10, 9, 9), np.float16)
    with pytest.raises(SchemaError, match=r"images must have one row per sample \(10\)"):
        store.images.create((11, 8, 8), np.float16)
    with pytest.raises(SchemaError, match="images must be float16; asked for float32"):
        store.images.create((10, 8, 8), np.float32)


# ---------------------------------------------------------------- missing and corrupt chunks (issue 15.2)
def _chunk_file(store, name, block):
    arr = store.open_array(name)
    key = arr.metadata.encode_chunk_key((block,) + (0,) * (arr.ndim - 1))
    return store.array_path(name).joinpath(*key.split("/"))


@pytest.fixture
def filled(tmp_path):
    store = RunStore.create(tmp_path / "run", n_samples=10, partition_size=4)
    arr = store.images.create((10, 8, 8), np.float16)
    arr[0:4] = 0  # an all-zero partition (e.g. every frame unreadable) is stored like any other
    arr[4:10] = np.ones((6, 8, 8), np.float16)
    return store


def test_all_zero_chunks_are_stored_and_read(filled):
    assert _chunk_file(filled, "images", 0).is_file()
    arr = filled.images.open()
    assert float(np.asarray(arr[0:4]).sum()) == 0 and float(np.asarray(arr[:]).sum()) == 6 * 64
    assert arr.shape == (10, 8, 8) and len(arr) == 10 and np.asarray(arr).shape == (10, 8, 8)


@pytest.mark.parametrize("key", [slice(5, 6), 6, -4, np.array([1, 7]), (slice(None), 0), Ellipsis])
def test_deleted_chunk_is_an_error_naming_rows_and_remedy(filled, key):
    _chunk_file(filled, "images", 1).unlink()
    arr = filled.images.open()
    with pytest.raises(CorruptArtifact, match=r"images.zarr: rows 4..7 \(partition 1\) have no stored chunk .*"
                                              r"Hint: delete samples.parquet/part-00001.parquet in .* and rerun the "
                                              r"same `xsgpu ingest` \(or `xsgpu synth`\) command"):
        arr[key]
    assert float(np.asarray(arr[8:10]).sum()) == 2 * 64  # other partitions still read


def test_deleted_chunk_in_orthogonal_selection(filled):
    _chunk_file(filled, "images", 2).unlink()
    with pytest.raises(CorruptArtifact, match=r"rows 8..9 \(partition 2\)"):
        filled.images.open().get_orthogonal_selection((np.array([0, 9]), slice(None), slice(None)))


def test_truncated_chunk_is_an_error_naming_rows(filled):
    f = _chunk_file(filled, "images", 1)
    f.write_bytes(f.read_bytes()[:10])
    with pytest.raises(CorruptArtifact, match=r"images.zarr: rows 4..7 \(partition 1\) cannot be decoded \(.*\)"):
        filled.images.open()[0:10]


def test_features_remedy_names_infer(tmp_path):
    store = RunStore.create(tmp_path / "run", n_samples=8, partition_size=4)
    store.features.create((8, 3), np.float16)[:] = np.ones((8, 3))
    _chunk_file(store, "features", 0).unlink()
    with pytest.raises(CorruptArtifact, match=r"features.zarr: rows 0..3 .*predictions.parquet/part-00000.parquet"
                                              r".*`xsgpu infer RUN --model MODEL`.*--overwrite"):
        store.features.open()[:]


def test_truncated_parquet_part_names_the_file(tmp_path):
    store = RunStore.create(tmp_path / "run", n_samples=4, partition_size=4)
    store.write_partition(SAMPLES, 0, fill_samples(_samples(0, 4)))
    part = store.samples.path / "part-00000.parquet"
    part.write_bytes(part.read_bytes()[:40])
    with pytest.raises(CorruptArtifact, match=r"part-00000.parquet: not a readable Parquet file"):
        store.samples.read()


# ---------------------------------------------------------------- file modes (issue 15.8)
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_files_get_the_umask_mode_not_mkstemp_0600(tmp_path, umask, mode):
    import stat

    old = os.umask(umask)
    try:
        store = RunStore.create(tmp_path / "run", n_samples=4, partition_size=4)
        store.write_partition(SAMPLES, 0, fill_samples(_samples(0, 4)))
        store.fea_reduced.save(np.zeros((4, 2), np.float32))
        store.set_stage("ingest", "done")
        store.images.create((4, 2, 2), np.float16)[:] = np.ones((4, 2, 2))
    finally:
        os.umask(old)
    files = [store.manifest_path, store.samples.path / "part-00000.parquet", store.fea_reduced.path]
    files += [p for p in store.images.path.rglob("*") if p.is_file()]
    assert {oct(stat.S_IMODE(f.stat().st_mode)) for f in files} == {oct(mode)}


def test_checked_arrays_pickle_and_copy(filled):
    import copy
    import pickle

    arr = filled.images.open()
    for other in (pickle.loads(pickle.dumps(arr)), copy.copy(arr)):
        assert float(np.asarray(other[4:6]).sum()) == 2 * 64 and other.checked


def test_strings_read_as_categories_hold_the_same_values(tmp_path):
    store = RunStore.create(tmp_path / "run", n_samples=10, partition_size=4)
    for p, (a, b) in enumerate([(0, 4), (4, 8), (8, 10)]):
        df = _samples(a, b)
        df["run_id"] = [f"r{p}"] * (b - a)                    # another string in every part
        df["source_uri"] = [f"/d/{i % 3}.h5" for i in range(a, b)]
        store.write_partition(SAMPLES, p, fill_samples(df))
    plain = store.samples.read()
    cats = store.samples.read(strings_as_categories=True)
    for col in ("run_id", "source_uri"):
        assert isinstance(cats[col].dtype, pd.CategoricalDtype)
        assert cats[col].astype(str).tolist() == plain[col].astype(str).tolist()
    assert sorted(cats["run_id"].cat.categories) == ["r0", "r1", "r2"]  # one dictionary for the whole table
    assert cats["sample_id"].tolist() == list(range(10))
    pd.testing.assert_frame_equal(cats[label_columns()], plain[label_columns()])
    some = store.samples.read(columns=["sample_id", "run_id"], strings_as_categories=True)
    assert list(some.columns) == ["sample_id", "run_id"] and isinstance(some["run_id"].dtype, pd.CategoricalDtype)


@pytest.mark.parametrize("as_categories", [False, True])
def test_a_table_read_comes_back_sorted_by_id(tmp_path, as_categories):
    store = RunStore.create(tmp_path / "run", n_samples=6, partition_size=6)
    ids = np.array([3, 0, 5, 1, 4, 2])
    df = pd.DataFrame({"sample_id": ids, **{c: ids.astype(np.float32) * (j + 1)
                                            for j, c in enumerate(["act_x", "act_y", "fea_x", "fea_y", "prd_x", "prd_y"])}})
    store.embedding.write(df)
    got = store.read_table("embedding", strings_as_categories=as_categories)
    assert got["sample_id"].tolist() == list(range(6))
    assert got["fea_x"].tolist() == [3.0 * i for i in range(6)]
