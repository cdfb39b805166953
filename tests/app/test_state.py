"""RunData loading and the per-session AppState, without a browser."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from panel_app.data import RunData, check_run, clear_cache, load_run_data
from panel_app.state import AppState, Group
from xsgpu.attributes import SLUGS, label_columns, prob_columns
from xsgpu.io.runstore import RunStore, RunStoreError


def test_load_run_data_matches_tables(app_run):
    data = load_run_data(app_run, use_cache=False)
    store = RunStore.open(app_run)
    samples = store.samples.read()
    pred = store.predictions.read()
    emb = store.embedding.read()
    assert data.n == len(samples) == 1500
    np.testing.assert_array_equal(data.y_true, samples[label_columns()].to_numpy(bool))
    np.testing.assert_allclose(data.y_prob, pred[prob_columns()].to_numpy(np.float32))
    x, y = data.coords("FEA")
    np.testing.assert_allclose(x, emb["fea_x"])
    np.testing.assert_allclose(y, emb["fea_y"])
    assert data.y_prob.dtype == np.float32 and data.y_true.dtype == bool
    assert data.thumbs[7].shape == (64, 64) and data.thumbs.dtype == np.uint8
    np.testing.assert_array_equal(data.thumbnail(7), np.asarray(store.thumbs.open()[7]))
    assert data.features.shape[0] == 1500 and data.method == "tsne"
    assert data.thumbnail_uri(3).startswith("data:image/png;base64,")


def test_load_run_data_is_cached_per_process(app_run):
    clear_cache()
    a = load_run_data(app_run)
    b = load_run_data(str(app_run) + "/")
    assert a is b
    assert load_run_data(app_run, use_cache=False) is not a


def test_check_id_rejects_paths_and_out_of_range(app_run):
    data = load_run_data(app_run)
    assert data.check_id(np.int64(5)) == 5
    for bad in ("../etc/passwd", -1, 1500, 2.5, None, True):
        with pytest.raises(ValueError, match="The 'sample_id' parameter must be an integer in 0..1499"):
            data.check_id(bad)


def test_incomplete_run_names_the_stage(app_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(app_run, copy)
    (copy / "embedding.parquet").unlink()
    shutil.rmtree(copy / "features.zarr")
    problems = check_run(copy)
    assert any("embedding.parquet" in p and "xsgpu embed" in p for p in problems)
    assert any("features.zarr" in p and "xsgpu infer" in p for p in problems)
    with pytest.raises(RunStoreError, match="xsgpu embed RUN"):
        load_run_data(copy, use_cache=False)
    assert "does not exist" in check_run(tmp_path / "nope")[0]


def test_non_dense_embedding_is_refused(app_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(app_run, copy)
    store = RunStore.open(copy)
    emb = store.embedding.read().iloc[:-1]
    store.embedding.write(emb, metadata={"method": "tsne"})
    with pytest.raises(RunStoreError, match=r"embedding.parquet: expected sample_id 0..1499"):
        load_run_data(copy, use_cache=False)


def test_filtered_mask_any_all_and_prd(app_state):
    y = app_state.data.y_true
    p = app_state.data.y_prob
    assert app_state.filtered_mask().all()
    i, j = SLUGS.index("ring"), SLUGS.index("halo")
    app_state.filter_attributes = ["ring", "halo"]
    np.testing.assert_array_equal(app_state.filtered_mask(), y[:, i] | y[:, j])
    app_state.filter_mode = "all"
    np.testing.assert_array_equal(app_state.filtered_mask(), y[:, i] & y[:, j])
    app_state.filter_source = "PRD"
    app_state.cutoff = 0.6
    np.testing.assert_array_equal(app_state.filtered_mask(), (p[:, i] > 0.6) & (p[:, j] > 0.6))


def test_y_act_applies_corrections_and_filters_follow(app_state):
    from xsgpu.io.corrections import record_correction

    data = app_state.data
    col = SLUGS.index("ring")
    sid = int(np.flatnonzero(~data.y_true[:, col])[0])
    app_state.filter_attributes = ["ring"]
    before = app_state.filtered_mask().copy()
    assert not before[sid]
    record_correction(data.store, sample_id=sid, attribute="ring", new=True, note="test")
    app_state.corrections_version += 1
    y = app_state.y_act()
    assert y[sid, col] and not data.y_true[sid, col]  # stored ACT untouched, corrected ACT changed
    assert app_state.filtered_mask()[sid]
    assert (app_state.filtered_mask() != before).sum() == 1


def test_corrections_from_another_session_are_seen(app_state):
    from xsgpu.io.corrections import record_correction

    other = AppState(data=app_state.data)
    sid = 11
    col = SLUGS.index("halo")
    old = bool(app_state.y_act()[sid, col])
    record_correction(app_state.data.store, sample_id=sid, attribute="halo", new=not old)
    app_state.corrections_version += 1  # the recording session bumps its own counter ...
    assert other.y_act()[sid, col] == (not old)  # ... the other session sees the new table anyway


def test_select_validates_and_normalises(app_state):
    app_state.select([5, 3, 5, np.int64(9)])
    assert app_state.selection.tolist() == [3, 5, 9] and app_state.selection.dtype == np.int64
    app_state.select(np.array([], dtype=np.int64))
    assert len(app_state.selection) == 0
    with pytest.raises(ValueError, match=r"sample ids in 0..1499. Got 1500 instead"):
        app_state.select([1, 1500])
    with pytest.raises(ValueError, match="must hold integer sample ids"):
        app_state.select(["a"])
    with pytest.raises(ValueError, match="must hold integer sample ids"):
        app_state.select([1.5])


def test_groups(app_state):
    with pytest.raises(ValueError, match="the selection is empty"):
        app_state.add_group()
    app_state.select([1, 2, 3])
    g1 = app_state.add_group()
    g2 = app_state.add_group(name="rings", ids=[7, 8])
    assert isinstance(g1, Group) and g1.name == "group 1" and g1.ids.tolist() == [1, 2, 3]
    assert g2.ids.tolist() == [7, 8] and g1.colour != g2.colour
    app_state.select([4])
    assert g1.ids.tolist() == [1, 2, 3]  # a group is a copy, not a view of the selection
    with pytest.raises(ValueError, match="a group 'rings' exists"):
        app_state.add_group(name="rings")
    app_state.remove_group("rings")
    assert [g.name for g in app_state.groups] == ["group 1"]


def test_error_distance_follows_metric(app_state):
    from xsgpu.metrics import error_distance

    y, p = app_state.data.y_true, app_state.data.y_prob
    for metric in ("cosine", "euclidean", "manhattan"):
        app_state.distance = metric
        np.testing.assert_allclose(app_state.error_distance(), error_distance(y, p, metric=metric), rtol=1e-6)
        np.testing.assert_allclose(app_state.error_distance([4, 2]), error_distance(y, p, metric=metric)[[4, 2]],
                                   rtol=1e-6)
    assert app_state.error_span == (0.0, 17.0)


def test_from_arrays_validates_shapes():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"The 'coords' parameter must have shape \(4, 6\)"):
        RunData.from_arrays(y_true=np.zeros((4, 17), bool), y_prob=np.zeros((4, 17)), coords=np.zeros((4, 5)))
    with pytest.raises(ValueError, match=r"must have shape \(n, 17\)"):
        RunData.from_arrays(y_true=np.zeros((4, 16), bool), y_prob=np.zeros((4, 17)), coords=np.zeros((4, 6)))
    d = RunData.from_arrays(y_true=rng.random((4, 17)) < 0.5, y_prob=rng.random((4, 17)),
                            coords=rng.normal(size=(4, 6)))
    assert isinstance(d.samples, pd.DataFrame) and d.samples["sample_id"].tolist() == [0, 1, 2, 3]
    with pytest.raises(TypeError, match="must be a RunData"):
        AppState(data="run")


def test_sorted_unique_ids():
    from panel_app.state import sorted_unique

    ids = np.array([1, 4, 9], np.int64)
    assert sorted_unique(ids) is ids                       # a box query's ids: taken as they are
    np.testing.assert_array_equal(sorted_unique(np.array([9, 1, 4, 1, 9], np.int64)), [1, 4, 9])
    assert sorted_unique(np.zeros(0, np.int64)).size == 0
