"""Benchmark what a user waits for: Playwright + Debian's chromium on a served run, timed from the input to
the visible result (not the server callbacks, which ``bench_app.py`` times).

A run store of random maps (``bench_app.make_store``: 6 clusters per space) is built in a temporary
directory (or ``--run RUN`` is served as it is), ``xsgpu serve`` runs in a subprocess, and one page of
``--width`` x ``--height`` pixels goes through:

* ``browser.first_paint_ms``: ``page.goto`` until all three views show their status (raster drawn).
  Baseline: the same page's ``DOMContentLoaded`` (the HTML and scripts alone). params: ``settled_ms``
  (until no panel on screen shows its loading spinner) and ``load_kb`` (websocket bytes received).
* ``browser.wheel_raster_ms``: median of wheel steps on the FEA view in raster mode, from
  ``mouse.wheel`` to the view's status line changing. Baseline: the same steps with Bokeh's default
  ``lod_timeout`` (500 ms, set on the page's figures), measured in the same run.
* ``browser.wheel_to_flowers_ms``: the wheel step that switches the FEA view to flowers. Baseline: the
  same step with the default ``lod_timeout``.
* ``browser.box_select_ms``: a box drag in the zoomed-out FEA view, from ``mouse.up`` until the three
  views' status lines and the selection manager's count show the selection. params: ``fea_ms`` and
  ``three_views_ms`` (the first status line, all three) and ``received_kb`` (websocket bytes meanwhile).
* ``browser.open_image_ms``: typing an id and clicking "Show" until the detail card's image is visible.
* ``browser.record_correction_ms``: clicking "Record correction" until the "Recorded" message is
  visible.

For the last three the baseline is the median raster wheel step of the same run (one server round trip
with a redraw); ``ratio`` = baseline / value throughout (higher is better). The Python <-> browser
polling adds a few ms to every figure.

Usage::

    python benchmarks/bench_browser.py --quick          # < 1 minute on a quiet machine: 3,000 images
    python benchmarks/bench_browser.py --n 3000
    python benchmarks/bench_browser.py --n 1000000      # builds a 1M-image store first (minutes)
    python benchmarks/bench_browser.py --run runs/demo  # an existing run store
    python benchmarks/bench_browser.py --n 1000000 --timeout 300 --server-log serve.log
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _child import free_port, stop_child  # noqa: E402  (benchmarks/, on the path above)

log = logging.getLogger("bench_browser")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]
BOKEH_DEFAULT_LOD_MS = 500
TIMEOUT_MS = 120_000

# the status element of one view, searched through Panel's shadow roots
_JS_STATUS = """
(space) => {
  function q(root) {
    const hit = root.querySelector(`.xsgpu-view-status-text[data-space='${space}']`);
    if (hit) return hit;
    for (const e of root.querySelectorAll('*')) { if (e.shadowRoot) { const h = q(e.shadowRoot); if (h) return h; } }
    return null;
  }
  const el = q(document);
  return el ? {mode: el.dataset.mode, inView: +el.dataset.inView, selected: +el.dataset.selected,
               text: el.textContent} : null;
}
"""
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
# true once no Panel component on screen shows its loading spinner (the placeholders of the tabs not shown
# keep the class of the deferred panels they stand for, and are never drawn)
_JS_NO_SPINNER = """
() => {
  function busy(root) {
    for (const e of root.querySelectorAll('*')) {
      if (e.classList.contains('pn-loading') && e.getClientRects().length > 0) return true;
      if (e.shadowRoot && busy(e.shadowRoot)) return true;
    }
    return false;
  }
  return !busy(document);
}
"""
_JS_SET_LOD = """
(ms) => { for (const m of Bokeh.documents[0].all_models) { if ('lod_timeout' in m) m.lod_timeout = ms; } }
"""
_JS_GET_LOD = "() => Bokeh.documents[0].get_model_by_name('xsgpu-fea').lod_timeout"


def start_server(run: Path, *, threshold: int, warm: bool) -> tuple[subprocess.Popen, str, Any]:
    """``xsgpu serve RUN`` on a free port; returns (process, url, log file) once the run is loaded."""
    port = free_port()
    cmd = [sys.executable, "-m", "workflows.cli", "serve", str(run), "--port", str(port),
           "--flower-threshold", str(threshold), *([] if warm else ["--no-warm"])]
    logf = tempfile.NamedTemporaryFile("w+", prefix="bench-browser-", suffix=".log", delete=False)
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=logf, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {Path(logf.name).read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url + "xsgpu/thumb/0.png", timeout=10)
            return proc, url, logf
        except urllib.error.HTTPError:
            return proc, url, logf
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise TimeoutError(f"{url} did not answer")


def _status(page, space: str) -> dict:
    return page.evaluate(_JS_STATUS, space)


def _wait_status(page, space: str, pred: str) -> dict:
    page.wait_for_function(f"() => {{ const s = ({_JS_STATUS})({space!r}); return s && ({pred}); }}",
                           polling="raf", timeout=TIMEOUT_MS)
    return _status(page, space)


def _fea_centre(page) -> tuple[float, float]:
    fig = page.locator(".bk-Figure").nth(1)
    fig.scroll_into_view_if_needed()
    box = fig.bounding_box()
    return box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.55


def _reset_fea(page) -> None:
    before = _status(page, "FEA")["text"]
    page.locator("[title='Reset']").nth(1).click()
    if before is not None:
        try:
            _wait_status(page, "FEA", "s.mode === 'raster'")
        except Exception:  # noqa: BLE001 - already at home
            pass
    page.wait_for_timeout(800)


def wheel_steps(page, *, max_steps: int, stop_at_flowers: bool) -> tuple[list[float], float | None]:
    """Wheel steps on the FEA view; returns (raster step times in ms, the step into flowers or None)."""
    x, y = _fea_centre(page)
    page.mouse.move(x, y)
    raster, flowers = [], None
    for _ in range(max_steps):
        before = _status(page, "FEA")
        t0 = time.perf_counter()
        page.mouse.wheel(0, -250)
        after = _wait_status(page, "FEA", f"s.text !== {before['text']!r}")
        dt = (time.perf_counter() - t0) * 1000
        if after["mode"] != "raster":
            flowers = dt
            break
        raster.append(dt)
        page.wait_for_timeout(300)
    if stop_at_flowers and flowers is None:
        log.warning("the FEA view did not reach flowers in %d steps", max_steps)
    return raster, flowers


def run_page(url: str, *, width: int, height: int, n_images: int, steps: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    out: dict[str, Any] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.set_default_timeout(TIMEOUT_MS)
        received = [0]   # bytes the server sent over the websocket (what a step costs in transfer)

        def _count(payload: Any) -> None:
            received[0] += len(payload)

        page.on("websocket", lambda ws: ws.on("framereceived", _count))
        t0 = time.perf_counter()
        page.goto(url, wait_until="domcontentloaded")
        out["dom_ms"] = (time.perf_counter() - t0) * 1000
        page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=TIMEOUT_MS)
        for space in ("ACT", "FEA", "PRD"):
            _wait_status(page, space, "s.inView > 0")
        out["first_paint_ms"] = (time.perf_counter() - t0) * 1000
        app_lod = page.evaluate(_JS_GET_LOD)
        out["app_lod_timeout"] = app_lod
        # the heavy panels fill in after the page loads (the server is busy meanwhile): wait until they have
        try:
            page.wait_for_function(f"() => ({_JS_NO_SPINNER})()", polling=500, timeout=TIMEOUT_MS)
        except Exception:  # noqa: BLE001 - measure anyway, and say so
            log.warning("a panel still shows its loading spinner after %d s", TIMEOUT_MS // 1000)
        out["settled_ms"] = (time.perf_counter() - t0) * 1000
        out["load_kb"] = received[0] / 1024
        page.wait_for_timeout(1000)
        log.info("first paint %.0f ms; page settled", out["first_paint_ms"])

        # wheel zoom: Bokeh's default lod_timeout and the app's, alternating (so a busy moment of the
        # server or the machine does not land on one of them only), on the same steps
        for key in ("app", "default"):
            out[f"wheel_raster_{key}"], out[f"wheel_flowers_{key}"] = [], []
        for key, lod in [("default", BOKEH_DEFAULT_LOD_MS), ("app", app_lod)] * 2:
            page.evaluate(_JS_SET_LOD, lod)
            _reset_fea(page)
            raster, flowers = wheel_steps(page, max_steps=steps, stop_at_flowers=True)
            out[f"wheel_raster_{key}"] += raster
            if flowers is not None:
                out[f"wheel_flowers_{key}"].append(flowers)
            log.info("wheel steps (lod_timeout %s ms): raster %s, into flowers %s", lod,
                     [round(v) for v in raster], flowers and round(flowers))
        page.evaluate(_JS_SET_LOD, app_lod)
        _reset_fea(page)

        # box selection in the FEA view, to three views + the selection manager's count
        page.locator("[title='Box Select']").nth(1).click()
        fig = page.locator(".bk-Figure").nth(1)
        box = fig.bounding_box()
        sx0, sy0 = box["x"] + 0.30 * box["width"], box["y"] + 0.35 * box["height"]
        sx1, sy1 = box["x"] + 0.55 * box["width"], box["y"] + 0.60 * box["height"]
        page.mouse.move(sx0, sy0)
        page.mouse.down()
        page.mouse.move(sx1, sy1, steps=6)
        t0 = time.perf_counter()
        received[0] = 0
        page.mouse.up()
        log.info("box selection: mouse up")
        st = _wait_status(page, "FEA", "s.selected > 0")
        k = st["selected"]
        out["box_fea_ms"] = (time.perf_counter() - t0) * 1000
        for space in ("ACT", "PRD"):
            _wait_status(page, space, f"s.selected === {k}")
        out["box_views_ms"] = (time.perf_counter() - t0) * 1000
        page.wait_for_function(f"() => ({_JS_PANE_TEXT})('xsgpu-selection-count') === '{k}'", polling="raf",
                               timeout=TIMEOUT_MS)
        out["box_select_ms"] = (time.perf_counter() - t0) * 1000
        out["box_select_kb"] = received[0] / 1024
        out["selected"] = k
        log.info("box selection of %d: FEA %.0f ms, three views %.0f ms, with the count %.0f ms", k,
                 out["box_fea_ms"], out["box_views_ms"], out["box_select_ms"])
        page.locator("[title='Pan']").nth(1).click()

        # open an image by id
        sid = n_images // 3
        ids = page.locator(".xsgpu-detail-ids input")
        ids.fill(str(sid))
        ids.press("Enter")
        page.wait_for_timeout(500)
        try:
            t0 = time.perf_counter()
            page.locator(".xsgpu-detail-open button").click()
            page.locator(".xsgpu-detail-card").filter(has_text=f"#{sid}").first.wait_for(state="visible")
            out["open_image_ms"] = (time.perf_counter() - t0) * 1000
            # record a correction (the form is on the image just opened)
            page.wait_for_timeout(500)
            t0 = time.perf_counter()
            page.locator(".xsgpu-record-correction button").click()
            page.locator(".xsgpu-detail-message", has_text=f"Recorded: image {sid}").wait_for(state="visible")
            out["record_correction_ms"] = (time.perf_counter() - t0) * 1000
        except Exception:  # noqa: BLE001 - report the figures measured so far, with a screenshot of the page
            shot = Path(tempfile.gettempdir()) / "bench_browser_failure.png"
            page.screenshot(path=str(shot), full_page=True)
            log.exception("opening image %d or recording its correction failed; page in %s", sid, shot)
        browser.close()
    return out


def _line(name: str, value: float | None, baseline: float | None, *, n: int, params: dict) -> None:
    ratio = (baseline / value) if value and baseline else None
    print(json.dumps({"name": name, "value": None if value is None else round(value, 1), "unit": "ms",
                      "baseline": None if baseline is None else round(baseline, 1),
                      "ratio": None if ratio is None else round(ratio, 3), "n": n, "device": "cpu",
                      "params": params}), flush=True)


def main(argv: list[str] | None = None) -> int:
    global TIMEOUT_MS
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Prints one JSON object per line (see the module docstring).")
    ap.add_argument("--quick", action="store_true", help="3,000 images, 4 wheel steps per pass.")
    ap.add_argument("--n", type=int, default=3000, help="Images in the generated run store (default 3000).")
    ap.add_argument("--run", type=Path, default=None, help="Serve this run store instead of generating one.")
    ap.add_argument("--threshold", type=int, default=None,
                    help="--flower-threshold of the server (default: n / 20, at least 150, at most 2000).")
    ap.add_argument("--steps", type=int, default=12, help="Wheel steps at most per pass (default 12).")
    ap.add_argument("--timeout", type=float, default=TIMEOUT_MS / 1000,
                    help="Seconds to wait for each visible result (default %(default)s).")
    ap.add_argument("--server-log", type=Path, default=None,
                    help="Keep the server's log in this file (default: a temporary file, deleted).")
    ap.add_argument("--width", type=int, default=1600)
    ap.add_argument("--height", type=int, default=1000)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    n = 3000 if args.quick else int(args.n)
    TIMEOUT_MS = int(args.timeout * 1000)
    steps = 4 if args.quick else int(args.steps)
    tmp = None
    if args.run is None:
        from bench_app import make_store

        tmp = Path(tempfile.mkdtemp(prefix="bench-browser-"))
        t = time.perf_counter()
        run = make_store(tmp / "run", n).path
        log.info("run store of %d images built in %.1f s", n, time.perf_counter() - t)
    else:
        run = args.run
        from xsgpu.io.runstore import RunStore

        n = RunStore.open(run).n_samples
    threshold = args.threshold or max(150, min(2000, n // 20))
    proc, url, logf = start_server(run, threshold=threshold, warm=True)
    try:
        got = run_page(url, width=args.width, height=args.height, n_images=n, steps=steps)
    finally:
        stop_child(proc)
        logf.close()
        if args.server_log is not None:
            shutil.move(logf.name, args.server_log)
        else:
            Path(logf.name).unlink(missing_ok=True)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    common = {"viewport": f"{args.width}x{args.height}", "flower_threshold": threshold,
              "lod_timeout_ms": got["app_lod_timeout"]}
    _line("browser.first_paint_ms", got["first_paint_ms"], got["dom_ms"], n=n,
          params={**common, "baseline": "DOMContentLoaded of the same page",
                  "settled_ms": round(got["settled_ms"]), "load_kb": round(got["load_kb"])})
    raster_app = statistics.median(got["wheel_raster_app"]) if got["wheel_raster_app"] else None
    raster_def = statistics.median(got["wheel_raster_default"]) if got["wheel_raster_default"] else None
    _line("browser.wheel_raster_ms", raster_app, raster_def, n=n,
          params={**common, "steps": len(got["wheel_raster_app"]), "all_ms": [round(v) for v in got["wheel_raster_app"]],
                  "baseline": f"same steps, Bokeh's default lod_timeout {BOKEH_DEFAULT_LOD_MS} ms",
                  "baseline_all_ms": [round(v) for v in got["wheel_raster_default"]]})
    fl_app, fl_def = got["wheel_flowers_app"], got["wheel_flowers_default"]
    _line("browser.wheel_to_flowers_ms", statistics.median(fl_app) if fl_app else None,
          statistics.median(fl_def) if fl_def else None, n=n,
          params={**common, "all_ms": [round(v) for v in fl_app], "baseline_all_ms": [round(v) for v in fl_def],
                  "baseline": f"same step, lod_timeout {BOKEH_DEFAULT_LOD_MS} ms"})
    base = {"baseline": "median raster wheel step of this run (one round trip with a redraw)"}
    _line("browser.box_select_ms", got["box_select_ms"], raster_app, n=n,
          params={**common, **base, "selected": got["selected"], "fea_ms": round(got["box_fea_ms"]),
                  "three_views_ms": round(got["box_views_ms"]),
                  "received_kb": round(got["box_select_kb"], 1)})
    _line("browser.open_image_ms", got.get("open_image_ms"), raster_app, n=n, params={**common, **base})
    _line("browser.record_correction_ms", got.get("record_correction_ms"), raster_app, n=n,
          params={**common, **base})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
