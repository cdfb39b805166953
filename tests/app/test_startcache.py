"""The app's start-up cache in the run store: written on first load, memory-mapped later, rebuilt when stale."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from panel_app.data import load_run_data
from panel_app.startcache import cache_dir, cached_array
from panel_app.views.index import space_index
from tests.app.conftest import make_app_run
from xsgpu.io.schema import PREDICTIONS


def test_second_load_memory_maps_the_cache(tmp_path):
    store = make_app_run(tmp_path / "run", n=600, partition_size=200, stages=False)
    first = load_run_data(store.path, use_cache=False)
    assert sorted(p.name for p in cache_dir(store).glob("*.npy")) == ["coords.npy", "labels.npy", "probabilities.npy"]
    idx = space_index(first, "FEA")
    assert (cache_dir(store) / "index_order_fea.npy").is_file()
    second = load_run_data(store.path, use_cache=False)
    for arr in (second.y_true, second.y_prob):
        assert isinstance(arr, np.memmap) or isinstance(getattr(arr, "base", None), np.memmap)
    np.testing.assert_array_equal(second.y_true, store.labels())
    np.testing.assert_array_equal(second.y_prob, first.y_prob)
    emb = store.embedding.read()
    np.testing.assert_array_equal(second.coords("PRD")[1], emb["prd_y"].to_numpy(np.float32))
    idx2 = space_index(second, "FEA")
    assert isinstance(idx2.order, np.memmap)
    np.testing.assert_array_equal(idx2.order, np.argsort(emb["fea_x"].to_numpy(np.float32), kind="stable"))
    np.testing.assert_array_equal(idx2.ids_in_box(-5, 5, -5, 5), idx.ids_in_box(-5, 5, -5, 5))
    assert "y__" + second.vocabulary.slugs[0] not in second.samples.columns  # labels come from the array


def test_a_changed_source_rebuilds_the_cache(tmp_path):
    store = make_app_run(tmp_path / "run", n=400, partition_size=200, stages=False)
    before = load_run_data(store.path, use_cache=False).y_prob.copy()
    part = store.predictions.read().iloc[:200].copy()
    col = store.vocabulary.prob_columns()[0]
    part[col] = np.float32(0.25)
    store.predictions.write_partition(0, part)
    path = store.partition_path(PREDICTIONS, 0)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a rewrite within the mtime resolution
    after = load_run_data(store.path, use_cache=False).y_prob
    assert np.all(after[:200, 0] == np.float32(0.25))
    np.testing.assert_array_equal(after[200:], before[200:])


def test_cached_array_builds_once_per_key(tmp_path):
    store = make_app_run(tmp_path / "run", n=300, partition_size=300, stages=False)
    calls = []

    def build():
        calls.append(1)
        return np.arange(store.n_samples, dtype=np.int32)

    a = cached_array(store, "probe", [PREDICTIONS], build)
    b = cached_array(store, "probe", [PREDICTIONS], build)
    assert len(calls) == 1 and isinstance(b, np.memmap)
    np.testing.assert_array_equal(a, b)
    cached_array(store, "probe", [PREDICTIONS], build, version=2)  # a new build version is a new key
    assert len(calls) == 2



def test_start_reads_sorted_points_and_orders_from_the_cache(tmp_path):
    store = make_app_run(tmp_path / "run", n=500, partition_size=250, stages=False)
    load_run_data(store.path, use_cache=False)
    data = load_run_data(store.path, use_cache=False)           # the second start: everything memory-mapped
    x, y = data.coords("ACT")
    assert x.flags.c_contiguous and not x.flags.writeable       # a view of the column-major map, not a copy
    assert np.load(cache_dir(store) / "coords.npy", mmap_mode="r").flags.f_contiguous
    assert data.y_true.flags.c_contiguous and data.y_prob.flags.c_contiguous  # rows: what selections gather
    space_index(data, "ACT")                                      # writes the order and the sorted points
    idx = space_index(load_run_data(store.path, use_cache=False), "ACT")
    assert all(isinstance(a, np.memmap) for a in (idx.order, idx.xs, idx.ys))
    np.testing.assert_array_equal(idx.xs, x[idx.order])
    np.testing.assert_array_equal(idx.ys, y[idx.order])
    assert idx.bounds == (float(x.min()), float(x.max()), float(y.min()), float(y.max()))
    order = data.probability_order()
    assert isinstance(order, np.memmap) and order.shape == data.y_prob.shape
    assert np.all(np.diff(np.take_along_axis(np.asarray(data.y_prob), np.asarray(order), axis=0), axis=0) <= 0)
    assert data.samples["split"].dtype == "category" and data.samples["run_id"].dtype == "category"


def test_the_app_cache_stage_writes_what_a_start_reads(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from panel_app import startcache
    from workflows.cli import main
    from xsgpu.stages import AppCacheParams, get_stage, run_stage

    store = make_app_run(tmp_path / "run", n=500, partition_size=250, stages=False)
    stage = get_stage("app_cache")
    done, why = stage.is_done(store.path, AppCacheParams())
    assert not done and "labels" in why and "index_order_prd" in why
    out = CliRunner().invoke(main, ["app-cache", str(store.path)], catch_exceptions=False)
    assert out.exit_code == 0 and "Wrote the app cache" in out.output, out.output
    assert stage.is_done(store.path, AppCacheParams())[0]
    assert startcache.stale_entries(store, startcache.start_entries()) == []
    # a start after the stage builds nothing: every array it reads is a memory map of the stage's files
    built = []
    monkeypatch.setattr(store.__class__, "write_npy", lambda self, *a, **k: built.append(a[0].name))
    data = load_run_data(store.path, use_cache=False)
    for space in ("ACT", "FEA", "PRD"):
        assert isinstance(space_index(data, space).xs, np.memmap)
    assert isinstance(data.probability_order(), np.memmap)
    assert built == []
    monkeypatch.undo()
    assert CliRunner().invoke(main, ["app-cache", str(store.path)]).output.startswith("The app cache of")
    # a rerun stage (new predictions) makes the probabilities and their order stale, not the coordinates
    path = store.partition_path(PREDICTIONS, 1)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert startcache.stale_entries(store, startcache.start_entries()) == ["probabilities", "probability_order"]
    assert run_stage(stage, store.path, AppCacheParams(spaces=("PRD",))).status == "done"
    assert stage.is_done(store.path, AppCacheParams())[0]


def test_the_app_cache_stage_names_what_a_run_lacks(tmp_path):
    from xsgpu.errors import XsgpuError
    from xsgpu.stages import AppCacheParams, get_stage, run_stage

    store = make_app_run(tmp_path / "run", n=200, partition_size=200, stages=False)
    emb = store.embedding.path
    shutil.rmtree(emb) if emb.is_dir() else emb.unlink()
    with pytest.raises(XsgpuError, match="embedding"):
        run_stage(get_stage("app_cache"), store.path, AppCacheParams())
