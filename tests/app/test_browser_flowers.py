"""Flowers in a real browser (Playwright + Debian chromium): hovering a flower shows one tooltip, even where
neighbouring flowers' petals overlap it; the flower legend is on the page."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from panel_app.views.flowers import CENTRE_RADIUS, PETAL_RADIUS

pytestmark = pytest.mark.browser

_spec = importlib.util.spec_from_file_location("tbv", Path(__file__).with_name("test_browser_views.py"))
_tbv = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_tbv)

TIMEOUT_MS = 120_000


def test_one_tooltip_per_hover_and_a_flower_legend(served_app, page):
    url, run_path = served_app
    emb = pd.read_parquet(Path(run_path) / "embedding.parquet").sort_values("sample_id")
    fx, fy = emb["fea_x"].to_numpy(np.float64), emb["fea_y"].to_numpy(np.float64)
    page.set_default_timeout(TIMEOUT_MS)
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(url)
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=TIMEOUT_MS)
    _tbv._wait_status(page, "FEA", "s.inView > 0")
    page.locator(".xsgpu-flower-legend", has_text="Petal outcome").first.wait_for(state="attached")
    cx, cy = float(np.median(fx)), float(np.median(fy))
    near = np.hypot(fx - fx[0], fy - fy[0]) < 5
    cx, cy = float(np.median(fx[near])), float(np.median(fy[near]))
    _tbv.zoom_fea_into_flowers(page, cx, cy)
    ranges = page.evaluate(_tbv._JS_RANGES, "xsgpu-fea")
    vis = np.flatnonzero((fx >= ranges[0]) & (fx <= ranges[1]) & (fy >= ranges[2]) & (fy <= ranges[3]))
    pts = np.array([page.evaluate(_tbv._JS_TO_PAGE, ["xsgpu-fea", float(fx[i]), float(fy[i])]) for i in vis])
    d = np.hypot(pts[:, None, 0] - pts[None, :, 0], pts[:, None, 1] - pts[None, :, 1])
    np.fill_diagonal(d, np.inf)
    # two flowers whose old 32-px hover circles overlap (centres 10-32 px apart): the point between them lay
    # inside both circles (two tooltips) but lies outside both centre targets now
    iu = np.triu_indices(len(vis), 1)
    pair = np.flatnonzero((d[iu] > 2 * CENTRE_RADIUS + 3) & (d[iu] < 2 * PETAL_RADIUS))
    if len(pair) == 0:
        pytest.skip("no two flowers in view are 10-32 px apart")
    i, j = int(iu[0][pair[0]]), int(iu[1][pair[0]])
    visible_tips = "els => els.filter(e => e.getClientRects().length && e.getBoundingClientRect().width > 0).length"
    mid = (pts[i] + pts[j]) / 2
    page.mouse.move(float(mid[0]), float(mid[1]))
    page.wait_for_timeout(800)
    between = page.locator("img[alt^='thumbnail']").evaluate_all(visible_tips)
    assert between <= 1, f"{between} tooltips between two flowers {d[i, j]:.0f} px apart"
    page.mouse.move(float(pts[i, 0]), float(pts[i, 1]))
    page.locator(f"img[alt='thumbnail {int(vis[i])}']").first.wait_for(state="visible")
    page.wait_for_timeout(300)
    shown = page.locator("img[alt^='thumbnail']").evaluate_all(visible_tips)
    assert shown == 1, f"{shown} tooltips for one hover on a flower centre"
