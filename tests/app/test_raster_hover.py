"""The dense raster's hover (issue 11.7): per-pixel image counts travel with the raster and a hover tool
reads them in raster mode only; and the views' short level-of-detail timeout (issue 11.8)."""
from __future__ import annotations

import numpy as np
import pytest

from panel_app.views import EmbeddingView
from panel_app.views.embedding import LOD_TIMEOUT_MS
from panel_app.views.raster import outcome_codes, rasterize

pytest.importorskip("datashader")


@pytest.mark.parametrize("how", ["density", "mean", "outcome"])
def test_rasterize_counts_per_pixel(how):
    rng = np.random.default_rng(4)
    x, y = rng.random(3000).astype(np.float32), rng.random(3000).astype(np.float32)
    mask = rng.random(3000) < 0.6
    kw = {}
    if how == "mean":
        kw = {"values": rng.random(3000).astype(np.float32), "value_span": (0.0, 1.0)}
    elif how == "outcome":
        kw = {"values": outcome_codes(rng.random(3000) < 0.5, rng.random(3000), cutoff=0.5)}
    out = rasterize(x, y, x_range=(0, 0.5), y_range=(0, 1), width=10, height=20, mask=mask, how=how,
                    with_counts=True, **kw)
    counts = out["counts"][0]
    assert counts.shape == (20, 10) and counts.dtype == np.uint32
    inside = mask & (x <= 0.5)
    # row 0 is the bottom of the image, as Bokeh draws it
    expected, _, _ = np.histogram2d(y[inside], x[inside], bins=(20, 10), range=((0, 1), (0, 0.5)))
    assert np.abs(counts.astype(int) - expected.astype(int)).sum() <= 4   # points on bin edges may move
    assert int(counts.sum()) == out["count"]
    assert "counts" not in rasterize(x, y, x_range=(0, 1), y_range=(0, 1), width=4, height=4)


def test_raster_hover_only_in_raster_mode(app_state):
    app_state.flower_threshold = 120
    view = EmbeddingView(state=app_state, space="FEA")
    assert view.figure.lod_timeout == LOD_TIMEOUT_MS < 100
    assert view.mode == "raster"
    assert list(view.raster_hover.renderers) == [view.raster_r]
    assert view.raster_hover.tooltips == [("images here", "@counts")]
    counts = view.raster_src.data["counts"][0]
    assert counts.shape == (view.height, view.width) and int(counts.sum()) == view.in_view == app_state.data.n
    # zoom until glyphs: the raster is hidden (Bokeh never hits a hidden renderer, so its hover shows
    # nothing) and its count column is a single 0; the hover keeps its renderers (no reference change)
    x0, x1, y0, y1 = view.viewport
    cx, cy = float(view.x[0]), float(view.y[0])
    for k in range(1, 30):
        f = 0.5 ** k
        view.set_viewport(cx - f * (x1 - x0), cx + f * (x1 - x0), cy - f * (y1 - y0), cy + f * (y1 - y0))
        if view.mode != "raster":
            break
    assert view.mode != "raster"
    assert not view.raster_r.visible and list(view.raster_hover.renderers) == [view.raster_r]
    assert view.raster_src.data["counts"][0].tolist() == [[0]]
