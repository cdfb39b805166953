"""The layout in a real browser (Playwright + Debian chromium; issue 11.2) at 1366x768, 1920x1080 and
2560x1440: the main panels never overlap and never run off the page to the right; the views, the
attribute filters and the selection manager are all in the first screen; three detail cards wrap inside
the detail view; collapsing the detail view leaves the selection manager's width alone.

Screenshots of each size go to the test's tmp_path (``layout_<w>x<h>.png``).
"""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

TIMEOUT_MS = 120_000
SIZES = [(1366, 768), (1920, 1080), (2560, 1440)]
PANELS = {"sidebar": ".xsgpu-sidebar", "ACT": ".bk-Figure >> nth=0", "FEA": ".bk-Figure >> nth=1",
          "PRD": ".bk-Figure >> nth=2", "selection manager": ".xsgpu-selection-manager",
          "detail view": ".xsgpu-detail-view", "tabs": ".xsgpu-tabs"}


def _box(page, selector: str) -> dict:
    loc = page.locator(selector).first
    loc.wait_for(state="visible")
    b = loc.bounding_box()
    assert b is not None, selector
    return b


def _overlap(a: dict, b: dict) -> float:
    w = min(a["x"] + a["width"], b["x"] + b["width"]) - max(a["x"], b["x"])
    h = min(a["y"] + a["height"], b["y"] + b["height"]) - max(a["y"], b["y"])
    return max(w, 0.0) * max(h, 0.0)


def _no_overlaps(boxes: dict[str, dict], *, tol: float = 4.0) -> list[str]:
    names = list(boxes)
    return [f"{a} overlaps {b} ({_overlap(boxes[a], boxes[b]):.0f} px²)" for i, a in enumerate(names)
            for b in names[i + 1:] if _overlap(boxes[a], boxes[b]) > tol]


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_main_panels_fit_without_overlap(served_app, page, size, tmp_path):
    url, _ = served_app
    width, height = size
    page.set_default_timeout(TIMEOUT_MS)
    page.set_viewport_size({"width": width, "height": height})
    page.goto(url)
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=TIMEOUT_MS)
    page.locator(".xsgpu-view-status-text[data-space='PRD']").wait_for(state="attached")
    # three images in the detail view
    ids = page.locator(".xsgpu-detail-ids input")
    ids.fill("3 4 5")
    ids.press("Enter")
    page.locator(".xsgpu-detail-open button").click()
    cards = page.locator(".xsgpu-detail-card")
    for sid in (3, 4, 5):
        cards.filter(has_text=f"#{sid}").first.wait_for(state="visible")
    page.wait_for_timeout(1000)   # let the layout settle
    page.evaluate("() => window.scrollTo(0, 0)")

    boxes = {name: _box(page, sel) for name, sel in PANELS.items()}
    assert _no_overlaps(boxes) == []
    page_width = page.evaluate("() => document.documentElement.scrollWidth")
    assert page_width <= width, f"the page is {page_width} px wide in a {width} px window"
    for name, b in boxes.items():
        assert b["x"] >= 0 and b["x"] + b["width"] <= width + 1, f"{name} runs off the page: {b}"
    # the first screen holds the three views, the attribute filters and the top of the selection manager
    filters = _box(page, ".xsgpu-filters")
    for name, b in [("ACT", boxes["ACT"]), ("FEA", boxes["FEA"]), ("PRD", boxes["PRD"])]:
        assert b["y"] + b["height"] <= height, f"the {name} view is not in the first screen: {b}"
    assert filters["y"] + min(filters["height"], 120) <= height, f"the attribute filters are below the fold: {filters}"
    sm = boxes["selection manager"]
    assert sm["y"] + 40 <= height, f"the selection manager is below the fold: {sm}"
    # the views take the width the window gives them (square frames between VIEW_PX and MAX_VIEW_PX), and
    # each raster is drawn at its frame's size (before: 310 px whatever the window; 1920 px left ~640 px empty)
    from panel_app.app import MAX_VIEW_PX, VIEW_PX

    page.wait_for_function("""() => ['xsgpu-act', 'xsgpu-fea', 'xsgpu-prd'].every((n) => {
        const f = Bokeh.documents[0].get_model_by_name(n);
        const img = f.renderers.find((r) => r.name === 'raster').data_source.data.image[0];
        return f.inner_width > 0 && (img.shape ? img.shape[1] : img[0].length) === f.inner_width; })""")
    frames = page.evaluate("""() => ['xsgpu-act', 'xsgpu-fea', 'xsgpu-prd'].map((n) => {
        const f = Bokeh.documents[0].get_model_by_name(n); return [f.inner_width, f.inner_height]; })""")
    for w, h in frames:
        assert w == h and VIEW_PX <= w <= MAX_VIEW_PX, frames
    if width >= 1920:
        assert all(w == MAX_VIEW_PX for w, _ in frames), frames
    # the detail cards wrap inside the detail view and do not overlap each other
    detail = boxes["detail view"]
    card_boxes = {f"card {k}": cards.nth(k).bounding_box() for k in range(cards.count())}
    assert len(card_boxes) == 3 and _no_overlaps(card_boxes) == []
    for name, b in card_boxes.items():
        assert detail["x"] - 1 <= b["x"] and b["x"] + b["width"] <= detail["x"] + detail["width"] + 1, \
            f"{name} sticks out of the detail view: {b} vs {detail}"
    page.screenshot(path=str(tmp_path / f"layout_{width}x{height}.png"))

    # collapsing the detail view does not squeeze the selection manager
    page.locator(".xsgpu-detail-view .card-header").first.click()
    page.wait_for_timeout(800)
    after = _box(page, ".xsgpu-selection-manager")
    assert abs(after["width"] - sm["width"]) <= 2, (sm, after)
