"""The model overview: default scope, overall and per-split metrics, PR curves, histograms and the
reliability diagram, checked against xsgpu.metrics and scikit-learn on the panel fixture run."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import accuracy_score, average_precision_score, precision_recall_curve, precision_recall_fscore_support

from xsgpu.attributes import ATTRIBUTES, resolve_attribute

_spec = importlib.util.spec_from_file_location("conftest_panels", Path(__file__).with_name("conftest_panels.py"))
_cp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cp)

pytest.importorskip("holoviews")


@pytest.fixture(scope="module")
def run_path(tmp_path_factory):
    return _cp.make_panel_run(tmp_path_factory.mktemp("overview") / "run").path


@pytest.fixture
def state(run_path):
    from panel_app.data import load_run_data
    from panel_app.state import AppState

    return AppState(data=load_run_data(run_path, use_cache=False))


def _split_ids(state, split):
    return np.flatnonzero(state.data.samples["split"].to_numpy() == split)


def _expected_overall(y, p, cutoff):
    pred = p > cutoff
    prec, rec, f1, _ = precision_recall_fscore_support(y, pred, average="micro", zero_division=0)
    mprec, mrec, mf1, _ = precision_recall_fscore_support(y, pred, average="macro", zero_division=0)
    has = y.any(0)
    m_ap = np.mean([average_precision_score(y[:, j], p[:, j]) for j in np.flatnonzero(has)])
    return {"n": len(y), "mAP": m_ap, "accuracy": float((y == pred).mean()), "precision_micro": prec,
            "recall_micro": rec, "f1_micro": f1, "precision_macro": mprec, "recall_macro": mrec, "f1_macro": mf1,
            "subset_accuracy": accuracy_score(y, pred)}


def test_default_scope_is_test_then_val_then_all(state):
    from panel_app.panels.overview import ModelOverview, default_scope

    assert ModelOverview(state=state).scope == "test"
    samples = state.data.samples
    assert default_scope(samples.assign(split=samples["split"].replace({"test": "train"}))) == "val"
    assert default_scope(samples.assign(split="train")) == "all"
    assert default_scope(samples.drop(columns="split")) == "all"


@pytest.mark.parametrize("cutoff", [0.5, 0.35])
def test_overall_metrics_per_split_match_sklearn(state, cutoff):
    from panel_app.panels import ModelOverview

    state.cutoff = cutoff
    mo = ModelOverview(state=state)
    table = mo.split_table()
    assert table["scope"].tolist() == ["test", "val", "train", "all"]
    y, p = state.y_act(), state.data.y_prob
    for scope in ("test", "val", "train", "all"):
        ids = np.arange(state.data.n) if scope == "all" else _split_ids(state, scope)
        exp = _expected_overall(y[ids], p[ids], cutoff)
        row = table.set_index("scope").loc[scope]
        for k, v in exp.items():
            assert row[k] == pytest.approx(v, abs=1e-9), (scope, k)
    # the selection gets its own row, and the summary line shows the scope's figures
    state.select(np.arange(10, 70))
    table = mo.split_table()
    assert table["scope"].tolist()[-1] == "selection"
    sel = table.set_index("scope").loc["selection"]
    exp = _expected_overall(y[10:70], p[10:70], cutoff)
    assert sel["f1_micro"] == pytest.approx(exp["f1_micro"]) and sel["n"] == 60
    assert "scope: **test**" in mo._summary.object and "recall" in mo._summary.object
    assert mo._splits.value["scope"].tolist()[-1] == "selection"


def test_per_attribute_table_is_the_scope(state):
    from panel_app.panels import ModelOverview

    mo = ModelOverview(state=state)
    table, m_ap = mo.metrics()
    ids = _split_ids(state, "test")
    y, p = state.y_act()[ids], state.data.y_prob[ids]
    prec, rec, f1, _ = precision_recall_fscore_support(y, p > 0.5, average=None, zero_division=0)
    np.testing.assert_allclose(table["precision"], prec)
    np.testing.assert_allclose(table["recall"], rec)
    np.testing.assert_allclose(table["f1"], f1)
    assert (table["tp"] + table["fp"] + table["fn"] + table["tn"] == len(ids)).all()


def test_curves_match_sklearn_and_follow_the_selection(state):
    from panel_app.panels import ModelOverview

    mo = ModelOverview(state=state, attribute="ring")
    j = resolve_attribute("ring").index
    ids = _split_ids(state, "test")
    y, p = state.y_act()[ids, j], state.data.y_prob[ids, j]
    c = mo.curves()
    assert list(c["pr"]) == ["test"]
    pr = c["pr"]["test"]
    sk_p, sk_r, sk_t = precision_recall_curve(y, p)
    ref = {float(t): (a, b) for a, b, t in zip(sk_p, sk_r, sk_t)}
    for t, a, b in zip(pr["threshold"], pr["precision"], pr["recall"]):
        if float(t) in ref:  # scikit-learn stops at full recall; every threshold it keeps must agree
            assert (a, b) == pytest.approx(ref[float(t)])
    assert len(set(map(float, pr["threshold"])) & set(ref)) == len(ref)
    rel = c["reliability"]["test"]
    frac, mean = calibration_curve(y, p, n_bins=10, strategy="uniform")
    np.testing.assert_allclose(rel["fraction_positive"], frac)
    np.testing.assert_allclose(rel["mean_predicted"], mean)
    ece = np.sum(rel["count"] * np.abs(frac - mean)) / len(y)
    assert rel["ece"] == pytest.approx(ece)
    h = c["hist"]["test"]
    assert h["positive"].sum() == y.sum() and h["negative"].sum() == (~y).sum()
    np.testing.assert_array_equal(h["positive"], np.histogram(p[y], bins=np.linspace(0, 1, 21))[0])
    # linked to the selection: its curves join the scope's, and the plots are HoloViews overlays
    state.select(np.arange(0, 40))
    c = mo.curves()
    assert list(c["pr"]) == ["test", "selection"]
    assert c["hist"]["selection"]["positive"].sum() == int(state.y_act()[:40, j].sum())
    import holoviews as hv

    for kind, pane in (("pr", mo._pr), ("hist", mo._hist), ("reliability", mo._rel)):
        assert isinstance(pane.object, hv.DynamicMap) and isinstance(mo._live[kind].element, hv.Overlay)
    labels = [el.label for el in mo._live["pr"].element]
    assert labels == ["test", "selection"]
    mo.attribute = "halo"
    assert "Halo" in mo._live["pr"].element.opts.get().kwargs["title"]


def test_a_selection_changes_the_drawn_curves_in_place(state):
    """A new selection changes the data of the figures already drawn (a DynamicMap fed by a Pipe), not a new
    figure per plot and selection; another scope makes new figures."""
    import holoviews as hv

    from panel_app.panels import ModelOverview

    mo = ModelOverview(state=state, scope="test")
    dmap = mo._pr.object
    plot = hv.renderer("bokeh").get_plot(dmap)
    fig = plot.state

    def drawn():   # points of each curve in the figure now: the scope's, then the selection's
        return [len(r.data_source.data["recall"]) for r in fig.renderers if "recall" in r.data_source.data]

    before = drawn()
    assert len(before) == 2 and before[0] > 0 and before[1] == 0   # nothing selected: an empty layer
    state.select(np.arange(0, 60))
    after = drawn()
    assert mo._pr.object is dmap and plot.state is fig   # the same figure ...
    assert after[0] == before[0] and after[1] > 0          # ... with the selection's curve in it
    state.select(np.arange(0, 30))
    assert mo._pr.object is dmap and plot.state is fig and 0 < drawn()[1]
    rel = hv.renderer("bokeh").get_plot(mo._rel.object).state
    text = next(r.data_source for r in rel.renderers if "text" in r.data_source.data)
    assert text.data["text"][0].startswith("ECE test ") and ", selection " in text.data["text"][0]
    mo.scope = "all"
    assert mo._pr.object is not dmap   # new layers (another scope): a new map


def test_scope_selection_and_empty_scopes(state):
    from panel_app.panels import ModelOverview

    mo = ModelOverview(state=state, scope="selection")
    assert "No images in scope **selection**" in mo._summary.object
    state.select([1, 2, 3, 4, 5, 6])
    table, _ = mo.metrics()
    assert (table["tp"] + table["fn"] + table["fp"] + table["tn"] == 6).all()
    assert "over 6 images" in mo._summary.object
