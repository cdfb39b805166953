"""The linked embedding views and controls, driven without a browser (the callbacks the browser triggers)."""
from __future__ import annotations

import numpy as np
import pytest

from panel_app.views import AttributeFilters, ControlPanel, EmbeddingView, EmbeddingViews
from panel_app.views.flowers import FP_DASH, flower_columns, petal_angles
from panel_app.views.index import SpatialIndex, points_in_polygon
from panel_app.views.raster import OUTCOME_COLOURS, SELECTION_COLOUR, outcome_codes, rasterize
from xsgpu.attributes import ATTRIBUTES, SLUGS

pytest.importorskip("datashader")


def _in_box(x, y, x0, x1, y0, y1):
    return (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)


@pytest.fixture
def views(app_state):
    app_state.flower_threshold = 120
    app_state.flower_crowding = None  # the count alone decides here; test_flowers.py covers the crowding rule
    return EmbeddingViews(state=app_state)


def test_full_view_is_a_raster_of_every_image(views):
    for space, view in views.views.items():
        assert view.mode == "raster" and view.in_view == 1500
        img = view.raster_src.data["image"][0]
        assert img.shape == (view.height, view.width) and img.dtype == np.uint32
        assert (img >> 24).any()  # some opaque pixels
        assert view.petal_src.data["x"] == [] or len(view.petal_src.data["x"]) == 0


def test_zoom_switches_to_flowers_at_the_threshold(views, app_state):
    view = views.views["FEA"]
    x, y = app_state.data.coords("FEA")
    cx, cy = float(np.median(x)), float(np.median(y))
    # zoom in until the viewport holds <= threshold images, comparing with a direct count each step
    half = 40.0
    while True:
        box = (cx - half, cx + half, cy - half, cy + half)
        view.set_viewport(*box)
        expected = int(_in_box(x, y, *box).sum())
        assert view.in_view == expected
        assert view.mode == ("flowers" if expected <= 120 else "raster")
        if view.mode == "flowers":
            break
        half /= 1.6
    ids = np.flatnonzero(_in_box(x, y, *box))
    centres = view.point_src.data
    assert sorted(centres["sample_id"]) == ids.tolist()
    # one petal per attribute that is labelled or has p > 0.02, FP borders exactly where ~act & p > cutoff
    act, prob = app_state.y_act()[ids], app_state.data.y_prob[ids]
    drawn = act | (prob > 0.02)
    assert len(view.petal_src.data["x"]) == int(drawn.sum())
    n_fp_border = int(np.sum(np.asarray(view.petal_src.data["line_width"]) > 1))
    assert n_fp_border == int(((~act) & (prob > app_state.cutoff)).sum())
    filled = np.asarray(view.petal_src.data["fill_alpha"]) > 0.5  # false positives: a light fill (0.3)
    assert filled.sum() == act.sum()
    assert view.hit_r.visible and not view.raster_r.visible


def test_threshold_is_inclusive(app_state):
    app_state.flower_crowding = None
    view = EmbeddingView(state=app_state, space="ACT")
    app_state.flower_threshold = 1500
    assert view.mode == "flowers" and view.in_view == 1500
    app_state.flower_threshold = 1499
    assert view.mode == "raster"


def test_box_select_in_fea_highlights_in_all_views(views, app_state):
    data = app_state.data
    fx, fy = data.coords("FEA")
    box = dict(type="rect", x0=-5.0, x1=25.0, y0=-2.0, y1=30.0)
    ids = views.views["FEA"].select_geometry(box)
    expected = np.flatnonzero(_in_box(fx, fy, box["x0"], box["x1"], box["y0"], box["y1"]))
    assert len(expected) > 50
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_array_equal(app_state.selection, expected)
    for space, view in views.views.items():
        # the selection layer of every view draws exactly the selected images inside its viewport
        x, y = data.coords(space)
        x0, x1, y0, y1 = view.viewport
        in_vp = _in_box(x[expected], y[expected], x0, x1, y0, y1).sum()
        assert view.selected_in_view == in_vp == len(expected)
        sel_img = view.sel_src.data["image"][0]
        assert sel_img.shape == (view.height, view.width) and sel_img.dtype == np.uint8   # 1 byte per pixel
        assert set(np.unique(sel_img)) <= {0, 1} and sel_img.any()
        assert f"data-selected='{len(expected)}'" in view.status.object
    app_state.clear_selection()
    for view in views.views.values():
        assert view.selected_in_view == 0 and view.sel_src.data["image"][0].shape == (1, 1)


def test_selection_modes_combine_boxes_across_views(views, app_state):
    """Add, subtract and intersect: each box (in any view) combines with the selection as sets do."""
    data = app_state.data
    boxes = {"FEA": dict(type="rect", x0=-5.0, x1=25.0, y0=-2.0, y1=30.0),
             "PRD": dict(type="rect", x0=-1e3, x1=0.0, y0=-1e3, y1=1e3)}   # the left half of PRD
    inside = {s: set(np.flatnonzero(_in_box(*data.coords(s), b["x0"], b["x1"], b["y0"], b["y1"])).tolist())
              for s, b in boxes.items()}
    assert inside["FEA"] and inside["PRD"] and inside["FEA"] - inside["PRD"] and inside["FEA"] & inside["PRD"]
    views.views["FEA"].select_geometry(boxes["FEA"])
    for mode, expected in (("add", inside["FEA"] | inside["PRD"]), ("subtract", inside["FEA"] - inside["PRD"]),
                           ("intersect", inside["FEA"] & inside["PRD"])):
        app_state.selection_mode = "replace"
        views.views["FEA"].select_geometry(boxes["FEA"])
        app_state.selection_mode = mode
        ids = views.views["PRD"].select_geometry(boxes["PRD"])
        assert ids.tolist() == sorted(expected), mode
        assert views.views["ACT"].selected_in_view == len(expected)
    with pytest.raises(ValueError, match=r"'mode' parameter of AppState.select must be one of \['replace', 'add'"):
        app_state.select([1], mode="xor")


def test_selection_respects_filters(views, app_state):
    app_state.filter_attributes = ["ring"]
    mask = app_state.filtered_mask()
    fx, fy = app_state.data.coords("FEA")
    ids = views.views["FEA"].select_geometry(dict(type="rect", x0=-40, x1=40, y0=-40, y1=40))
    np.testing.assert_array_equal(ids, np.flatnonzero(mask & _in_box(fx, fy, -40, 40, -40, 40)))
    for view in views.views.values():
        assert view.in_view == mask.sum()


def test_lasso_select_matches_point_in_polygon(views, app_state):
    fx, fy = app_state.data.coords("FEA")
    px = np.array([-30.0, 30.0, 0.0])
    py = np.array([-25.0, -25.0, 30.0])
    ids = views.views["FEA"].select_geometry(dict(type="poly", x=px.tolist(), y=py.tolist()))
    # brute force: a point is inside the triangle when it is on the same side of all three edges
    def side(ax, ay, bx, by):
        return (bx - ax) * (fy - ay) - (by - ay) * (fx - ax)
    s = [side(px[i], py[i], px[(i + 1) % 3], py[(i + 1) % 3]) for i in range(3)]
    inside = ((s[0] > 0) & (s[1] > 0) & (s[2] > 0)) | ((s[0] < 0) & (s[1] < 0) & (s[2] < 0))
    np.testing.assert_array_equal(ids, np.flatnonzero(inside))
    with pytest.raises(ValueError, match="needs >= 3 vertices"):
        views.views["FEA"].select_geometry(dict(type="poly", x=[0, 1], y=[0, 1]))
    with pytest.raises(ValueError, match="not supported"):
        views.views["FEA"].select_geometry(dict(type="point", x=0, y=0))


def test_selection_in_glyph_mode_fades_the_others(views, app_state):
    view = views.views["ACT"]
    x, y = app_state.data.coords("ACT")
    cx, cy = float(x[0]), float(y[0])
    view.set_viewport(cx - 1, cx + 1, cy - 1, cy + 1)
    assert view.mode == "flowers"
    shown = np.asarray(view.point_src.data["sample_id"])
    app_state.select(shown[:3])
    alpha = np.asarray(view.point_src.data["alpha"])
    assert (alpha[:3] == 1).all() and (alpha[3:] < 0.5).all()
    assert view.selected_in_view == 3


def test_dots_mode_and_outcome_colours(views, app_state):
    view = views.views["PRD"]
    app_state.glyph = "dots"
    app_state.flower_threshold = 1500
    assert view.mode == "dots" and view.dot_r.visible and not view.petal_r.visible
    app_state.colour_by = "ring"
    j = SLUGS.index("ring")
    codes = outcome_codes(app_state.y_act()[:, j], app_state.data.y_prob[:, j], cutoff=app_state.cutoff)
    ids = np.asarray(view.point_src.data["sample_id"])
    expected = [OUTCOME_COLOURS[("TP", "FP", "FN", "TN")[c]] for c in codes[ids]]
    assert list(view.point_src.data["color"]) == expected


def test_raster_colourings(views, app_state):
    view = views.views["FEA"]
    before = view.raster_src.data["image"][0].copy()
    app_state.colour_by = "error_distance"
    assert not np.array_equal(view.raster_src.data["image"][0], before)
    app_state.colour_by = "fcc"
    img = view.raster_src.data["image"][0]
    assert (img >> 24).any()


def test_rasterize_orientation_and_counts():
    # a point at the top-left lands in the last row (Bokeh draws row 0 at the bottom), first column
    out = rasterize(np.array([0.01], np.float32), np.array([0.99], np.float32), x_range=(0, 1), y_range=(0, 1),
                    width=10, height=10)
    rows, cols = np.nonzero(out["image"][0] >> 24)
    assert rows.tolist() == [9] and cols.tolist() == [0] and out["count"] == 1
    rng = np.random.default_rng(1)
    x, y = rng.random(1000).astype(np.float32), rng.random(1000).astype(np.float32)
    m = rng.random(1000) < 0.3
    out = rasterize(x, y, x_range=(0, 0.5), y_range=(0, 1), width=20, height=20, mask=m)
    assert out["count"] == int((m & (x <= 0.5)).sum()) or abs(out["count"] - int((m & (x <= 0.5)).sum())) <= 2
    sel = rasterize(x, y, x_range=(0, 1), y_range=(0, 1), width=20, height=20, colour=SELECTION_COLOUR)
    assert sel["count"] == 1000
    occupied = rasterize(x, y, x_range=(0, 1), y_range=(0, 1), width=20, height=20, how="mask", mask=m)
    assert occupied["image"][0].dtype == np.uint8 and occupied["count"] == int(m.sum())
    np.testing.assert_array_equal(occupied["image"][0] == 1, (sel["image"][0] != 0) & (
        rasterize(x[m], y[m], x_range=(0, 1), y_range=(0, 1), width=20, height=20, colour=SELECTION_COLOUR)
        ["image"][0] != 0))
    with pytest.raises(ValueError, match="'how' parameter of rasterize"):
        rasterize(x, y, x_range=(0, 1), y_range=(0, 1), width=4, height=4, how="nope")
    with pytest.raises(ValueError, match="needs the 'values' parameter"):
        rasterize(x, y, x_range=(0, 1), y_range=(0, 1), width=4, height=4, how="mean")


def test_flower_columns_encoding():
    act = np.zeros((1, 17), bool)
    act[0, [0, 5]] = True
    prob = np.zeros((1, 17), np.float32)
    prob[0, 0] = 0.9   # TP: filled, long
    prob[0, 5] = 0.0   # FN: filled stub
    prob[0, 7] = 0.8   # FP: dashed outline, light fill, thick border, all in its attribute's colour
    prob[0, 9] = 0.3   # TN with some probability: unfilled, coloured border
    petals, centres = flower_columns(np.array([42]), np.zeros(1), np.zeros(1), act, prob, err=np.array([0.5]),
                                     mode="joint", cutoff=0.5)
    by_colour = {c: i for i, c in enumerate(petals["fill_color"])}
    tp, fn, fp, tn = (by_colour[ATTRIBUTES[k].colour] for k in (0, 5, 7, 9))
    assert petals["fill_alpha"][tp] > 0 and petals["fill_alpha"][fn] > 0
    assert 0 < petals["fill_alpha"][fp] < petals["fill_alpha"][tp] and petals["fill_alpha"][tn] == 0
    assert petals["line_color"][fp] == petals["fill_color"][fp] == ATTRIBUTES[7].colour
    assert petals["line_dash"][fp] == FP_DASH and petals["line_dash"][tn] == "solid"
    assert petals["line_color"][tn] == ATTRIBUTES[9].colour
    assert petals["outer"][tp] > petals["outer"][fp] > petals["outer"][tn] > petals["outer"][fn]
    assert list(centres["act"]) == ["BCC, FCC"] and list(centres["prd"]) == ["BCC, High background"]
    start, end = petal_angles()
    assert np.allclose(np.diff(start), 2 * np.pi / 17) and (end > start).all()
    p_act, _ = flower_columns(np.array([1]), np.zeros(1), np.zeros(1), act, prob, err=np.zeros(1), mode="ACT")
    assert len(p_act["x"]) == 2
    with pytest.raises(ValueError, match="'mode' parameter of flower_columns"):
        flower_columns(np.array([1]), np.zeros(1), np.zeros(1), act, prob, err=np.zeros(1), mode="both")


def test_spatial_index_against_brute_force():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=5000), rng.normal(size=5000)
    idx = SpatialIndex(x, y)
    mask = rng.random(5000) < 0.5
    for _ in range(5):
        x0, x1 = sorted(rng.normal(size=2))
        y0, y1 = sorted(rng.normal(size=2))
        exp = np.flatnonzero(_in_box(x.astype(np.float32), y.astype(np.float32), np.float32(x0), np.float32(x1),
                                     np.float32(y0), np.float32(y1)) & mask)
        np.testing.assert_array_equal(idx.ids_in_box(x0, x1, y0, y1, mask=mask), exp)
        assert idx.count_in_box(x1, x0, y1, y0, mask=mask) == len(exp)  # corners in any order
    sq = points_in_polygon(np.array([0.5, 2.0]), np.array([0.5, 0.5]), np.array([0, 1, 1, 0.]), np.array([0, 0, 1, 1.]))
    assert sq.tolist() == [True, False]


def test_viewport_and_arguments_are_validated(app_state):
    view = EmbeddingView(state=app_state, space="prd")
    with pytest.raises(ValueError, match="must be finite with x0 < x1"):
        view.set_viewport(0, 0, 0, 1)
    with pytest.raises(ValueError, match="The 'space' parameter of EmbeddingView"):
        EmbeddingView(state=app_state, space="XYZ")


def test_hover_tooltip_loads_thumbnail_by_id(app_state):
    view = EmbeddingView(state=app_state, space="FEA", thumb_route="/xsgpu/thumb")
    hover = [t for t in view.figure.tools if t.__class__.__name__ == "HoverTool"][0]
    assert '<img src="/xsgpu/thumb/@sample_id.png"' in hover.tooltips
    assert hover.renderers == [view.hit_r]


def test_spaces_and_controls(app_state):
    views = EmbeddingViews(state=app_state)
    app_state.spaces = ["FEA", "PRD"]
    assert views._row.objects == [views.views["FEA"]._layout, views.views["PRD"]._layout]
    panel = ControlPanel(state=app_state)
    panel.cutoff.value = 0.7
    assert app_state.cutoff == 0.7
    panel.distance.value = "manhattan"
    assert app_state.distance == "manhattan"
    filters = AttributeFilters(state=app_state)
    filters.attributes.value = ["halo"]
    n = int(app_state.data.y_true[:, SLUGS.index("halo")].sum())
    assert f"data-count='{n}'" in filters.count.object
    filters.clear.clicks += 1
    assert app_state.filter_attributes == []


def test_tap_puts_the_nearest_image_in_the_detail_view(app_state):
    view = EmbeddingView(state=app_state, space="FEA")
    x, y = app_state.data.coords("FEA")
    assert view.pick(float(x[5]), float(y[5]), radius_px=0.5) in (5, *np.flatnonzero((x == x[5]) & (y == y[5])))
    first = view.pick(float(x[7]) + 1e-4, float(y[7]))
    assert first == 7 and app_state.detail_ids[0] == 7 and app_state.detail_ids[1] == 5
    assert view.pick(1e6, 1e6) is None and app_state.detail_ids[:2] == [7, 5]


def test_empty_viewport_draws_no_glyphs(app_state):
    view = EmbeddingView(state=app_state, space="ACT")
    view.set_viewport(1000, 1001, 1000, 1001)
    assert view.mode == "flowers" and view.in_view == 0 and len(view.point_src.data["x"]) == 0


def test_a_growing_view_draws_at_the_width_the_page_gives_it(app_state):
    """``grow``: the browser reports the frame's laid-out width (``inner_width``); the view makes its frame
    square at that width, within its bounds, and draws the raster at that size."""
    view = EmbeddingView(state=app_state, space="FEA", width=100, height=100, grow=(100, 200))
    assert view.figure.sizing_mode == "stretch_width" and view.figure.frame_width is None
    view._on_inner_width("inner_width", None, 150)
    assert (view.width, view.height, view.figure.frame_height) == (150, 150, 150)
    assert view.raster_src.data["image"][0].shape == (150, 150)
    view.set_frame_size(500)   # wider than allowed: the greatest side
    assert (view.width, view.height) == (200, 200) and view.raster_src.data["image"][0].shape == (200, 200)
    view.set_frame_size(0)     # not laid out yet: unchanged
    assert view.width == 200
    fixed = EmbeddingView(state=app_state, space="ACT", width=120, height=120)
    fixed.set_frame_size(300)
    assert (fixed.width, fixed.figure.frame_width) == (120, 120)
    with pytest.raises(ValueError, match="grow"):
        EmbeddingView(state=app_state, space="PRD", grow=(300, 200))


def test_box_bounds_between_float32_points_are_exact():
    """Bounds are float64; the points float32: a point passes when it is inside in exact arithmetic."""
    rng = np.random.default_rng(9)
    x, y = rng.random(20000).astype(np.float32), rng.random(20000).astype(np.float32)
    idx = SpatialIndex(x, y)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    for _ in range(300):
        i, j = rng.integers(len(x), size=2)
        eps = rng.choice([-1e-9, 0.0, 1e-9], size=2)   # just below, at and above a point's own coordinate
        x0, y0 = float(x64[i] + eps[0]), float(y64[j] + eps[1])
        x1, y1 = x0 + rng.random() * 0.05, y0 + rng.random() * 0.05
        want = np.flatnonzero(_in_box(x64, y64, x0, x1, y0, y1))
        np.testing.assert_array_equal(idx.ids_in_box(x0, x1, y0, y1), want)
        assert idx.count_in_box(x0, x1, y0, y1) == len(want)
