"""The app follows the run's vocabulary (issue 9.3): runs of 5 and of 40 attributes (tests/app/conftest.py
VOCAB_5, VOCAB_40) get their own filters, legends, flowers of N petals, tables, detail cards, correction
form, overview plots, study and co-occurrence; nothing falls back to the paper's 17."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from panel_app.state import MAX_DEFAULT_PETALS, default_petals
from panel_app.views.flowers import flower_columns, names_text, petal_angles

from .conftest import VOCAB_5, VOCAB_40

pytest.importorskip("panel")

VOCABS = {5: VOCAB_5, 40: VOCAB_40}


@pytest.fixture(params=[5, 40], ids=["5 attributes", "40 attributes"])
def vstate(request, tmp_path):
    """A fresh session over a fresh copy of the 5- or the 40-attribute run."""
    from panel_app.data import load_run_data
    from panel_app.state import AppState

    src = request.getfixturevalue(f"app_run_{request.param}")
    copy = tmp_path / "run"
    shutil.copytree(src, copy)
    return AppState(data=load_run_data(copy, use_cache=False))


def _angles(petals: dict) -> np.ndarray:
    return np.unique(np.round(np.asarray(petals["start"]) % (2 * np.pi), 9))


# ---------------------------------------------------------------------- data and state
def test_run_data_and_state_take_the_run_vocabulary(vstate):
    vocab = VOCABS[vstate.n_attributes]
    data = vstate.data
    assert data.vocabulary.slugs == vocab.slugs and vstate.vocabulary is data.vocabulary
    assert data.y_true.shape == data.y_prob.shape == (data.n, len(vocab))
    assert vstate.param.filter_attributes.objects == list(vocab.slugs)
    assert vstate.param.colour_by.objects == ["density", "error_distance", *vocab.slugs]
    assert vstate.attribute_colours == list(vocab.colours)
    vstate.distance = "manhattan"
    assert vstate.error_span == (0.0, float(len(vocab)))
    err = vstate.error_distance()
    assert err.shape == (data.n,) and float(err.max()) <= len(vocab)
    if len(vocab) <= MAX_DEFAULT_PETALS:
        assert vstate.flower_attributes == list(vocab.slugs)
    else:   # 40: the 17 most frequent in ACT, in vocabulary order
        freq = data.y_true.sum(axis=0)
        got = [vocab.index(s) for s in vstate.flower_attributes]
        assert len(got) == MAX_DEFAULT_PETALS and got == sorted(got)
        assert freq[got].min() >= np.delete(freq, got).max()


def test_attribute_filters_use_the_run_slugs(vstate):
    vocab = vstate.vocabulary
    a, b = vocab[1].slug, vocab[len(vocab) - 1].slug
    vstate.filter_attributes = [a, b]
    y = vstate.y_act()
    np.testing.assert_array_equal(vstate.filtered_mask(), y[:, 1] | y[:, -1])
    vstate.filter_mode = "all"
    np.testing.assert_array_equal(vstate.filtered_mask(), y[:, 1] & y[:, -1])
    with pytest.raises(ValueError):
        vstate.filter_attributes = ["bcc"]                  # one of the paper's 17, not of this run
    from panel_app.views.controls import AttributeFilters, ControlPanel

    assert AttributeFilters(state=vstate).attributes.options == {x.name: x.slug for x in vocab}
    colour = ControlPanel(state=vstate).colour_by.options
    assert [k for k in colour if k.startswith("Outcome: ")] == [f"Outcome: {x.name}" for x in vocab]


def test_state_keeps_given_attribute_parameters(vstate):
    from panel_app.state import AppState

    vocab = vstate.vocabulary
    s = AppState(data=vstate.data, filter_attributes=[vocab[2].slug], flower_attributes=[vocab[0].slug],
                 colour_by=vocab[3].slug)
    assert s.filter_attributes == [vocab[2].slug] and s.flower_attributes == [vocab[0].slug]
    assert s.colour_by == vocab[3].slug


def test_default_petals_picks_the_most_frequent():
    vocab = VOCAB_40
    y = np.zeros((10, 40), bool)
    y[:, [39, 3, 20]] = True
    got = default_petals(vocab, y, limit=3)
    assert got == [vocab.slugs[3], vocab.slugs[20], vocab.slugs[39]]
    assert default_petals(VOCAB_5, np.zeros((2, 5), bool)) == list(VOCAB_5.slugs)


# ---------------------------------------------------------------------- flowers and legend
@pytest.mark.parametrize("k", [5, 40])
def test_flowers_have_one_petal_per_attribute(k):
    vocab = VOCABS[k]
    act = np.ones((2, k), bool)
    prob = np.full((2, k), 0.9, np.float32)
    petals, centres = flower_columns(np.array([4, 9]), np.zeros(2), np.ones(2), act, prob, err=np.zeros(2),
                                     vocabulary=vocab)
    assert len(petals["sample_id"]) == 2 * k
    assert len(_angles(petals)) == k
    start, end = petal_angles(k=k)
    np.testing.assert_allclose(np.diff(start), 2 * np.pi / k)         # petal angle = 2 pi / N
    np.testing.assert_allclose(end - start, 2 * np.pi / k * (1 - 0.08))
    assert set(petals["fill_color"]) == set(vocab.colours)
    assert centres["act"][0] == ", ".join(vocab.names)
    with pytest.raises(ValueError, match=rf"indices in 0..{k - 1}"):
        flower_columns(np.array([1]), np.zeros(1), np.zeros(1), act[:1], prob[:1], err=np.zeros(1),
                       attributes=[k], vocabulary=vocab)


def test_names_text_beyond_32_attributes():
    rows = np.zeros((3, 40), bool)
    rows[0, [0, 33, 39]] = True
    rows[2, 39] = True
    got = names_text(rows, VOCAB_40.names)
    assert got.tolist() == ["Feature 00, Feature 33, Feature 39", "(none)", "Feature 39"]
    with pytest.raises(ValueError, match=r"shape \(k, 40\)"):
        names_text(rows[:, :5], VOCAB_40.names)


def test_view_draws_flowers_of_n_petals(vstate):
    from panel_app.views import EmbeddingView

    vocab = vstate.vocabulary
    vstate.flower_crowding = None
    vstate.flower_threshold = 1500
    view = EmbeddingView(state=vstate, space="FEA")
    assert view.mode == "flowers"
    assert len(_angles(view.petal_src.data)) == min(len(vocab), MAX_DEFAULT_PETALS)
    assert set(view.petal_src.data["fill_color"]) <= set(vocab.colours)
    vstate.flower_attributes = list(vocab.slugs)
    assert len(_angles(view.petal_src.data)) == len(vocab)
    vstate.colour_by = vocab[1].slug                        # one attribute's outcome colours the dots
    assert len(view.point_src.data["color"]) == len(view.point_src.data["sample_id"])


def test_legend_lists_the_run_attributes(vstate):
    from panel_app.views.controls import attribute_legend
    from panel_app.views.legend import FlowerLegend

    vocab = vstate.vocabulary
    legend = FlowerLegend(state=vstate)
    assert legend.all.label == f"All {len(vocab)}"
    assert legend.attributes.options == {x.name: x.slug for x in vocab}
    html = legend.legend.object
    shown = [vocab.resolve(s).name for s in vstate.flower_attributes]
    assert all(name in html for name in shown)
    assert html.count("<path d=") >= len(shown)
    if len(vocab) > MAX_DEFAULT_PETALS:
        assert f"{MAX_DEFAULT_PETALS} of the run's {len(vocab)} attributes drawn" in html
    legend.all.clicks += 1                                  # "All N" draws every attribute
    assert vstate.flower_attributes == list(vocab.slugs)
    assert all(x.name in legend.legend.object for x in vocab)
    assert all(x.name in attribute_legend(vocab) for x in vocab)
    assert "BCC" not in attribute_legend(vocab)


# ---------------------------------------------------------------------- tables and panels
def test_detail_card_and_correction_form(vstate):
    from panel_app.panels import DetailView

    vocab = vstate.vocabulary
    dv = DetailView(state=vstate, n_neighbours=2)
    rows = dv.attribute_rows(7)
    assert [r["attribute"] for r in rows] == list(vocab.names)
    assert dv._c_attr.options == list(vocab.names)
    a = vocab[len(vocab) - 1]
    before = bool(vstate.y_act()[7, a.index])
    dv.prefill(7, a.slug)
    assert dv._c_attr.value == a.name and dv._c_value.value == ("absent" if before else "present")
    dv.record(sample_id=7, attribute=a.name, new=not before)
    assert bool(vstate.y_act()[7, a.index]) is (not before)
    ids, _ = dv.neighbours(7)
    assert len(ids) == 2


def test_group_metrics_and_export(vstate):
    from panel_app.panels import SelectionManager

    vocab = vstate.vocabulary
    sm = SelectionManager(state=vstate)
    ids = np.arange(40, 140)
    vstate.select(ids)
    sm.save_group("g")
    head, table = sm.metrics_table("g")
    assert table["attribute"].tolist() == list(vocab.names)
    y, p = vstate.y_act()[ids], vstate.data.y_prob[ids] > vstate.cutoff
    per = sm.group_metrics("g").per_attribute
    assert per.index.tolist() == list(vocab.slugs)
    np.testing.assert_array_equal(per["tp"].to_numpy(), (y & p).sum(axis=0))
    np.testing.assert_array_equal(per["fp"].to_numpy(), (~y & p).sum(axis=0))
    out = sm.group_table("g")
    assert [c for c in out.columns if c.startswith("y__")] == vocab.label_columns()
    assert [c for c in out.columns if c.startswith("p__")] == vocab.prob_columns()


def test_overview_study_cooccurrence_suspicious(vstate):
    from panel_app.panels import AttributeStudyPanel, CooccurrencePanel, ModelOverview, SuspiciousPanel

    vocab = vstate.vocabulary
    k = len(vocab)
    mo = ModelOverview(state=vstate, scope="all")
    table, m_ap = mo.metrics()
    assert table["attribute"].tolist() == list(vocab.names) and np.isfinite(m_ap)
    assert mo.attribute == vocab[0].slug and mo._attr.options == {x.name: x.slug for x in vocab}
    splits = mo.split_table()
    assert set(splits["scope"]) >= {"all"} and splits["accuracy"].between(0, 1).all()
    mo.attribute = vocab[k - 1].slug
    curves = mo.curves()
    assert "all" in curves["pr"]
    mo._refresh_curves()
    assert mo._pr.object is not None
    mats = AttributeStudyPanel(state=vstate).matrices()
    assert mats["ACT"].shape == mats["PRD"].shape == (k, k)
    cp = CooccurrencePanel(state=vstate, top=10)
    t = cp.table()
    assert len(t) and all(set(a) <= set(vocab.slugs) for a in t["attributes"])
    ids = cp.select_row(0)
    want = np.isin(np.arange(k), [vocab.index(s) for s in t["attributes"].iloc[0]])
    assert len(ids) == int(t["n_true"].iloc[0]) and (vstate.y_act()[ids] == want).all()
    r = SuspiciousPanel(state=vstate, limit=20).ranking()
    assert len(r) and set(r["attribute"]) <= set(vocab.names) and set(r["slug"]) <= set(vocab.slugs)


def test_study_heatmap_takes_any_names():
    from panel_app.panels.study import study_heatmap

    names = list(VOCAB_40.names)
    fig = study_heatmap(np.zeros((40, 40)), title="t", measure="correlation", low=-1, high=1, names=names)
    assert list(fig.x_range.factors) == names
    with pytest.raises(ValueError, match=r"shape \(40, 40\)"):
        study_heatmap(np.zeros((17, 17)), title="t", measure="correlation", low=-1, high=1, names=names)


def test_from_arrays_checks_the_width_against_the_vocabulary():
    from panel_app.data import RunData

    rng = np.random.default_rng(0)
    d = RunData.from_arrays(y_true=rng.random((6, 5)) < 0.5, y_prob=rng.random((6, 5)),
                            coords=rng.normal(size=(6, 6)), vocabulary=VOCAB_5)
    assert d.vocabulary is VOCAB_5
    with pytest.raises(ValueError, match=r"shape \(n, 17\)"):
        RunData.from_arrays(y_true=rng.random((6, 5)) < 0.5, y_prob=rng.random((6, 5)), coords=rng.normal(size=(6, 6)))
