"""Offline, as at most facilities: every request the browser makes goes to the server itself.

A served run behind basic auth, in Debian's chromium: the login page, the app's first paint, wheel
zoom until the FEA view draws flowers, a box selection, the tabs of the lower panel and the logout
page. Every request is recorded (``page.on("request")``) and any request to another host is aborted
(``page.route``), as a facility without internet access would; none may be made.
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pytest

from .conftest import start_server, stop_server
from .test_browser_views import _JS_TO_PAGE, _status, _wait_status

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TABS = ("Attribute study", "Co-occurrence", "Suspicious labels", "Model overview")


@pytest.fixture(scope="module")
def served_with_login(tmp_path_factory, app_run):
    """``xsgpu serve`` with basic auth (password from a 0600 file); yields ``(url, password, run_path)``."""
    pw = tmp_path_factory.mktemp("offline") / "pw"
    pw.write_text("offline-pw\n")
    pw.chmod(0o600)
    proc, url = start_server(app_run, "--auth", "basic", "--basic-auth", str(pw))
    try:
        yield url, "offline-pw", Path(app_run)
    finally:
        stop_server(proc)


def test_every_request_goes_to_the_server(served_with_login, page):
    url, password, run_path = served_with_login
    server = urlsplit(url).netloc
    seen: list[str] = []
    foreign: list[str] = []

    def local(u: str) -> bool:
        return u.startswith(("data:", "blob:")) or urlsplit(u).netloc == server

    page.on("request", lambda r: seen.append(r.url))
    page.route("**/*", lambda route: route.continue_() if local(route.request.url)
               else (foreign.append(route.request.url), route.abort("internetdisconnected")))
    page.set_default_timeout(120_000)
    page.set_viewport_size({"width": 1600, "height": 1000})

    page.goto(url)  # redirected to the login form
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=180_000)
    _wait_status(page, "FEA", "s.inView > 0", timeout=180_000)
    n_first_paint = len(seen)

    emb = pd.read_parquet(run_path / "embedding.parquet").sort_values("sample_id")
    fx, fy = emb["fea_x"].to_numpy(), emb["fea_y"].to_numpy()
    near = np.hypot(fx - fx[0], fy - fy[0]) < 5
    cx, cy = float(np.median(fx[near])), float(np.median(fy[near]))
    for _ in range(20):  # re-renders: raster redraws, then the switch to flowers
        px, py = page.evaluate(_JS_TO_PAGE, ["xsgpu-fea", cx, cy])
        page.mouse.move(px, py)
        before = _status(page, "FEA")["in-view"]
        page.mouse.wheel(0, -400)
        if _wait_status(page, "FEA", f"s.inView != {before}")["mode"] == "flowers":
            break
    else:
        pytest.fail("the FEA view never switched to flowers")

    page.locator("[title='Box Select']").nth(1).click()
    box = page.locator(".bk-Figure").nth(1).bounding_box()
    x0, y0 = box["x"] + 0.2 * box["width"], box["y"] + 0.2 * box["height"]
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x0 + 0.6 * box["width"], y0 + 0.6 * box["height"], steps=6)
    page.mouse.up()
    _wait_status(page, "FEA", "s.selected > 0")

    for tab in TABS:  # dynamic tabs: their content is rendered on first show
        page.get_by_text(tab, exact=True).first.click(force=True)
        page.wait_for_timeout(1500)
    page.goto(url + "logout")
    page.wait_for_selector("text=You are logged out")

    assert foreign == [], f"requests to other hosts: {sorted(set(foreign))}"
    assert [u for u in seen if not local(u)] == []
    # the page really loaded its resources from the server (not inlined, not skipped)
    assert n_first_paint >= 5 and any("/static/js/bokeh" in u for u in seen)
    assert any("/static/extensions/panel/" in u for u in seen)
