"""Browser test of the detail view (Playwright + Debian chromium): open an image, record a label correction
through the UI, and check corrections.parquet. Uses APP-A's ``served_app`` fixture (tests/app/conftest.py)."""
from __future__ import annotations

import time

import pytest

from xsgpu.attributes import resolve_attribute
from xsgpu.io.corrections import read_corrections
from xsgpu.io.runstore import RunStore

pytestmark = pytest.mark.browser

TIMEOUT_MS = 120_000   # generous: CI machines run ~1.5x slower than ours


def _wait_until(check, *, timeout: float = 90.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got is not None and got is not False:
            return got
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def test_open_image_and_record_correction(served_app, page):
    url, run_path = served_app
    store = RunStore.open(run_path)
    before = len(read_corrections(store))
    sid = 37
    halo = resolve_attribute("Halo")
    old = bool(store.labels()[sid, halo.index])

    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=TIMEOUT_MS)
    # open the image by id in the detail view
    ids_input = page.locator(".xsgpu-detail-ids input")
    ids_input.fill(str(sid))
    ids_input.press("Enter")
    page.locator(".xsgpu-detail-open button").click()
    card = page.locator(".xsgpu-detail-card").filter(has_text=f"#{sid}")
    card.first.wait_for(state="visible")
    img = page.locator(".xsgpu-detail-image img").first
    img.wait_for(state="visible")
    small = img.bounding_box()["width"]
    # enlarge it
    page.locator(".xsgpu-enlarge button").first.click()
    _wait_until(lambda: (page.locator(".xsgpu-detail-image img").first.bounding_box() or {"width": 0})["width"]
                > 2 * small or None)
    # the correction form: attribute, value (preset to the flipped value), note, record
    page.locator(".xsgpu-correct-attribute select").select_option(halo.name)
    want = "absent" if old else "present"
    page.locator(".xsgpu-correct-value button", has_text=want).click()
    note = page.locator(".xsgpu-correct-note input")
    note.fill("browser test: halo")
    note.press("Enter")
    page.locator(".xsgpu-record-correction button").click()

    log = _wait_until(lambda: (lambda df: df if len(df) > before else None)(read_corrections(store)))
    last = log.iloc[-1]
    assert int(last["sample_id"]) == sid and last["attribute"] == halo.slug
    assert bool(last["old"]) == old and bool(last["new"]) == (not old)
    assert last["note"] == "browser test: halo"
    page.locator(".xsgpu-detail-message", has_text="Recorded: image 37").wait_for(state="visible")


def test_suspicious_row_opens_detail(served_app, page):
    url, _ = served_app
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=TIMEOUT_MS)
    page.get_by_text("Suspicious labels", exact=True).first.click()
    rows = page.locator(".xsgpu-suspicious-table .tabulator-row")
    rows.first.wait_for(state="visible")
    sid = int(rows.nth(0).locator(".tabulator-cell").nth(1).inner_text().replace(",", ""))
    rows.nth(0).locator(".tabulator-cell").nth(2).click()
    page.locator(".xsgpu-detail-card").filter(has_text=f"#{sid}").first.wait_for(state="visible")
