"""Clicks and hovers that link the panels, in a real browser (Playwright + Debian chromium; issue 11.7):
a suspicious-label row fills the correction form, a co-occurrence row selects its images, and hovering
the dense raster shows how many images lie under the cursor."""
from __future__ import annotations

import re

import pytest

from .conftest import JS_TABLE_ROWS as _JS_TABLE_ROWS

pytestmark = pytest.mark.browser

TIMEOUT_MS = 120_000

# the per-pixel count of the main raster of a figure at page pixel (px, py)
_JS_PIXEL_WITH_IMAGES = """
(name) => {
  // the page position of a raster pixel that holds images (the most crowded one), and its count
  function find(v) {
    if (v.model && v.model.name === name) return v;
    for (const c of (v.children_views ? v.children_views() : [])) { const r = find(c); if (r) return r; }
    return null;
  }
  let pv = null;
  for (const r of Bokeh.index.roots) { pv = find(r); if (pv) break; }
  const rect = pv.canvas_view.el.getBoundingClientRect();
  const src = pv.model.renderers.find((r) => r.name === 'raster').data_source.data;
  const counts = src.counts[0], shape = counts.shape || [counts.length, counts[0].length];
  const [h, w] = shape;
  const flat = counts.array || (counts.shape ? counts : counts.flat());
  let best = -1;
  for (let k = 0; k < h * w; k++) { if (best < 0 || flat[k] > flat[best]) best = k; }
  if (best < 0 || flat[best] === 0) return null;
  const i = Math.floor(best / w), j = best % w;
  const x = src.x[0] + (j + 0.5) / w * src.dw[0], y = src.y[0] + (i + 0.5) / h * src.dh[0];
  return [rect.left + pv.frame.x_scale.compute(x), rect.top + pv.frame.y_scale.compute(y), flat[best], w];
}
"""


def _deep_text(locator) -> str:
    """The text of an element including its shadow root (Panel panes and Bokeh tooltips render there)."""
    return locator.evaluate("""(e) => {
      const parts = e.shadowRoot ? [...e.shadowRoot.children].filter((c) => !['STYLE', 'LINK'].includes(c.tagName))
                                 : [];
      return (parts.map((c) => c.textContent).join('') + e.textContent).trim();
    }""")


def _open(page, url):
    page.set_default_timeout(TIMEOUT_MS)
    page.set_viewport_size({"width": 1600, "height": 1000})
    page.goto(url)
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=TIMEOUT_MS)


def _rows(page, cls):
    page.wait_for_function(f"() => (({_JS_TABLE_ROWS})({cls!r}) || []).length > 1", timeout=TIMEOUT_MS)
    return page.evaluate(_JS_TABLE_ROWS, cls)


def test_suspicious_row_fills_the_correction_form(served_app, page):
    url, _ = served_app
    _open(page, url)
    page.get_by_text("Suspicious labels", exact=True).first.click()
    rows = _rows(page, "xsgpu-suspicious-table")
    for k in (1, 0):
        sid, name = int(rows[k]["sample_id"].replace(",", "")), rows[k]["attribute"]
        page.locator(".xsgpu-suspicious-table .tabulator-row").nth(k).locator("[tabulator-field='score']").click()
        page.locator(".xsgpu-detail-card").filter(has_text=f"#{sid}").first.wait_for(state="visible")
        sample = page.locator(".xsgpu-correct-sample select")
        attribute = page.locator(".xsgpu-correct-attribute select")
        for _ in range(600):
            if sample.input_value() == str(sid) and attribute.input_value() == name:
                break
            page.wait_for_timeout(200)
        assert sample.input_value() == str(sid) and attribute.input_value() == name


def test_cooccurrence_row_selects_its_images(served_app, page):
    url, _ = served_app
    _open(page, url)
    page.get_by_text("Co-occurrence", exact=True).first.click()
    rows = _rows(page, "xsgpu-cooccurrence-table")
    n_true = int(rows[1]["n_true"].replace(",", ""))
    assert n_true > 0
    page.locator(".xsgpu-cooccurrence-table .tabulator-row").nth(1).locator("[tabulator-field='combination']").click()
    count = page.locator(".xsgpu-selection-count").first
    for _ in range(600):
        if _deep_text(count) == str(n_true):
            break
        page.wait_for_timeout(200)
    assert _deep_text(count) == str(n_true)
    status = page.locator(".xsgpu-view-status-text[data-space='FEA']")
    assert status.get_attribute("data-selected") == str(n_true)


def test_hovering_the_raster_shows_the_images_under_the_cursor(served_app, page):
    url, _ = served_app
    _open(page, url)
    status = page.locator(".xsgpu-view-status-text[data-space='ACT']")
    status.wait_for(state="attached")
    assert status.get_attribute("data-mode") == "raster"
    fig = page.locator(".bk-Figure").first
    fig.scroll_into_view_if_needed()
    # the raster as drawn for the frame the page laid out (a growing view redraws once it knows its width)
    page.wait_for_function("""() => { const f = Bokeh.documents[0].get_model_by_name('xsgpu-act');
        const img = f.renderers.find((r) => r.name === 'raster').data_source.data.counts[0];
        return f.inner_width > 0 && (img.shape ? img.shape[1] : img[0].length) === f.inner_width; }""")
    # the pixel of the ACT raster that holds the most images, by the raster's own counts
    hit = page.evaluate(_JS_PIXEL_WITH_IMAGES, "xsgpu-act")
    if hit is None:
        pytest.fail("no pixel of the ACT raster holds an image")
    px, py, n, _w = hit
    page.mouse.move(px - 3, py - 3)
    page.mouse.move(px, py, steps=3)
    tip = page.locator(".bk-Tooltip", has_text="images here").first
    tip.wait_for(state="visible")
    shown = re.search(r"images here\s*:?\s*([\d,]+)", _deep_text(tip))
    assert shown is not None and int(shown.group(1).replace(",", "")) == n
