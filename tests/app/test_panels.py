"""The analysis panels driven without a browser: selection manager, detail view, overview, study,
co-occurrence and suspicious labels, on a small seeded run store (tests/app/conftest_panels.py)."""
from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, precision_recall_fscore_support
from sklearn.neighbors import NearestNeighbors

from xsgpu.attributes import ATTRIBUTES, NAMES, label_columns, prob_columns, resolve_attribute
from xsgpu.io.corrections import read_corrections

_spec = importlib.util.spec_from_file_location("conftest_panels", Path(__file__).with_name("conftest_panels.py"))
_cp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cp)

pytest.importorskip("panel")


@pytest.fixture(scope="module")
def run_path(tmp_path_factory):
    return _cp.make_panel_run(tmp_path_factory.mktemp("panels") / "run").path


@pytest.fixture
def state(run_path, tmp_path):
    """A fresh session over a fresh copy of the run (corrections must not leak between tests)."""
    import shutil

    from panel_app.data import load_run_data
    from panel_app.state import AppState

    copy = tmp_path / "run"
    shutil.copytree(run_path, copy)
    return AppState(data=load_run_data(copy, use_cache=False))


# ---------------------------------------------------------------------- selection manager
def _expected_counts(y, p, cutoff):
    pred = p > cutoff
    return pd.DataFrame({"tp": (y & pred).sum(0), "tn": (~y & ~pred).sum(0), "fp": (~y & pred).sum(0),
                         "fn": (y & ~pred).sum(0)}, index=[a.slug for a in ATTRIBUTES])


def test_selection_count_and_groups(state):
    from panel_app.panels import SelectionManager

    sm = SelectionManager(state=state)
    assert sm._count.object == "0" and "xsgpu-selection-count" in sm._count.css_classes
    state.select(np.arange(10, 40))
    assert sm._count.object == "30"
    sm._name.value = "left"
    sm._on_save()
    # saving does not switch Group A: it still shows the current selection, so the next one's metrics show
    assert [g.name for g in state.groups] == ["left"] and sm._left.value == "(current selection)"
    state.select(np.arange(60, 100))
    assert "(40 images)" in sm._cards[0].objects[0].object
    g = sm.save_group("right")
    assert len(g) == 40 and g.colour != state.groups[0].colour
    sm._left.value = "left"
    sm._right.value = "right"
    assert [c.visible for c in sm._cards] == [True, True], "two groups side by side"
    assert "**left** (30 images)" in sm._cards[0].objects[0].object
    assert "**right** (40 images)" in sm._cards[1].objects[0].object
    sm._on_save()  # empty name -> automatic name; selection still holds 40 ids
    assert len(state.groups) == 3
    sm._name.value = "left"
    sm._on_save()
    assert sm._message.visible and "must be new" in sm._message.object


@pytest.mark.parametrize("cutoff", [0.5, 0.3])
def test_group_metrics_equal_sklearn(state, cutoff):
    from panel_app.panels import SelectionManager

    sm = SelectionManager(state=state)
    ids = np.arange(5, 95, 2)
    state.select(ids)
    state.cutoff = cutoff
    sm.save_group("g")
    m = sm.group_metrics("g")
    y, p = state.y_act()[ids], state.data.y_prob[ids]
    exp = _expected_counts(y, p, cutoff)
    per = m.per_attribute
    for col in ("tp", "tn", "fp", "fn"):
        np.testing.assert_array_equal(per[col].to_numpy(), exp[col].to_numpy(), err_msg=col)
    pr, rc, f1, _ = precision_recall_fscore_support(y, p > cutoff, average=None, zero_division=0)
    np.testing.assert_allclose(per["precision"], pr)
    np.testing.assert_allclose(per["recall"], rc)
    np.testing.assert_allclose(per["f1"], f1)
    np.testing.assert_allclose(per["accuracy"], (y == (p > cutoff)).mean(0))
    assert m.overall["accuracy"] == pytest.approx((y == (p > cutoff)).mean())
    # the rendered card shows the same table
    head, shown = sm.metrics_table("g")
    assert f"TP {int(exp['tp'].sum()):,}, TN {int(exp['tn'].sum()):,}" in head
    assert shown["attribute"].tolist() == list(NAMES)
    np.testing.assert_array_equal(shown["tp"].to_numpy(), exp["tp"].to_numpy())


def test_group_metrics_follow_corrections(state):
    from panel_app.panels import DetailView, SelectionManager

    sm, dv = SelectionManager(state=state), DetailView(state=state)
    ids = np.arange(0, 20)
    state.select(ids)
    before = sm.group_metrics("(current selection)").per_attribute.loc["ring", ["tp", "fn", "fp", "tn"]].sum()
    j = resolve_attribute("ring").index
    act = state.y_act()[3, j]
    tp_before = sm.group_metrics("(current selection)").per_attribute.loc["ring", "tp"]
    dv.record(sample_id=3, attribute="ring", new=not act)
    after = sm.group_metrics("(current selection)").per_attribute.loc["ring"]
    assert after[["tp", "fn", "fp", "tn"]].sum() == before
    pred = state.data.y_prob[3, j] > state.cutoff
    if pred:  # flipping ACT of a predicted-positive cell moves it between TP and FP
        assert after["tp"] == tp_before + (1 if not act else -1)


@pytest.mark.parametrize("fmt_", ["csv", "parquet"])
def test_export_group(state, fmt_):
    from panel_app.panels import SelectionManager

    sm = SelectionManager(state=state)
    ids = np.array([4, 8, 15, 16, 23, 42])
    state.select(ids)
    sm.save_group("lucky")
    raw = sm.export_group("lucky", fmt_)
    back = pd.read_csv(io.BytesIO(raw)) if fmt_ == "csv" else pd.read_parquet(io.BytesIO(raw))
    assert back["sample_id"].tolist() == ids.tolist()
    assert back["source_uri"].tolist() == [f"/data/run{i // 30}/img{i:04d}.tif" for i in ids]
    assert (back["group"] == "lucky").all()
    np.testing.assert_array_equal(back[label_columns()].to_numpy(bool), state.y_act()[ids])
    np.testing.assert_allclose(back[prob_columns()].to_numpy(), state.data.y_prob[ids], rtol=1e-6, atol=1e-6)
    # the download button serves the same bytes, with a matching file name
    sm._left.value = "lucky"
    sm._format.value = fmt_
    assert sm._download_callback().getvalue() == raw and sm._download.filename == f"lucky.{fmt_}"
    with pytest.raises(ValueError, match=r"'fmt_' parameter of SelectionManager.export_group must be 'csv' or"):
        sm.export_group("lucky", "xlsx")
    with pytest.raises(KeyError, match="No group named 'nope'"):
        sm.export_group("nope")


@pytest.mark.parametrize("method, params", [("kmeans", {"n_clusters": 4, "random_state": 0}),
                                            ("dbscan", {"eps": 1.5, "min_samples": 3})])
def test_cluster_group_into_subgroups(state, method, params):
    from panel_app.panels import SelectionManager

    sm = SelectionManager(state=state)
    state.select(np.arange(state.data.n))
    sm.save_group("all")
    new = sm.cluster_group("all", method=method, space="FEA", **params)
    assert len(new) >= 2 and all(g.name.startswith("all/") for g in new)
    got = np.sort(np.concatenate([g.ids for g in new]))
    np.testing.assert_array_equal(got, np.arange(state.data.n)), "sub-groups partition the group"
    assert {g.name for g in new} <= {g.name for g in state.groups}
    if method == "kmeans":
        assert len(new) == 4 and np.isfinite(sm.last_cluster.silhouette)
    assert "sub-groups" in sm._message.object
    with pytest.raises(ValueError, match=r"'space' parameter of SelectionManager.cluster_group must be one of"):
        sm.cluster_group("all", space="nowhere")


def test_cluster_on_features_and_errors(state):
    from panel_app.panels import SelectionManager

    sm = SelectionManager(state=state)
    ids = np.array([50, 3, 77, 10, 11, 90, 64, 2])
    from panel_app.panels.neighbours import feature_index

    x = sm.cluster_features(ids, "features")
    np.testing.assert_array_equal(x, feature_index(state.data).reduced[ids])
    np.testing.assert_allclose(sm.cluster_features(ids, "probabilities"), state.data.y_prob[ids])
    xs, ys = state.data.coords("PRD")
    np.testing.assert_array_equal(sm.cluster_features(ids, "PRD"), np.column_stack([xs[ids], ys[ids]]))
    state.select(ids)
    new = sm.cluster_group("(current selection)", method="kmeans", space="features", n_clusters=2)
    assert [g.name for g in new] == ["selection/c0", "selection/c1"]
    state.select([5])
    sm.save_group("one")
    with pytest.raises(ValueError, match="has 1 image"):
        sm.cluster_group("one")
    sm._left.value = "one"
    sm._on_cluster()
    assert "has 1 image" in sm._message.object


# ---------------------------------------------------------------------- detail view
def test_detail_view_cards_and_attributes(state):
    from panel_app.panels import DetailView

    dv = DetailView(state=state)
    dv.show([7, 3])
    assert state.detail_ids == [7, 3] and len(dv._strip.objects) == 2
    rows = dv.attribute_rows(7)
    assert [r["attribute"] for r in rows] == list(NAMES)
    for r, a in zip(rows, ATTRIBUTES):
        act, prob = bool(state.y_act()[7, a.index]), float(state.data.y_prob[7, a.index])
        assert r["act"] == act and r["prob"] == pytest.approx(prob)
        pred = prob > state.cutoff
        assert r["outcome"] == {(True, True): "TP", (False, True): "FP", (True, False): "FN",
                                (False, False): "TN"}[(act, pred)]
    png = dv._strip.objects[0].objects[1].objects[0]
    assert png.object[:8] == b"\x89PNG\r\n\x1a\n" and png.width == 160
    assert dv.toggle_enlarged(7) is True
    assert dv._strip.objects[0].objects[1].objects[0].width == 512
    from PIL import Image

    assert Image.open(io.BytesIO(dv._strip.objects[0].objects[1].objects[0].object)).size == (512, 512)
    assert dv.toggle_enlarged(7) is False
    dv.add(3)
    assert state.detail_ids == [3, 7]
    dv._open_input.value = "11, 12"
    dv._on_open()
    assert state.detail_ids == [11, 12]
    dv._open_input.value = "11, 9999"
    dv._on_open()
    assert state.detail_ids == [11, 12] and "must be integers in 0..119" in dv._message.object


def test_detail_images_share_one_colour_scale_with_a_colour_bar(state):
    """Issue 11.5: the shown images share one colour range (or each its own), and each says it in a colour bar."""
    from panel_app.panels import DetailView
    from panel_app.panels._common import intensity_range

    dv = DetailView(state=state)
    dv.show([7, 3])
    a, b = (np.asarray(state.data.image(i), np.float32) for i in (7, 3))
    shared = intensity_range(a, b)
    assert dv.colour_range(7, {7: a, 3: b}) == dv.colour_range(3, {7: a, 3: b}) == shared
    bars = [card.objects[1].objects[1].object for card in dv._strip.objects]
    assert all(f"{shared[0]:.1f}</span>" in bar and f"{shared[1]:.1f}</span>" in bar for bar in bars)
    dv._scale.value = "per image"
    assert dv.colour_range(7, {7: a, 3: b}) == intensity_range(a)
    own = [intensity_range(x) for x in (a, b)]
    bars = [card.objects[1].objects[1].object for card in dv._strip.objects]
    assert all(f"{lo:.1f}</span>" in bar and f"{hi:.1f}</span>" in bar for (lo, hi), bar in zip(own, bars))


def test_intensity_range_of_blank_images():
    from panel_app.panels._common import intensity_range

    assert intensity_range(np.zeros((4, 4))) == (0.0, 1.0)
    lo, hi = intensity_range(np.arange(1, 101, dtype=np.float32).reshape(10, 10), np.zeros((3, 3)))
    assert 1.0 <= lo < 3.0 and 99.0 < hi <= 100.0


def test_detail_neighbours_match_sklearn(state):
    from panel_app.panels import DetailView

    dv = DetailView(state=state, n_neighbours=4)
    ids, dist = dv.neighbours(10)
    feats = np.asarray(state.data.features[:], np.float32)
    # the index is the run's fea_reduced.npy (the embed stage's copy); compare in that space
    from panel_app.panels.neighbours import feature_index

    reduced = feature_index(state.data).reduced
    nn = NearestNeighbors(n_neighbors=5).fit(reduced)
    d_ref, i_ref = nn.kneighbors(reduced[[10]])
    assert 10 not in ids.tolist() and len(ids) == 4
    np.testing.assert_allclose(dist, d_ref[0][1:], rtol=1e-5)
    # the reduced space keeps the neighbourhoods of the raw features
    raw = NearestNeighbors(n_neighbors=11).fit(feats).kneighbors(feats[[10]])[1][0][1:]
    assert len(set(ids.tolist()) & set(raw.tolist())) >= 3
    # clicking a neighbour adds it to the strip
    dv.show([10])
    card = dv._strip.objects[0]
    buttons = card.objects[-1].objects
    assert [b.label.split()[0] for b in buttons] == [f"#{i}" for i in ids]
    buttons[0].clicks += 1
    assert state.detail_ids == [int(ids[0]), 10]


def test_record_correction_through_the_form(state):
    from panel_app.panels import DetailView

    dv = DetailView(state=state)
    dv._on_record()
    assert "Open an image first" in dv._message.object
    dv.show([21])
    j = resolve_attribute("Halo").index
    old = bool(state.y_act()[21, j])
    dv._c_attr.value = "Halo"
    assert dv._c_value.value == ("absent" if old else "present"), "the form proposes the flipped value"
    dv._c_note.value = "faint halo"
    version = state.corrections_version
    dv._c_button.clicks += 1
    assert state.corrections_version == version + 1
    log = read_corrections(state.data.store)
    assert log[["sample_id", "attribute", "old", "new", "note"]].values.tolist() == [[21, "halo", old, not old,
                                                                                       "faint halo"]]
    assert state.y_act()[21, j] == (not old) and "Recorded: image 21, Halo" in dv._message.object
    # the card shows the corrected ACT
    assert dv.attribute_rows(21)[j]["act"] == (not old)


def test_record_without_store_is_refused():
    from panel_app.data import RunData
    from panel_app.panels import DetailView
    from panel_app.state import AppState

    rng = np.random.default_rng(0)
    data = RunData.from_arrays(y_true=rng.random((5, 17)) < 0.3, y_prob=rng.random((5, 17)),
                               coords=rng.normal(size=(5, 6)))
    dv = DetailView(state=AppState(data=data))
    with pytest.raises(ValueError, match="without a run store; corrections cannot be recorded"):
        dv.record(sample_id=1, attribute="ring", new=True)
    with pytest.raises(ValueError, match="must be an AppState"):
        DetailView()


# ---------------------------------------------------------------------- overview / study / co-occurrence
def test_model_overview_matches_sklearn(state):
    from panel_app.panels import ModelOverview

    mo = ModelOverview(state=state, scope="all")
    table, m_ap = mo.metrics()
    y, p = state.y_act(), state.data.y_prob
    assert table["attribute"].tolist() == list(NAMES)
    exp = _expected_counts(y, p, 0.5)
    np.testing.assert_array_equal(table["tp"].to_numpy(), exp["tp"].to_numpy())
    has_pos = y.any(0)
    ap_ref = np.array([average_precision_score(y[:, j], p[:, j]) if has_pos[j] else np.nan for j in range(17)])
    np.testing.assert_allclose(table["ap"].to_numpy()[has_pos], ap_ref[has_pos], rtol=1e-6)
    assert m_ap == pytest.approx(np.nanmean(ap_ref))
    assert "mAP" in mo._summary.object
    mo.scope = "test"
    t_test, _ = mo.metrics()
    assert (t_test["tp"] + t_test["fn"] + t_test["fp"] + t_test["tn"] == 60).all()
    state.filter_attributes = ["ring"]
    mo.scope = "filtered"
    t_f, _ = mo.metrics()
    assert int(t_f.loc[t_f["slug"] == "ring", "support"].iloc[0]) == int(state.y_act()[:, 12].sum())


def test_attribute_study_and_cache(state):
    from panel_app.panels import AttributeStudyPanel
    from xsgpu.metrics import attribute_study

    st = AttributeStudyPanel(state=state)
    mats = st.matrices()
    np.testing.assert_allclose(mats["ACT"], attribute_study(state.y_act(), measure="mutual_information"))
    np.testing.assert_allclose(mats["PRD"], attribute_study(state.data.y_prob > 0.5, measure="mutual_information"))
    assert st.matrices() is mats, "computed once per process and reused"
    st.measure = "correlation"
    corr = st.matrices()["ACT"]
    y = state.y_act().astype(float)
    i, j = 12, 8
    if y[:, i].std() > 0 and y[:, j].std() > 0:
        assert corr[i, j] == pytest.approx(np.corrcoef(y[:, i], y[:, j])[0, 1], abs=1e-6)
    assert len(st._plots.objects) == 2


def test_cooccurrence_panel(state):
    from panel_app.panels import CooccurrencePanel

    cp = CooccurrencePanel(state=state, top=5)
    t = cp.table()
    y, pred = state.y_act(), state.data.y_prob > 0.5
    combos = pd.Series(["|".join(np.array(NAMES)[row]) for row in y])
    assert t["n_true"].tolist() == combos.value_counts().head(5).tolist()
    exact = (y == pred).all(1)
    top_combo = combos.value_counts().index[0]
    assert t["n_correct"].iloc[0] == int(exact[(combos == top_combo).to_numpy()].sum())
    assert len(cp._table.value) == 5


# ---------------------------------------------------------------------- suspicious labels
def test_suspicious_click_adds_to_detail(state):
    from panel_app.panels import DetailView, SuspiciousPanel

    dv = DetailView(state=state)
    sp = SuspiciousPanel(state=state, limit=30)
    r = sp.ranking()
    assert 0 < len(r) <= 30 and r["rank"].is_monotonic_increasing
    for _, row in r.head(5).iterrows():
        assert row["act"] == state.y_act()[row["sample_id"], resolve_attribute(row["slug"]).index]
    state.show_details([1])
    sid = sp.open_row(2)
    assert sid == int(r["sample_id"].iloc[2]) and state.detail_ids[0] == sid and state.detail_ids[-1] == 1
    assert any(f"#{sid}" in str(c.objects[0].object) for c in dv._strip.objects)
    # the Tabulator click handler goes through the same path
    from panel.models.tabulator import CellClickEvent

    sp._table._process_event(CellClickEvent(model=None, column="sample_id", row=0, value=None))
    assert state.detail_ids[0] == int(r["sample_id"].iloc[0])
    with pytest.raises(IndexError, match="out of range"):
        sp.open_row(10_000)
    assert "among all 120 labelled images, audited by `xsgpu evaluate`" in sp._note.object
    # correcting the top pair refreshes the list (new corrections stamp)
    top = r.iloc[0]
    dv.record(sample_id=int(top["sample_id"]), attribute=top["slug"], new=not bool(top["act"]))
    r2 = sp.ranking()
    assert r2 is not r


def test_warm_up_fills_the_process_cache(state):
    from panel_app.panels import ModelOverview, SuspiciousPanel, warm_up
    from panel_app.state import AppState

    out = warm_up(state.data)
    assert set(out) == {"fea_index", "overview", "study", "cooccurrence", "suspicious", "scorer"}
    lru = state.data.cached("panels_lru", dict)
    kinds = {k[0] for k in lru}
    assert kinds == {"overview", "overview_overall", "overview_curves", "study", "cooccurrence", "suspicious",
                     "scorer"}   # the first selection of a session reuses the scorer
    other_session = AppState(data=state.data)
    assert ModelOverview(state=other_session).metrics() is lru[next(k for k in lru if k[0] == "overview")]
    assert SuspiciousPanel(state=other_session).ranking() is lru[next(k for k in lru if k[0] == "suspicious")]


def test_feature_index_is_exact_in_the_reduced_space(rng):
    from panel_app.panels.neighbours import FeatureIndex

    f = rng.normal(size=(400, 20)).astype(np.float32) * 50 + 100  # large offset: the norm trick must not bite
    index = FeatureIndex.from_reduced(f)
    assert index.explained_variance is None
    ids = np.array([0, 17, 399])
    got_i, got_d = index.query(ids, k=6)
    ref_d, ref_i = NearestNeighbors(n_neighbors=7).fit(f).kneighbors(f[ids])
    np.testing.assert_array_equal(got_i, ref_i[:, 1:])
    np.testing.assert_allclose(got_d, ref_d[:, 1:], rtol=1e-5)
    with pytest.raises(ValueError, match=r"'ids' parameter of FeatureIndex.query must hold ids in 0..399"):
        index.query(np.array([400]))


def test_feature_index_background_load(state):
    from panel_app.panels import neighbours

    data = state.data
    first = neighbours.feature_index(data, wait=False)
    thread = neighbours._BUILDING.get((id(data), ("fea_index",)))
    if thread is not None:
        thread.join(timeout=60)
    loaded = neighbours.feature_index(data, wait=False)
    assert loaded is not None and loaded.reduced.shape == (data.n, 48)
    assert first is None or first is loaded
    assert neighbours.feature_index(data) is loaded


def test_missing_stage_outputs_name_the_command(tmp_path):
    """The app only reads: without fea_reduced.npy / suspicious.parquet it computes nothing and names the
    command that writes them (`xsgpu embed RUN`, `xsgpu evaluate RUN`)."""
    from panel_app.data import load_run_data
    from panel_app.panels import DetailView, SuspiciousPanel, warm_up
    from panel_app.panels.neighbours import feature_index
    from panel_app.state import AppState
    from xsgpu.io.runstore import RunStoreError

    run = _cp.make_panel_run(tmp_path / "bare", stages=False).path
    state = AppState(data=load_run_data(run, use_cache=False))
    with pytest.raises(RunStoreError, match=rf"fea_reduced.npy is missing.*Run `xsgpu embed {run}`"):
        feature_index(state.data)
    with pytest.raises(RunStoreError, match=rf"fea_reduced.npy is missing.*Run `xsgpu embed {run}`"):
        feature_index(state.data, wait=False)              # said at once, not lost in a background thread
    sp = SuspiciousPanel(state=state)
    with pytest.raises(RunStoreError, match=rf"suspicious.parquet is missing.*Run `xsgpu evaluate {run}`"):
        sp.ranking()
    sp._refresh()
    assert f"Run `xsgpu evaluate {run}`" in sp._note.object and len(sp._table.value) == 0
    dv = DetailView(state=state, n_neighbours=3)
    state.show_details([4])
    dv._refresh()
    import panel as pn

    said = " ".join(str(p.object) for p in dv._strip.objects[0].select(pn.pane.Str))
    assert "neighbours unavailable" in said and f"xsgpu embed {run}" in said
    out = warm_up(state.data)                               # skips what is missing, computes nothing in its place
    assert set(out) == {"fea_index", "overview", "study", "cooccurrence", "suspicious", "scorer"}
    assert not any(k[0] == "suspicious" for k in state.data.cached("panels_lru", dict))
    assert ("fea_index",) not in state.data._cache


def test_stored_audit_and_reduced_features_are_used(run_path, tmp_path):
    """After embed + evaluate, the app lists suspicious.parquet and indexes fea_reduced.npy as they are."""
    import shutil

    from panel_app.data import load_run_data
    from panel_app.panels import DetailView, SuspiciousPanel
    from panel_app.panels.neighbours import feature_index
    from panel_app.state import AppState
    from xsgpu.io.runstore import RunStore
    from xsgpu.metrics.evaluate import evaluate_run

    copy = tmp_path / "run"
    shutil.copytree(run_path, copy)
    store = RunStore.open(copy)
    feats = np.asarray(store.features.open()[:], np.float32)
    reduced = (feats - feats.mean(0))[:, :6].astype(np.float32)        # a stand-in for the embed stage's PCA
    store.fea_reduced.save(reduced)
    evaluate_run(copy, suspicious_top=50)
    stored = store.suspicious.read().sort_values("rank")
    assert len(stored) == 50 and store.suspicious.metadata()["n_audited"] == store.n_samples

    state = AppState(data=load_run_data(copy, use_cache=False))
    index = feature_index(state.data)
    np.testing.assert_array_equal(index.reduced, reduced)               # no PCA of features.zarr
    sp = SuspiciousPanel(state=state, limit=20)
    r = sp.ranking()
    assert r["sample_id"].tolist() == stored["sample_id"].head(20).tolist()
    assert r["slug"].tolist() == stored["attribute"].head(20).tolist()
    sp._refresh()
    assert "audited by `xsgpu evaluate`" in sp._note.object and f"all {store.n_samples:,} labelled" in sp._note.object
    top = r.iloc[0]
    DetailView(state=state).record(sample_id=int(top["sample_id"]), attribute=top["slug"], new=not bool(top["act"]))
    r2 = sp.ranking()
    assert (int(top["sample_id"]), top["slug"]) not in set(zip(r2["sample_id"], r2["slug"]))   # corrected: gone
    assert r2["sample_id"].tolist()[:19] == r["sample_id"].tolist()[1:]
    # without the reduced features, evaluate removes a stale audit
    store.fea_reduced.path.unlink()
    evaluate_run(copy)
    assert not store.suspicious.exists()


def test_unreadable_frames_are_hidden_and_not_evaluated(run_path, tmp_path):
    """Frames ingest could not read (samples.valid False, zero images) never pass the filters or count."""
    import shutil

    from panel_app.data import load_run_data
    from panel_app.state import AppState
    from panel_app.views.controls import AttributeFilters
    from xsgpu.io.runstore import RunStore
    from xsgpu.metrics.evaluate import evaluate_run

    copy = tmp_path / "run"
    shutil.copytree(run_path, copy)
    store = RunStore.open(copy)
    bad = [3, 41, 77]
    for part in range(store.n_partitions):
        a, b = store.partition_bounds(part)
        df = store.samples.read().iloc[a:b].copy()
        df["valid"] = ~df["sample_id"].isin(bad)
        store.samples.write_partition(part, df)
    state = AppState(data=load_run_data(copy, use_cache=False))
    assert np.flatnonzero(~state.filtered_mask()).tolist() == bad
    state.filter_attributes = [state.filter_attributes[0]] if state.filter_attributes else ["ring"]
    assert not state.filtered_mask()[bad].any()
    filters = AttributeFilters(state=state)
    filters._update_count()
    assert "3 unreadable frames hidden" in filters.count.object
    n_eval = evaluate_run(copy, suspicious=False).query("scope == 'model' and metric == 'n'")["value"].item()
    assert n_eval == store.n_samples - len(bad)


def test_embedding_method_control_switches_the_views(run_path, tmp_path):
    """A run embedded twice (t-SNE, then PCA) offers both; switching redraws every view on the other map."""
    import shutil

    from panel_app.data import load_run_data
    from panel_app.state import AppState
    from panel_app.views.controls import ControlPanel
    from panel_app.views.embedding import EmbeddingViews
    from xsgpu.embed.run import method_table
    from xsgpu.io.runstore import RunStore

    copy = tmp_path / "run"
    shutil.copytree(run_path, copy)
    store = RunStore.open(copy)
    tsne = store.embedding.read()
    pca = tsne.copy()
    cols = [c for c in pca.columns if c != "sample_id"]
    pca[cols] = (pca[cols].to_numpy() * -3.0 + 100.0).astype(np.float32)   # another map: mirrored, moved, scaled
    store.write_table(method_table("pca"), pca, metadata={"method": "pca"})
    state = AppState(data=load_run_data(copy, use_cache=False))
    assert state.param.method.objects == ["tsne", "pca"] and state.method == "tsne"
    assert list(ControlPanel(state=state).method.options) == ["tsne", "pca"]
    views = EmbeddingViews(state=state, width=300, height=300)
    fea = views.views["FEA"]
    before = fea.home
    state.method = "pca"
    for space, view in views.views.items():
        np.testing.assert_array_equal(view.x, pca[f"{space.lower()}_x"].to_numpy(np.float32))
        assert view.in_view == state.data.n and view.figure.title.text == f"{space} (pca)"
    assert fea.home != before and fea.figure.x_range.start == fea.home[0]
    box = dict(type="rect", x0=80.0, x1=100.0, y0=80.0, y1=100.0)
    ids = fea.select_geometry(box)
    want = pca[(pca.fea_x >= 80) & (pca.fea_x <= 100) & (pca.fea_y >= 80) & (pca.fea_y <= 100)].sample_id
    assert ids.tolist() == sorted(want.tolist()) and len(ids) > 0
    with pytest.raises(ValueError, match=r"must be one of \['tsne', 'pca'\].*xsgpu embed RUN --method umap"):
        state.data.coords("FEA", "umap")
