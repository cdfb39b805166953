"""Benchmark the web app's callbacks at scale, and server memory with 1 vs many sessions.

The timed code is exactly what the app runs on each browser event (server side, no browser): an
:class:`~panel_app.views.embedding.EmbeddingView` redraw after a pan / zoom (count the filtered images in
the viewport, then a datashader raster or flower glyph data), a box selection applied to all three views
plus the selection's metrics (``xsgpu.metrics.selection_metrics``), and the flowers of ~2,000 images.
Data: an in-memory :class:`~panel_app.data.RunData` of N images (6 clusters per space, labels from
prototypes with flips, probabilities = noisy labels), built here; no stage is needed.

Printed JSON lines ({"name", "value", "unit", "baseline", "ratio", "n", "device", "params"}):

* ``app.load_s``: building the RunData and the three spatial indexes (sorting by x); baseline: the
  argsort alone; ratio = baseline / value.
* ``app.pan_zoom_ms``: median redraw after a pan or zoom with the view in raster mode (full extent and
  zoomed to ~10% of the area). Baseline: the naive redraw (boolean viewport mask over all N points,
  copy of the subset, datashader on it); ratio = baseline / value. Target <= 150 ms.
* ``app.selection_ms``: a box selection (~5% of the images) resolved to ids, applied to the three views
  (selection layers redrawn) and the group's metrics recomputed. Baseline: the naive box query (mask over
  all N) + the same redraw + metrics; ratio = baseline / value. Target <= 300 ms.
* ``app.flowers_ms``: redraw when the viewport holds ~2,000 images (flower petals for all of them).
  Baseline: the raster redraw of the same viewport; ratio = baseline / value. Target <= 300 ms.
* ``app.ready_s`` (``--ready`` only): ``xsgpu serve`` start until ``GET /`` answers 200, on a run store of
  ``--server-n`` images (or ``--ready-store``) whose app cache a first serve wrote; baseline = that first,
  cold serve (cache removed before); ratio = baseline / value. Target <= 20 s at 10M.
* ``app.server_rss_mb`` (not with --quick): RSS of an ``xsgpu serve`` process over a run store of
  ``--server-n`` images after 10 sessions (Bokeh ``pull_session``) vs after 1; baseline = RSS with
  1 session, ratio = baseline / value (1.0: sessions add nothing). params hold per-session MB.

``--device gpu`` (a GPU node with the ``[gpu]`` extra; refused with the reason and the remedy elsewhere): the
same ``app.load_s``, ``app.pan_zoom_ms``, ``app.selection_ms`` and ``app.flowers_ms`` for a ``--device gpu``
session (rasters on cuDF, queries and group metrics on CuPy; :mod:`panel_app.device`), each with
``device: "gpu"`` and as baseline the same callback in a ``--device cpu`` session over the same data in the
same run (ratio = CPU / GPU). Each callback runs once untimed first (CuPy compiles a kernel on its first call).
No server figures in this mode.

Usage::

    python benchmarks/bench_app.py --quick          # < 1 minute: 100k images, no server
    python benchmarks/bench_app.py --n 1000000      # the issue's figures at 1M (+ server memory)
    python benchmarks/bench_app.py --n 10000000 --no-server
    python benchmarks/bench_app.py --server-only --server-store RUN   # server memory over an existing store
    python benchmarks/bench_app.py --ready --ready-store RUN          # server ready, cold vs cached
    python benchmarks/bench_app.py --device gpu --n 10000000          # GPU node: GPU vs CPU sessions, one run

Timings on the shared, busy 2-core development machine are pessimistic.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _child import free_port, stop_child  # noqa: E402  (benchmarks/, on the path above)


def emit(name, value, unit, *, baseline=None, ratio=None, n=None, device="cpu", params=None):
    print(json.dumps({"name": name, "value": value, "unit": unit, "baseline": baseline, "ratio": ratio, "n": n,
                      "device": device, "params": params or {}}), flush=True)


def _rss_mb(pid: int | None = None) -> float:
    import psutil

    return psutil.Process(pid or os.getpid()).memory_info().rss / 2**20


def make_data(n: int, *, seed: int = 0):
    """In-memory RunData: 6 prototype clusters per space (different layout per space)."""
    from panel_app.data import RunData

    rng = np.random.default_rng(seed)
    protos = rng.random((6, 17)) < 0.3
    proto = rng.integers(0, 6, n).astype(np.int8)
    y_true = protos[proto]
    flips = rng.random((n, 17), dtype=np.float32) < 0.04
    y_true ^= flips
    del flips
    y_prob = rng.random((n, 17), dtype=np.float32)
    y_prob *= 0.35
    y_prob += np.where(y_true, np.float32(0.6), np.float32(0.05))
    coords = np.empty((n, 6), np.float32)
    for s in range(3):
        ang = 2 * np.pi * (np.arange(6) + 0.5 * s) / 6
        centres = (np.stack([np.cos(ang), np.sin(ang)], axis=1) * 20).astype(np.float32)
        coords[:, 2 * s:2 * s + 2] = centres[proto] + rng.standard_normal((n, 2), dtype=np.float32) * 3
    del proto
    return RunData.from_arrays(y_true=y_true, y_prob=y_prob, coords=coords)


_CPU: dict[str, float] = {}


def timed(fn, repeat: int, *, key: str | None = None) -> tuple[float, list[float]]:
    """Median wall milliseconds of ``repeat`` calls; the median CPU ms (all threads) goes to ``_CPU[key]``.

    On a shared, oversubscribed machine the wall time includes waiting for a core; the process CPU time
    is what the callback itself costs.
    """
    times, cpus = [], []
    for _ in range(repeat):
        c = time.process_time()
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
        cpus.append((time.process_time() - c) * 1000)
    if key:
        _CPU[key] = round(statistics.median(cpus), 2)
    return statistics.median(times), times


def make_session(data, device: str = "cpu"):
    """One session as a browser would open it: the state, the FEA view (of the three views) and the selection
    manager (its metrics cards recompute on every selection change), on ``device``."""
    from panel_app.panels import SelectionManager
    from panel_app.state import AppState
    from panel_app.views.embedding import EmbeddingViews

    state = AppState(data=data, flower_threshold=2000, device=device)
    views = EmbeddingViews(state=state)
    return state, views.views["FEA"], SelectionManager(state=state)


def pan_viewports(fea) -> list[tuple[float, float, float, float]]:
    """The full extent and a ~10%-area window panned across."""
    hx0, hx1, hy0, hy1 = fea.home
    w, h = hx1 - hx0, hy1 - hy0
    return [fea.home] + [(hx0 + f * w, hx0 + (f + 0.32) * w, hy0 + g * h, hy0 + (g + 0.32) * h)
                         for f, g in ((0.1, 0.1), (0.3, 0.2), (0.5, 0.5), (0.6, 0.3))]


def time_pan(fea, vps, repeat: int, *, key: str | None = None) -> tuple[float, list[float]]:
    """Median redraw of the FEA view after each viewport (raster mode)."""
    it = iter(vps * repeat)
    med, times = timed(lambda: fea.set_viewport(*next(it)), repeat * len(vps), key=key)
    assert fea.mode == "raster"
    return med, times


def selection_box(x: np.ndarray, y: np.ndarray) -> dict:
    """A box of 5 x 5 units around the middle of image 0's cluster (~5% of the images)."""
    near = np.hypot(x[:5000] - x[0], y[:5000] - y[0]) < 6  # the cluster of image 0
    cx, cy = float(np.median(x[:5000][near])), float(np.median(y[:5000][near]))
    return dict(type="rect", x0=cx - 2.5, x1=cx + 2.5, y0=cy - 2.5, y1=cy + 2.5)


def time_selection(state, fea, manager, box: dict, repeat: int, *, key: str | None = None):
    """Median of a box selection applied to the three views and the selection manager; and its pieces once.

    Returns
    -------
    med, times, selected, pieces : float, list of float, int, dict of ms
    """
    fea.set_viewport(*fea.home)
    manager.scorer()  # built once per process and cut-off (server warm-up), not per selection
    med, times = timed(lambda: (state.clear_selection(), fea.select_geometry(box)), repeat, key=key)
    k = len(state.selection)
    state.clear_selection()
    t = time.perf_counter()
    ids = fea.index.ids_in_box(box["x0"], box["x1"], box["y0"], box["y1"], mask=fea._on_device(state.filtered_mask()))
    t_q = time.perf_counter() - t
    t = time.perf_counter()
    state.select(ids)
    t_all = time.perf_counter() - t
    t = time.perf_counter()
    manager.scorer()(fea._on_device(state.selection))
    t_m = time.perf_counter() - t
    state.clear_selection()
    return med, times, k, {"query_ms": round(t_q * 1000, 2), "views_and_manager_ms": round(t_all * 1000, 2),
                           "scorer_metrics_ms": round(t_m * 1000, 2)}


def flower_viewport(x: np.ndarray, y: np.ndarray, box: dict) -> tuple[float, float, float, float]:
    """A square viewport around the selection box's centre holding at most 2,000 images."""
    cx, cy = (box["x0"] + box["x1"]) / 2, (box["y0"] + box["y1"]) / 2
    order = np.argsort(np.hypot(x - cx, y - cy))
    r = float(np.hypot(x[order[1900]] - cx, y[order[1900]] - cy))
    side = r * 1.75
    vp = (cx - side / 2, cx + side / 2, cy - side / 2, cy + side / 2)
    m = (x >= vp[0]) & (x <= vp[1]) & (y >= vp[2]) & (y <= vp[3])
    while m.sum() > 2000:
        side *= 0.97
        vp = (cx - side / 2, cx + side / 2, cy - side / 2, cy + side / 2)
        m = (x >= vp[0]) & (x <= vp[1]) & (y >= vp[2]) & (y <= vp[3])
    return vp


def time_flowers(state, fea, vp, repeat: int, *, key: str | None = None):
    """Median redraw with ~2,000 flowers in view, and the raster redraw of the same viewport.

    ~2,000 images crowd a 420-px view (it would draw the raster): the crowding limit is off, as a user may set
    it, so this times the most glyphs the count cap allows.

    Returns
    -------
    med, times, raster_med, flowers, petals
    """
    crowd, state.flower_crowding = state.flower_crowding, None
    med, times = timed(lambda: fea.set_viewport(*vp), repeat, key=key)
    assert fea.mode == "flowers", fea.mode
    n_flowers, n_petals = fea.in_view, len(fea.petal_src.data["x"])
    state.flower_threshold = 0
    med_r, _ = timed(lambda: fea.set_viewport(*vp), repeat)
    state.flower_threshold, state.flower_crowding = 2000, crowd
    fea.set_viewport(*fea.home)
    return med, times, med_r, n_flowers, n_petals


def bench_callbacks(n: int, repeat: int) -> None:
    from panel_app.views.index import space_index
    from panel_app.views.raster import rasterize, warmup
    from xsgpu.metrics import selection_metrics

    warm_s = warmup()
    t0 = time.perf_counter()
    data = make_data(n)
    t_data = time.perf_counter() - t0
    t1 = time.perf_counter()
    for s in ("ACT", "FEA", "PRD"):
        space_index(data, s)
    t_index = time.perf_counter() - t1
    x, y = data.coords("FEA")
    t2 = time.perf_counter()
    np.argsort(x, kind="stable")
    t_sort = time.perf_counter() - t2
    emit("app.load_s", round(t_data + t_index, 3), "s", baseline=round(t_sort * 3, 3),
         ratio=round(t_sort * 3 / (t_data + t_index), 3), n=n,
         params={"make_data_s": round(t_data, 3), "index_s": round(t_index, 3), "rss_mb": round(_rss_mb(), 1),
                 "datashader_warmup_s": round(warm_s, 2)})

    state, fea, manager = make_session(data)
    # pan / zoom in raster mode: full extent and a ~10%-area window panned across
    vps = pan_viewports(fea)
    med, times = time_pan(fea, vps, repeat, key="pan")

    def naive(vp):
        m = (x >= vp[0]) & (x <= vp[1]) & (y >= vp[2]) & (y <= vp[3])
        rasterize(x[m], y[m], x_range=vp[:2], y_range=vp[2:], width=fea.width, height=fea.height)
    it2 = iter(vps * repeat)
    base, _ = timed(lambda: naive(next(it2)), repeat * len(vps))
    emit("app.pan_zoom_ms", round(med, 2), "ms", baseline=round(base, 2), ratio=round(base / med, 3), n=n,
         params={"target_ms": 150, "cpu_ms": _CPU["pan"], "max_ms": round(max(times), 2), "viewports": len(vps), "frame": [fea.width, fea.height],
                 "mode": fea.mode})

    # selection: box in FEA holding ~5% of the images, applied to the three views and the selection manager
    box = selection_box(x, y)
    med_s, times_s, k, pieces = time_selection(state, fea, manager, box, repeat, key="sel")

    def naive_select():
        m = (x >= box["x0"]) & (x <= box["x1"]) & (y >= box["y0"]) & (y <= box["y1"])
        state.select(np.flatnonzero(m))
        selection_metrics(state.y_act(), data.y_prob, state.selection, cutoff=state.cutoff)
    base_s, _ = timed(lambda: (state.clear_selection(), naive_select()), repeat)
    state.clear_selection()
    emit("app.selection_ms", round(med_s, 2), "ms", baseline=round(base_s, 2), ratio=round(base_s / med_s, 3), n=n,
         params={"target_ms": 300, "cpu_ms": _CPU["sel"], "selected": int(k), "max_ms": round(max(times_s), 2),
                 **pieces, "baseline": "full-scan box mask + selection_metrics (no scorer) + same redraws"})

    # flowers: a viewport holding ~2,000 images
    vp = flower_viewport(x, y, box)
    med_f, times_f, med_r, n_flowers, n_petals = time_flowers(state, fea, vp, repeat, key="flowers")
    emit("app.flowers_ms", round(med_f, 2), "ms", baseline=round(med_r, 2), ratio=round(med_r / med_f, 3), n=n,
         params={"target_ms": 300, "cpu_ms": _CPU["flowers"], "flowers": int(n_flowers), "petals": int(n_petals), "max_ms": round(max(times_f), 2),
                 "baseline": "raster redraw of the same viewport"})
    emit("app.process_rss_mb", round(_rss_mb(), 1), "MB", n=n, params={"note": "bench process after all callbacks"})


def bench_callbacks_gpu(n: int, repeat: int) -> None:
    """The same callbacks on ``--device gpu`` sessions, with the CPU session's figures of the same run (same
    data, same process) as the baselines: ratio = CPU / GPU (higher is better)."""
    from panel_app.device import warm_up_device
    from panel_app.views.index import space_index
    from panel_app.views.raster import warmup

    warm_s = warmup()
    t0 = time.perf_counter()
    data = make_data(n)
    for s in ("ACT", "FEA", "PRD"):
        space_index(data, s)
    t_host = time.perf_counter() - t0
    gpu_warm = warm_up_device(data)   # coordinates, indexes, labels to the GPU; CUDA kernels compiled
    t_gpu = t_host + gpu_warm["copy_s"]
    common = {"baseline": "the same callback in a --device cpu session (same data, same run)"}
    emit("app.load_s", round(t_gpu, 3), "s", baseline=round(t_host, 3), ratio=round(t_host / t_gpu, 3), n=n,
         device="gpu", params={"host_load_s": round(t_host, 3), "to_gpu_s": round(gpu_warm["copy_s"], 3),
                               "gpu_kernels_s": round(gpu_warm["kernels_s"], 2), "datashader_warmup_s": round(warm_s, 2),
                               "baseline": "the CPU server's load (data + host indexes), same run"})
    x, y = data.coords("FEA")
    sessions = {dev: make_session(data, dev) for dev in ("cpu", "gpu")}
    box = selection_box(x, y)
    vp = flower_viewport(x, y, box)
    res: dict[str, dict] = {}
    for dev, (state, fea, manager) in sessions.items():
        vps = pan_viewports(fea)
        # one untimed round first: CuPy compiles each kernel on its first call (the server warms most of them)
        time_pan(fea, vps, 1)
        time_selection(state, fea, manager, box, 1)
        time_flowers(state, fea, vp, 1)
        pan = time_pan(fea, vps, repeat, key=f"pan_{dev}")
        sel = time_selection(state, fea, manager, box, repeat, key=f"sel_{dev}")
        flw = time_flowers(state, fea, vp, repeat, key=f"flowers_{dev}")
        res[dev] = {"pan": pan, "sel": sel, "flowers": flw, "frame": [fea.width, fea.height], "viewports": len(vps)}
    g, c = res["gpu"], res["cpu"]
    emit("app.pan_zoom_ms", round(g["pan"][0], 2), "ms", baseline=round(c["pan"][0], 2),
         ratio=round(c["pan"][0] / g["pan"][0], 3), n=n, device="gpu",
         params={**common, "target_ms": 150, "cpu_ms": _CPU["pan_gpu"], "max_ms": round(max(g["pan"][1]), 2),
                 "viewports": g["viewports"], "frame": g["frame"], "mode": "raster"})
    assert g["sel"][2] == c["sel"][2], (g["sel"][2], c["sel"][2])   # the same images selected
    emit("app.selection_ms", round(g["sel"][0], 2), "ms", baseline=round(c["sel"][0], 2),
         ratio=round(c["sel"][0] / g["sel"][0], 3), n=n, device="gpu",
         params={**common, "target_ms": 300, "cpu_ms": _CPU["sel_gpu"], "selected": int(g["sel"][2]),
                 "max_ms": round(max(g["sel"][1]), 2), **g["sel"][3],
                 **{f"host_{k}": v for k, v in c["sel"][3].items()}})
    emit("app.flowers_ms", round(g["flowers"][0], 2), "ms", baseline=round(c["flowers"][0], 2),
         ratio=round(c["flowers"][0] / g["flowers"][0], 3), n=n, device="gpu",
         params={**common, "target_ms": 300, "cpu_ms": _CPU["flowers_gpu"], "flowers": int(g["flowers"][3]),
                 "petals": int(g["flowers"][4]), "max_ms": round(max(g["flowers"][1]), 2),
                 "raster_same_viewport_ms": round(g["flowers"][2], 2)})
    emit("app.process_rss_mb", round(_rss_mb(), 1), "MB", n=n, device="gpu",
         params={"note": "bench process after all callbacks (host memory; GPU memory not counted)"})


# ---------------------------------------------------------------------- server memory
def make_store(path: Path, n: int):
    """A run store of n images for the server: tables written, thumbs/images left at the fill value (0)."""
    import pandas as pd

    from xsgpu.attributes import label_columns, prob_columns
    from xsgpu.io.runstore import RunStore

    data = make_data(n, seed=1)
    part = 65536
    store = RunStore.create(path, n_samples=n, partition_size=part)
    store.images.create((n, 32, 32), np.float16)
    store.thumbs.create((n, 64, 64), np.uint8)
    feats = store.features.create((n, 8), np.float16)
    for p in range(store.n_partitions):
        a, b = store.partition_bounds(p)
        feats[a:b] = np.zeros((b - a, 8), np.float16)
        ids = np.arange(a, b, dtype=np.int64)
        df = pd.DataFrame({"sample_id": ids, "source_uri": "mem", "frame": np.zeros(b - a, np.int32),
                           "run_id": "r", "split": "test", "is_synthetic": True, "labelled": True,
                           "quantitative": True})
        for j, c in enumerate(label_columns()):
            df[c] = data.y_true[a:b, j]
        store.samples.write_partition(p, df)
        pr = pd.DataFrame({"sample_id": ids, **{c: data.y_prob[a:b, j] for j, c in enumerate(prob_columns())}})
        store.predictions.write_partition(p, pr)
    store.embedding.write(data.embedding, metadata={"method": "tsne"})
    return store


def bench_server(n: int, sessions: int, store_path: str | None = None) -> None:
    import importlib
    import pkgutil

    import panel.models
    from bokeh.client import pull_session

    # register every Panel Bokeh model (some load lazily), so the client can decode the session documents
    for mod in pkgutil.walk_packages(panel.models.__path__, "panel.models."):
        try:
            importlib.import_module(mod.name)
        except Exception:  # an optional model whose extra dependency is missing: not used by the app
            pass

    with tempfile.TemporaryDirectory() as tmp:
        if store_path:
            from xsgpu.io.runstore import RunStore

            store = RunStore.open(store_path)
            n = store.n_samples
        else:
            store = make_store(Path(tmp) / "run", n)
        port = free_port()
        log = open(Path(tmp) / "serve.log", "w")  # a pipe nobody reads would fill up and block the server
        proc = subprocess.Popen([sys.executable, "-m", "workflows.cli", "serve", str(store.path), "--port", str(port)],
                                cwd=REPO, stdout=log, stderr=subprocess.STDOUT, text=True)
        url = f"http://127.0.0.1:{port}/"
        t_start = time.perf_counter()
        try:
            import urllib.error
            import urllib.request
            deadline = time.monotonic() + 600
            while True:
                try:  # any answer means the server listens (make_store writes no thumbnail chunks: a 500)
                    urllib.request.urlopen(url + "xsgpu/thumb/0.png", timeout=5)
                    break
                except urllib.error.HTTPError:
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"server did not start: {(Path(tmp) / 'serve.log').read_text()[-3000:]}")
                    time.sleep(0.5)
            t_ready = time.perf_counter() - t_start
            # steady state: the background warm-up (panels' results, the rest of datashader's kernels) done
            while not any("warm-up of" in ln and " done " in ln for ln in (Path(tmp) / "serve.log").read_text().splitlines()):
                if proc.poll() is not None or time.monotonic() > deadline:
                    break
                time.sleep(1)
            t_warm = time.perf_counter() - t_start
            rss0 = _rss_mb(proc.pid)
            held = []
            t = time.perf_counter()
            held.append(pull_session(url=url))
            t1 = time.perf_counter() - t
            time.sleep(1)
            gc.collect()
            rss1 = _rss_mb(proc.pid)
            t = time.perf_counter()
            for _ in range(sessions - 1):
                held.append(pull_session(url=url))
            t_rest = time.perf_counter() - t
            time.sleep(1)
            rss_k = _rss_mb(proc.pid)
            emit("app.server_rss_mb", round(rss_k, 1), "MB", baseline=round(rss1, 1), ratio=round(rss1 / rss_k, 3),
                 n=n, params={"sessions": sessions, "rss_loaded_no_session_mb": round(rss0, 1),
                              "server_ready_s": round(t_ready, 1), "background_warm_up_done_s": round(t_warm, 1),
                              "per_extra_session_mb": round((rss_k - rss1) / max(sessions - 1, 1), 1),
                              "first_session_s": round(t1, 2), "per_extra_session_s": round(t_rest / max(sessions - 1, 1), 2),
                              "client": "bokeh.client.pull_session (full server-side session)"})
            for s in held:
                s.close()
            log.flush()
            warm = [ln for ln in (Path(tmp) / "serve.log").read_text().splitlines() if "warm-up" in ln]
            print(json.dumps({"server_warm_up_log": warm}), file=sys.stderr)
        finally:
            stop_child(proc)


def _serve_until_ready(store_path: Path, log_path: Path) -> float:
    """Start ``xsgpu serve`` and return the seconds until its page ``/`` answers 200 (the app built for a
    session), then stop it."""
    import urllib.request

    port = free_port()
    with open(log_path, "w") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "workflows.cli", "serve", str(store_path), "--port", str(port)],
                                cwd=REPO, stdout=log, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 900
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=120) as r:
                        if r.status == 200:
                            return time.perf_counter() - t0
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start: {log_path.read_text()[-3000:]}")
                time.sleep(0.25)
        finally:
            stop_child(proc)


def bench_ready(n: int, store_path: str | None = None) -> None:
    """``app.ready_s``: ``xsgpu serve`` start until the page answers, on a store whose app cache was written
    by a first serve; baseline: the first (cold) serve of the same store, cache removed first."""
    import shutil

    from panel_app.startcache import cache_dir
    from xsgpu.io.runstore import RunStore

    with tempfile.TemporaryDirectory() as tmp:
        if store_path:
            store = RunStore.open(store_path)
        else:
            store = make_store(Path(tmp) / "run", n)
        n = store.n_samples
        shutil.rmtree(cache_dir(store), ignore_errors=True)
        cold = _serve_until_ready(store.path, Path(tmp) / "cold.log")
        warm = _serve_until_ready(store.path, Path(tmp) / "warm.log")
        emit("app.ready_s", round(warm, 2), "s", baseline=round(cold, 2), ratio=round(cold / warm, 3), n=n,
             params={"target_s": 20, "baseline": "first serve (app cache built and written)",
                     "value": "later serve (app cache memory-mapped)", "page": "GET / (a session's app built)"})


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="100k images, 3 repeats, no server (< 1 minute)")
    ap.add_argument("--n", type=int, default=1_000_000, help="images in the in-memory run (default 1,000,000)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-server", action="store_true", help="skip the server memory measurement")
    ap.add_argument("--server-n", type=int, default=1_000_000, help="images in the served run store")
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument("--server-only", action="store_true", help="only app.server_rss_mb (no in-memory callbacks)")
    ap.add_argument("--ready", action="store_true", help="only app.ready_s: server start to page, cold vs cached")
    ap.add_argument("--ready-store", "--server-store", dest="server_store", default=None,
                    help="an existing run store for --ready and the server memory figure (default: make one)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "gpu"],
                    help="gpu: the callbacks of --device gpu sessions (CuPy/cuDF), with the CPU session's figures "
                         "of the same run as baselines; needs a CUDA GPU and the [gpu] extra")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.repeat, args.no_server = min(args.n, 100_000), 3, True
    if args.n < 10_000:
        ap.error(f"--n must be >= 10000 (the flower viewport needs ~2,000 images in a cluster). Got {args.n}.")
    os.environ.setdefault("NUMBA_NUM_THREADS", "2")
    if args.device == "gpu":
        if args.ready or args.server_only:
            ap.error("--device gpu measures the in-memory callbacks only (not --ready / --server-only).")
        from panel_app.device import check_app_device
        from xsgpu.backend import GPUUnavailable

        try:
            check_app_device("gpu")   # no GPU stack: the reason and the remedy, before any work
        except GPUUnavailable as exc:
            sys.exit(f"bench_app.py: {exc}")
        bench_callbacks_gpu(args.n, args.repeat)
        if not args.no_server:
            print(json.dumps({"note": "server memory and start are measured without --device gpu"}), file=sys.stderr)
        return
    if args.ready:
        bench_ready(args.server_n, args.server_store)
        return
    if not args.server_only:
        bench_callbacks(args.n, args.repeat)
    if not args.no_server:
        bench_server(args.server_n, args.sessions, args.server_store)


if __name__ == "__main__":
    main()
