"""Label corrections in a real browser (Playwright + Debian chromium), on a server of this module's own so that
its log can be read: record a correction the way a user does (type a note, click "Record correction" at
once), then check that the message appears, the card and the suspicious-label list update, the views
still redraw on a wheel zoom, and the server logged no error.

Before the fix, the click arrived while the note's ``value_input`` change was pending, so Panel ran the
button callback without Bokeh's document lock; the embedding views' redraw then raised
``RuntimeError: _pending_writes should be non-None when we have a document lock``.
"""
from __future__ import annotations

import re
import time

import pytest

from xsgpu.attributes import resolve_attribute
from xsgpu.io.corrections import read_corrections
from xsgpu.io.runstore import RunStore

from .conftest import JS_TABLE_ROWS as _JS_TABLE_ROWS, _server_log, make_app_run, start_server, stop_server

pytestmark = pytest.mark.browser

TIMEOUT_MS = 120_000



@pytest.fixture(scope="module")
def served_with_log(tmp_path_factory):
    """``xsgpu serve`` over a private test run; yields ``(url, run_path, read_log)``."""
    run_path = make_app_run(tmp_path_factory.mktemp("corrections") / "run").path
    proc, url = start_server(run_path)
    try:
        yield url, run_path, lambda: _server_log(proc)
    finally:
        stop_server(proc)


def _card_act(page, sid: int, name: str) -> str:
    """The ACT cell ("1" or "0") of attribute ``name`` in the detail card of image ``sid``."""
    card = page.locator(".xsgpu-detail-card").filter(has_text=f"#{sid}").first
    row = card.locator(".xsgpu-detail-attributes tr").filter(
        has=page.locator("td", has_text=re.compile(f"^{re.escape(name)}$")))
    return row.first.locator("td").nth(2).inner_text().strip()


def _wait_until(check, *, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.2)


def _open_app(page, url):
    page.set_default_timeout(TIMEOUT_MS)
    page.set_viewport_size({"width": 1600, "height": 1000})
    page.goto(url)
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=TIMEOUT_MS)


def _suspicious_rows(page):
    page.get_by_text("Suspicious labels", exact=True).first.click()
    page.wait_for_function(f"() => (({_JS_TABLE_ROWS})('xsgpu-suspicious-table') || []).length > 1",
                           timeout=TIMEOUT_MS)
    return page.evaluate(_JS_TABLE_ROWS, "xsgpu-suspicious-table")


def test_record_correction_updates_everything_and_views_keep_redrawing(served_with_log, page):
    url, run_path, read_log = served_with_log
    store = RunStore.open(run_path)
    before = len(read_corrections(store))
    _open_app(page, url)
    rows = _suspicious_rows(page)
    sid, name = int(rows[0]["sample_id"].replace(",", "")), rows[0]["attribute"]
    attr = resolve_attribute(name)
    old = bool(store.labels()[sid, attr.index])

    ids_input = page.locator(".xsgpu-detail-ids input")
    ids_input.fill(str(sid))
    page.locator(".xsgpu-detail-open button").click()
    page.locator(".xsgpu-detail-card").filter(has_text=f"#{sid}").first.wait_for(state="visible")
    assert _card_act(page, sid, attr.name) == ("1" if old else "0")
    page.locator(".xsgpu-correct-attribute select").select_option(attr.name)
    want = "absent" if old else "present"
    page.locator(".xsgpu-correct-value button", has_text=want).click()
    # as a user does: type the note and click at once (the note's change is still pending at the click)
    page.locator(".xsgpu-correct-note input").fill("browser test: pending note")
    page.locator(".xsgpu-record-correction button").click()

    page.locator(".xsgpu-detail-message", has_text=f"Recorded: image {sid}").wait_for(state="visible")
    log = read_corrections(store)
    assert len(log) == before + 1
    assert int(log.iloc[-1]["sample_id"]) == sid and log.iloc[-1]["attribute"] == attr.slug
    assert bool(log.iloc[-1]["new"]) == (not old)
    # the card shows the corrected ACT
    _wait_until(lambda: _card_act(page, sid, attr.name) == ("0" if old else "1"))
    # the corrected pair leaves the suspicious-label list
    page.wait_for_function(
        f"""() => {{ const rows = ({_JS_TABLE_ROWS})('xsgpu-suspicious-table') || [];
                   return rows.length > 0 && !rows.some((r) => r.sample_id.replace(/,/g, '') === '{sid}'
                                                         && r.attribute === {attr.name!r}); }}""",
        timeout=TIMEOUT_MS)

    # the ACT view still redraws on a wheel zoom (before the fix it only stretched its old raster)
    status = page.locator(".xsgpu-view-status-text[data-space='ACT']")
    before_in_view = status.get_attribute("data-in-view")
    fig = page.locator(".bk-Figure").first
    fig.scroll_into_view_if_needed()
    box = fig.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.6)
    page.mouse.wheel(0, -400)
    page.wait_for_function(
        f"""() => {{ const el = document.querySelector('body') && (function q(root) {{
                 const hit = root.querySelector(".xsgpu-view-status-text[data-space='ACT']");
                 if (hit) return hit;
                 for (const e of root.querySelectorAll('*')) {{ if (e.shadowRoot) {{ const h = q(e.shadowRoot);
                   if (h) return h; }} }}
                 return null; }})(document);
               return el && el.dataset.inView !== '{before_in_view}'; }}""", timeout=TIMEOUT_MS)
    server_log = read_log()
    assert "_pending_writes" not in server_log and "Traceback" not in server_log, server_log[-3000:]
