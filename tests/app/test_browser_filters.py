"""Browser test of the "More filters" card and the detail card's original frame (Playwright + Debian
chromium; issue 10.5): a path pattern typed in the card narrows the count and stays inside the sidebar; the
original frame of an image whose file is gone says so, naming the path. Uses ``served_app``
(tests/app/conftest.py: 1,500 images, ``source_uri`` ``/data/run<i // 250>/img<i>.tif``, files that do
not exist)."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

TIMEOUT_MS = 120_000


def test_more_filters_and_original_frame(served_app, page, tmp_path):
    url, _ = served_app
    page.set_default_timeout(TIMEOUT_MS)
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(url)
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=TIMEOUT_MS)
    page.locator(".xsgpu-view-status-text[data-space='PRD']").wait_for(state="attached")   # the page is live
    count = page.locator(".xsgpu-filter-count span")
    count.wait_for(state="attached")
    assert count.get_attribute("data-count") == "1500"
    # open the collapsed card, type a glob over the path
    page.locator(".xsgpu-more-filters .card-header").first.click()
    path = page.locator(".xsgpu-filter-path input")
    path.wait_for(state="visible")
    path.fill("*/run1/*")
    path.press("Enter")
    page.locator(".xsgpu-filter-count span[data-count='250']").wait_for(state="attached")
    # the open card stays inside the sidebar (no widget wider than it)
    side = page.locator(".xsgpu-sidebar").first.bounding_box()
    card = page.locator(".xsgpu-more-filters").first.bounding_box()
    assert card["x"] >= side["x"] - 1 and card["x"] + card["width"] <= side["x"] + side["width"] + 1, (card, side)
    page.screenshot(path=str(tmp_path / "more_filters.png"))
    # the original frame of image 3: its file (/data/run0/img00003.tif) is not there
    ids = page.locator(".xsgpu-detail-ids input")
    ids.fill("3")
    ids.press("Enter")
    page.locator(".xsgpu-detail-open button").click()
    page.locator(".xsgpu-detail-card").filter(has_text="#3").first.wait_for(state="visible")
    page.locator(".xsgpu-original-toggle button").first.click()
    msg = page.locator(".xsgpu-source-message").get_by_text("not there any more", exact=False).first
    msg.wait_for(state="visible")
    assert "/data/run0/img00003.tif" in msg.inner_text()
