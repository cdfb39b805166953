"""Flowers that read: the raster/glyph switch follows crowding on screen, false positives keep their
attribute colour, only the chosen attributes become petals, hover sits on the centre, and the legend and
colour bars are there."""
from __future__ import annotations

import numpy as np
import pytest

from panel_app.views.flowers import (
    CENTRE_RADIUS, DEFAULT_CROWDING, FEW_GLYPHS, FP_DASH, PETAL_RADIUS, crowding, flower_columns, glyphs_legible, petal_angles,
)
from xsgpu.attributes import ATTRIBUTES, SLUGS

pytest.importorskip("datashader")


def _grid_state(n_side: int, spacing: float, *, jitter: float = 0.0, seed: int = 0, **params):
    """A run of n_side**2 images on a square grid of ``spacing`` data units (ACT/FEA/PRD alike)."""
    from panel_app.data import RunData
    from panel_app.state import AppState

    rng = np.random.default_rng(seed)
    g = np.arange(n_side, dtype=np.float32) * spacing
    xx, yy = np.meshgrid(g, g)
    xy = np.stack([xx.ravel(), yy.ravel()], 1) + rng.normal(0, jitter, (n_side ** 2, 2))
    n = len(xy)
    y = rng.random((n, 17)) < 0.3
    p = np.clip(np.where(y, 0.8, 0.2) + rng.normal(0, 0.2, (n, 17)), 0, 1).astype(np.float32)
    data = RunData.from_arrays(y_true=y, y_prob=p, coords=np.concatenate([xy] * 3, 1).astype(np.float32))
    return AppState(data=data, **params)


def test_crowding_counts_images_per_flower_cell():
    assert crowding(np.zeros(0), np.zeros(0)) == 0.0
    # 10 x 10 images 40 px apart: one per 32-px cell
    g = np.arange(10) * 40.0 + 1
    xx, yy = np.meshgrid(g, g)
    assert crowding(xx.ravel(), yy.ravel(), cell=32) == 1.0
    # the same 100 images piled into 4 px: all in one or a few cells
    assert crowding(xx.ravel() / 10, yy.ravel() / 10, cell=32) >= 25
    assert glyphs_legible(100, 1.0, max_glyphs=2000, max_crowding=1.5)
    assert not glyphs_legible(100, 25.0, max_glyphs=2000, max_crowding=1.5)
    assert not glyphs_legible(2001, 1.0, max_glyphs=2000, max_crowding=1.5)  # the drawing-cost cap
    assert glyphs_legible(FEW_GLYPHS, 99.0, max_glyphs=2000, max_crowding=1.5)  # a handful always shows
    assert glyphs_legible(500, 99.0, max_glyphs=2000, max_crowding=None)  # count-only rule


def test_switch_depends_on_crowding_not_on_the_count():
    from panel_app.views import EmbeddingView

    # the same 144 images (under the 2,000 cap): ~38 px apart -> flowers; 7.5 px apart -> raster
    spread = _grid_state(12, 1.0)
    view = EmbeddingView(state=spread, space="FEA", width=440, height=440)
    assert spread.flower_crowding == DEFAULT_CROWDING
    assert view.in_view == 144 and view.mode == "flowers" and view.crowding <= DEFAULT_CROWDING
    piled = _grid_state(12, 1.0)
    v2 = EmbeddingView(state=piled, space="FEA", width=440, height=440)
    x0, x1, y0, y1 = v2.viewport
    v2.set_viewport(x0, x0 + 5 * (x1 - x0), y0, y0 + 5 * (y1 - y0))  # zoom out: the grid covers 1/25 of it
    assert v2.in_view == 144 and v2.mode == "raster" and v2.crowding > DEFAULT_CROWDING
    # a bigger view (a bigger screen) holds more flowers at the same zoom
    big = EmbeddingView(state=piled, space="PRD", width=440 * 5, height=440 * 5)
    big.set_viewport(x0, x0 + 5 * (x1 - x0), y0, y0 + 5 * (y1 - y0))
    assert big.mode == "flowers"
    # the old rule (count only) would have drawn the pile
    piled.flower_crowding = None
    assert v2.mode == "flowers"


def test_false_positive_keeps_its_attribute_colour():
    act = np.zeros((1, 17), bool)
    prob = np.zeros((1, 17), np.float32)
    prob[0, 11] = 0.9  # FP Polycrystalline
    petals, _ = flower_columns(np.array([3]), np.zeros(1), np.zeros(1), act, prob, err=np.zeros(1))
    (i,) = np.flatnonzero(np.asarray(petals["line_width"]) > 1)
    colour = ATTRIBUTES[11].colour
    assert petals["fill_color"][i] == petals["line_color"][i] == colour and colour != "#000000"
    assert petals["line_dash"][i] == FP_DASH and 0 < petals["fill_alpha"][i] < 0.85


def test_only_the_chosen_attributes_become_petals():
    act = np.ones((2, 17), bool)
    prob = np.full((2, 17), 0.9, np.float32)
    chosen = [SLUGS.index(s) for s in ("ring", "halo", "bcc", "wedge_beamstop")]
    petals, _ = flower_columns(np.array([1, 2]), np.zeros(2), np.zeros(2), act, prob, err=np.zeros(2),
                               attributes=chosen)
    assert len(petals["x"]) == 8
    assert set(petals["fill_color"]) == {ATTRIBUTES[j].colour for j in chosen}
    start, end = petal_angles(k=4)
    np.testing.assert_allclose(sorted(set(np.round(petals["start"], 9))), np.round(start, 9))
    assert end[0] - start[0] > 2 * np.pi / 5  # four wide petals, not four of seventeen
    with pytest.raises(ValueError, match="indices in 0..16"):
        flower_columns(np.array([1]), np.zeros(1), np.zeros(1), act[:1], prob[:1], err=np.zeros(1), attributes=[17])


def test_view_petals_follow_the_attribute_choice_and_hover_is_on_the_centre(app_state):
    from panel_app.views import EmbeddingView

    app_state.flower_crowding = None
    app_state.flower_threshold = 1500
    view = EmbeddingView(state=app_state, space="FEA")
    assert view.mode == "flowers"
    app_state.flower_attributes = ["ring", "halo"]
    colours = set(view.petal_src.data["fill_color"])
    assert colours <= {ATTRIBUTES[SLUGS.index("ring")].colour, ATTRIBUTES[SLUGS.index("halo")].colour}
    assert view.hit_r.glyph.size < 2 * PETAL_RADIUS and view.hit_r.glyph.size <= 2 * CENTRE_RADIUS + 4
    hover = [t for t in view.figure.tools if t.__class__.__name__ == "HoverTool"][0]
    assert hover.renderers == [view.hit_r]


def test_colour_bars_where_colour_encodes_a_number(app_state):
    from panel_app.views import EmbeddingView

    view = EmbeddingView(state=app_state, space="ACT")
    assert view.mode == "raster" and not view.colour_bar.visible  # density: no numeric scale drawn
    app_state.colour_by = "error_distance"
    assert view.colour_bar.visible and "error distance (cosine)" in view.colour_bar.title
    app_state.distance = "manhattan"
    assert view.colour_bar.color_mapper.high == 17.0
    app_state.colour_by = "density"
    app_state.flower_crowding = None
    app_state.flower_threshold = 1500
    assert view.mode == "flowers" and view.colour_bar.visible and "centre dot" in view.colour_bar.title


def test_flower_legend_lists_petals_outcomes_and_error_dot(app_state):
    from panel_app.views.legend import FlowerLegend

    legend = FlowerLegend(state=app_state)
    html = legend.legend.object
    names = [a.name for a in ATTRIBUTES]
    positions = [html.index(f">{n}</div>") for n in names]
    assert positions == sorted(positions)  # canonical (petal) order
    for label in ("TP", "FN", "FP", "TN"):
        assert f"<b>{label}</b>" in html
    assert f"stroke-dasharray='{FP_DASH}'" in html and "Centre dot" in html and "cosine" in html and "Ring" in html
    legend.attributes.value = ["ring", "halo", "bcc", "wedge_beamstop"]
    assert app_state.flower_attributes == ["ring", "halo", "bcc", "wedge_beamstop"]
    html = legend.legend.object
    assert "Polycrystalline" not in html and html.count("<path") == 4 + 4  # 4 petals + 4 outcome samples
    app_state.flower_mode = "PRD"
    assert "Centre dot" not in legend.legend.object
    legend.all.clicks += 1
    assert app_state.flower_attributes == list(SLUGS)
