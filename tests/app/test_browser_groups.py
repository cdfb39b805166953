"""Groups in a real browser (Playwright + Debian chromium): box-select in the FEA view, save the selection as
a group through the selection manager, see it drawn in its colour on all three maps, reload the page and
find it again (stored in the run store), then delete it."""
from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

import pytest

from xsgpu.io.groups import read_groups
from xsgpu.io.runstore import RunStore

pytestmark = pytest.mark.browser

_spec = importlib.util.spec_from_file_location("tbv", Path(__file__).with_name("test_browser_views.py"))
_tbv = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_tbv)

TIMEOUT_MS = 120_000
DOCS = Path(__file__).resolve().parents[2] / "docs"

# pixels of the "group-raster" layer of a figure that are drawn in a colour (r, g, b)
_JS_GROUP_PIXELS = """
([name, rgb]) => {
  const fig = Bokeh.documents[0].get_model_by_name(name);
  const r = fig.renderers.find((r) => r.name === "group-raster");
  const img = r.data_source.data.image[0];
  const flat = img.flat ? img.flat() : (img.array || img);
  let n = 0;
  for (const w of flat) {
    if (w !== 0 && (w & 255) === rgb[0] && ((w >>> 8) & 255) === rgb[1] && ((w >>> 16) & 255) === rgb[2]) n++;
  }
  return n;
}
"""


def _box_select_fea(page):
    page.locator("[title='Box Select']").nth(1).click()
    ranges = page.evaluate(_tbv._JS_RANGES, "xsgpu-fea")
    (left, top) = page.evaluate(_tbv._JS_TO_PAGE, ["xsgpu-fea", ranges[0], ranges[3]])
    (right, bottom) = page.evaluate(_tbv._JS_TO_PAGE, ["xsgpu-fea", ranges[1], ranges[2]])
    sx0, sy0 = left + 0.05 * (right - left), top + 0.05 * (bottom - top)
    sx1, sy1 = left + 0.5 * (right - left), top + 0.5 * (bottom - top)
    page.mouse.move(sx0, sy0)
    page.mouse.down()
    page.mouse.move((sx0 + sx1) / 2, (sy0 + sy1) / 2, steps=5)
    page.mouse.move(sx1, sy1, steps=5)
    page.mouse.up()


def _poll(check, *, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got is not None:
            return got
        time.sleep(0.2)
    return None


def _open(page, url, size):
    page.set_default_timeout(TIMEOUT_MS)
    page.set_viewport_size(size)
    page.goto(url)
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=TIMEOUT_MS)
    for space in ("ACT", "FEA", "PRD"):
        _tbv._wait_status(page, space, "s.inView > 0")


def _shot(page, name, tmp_path):
    target = DOCS if os.environ.get("XSGPU_UPDATE_DOCS") == "1" else tmp_path
    page.screenshot(path=str(target / name), full_page=False)


def test_group_is_drawn_on_every_map_and_survives_a_reload(served_app, page, tmp_path):
    url, run_path = served_app
    store = RunStore.open(run_path)
    before = {g.name for g in read_groups(store)}
    _open(page, url, {"width": 1366, "height": 768})
    _box_select_fea(page)
    st = _tbv._wait_status(page, "FEA", "s.selected > 0")
    k = int(st["selected"])
    name = "browser group"
    box = page.locator(".xsgpu-group-name input")
    box.fill(name)
    box.press("Enter")
    page.locator(".xsgpu-save-group button").click()
    saved = _poll(lambda: next((g for g in read_groups(store) if g.name == name), None))
    assert saved is not None and len(saved.ids) == k and name not in before
    rgb = [int(saved.colour[i:i + 2], 16) for i in (1, 3, 5)]
    for space in ("act", "fea", "prd"):
        page.wait_for_function(f"() => ({_JS_GROUP_PIXELS})(['xsgpu-{space}', {rgb}]) > 0", timeout=TIMEOUT_MS)
    # the selection manager still shows the current selection as Group A (saving did not switch it)
    assert page.locator(".xsgpu-group-a select").input_value() == "(current selection)"
    _shot(page, "app_groups_1366.png", tmp_path)

    # a new session (page reload) finds the group, drawn again in its colour
    _open(page, url, {"width": 1920, "height": 1080})
    page.locator(".xsgpu-group-list", has_text=name).first.wait_for(state="visible")
    for space in ("act", "fea", "prd"):
        page.wait_for_function(f"() => ({_JS_GROUP_PIXELS})(['xsgpu-{space}', {rgb}]) > 0", timeout=TIMEOUT_MS)
    _shot(page, "app_groups_1920.png", tmp_path)

    # delete it through the manager: gone from the store and from the maps
    page.locator(".xsgpu-manage-group select").select_option(name)
    page.locator(".xsgpu-delete-group button").click()
    page.wait_for_function(f"() => ({_JS_GROUP_PIXELS})(['xsgpu-act', {rgb}]) === 0", timeout=TIMEOUT_MS)
    assert name not in {g.name for g in read_groups(store)}
