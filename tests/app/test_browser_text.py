"""Readable text in a real browser (Playwright + Debian chromium): the detail view's attribute table, the
group metrics, the overview's tables and the flower legend use at least 12 px; the overview draws its
HoloViews plots."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

_spec = importlib.util.spec_from_file_location("tbg", Path(__file__).with_name("test_browser_groups.py"))
_tbg = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_tbg)

_JS_SIZES = "els => els.filter(e => e.getClientRects().length).map(e => parseFloat(getComputedStyle(e).fontSize))"


def _sizes(page, selector: str) -> list[float]:
    loc = page.locator(selector)
    loc.first.wait_for(state="visible")
    return loc.evaluate_all(_JS_SIZES)


def test_tables_and_legends_are_readable(served_app, page):
    url, _ = served_app
    _tbg._open(page, url, {"width": 1920, "height": 1080})
    ids_input = page.locator(".xsgpu-detail-ids input")
    ids_input.fill("5")
    ids_input.press("Enter")
    page.locator(".xsgpu-detail-open button").click()
    _tbg._box_select_fea(page)
    _tbg._tbv._wait_status(page, "FEA", "s.selected > 0")
    checks = {
        "detail attribute table": ".xsgpu-detail-attributes td",
        "group metrics": ".xsgpu-group-metrics .tabulator-cell[tabulator-field='attribute']",
        "flower legend": ".xsgpu-flower-legend div",
    }
    page.get_by_text("Model overview", exact=True).first.click()
    checks.update({"overview table": ".xsgpu-overview-table .tabulator-cell[tabulator-field='attribute']",
                   "overview per split": ".xsgpu-overview-splits .tabulator-cell[tabulator-field='scope']"})
    for what, selector in checks.items():
        sizes = _sizes(page, selector)
        assert sizes and min(sizes) >= 12, f"{what}: font sizes {sorted(set(sizes))} px"
    # the overview's three HoloViews plots of the chosen attribute are drawn
    for cls in ("xsgpu-overview-pr", "xsgpu-overview-hist", "xsgpu-overview-reliability"):
        page.locator(f".{cls} canvas").first.wait_for(state="attached")
