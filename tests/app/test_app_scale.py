"""What one browser event costs a session of a large run, counted (never timed).

At 1M images a box selection took minutes in Chromium (benchmarks/bench_browser.py, docs/app.md):

* the model overview drew its PR curve with one vertex per distinct score (~1M), re-sent and re-drawn on
  every selection, through HoloViews' default WebGL backend, which Chromium without a GPU emulates;
* every pane update walked the document's ~700 Bokeh models again (Bokeh's ``models.recompute``);
* the panels in hidden tabs redrew on every selection and correction.

Each test fails on the code before the fix.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest

pytest.importorskip("holoviews")


def _data(n: int, seed: int = 0):
    from panel_app.data import RunData

    rng = np.random.default_rng(seed)
    y_true = rng.random((n, 17)) < 0.3
    y_prob = np.clip(y_true * 0.5 + rng.random((n, 17)) * 0.5, 0, 1).astype(np.float32)
    coords = rng.normal(size=(n, 6)).astype(np.float32)
    return RunData.from_arrays(y_true=y_true, y_prob=y_prob, coords=coords)


@pytest.fixture(scope="module")
def big():
    """200k images: ~200k distinct scores per attribute, like a real run's float32 probabilities."""
    return _data(200_000)


def test_decimate_curve_keeps_the_ends_and_every_bins_extremes():
    from panel_app.panels.overview_curves import decimate_curve

    rng = np.random.default_rng(1)
    n = 50_000
    recall = np.sort(rng.random(n))
    precision = rng.random(n)
    thr = np.arange(n, dtype=float)
    d = decimate_curve({"recall": recall, "precision": precision, "threshold": thr}, max_points=400)
    assert len(d["recall"]) <= 400
    kept = d["threshold"].astype(int)   # the kept points are the curve's own points, in order
    assert np.all(np.diff(kept) > 0)
    np.testing.assert_array_equal(d["recall"], recall[kept])
    np.testing.assert_array_equal(d["precision"], precision[kept])
    assert kept[0] == 0 and kept[-1] == n - 1
    bins = np.minimum(((recall - recall[0]) / (recall[-1] - recall[0]) * 100).astype(int), 99)
    for b in range(100):   # brute force: each bin's lowest and highest precision is drawn
        inside = precision[bins == b]
        if len(inside):
            got = d["precision"][bins[kept] == b]
            assert got.min() == inside.min() and got.max() == inside.max()
    small = {"recall": recall[:300], "precision": precision[:300]}
    assert decimate_curve(small, max_points=400) is small
    with pytest.raises(ValueError, match="max_points"):
        decimate_curve(small, max_points=3)


def test_overview_plots_hold_at_most_max_curve_points_and_draw_on_canvas(big):
    import holoviews as hv

    from panel_app.panels import ModelOverview
    from panel_app.panels.overview_curves import MAX_CURVE_POINTS
    from panel_app.state import AppState

    state = AppState(data=big)
    mo = ModelOverview(state=state)
    state.select(np.arange(0, big.n, 2))
    curves = list(mo._live["pr"].element)
    assert [c.label for c in curves] == [mo.scope, "selection"]
    for c in curves:   # before: one vertex per distinct score, ~200k / ~100k
        assert 2 <= len(c) <= MAX_CURVE_POINTS
    assert len(mo.curves()["pr"][mo.scope]["recall"]) <= MAX_CURVE_POINTS   # and so is the process cache
    for element in (mo._live["pr"].element, mo._live["hist"].element, mo._live["reliability"].element,
                    mo._bars.object):
        assert hv.render(element).output_backend == "canvas"


@pytest.fixture
def built(monkeypatch):
    """The components build_app makes, by class name (the layout holds their Panel objects, not them)."""
    from panel_app import panels, views

    out: dict[str, list] = {}
    for cls in (views.EmbeddingViews, panels.ModelOverview, panels.AttributeStudyPanel, panels.CooccurrencePanel,
                panels.SuspiciousPanel):
        def keep(self, *a, _orig=cls.__init__, _name=cls.__name__, **k):
            _orig(self, *a, **k)
            out.setdefault(_name, []).append(self)

        monkeypatch.setattr(cls, "__init__", keep)
    return out


@contextmanager
def _served_fea(data, built, monkeypatch):
    """The app over ``data`` in a Bokeh document (the current one inside the body); yields (app, document, FEA
    view, walks): ``walks`` gets one entry per walk of the document's models (``models.recompute``) from then on."""
    from bokeh.document import Document
    from bokeh.document.models import DocumentModelManager
    from panel.io.state import set_curdoc

    from panel_app.app import build_app

    doc = Document()
    with set_curdoc(doc):
        app = build_app(data)
        app.server_doc(doc)
        walks: list[int] = []
        real = DocumentModelManager.recompute
        monkeypatch.setattr(DocumentModelManager, "recompute", lambda self: (walks.append(1), real(self))[1])
        yield app, doc, built["EmbeddingViews"][0].views["FEA"], walks


def test_a_box_selection_walks_the_document_models_once(big, built, monkeypatch):
    from bokeh.events import SelectionGeometry

    with _served_fea(big, built, monkeypatch) as (app, _doc, fea, walks):
        x0, x1, y0, y1 = fea.home
        box = dict(type="rect", x0=x0 + 0.3 * (x1 - x0), x1=x0 + 0.6 * (x1 - x0), y0=y0 + 0.3 * (y1 - y0),
                   y1=y0 + 0.6 * (y1 - y0))
        fea._on_geometry(SelectionGeometry(fea.figure, geometry=box, final=True))
    state = app.xsgpu_state
    assert len(state.selection) > 1000
    assert fea.selected_in_view == len(state.selection)   # the home view holds every image
    assert len(walks) <= 1   # before: one walk of all ~700 models per pane whose references changed


def test_wheel_steps_walk_no_models_and_new_references_walk_once(big, built, monkeypatch):
    """A pan / zoom changes data and text only: no walk of the document's models (before: one per event,
    Bokeh's ``models.freeze`` walks when it ends whether or not anything asked). A change that does add a
    model reference still walks once, and the new model is then in the document."""
    from bokeh.events import RangesUpdate
    from bokeh.models import Span

    from panel_app.views.docsafe import batched_edits

    with _served_fea(big, built, monkeypatch) as (_app, doc, fea, walks):
        cx, cy = float(fea.x[0]), float(fea.y[0])
        x0, x1, y0, y1 = fea.home
        modes = []
        for k in range(1, 30):   # zoom on one image until the view draws glyphs
            f = 0.5 ** k
            fea._on_ranges(RangesUpdate(fea.figure, x0=cx - f * (x1 - x0), x1=cx + f * (x1 - x0),
                                        y0=cy - f * (y1 - y0), y1=cy + f * (y1 - y0)))
            modes.append(fea.mode)
            if fea.mode != "raster":
                break
        assert modes[0] == "raster" and modes[-1] in ("flowers", "dots")
        assert walks == []   # raster steps and the step into glyphs
        span = Span(location=cx, dimension="height")
        with batched_edits():
            fea.figure.add_layout(span)
            fea.figure.add_layout(Span(location=cy, dimension="width"))
        assert len(walks) == 1 and doc.get_model_by_id(span.id) is span
        with batched_edits():   # nested batches walk once, when the outer one ends
            with batched_edits():
                fea.figure.add_layout(Span(location=cx + 1, dimension="height"))
            assert len(walks) == 1
        assert len(walks) == 2


def test_petals_draw_without_a_hatch_and_the_colour_bar_keeps_its_room(big):
    """Chromium made a pattern canvas per hatched petal (0.9 s for 23 flowers): no glyph has a hatch. The
    colour bar appears on the step into flowers; its room is kept while hidden, so nothing is re-laid out."""
    from panel_app.state import AppState
    from panel_app.views import EmbeddingView
    from panel_app.views.legend import COLOUR_BAR_ROOM

    view = EmbeddingView(state=AppState(data=big), space="FEA")
    for r in view.figure.renderers:
        assert getattr(r.glyph, "hatch_pattern", None) is None, r.name
    assert not view.colour_bar.visible and view.figure.min_border_bottom == COLOUR_BAR_ROOM


def test_tab_panels_follow_the_session_only_while_shown(big, built):
    import panel as pn

    from panel_app.app import build_app

    app = build_app(big)
    tabs = next(o for o in app.select(pn.Tabs))
    overview = built["ModelOverview"][0]
    others = [built[k][0] for k in ("AttributeStudyPanel", "CooccurrencePanel", "SuspiciousPanel")]
    assert overview.lazy.shown and not any(p.lazy.shown for p in others)
    drawn = []
    real = overview._refresh_curves
    overview._refresh_curves = lambda: (drawn.append(1), real())[1]
    state = app.xsgpu_state
    state.select(np.arange(100))
    assert len(drawn) == 1                    # shown: follows the selection
    tabs.active = 1
    assert not overview.lazy.shown
    state.select(np.arange(200))
    state.select(np.arange(300))
    assert len(drawn) == 1                    # hidden: not redrawn (before: twice)
    tabs.active = 0
    assert len(drawn) == 2                    # shown again: drawn once, with the last selection
    assert overview.curves()["hist"]["selection"]["positive"].sum() == int(state.y_act()[:300, 0].sum())
    tabs.active = 3
    assert others[2].lazy.shown and not overview.lazy.shown


def test_a_hidden_deferred_panel_shows_no_spinner_and_refreshes_on_showing():
    import panel as pn

    from panel_app.panels._common import LazyRefresh, defer

    class Owner:
        pass

    lazy = LazyRefresh(Owner())
    comp = pn.Column()
    calls: list[int] = []
    defer(comp, lambda: calls.append(1), lazy=lazy)   # outside a server: runs at once (shown)
    assert calls == [1] and lazy.component is comp
    comp.loading = True   # as defer leaves it until the page has loaded, in a server session
    lazy.show(False)      # a hidden dynamic tab's placeholder would keep the spinner for good
    assert not comp.loading
    lazy(lambda: calls.append(2))
    lazy(lambda: calls.append(2))   # the same refresh twice while hidden: remembered once
    assert calls == [1]
    lazy.show(True)
    assert calls == [1, 2]
