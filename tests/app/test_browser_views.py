"""The served app in a real browser (Debian's chromium through Playwright): zoom until flowers appear,
box-select in the FEA view, and check the other views and the selection manager against pandas.

Also takes the documentation screenshots app_screenshot.png and app_flowers.png: into docs/ when
XSGPU_UPDATE_DOCS=1 (``make screenshots``), else into the test's tmp_path so a test run leaves the
checkout clean.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xsgpu.attributes import prob_columns
from xsgpu.io import RunStore
from xsgpu.io.corrections import corrected_labels

pytestmark = pytest.mark.browser

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _screenshot_path(name: str, tmp_path: Path) -> str:
    """Where a documentation screenshot goes: docs/ with XSGPU_UPDATE_DOCS=1, else tmp_path."""
    return str((DOCS if os.environ.get("XSGPU_UPDATE_DOCS") == "1" else tmp_path) / name)

# JS helpers: find a plot view by model name (views nest through Panel layouts), map data <-> page pixels.
_JS_FIND = """
(name) => {
  function find(v) {
    if (v.model && v.model.name === name) return v;
    const kids = v.children_views ? v.children_views() : [];
    for (const c of kids) { const r = find(c); if (r) return r; }
    return null;
  }
  for (const r of Bokeh.index.roots) { const v = find(r); if (v) return v; }
  return null;
}
"""
_JS_TO_PAGE = f"""
([name, x, y]) => {{
  const pv = ({_JS_FIND})(name);
  const rect = pv.canvas_view.el.getBoundingClientRect();
  return [rect.left + pv.frame.x_scale.compute(x), rect.top + pv.frame.y_scale.compute(y)];
}}
"""
_JS_TO_DATA = f"""
([name, px, py]) => {{
  const pv = ({_JS_FIND})(name);
  const rect = pv.canvas_view.el.getBoundingClientRect();
  return [pv.frame.x_scale.invert(px - rect.left), pv.frame.y_scale.invert(py - rect.top)];
}}
"""
# The text of a Panel pane whose host element has a CSS class (its content lives in the host's shadow root).
_JS_PANE_TEXT = """
(cls) => {
  function q(root) {
    for (const e of root.querySelectorAll('*')) {
      if (e.classList.contains(cls)) return e;
      if (e.shadowRoot) { const r = q(e.shadowRoot); if (r) return r; }
    }
    return null;
  }
  const el = q(document);
  if (!el) return null;
  const parts = el.shadowRoot ? [...el.shadowRoot.children].filter((c) => !['STYLE', 'LINK'].includes(c.tagName))
                              : [el];
  return parts.map((c) => c.textContent).join('').trim();
}
"""
_JS_RANGES = """
(name) => {
  const doc = Bokeh.documents[0];
  const fig = doc.get_model_by_name(name);
  return [fig.x_range.start, fig.x_range.end, fig.y_range.start, fig.y_range.end];
}
"""
_JS_PETALS = """
(name) => {
  const doc = Bokeh.documents[0];
  const fig = doc.get_model_by_name(name);
  const r = fig.renderers.find((r) => r.name === "petals");
  return [r.visible, r.data_source.get_length()];
}
"""


def _status(page, space: str) -> dict:
    el = page.locator(f".xsgpu-view-status-text[data-space='{space}']")
    return {k: el.get_attribute(f"data-{k}") for k in ("mode", "in-view", "selected", "selected-in-view")}


def _wait_status(page, space: str, pred, *, timeout: float = 120_000) -> dict:
    page.wait_for_function(
        """([space, pred]) => {
             const el = document.querySelector('body') && [...document.querySelectorAll('*')].length &&
               (function q(root) {
                  const hit = root.querySelector(`.xsgpu-view-status-text[data-space='${space}']`);
                  if (hit) return hit;
                  for (const e of root.querySelectorAll('*')) { if (e.shadowRoot) { const h = q(e.shadowRoot); if (h) return h; } }
                  return null; })(document);
             if (!el) return false;
             return new Function('s', 'return ' + pred)({mode: el.dataset.mode, inView: +el.dataset.inView,
                 selected: +el.dataset.selected, selectedInView: +el.dataset.selectedInView});
           }""", arg=[space, pred], timeout=timeout)
    return _status(page, space)


def zoom_fea_into_flowers(page, cx: float, cy: float, *, steps: int = 20) -> dict:
    """Wheel-zoom the FEA view at data point (cx, cy) until it draws flowers; returns its status."""
    for _ in range(steps):
        px, py = page.evaluate(_JS_TO_PAGE, ["xsgpu-fea", cx, cy])
        page.mouse.move(px, py)
        before = _status(page, "FEA")["in-view"]
        page.mouse.wheel(0, -300)
        st = _wait_status(page, "FEA", f"s.inView != {before}")
        if st["mode"] == "flowers":
            return st
    pytest.fail("the FEA view never switched to flowers")


def _in_box(x, y, box):
    x0, x1, y0, y1 = box
    return (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)


def test_zoom_to_flowers_and_linked_box_selection(served_app, page, tmp_path):
    url, run_path = served_app
    emb = pd.read_parquet(Path(run_path) / "embedding.parquet").sort_values("sample_id")
    coords = {s: (emb[f"{s.lower()}_x"].to_numpy(np.float32), emb[f"{s.lower()}_y"].to_numpy(np.float32))
              for s in ("ACT", "FEA", "PRD")}
    n = len(emb)
    page.set_default_timeout(120_000)
    page.set_viewport_size({"width": 1700, "height": 1300})
    page.goto(url)
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=120_000)
    for space in ("ACT", "FEA", "PRD"):
        st = _wait_status(page, space, "s.inView > 0", timeout=120_000)
        assert st["mode"] == "raster" and int(st["in-view"]) == n  # 1,500 > threshold 150

    # zoom into the densest FEA cluster with the mouse wheel until the view switches to flowers
    fx, fy = coords["FEA"]
    cx, cy = float(np.median(fx[np.hypot(fx - fx[0], fy - fy[0]) < 5])), float(np.median(fy[np.hypot(fx - fx[0], fy - fy[0]) < 5]))
    for _ in range(20):
        px, py = page.evaluate(_JS_TO_PAGE, ["xsgpu-fea", cx, cy])
        page.mouse.move(px, py)
        before = _status(page, "FEA")["in-view"]
        page.mouse.wheel(0, -400)
        st = _wait_status(page, "FEA", f"s.inView != {before}")
        ranges = page.evaluate(_JS_RANGES, "xsgpu-fea")
        assert int(st["in-view"]) == int(_in_box(fx, fy, ranges).sum())
        if st["mode"] == "flowers":
            break
    else:
        pytest.fail("the FEA view never switched to flowers")
    assert int(st["in-view"]) <= 150
    visible_ids = np.flatnonzero(_in_box(fx, fy, ranges))
    # the corrected ACT: the served run is shared with the panels' browser test, which records a correction
    act = corrected_labels(RunStore.open(run_path))[visible_ids]
    preds = pd.read_parquet(Path(run_path) / "predictions.parquet").sort_values("sample_id")
    prob = preds[prob_columns()].to_numpy(np.float32)[visible_ids]
    visible, n_petals = page.evaluate(_JS_PETALS, "xsgpu-fea")
    assert visible and n_petals == int((act | (prob > 0.02)).sum())
    page.mouse.move(5, 5)  # no hover tooltip in the screenshot
    page.wait_for_timeout(500)
    page.locator(".bk-Figure").nth(1).screenshot(path=_screenshot_path("app_flowers.png", tmp_path))

    # box-select in the zoomed FEA view
    page.locator("[title='Box Select']").nth(1).click()
    frame = page.evaluate(_JS_TO_PAGE, ["xsgpu-fea", ranges[0], ranges[3]]), \
        page.evaluate(_JS_TO_PAGE, ["xsgpu-fea", ranges[1], ranges[2]])
    (left, top), (right, bottom) = frame
    sx0, sy0 = left + 0.2 * (right - left), top + 0.25 * (bottom - top)
    sx1, sy1 = left + 0.75 * (right - left), top + 0.8 * (bottom - top)
    page.mouse.move(sx0, sy0)
    page.mouse.down()
    page.mouse.move((sx0 + sx1) / 2, (sy0 + sy1) / 2, steps=5)
    page.mouse.move(sx1, sy1, steps=5)
    page.mouse.up()
    dx0, dy1 = page.evaluate(_JS_TO_DATA, ["xsgpu-fea", sx0, sy0])
    dx1, dy0 = page.evaluate(_JS_TO_DATA, ["xsgpu-fea", sx1, sy1])
    expected = np.flatnonzero(_in_box(fx, fy, (dx0, dx1, dy0, dy1)))
    assert len(expected) > 3
    k = len(expected)
    st = _wait_status(page, "FEA", f"s.selected == {k}")
    assert int(st["selected-in-view"]) == k
    for space in ("ACT", "PRD"):  # the other views: still the full raster, with all k selected drawn on top
        st = _wait_status(page, space, f"s.selected == {k}")
        x, y = coords[space]
        ranges_other = page.evaluate(_JS_RANGES, f"xsgpu-{space.lower()}")
        assert int(st["selected-in-view"]) == int(_in_box(x[expected], y[expected], ranges_other).sum()) == k
        assert st["mode"] == "raster"
    page.wait_for_function(f"() => ({_JS_PANE_TEXT})('xsgpu-selection-count') === '{k}'", timeout=120_000)
    assert page.evaluate(_JS_PANE_TEXT, "xsgpu-selection-count") == str(k)
    page.mouse.move(5, 5)
    page.wait_for_timeout(800)
    page.screenshot(path=_screenshot_path("app_screenshot.png", tmp_path), full_page=True)
