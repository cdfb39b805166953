"""Where the app computes: ``xsgpu serve RUN --device cpu|gpu`` (default ``cpu``).

On ``"gpu"`` the server moves what its callbacks scan to the GPU once, at start (:func:`warm_up_device`), and
keeps it there for every session: the coordinates of each space (:func:`device_coords`), each space's
x-sorted spatial index (:func:`device_index`, a :class:`~panel_app.views.index_gpu.GPUSpatialIndex`), and the
labels and probabilities the selection metrics pack (:func:`device_labels`). The per-session arrays the
callbacks read (the filter mask, the selection, the error distance, the outcome codes) are host arrays that
the state replaces, never changes in place; :func:`on_device` copies each one to the GPU once and reuses the
copy while the host array lives. Host copies stay where Bokeh needs them: the glyphs of the few thousand
images in view, the flowers, the tables.

What runs where on ``"gpu"``: the dense rasters (datashader over a ``cudf.DataFrame``; only the aggregate,
one value per pixel, comes back to the host), the viewport counts and box / lasso queries (CuPy; the ids
come back sorted, on the host) and the selection manager's group metrics
(:class:`xsgpu.metrics.SelectionScorer` over CuPy arrays). The saved groups' layer, the glyphs, the model
overview, the study panels and the neighbour search stay on the CPU.

The device is chosen in one place, :func:`check_app_device`: an explicit ``"gpu"`` on a machine without a
CUDA device, CuPy or cuDF raises :class:`~xsgpu.backend.GPUUnavailable` naming what is missing and the remedy;
the app never falls back to the CPU silently.

Examples
--------
>>> from panel_app.device import check_app_device
>>> check_app_device("cpu")
'cpu'
"""
from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import OrderedDict
from typing import Any, Literal

import numpy as np

from xsgpu.backend import GPUUnavailable, gpu_status, import_gpu

__all__ = ["AppDevice", "APP_DEVICES", "GPU_REMEDY", "check_app_device", "device_coords", "device_index",
           "device_labels", "on_device", "array_module", "warm_up_device", "clear_mirror"]

log = logging.getLogger(__name__)

AppDevice = Literal["cpu", "gpu"]
#: The devices the app can run on.
APP_DEVICES: tuple[str, ...] = ("cpu", "gpu")
#: What to do when the GPU stack is missing.
GPU_REMEDY = "on a node with a CUDA GPU, pip install '.[gpu]' (cupy-cuda13x, cudf-cu13); or use --device cpu"


def check_app_device(device: str) -> AppDevice:
    """Validate the app's device and, for ``"gpu"``, check that the GPU stack is there.

    Parameters
    ----------
    device : {"cpu", "gpu"}

    Returns
    -------
    {"cpu", "gpu"}

    Raises
    ------
    ValueError
        For any other value.
    GPUUnavailable
        For ``"gpu"`` without a visible CUDA device, CuPy or cuDF (datashader rasterizes ``cudf.DataFrame``
        on the GPU); the message names the missing piece and the remedy.
    """
    if device not in APP_DEVICES:
        raise ValueError(f"The 'device' parameter of the app must be 'cpu' or 'gpu'. Got {device!r} instead.")
    if device == "cpu":
        return "cpu"
    ok, reason = gpu_status()
    if not ok:
        raise GPUUnavailable(f"--device gpu was requested but {reason}. Hint: {GPU_REMEDY}.")
    try:
        import_gpu("cudf", remedy="install cudf-cu13 (pip install '.[gpu]')")
    except GPUUnavailable as exc:
        raise GPUUnavailable(f"--device gpu was requested but the GPU rasters need cuDF: {exc}") from exc
    return "gpu"


def array_module(device: str):
    """``numpy`` for ``"cpu"``, ``cupy`` for ``"gpu"`` (imported lazily)."""
    return np if device == "cpu" else import_gpu("cupy")


# ---------------------------------------------------------------------- process-wide device copies
def device_coords(data: Any, space: str, method: str | None = None) -> tuple[Any, Any]:
    """The CuPy copies of ``data.coords(space, method)``: those the space's :func:`device_index` holds (one
    copy per process, not a second one beside the index's).

    Returns
    -------
    x, y : cupy.ndarray of float32, shape (n,)
    """
    index = device_index(data, space, method)
    return index.x, index.y


def device_index(data: Any, space: str, method: str | None = None, *, layer: str | None = None):
    """The process-wide :class:`~panel_app.views.index_gpu.GPUSpatialIndex` of a space (or of one FEA layer's
    map, ``layer``), made once from the host index (:func:`~panel_app.views.index.space_index`)."""
    from panel_app.layers import LAST_BLOCK, layer_index
    from panel_app.views.index import space_index
    from panel_app.views.index_gpu import GPUSpatialIndex

    method = data.method if method is None else str(method)
    key = str(space).upper()
    layer = LAST_BLOCK if layer is None else str(layer)

    def build() -> GPUSpatialIndex:
        host = space_index(data, key, method) if layer == LAST_BLOCK else layer_index(data, layer, method)
        return GPUSpatialIndex.from_host(host)

    return data.cached(("device", "index", key, layer, method), build)


def device_labels(data: Any) -> tuple[Any, Any]:
    """The CuPy copies of ``data.y_true`` (bool) and ``data.y_prob`` (float32), made once per process."""
    def build() -> tuple[Any, Any]:
        cp = import_gpu("cupy")
        return cp.asarray(data.y_true), cp.asarray(data.y_prob)

    return data.cached(("device", "labels"), build)


# ---------------------------------------------------------------------- per-session host arrays
class _Mirror:
    """Device copies of host arrays, one per live host array (keyed by identity), least recently used out.

    Only for arrays that are replaced, never written in place (the app's masks, selections, cached
    per-image values). A copy is dropped when its host array is garbage-collected.
    """

    def __init__(self, max_bytes: int = 2 << 30):
        self.max_bytes = int(max_bytes)
        self._copies: OrderedDict[int, tuple[weakref.ref, Any]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.RLock()  # a weakref callback may run inside (garbage collection)

    def get(self, host: np.ndarray) -> Any:
        cp = import_gpu("cupy")
        if isinstance(host, cp.ndarray):
            return host
        key = id(host)
        with self._lock:
            got = self._copies.get(key)
            if got is not None and got[0]() is host:
                self._copies.move_to_end(key)
                return got[1]
        dev = cp.asarray(host)
        with self._lock:
            self._drop(key)
            self._copies[key] = (weakref.ref(host, lambda _r, k=key: self._forget(k)), dev)
            self._bytes += int(dev.nbytes)
            while self._bytes > self.max_bytes and len(self._copies) > 1:
                self._drop(next(iter(self._copies)))
        return dev

    def _forget(self, key: int) -> None:
        with self._lock:
            self._drop(key)

    def _drop(self, key: int) -> None:
        got = self._copies.pop(key, None)
        if got is not None:
            self._bytes -= int(got[1].nbytes)

    def clear(self) -> None:
        with self._lock:
            self._copies.clear()
            self._bytes = 0


_MIRROR = _Mirror()


def on_device(host: np.ndarray) -> Any:
    """The CuPy copy of a host array that the app replaces but never changes in place (a session's filter
    mask, its selection, a cached per-image value): copied on first use, then reused while ``host`` lives.

    A CuPy array is returned as it is. Do not pass temporaries (a fresh copy is made each time) or arrays
    written in place (the copy would go stale).
    """
    return _MIRROR.get(host)


def clear_mirror() -> None:
    """Drop every device copy made by :func:`on_device` (tests)."""
    _MIRROR.clear()


# ---------------------------------------------------------------------- server start
def warm_up_device(data: Any) -> dict[str, float]:
    """Move the run's coordinates, spatial indexes, labels and probabilities to the GPU and compile the GPU
    kernels (datashader's CUDA reductions, the CuPy queries and the metrics), once per server process.

    Parameters
    ----------
    data : panel_app.data.RunData

    Returns
    -------
    dict
        Seconds spent: ``copy_s`` (coordinates, indexes, labels) and ``kernels_s``.
    """
    from panel_app.data import SPACES
    from panel_app.views.raster import warmup_gpu

    check_app_device("gpu")
    t0 = time.perf_counter()
    for space in SPACES:
        device_index(data, space)  # the coordinates, sorted points and order of each space
    device_labels(data)
    t1 = time.perf_counter()
    warmup_gpu()
    index = device_index(data, SPACES[0])
    x0, x1, y0, y1 = index.bounds
    index.count_in_box(x0, x1, y0, y1)
    index.ids_in_polygon([x0, x1, x1], [y0, y0, y1])
    _warm_up_metrics(data)
    out = {"copy_s": t1 - t0, "kernels_s": time.perf_counter() - t1}
    log.info("GPU warm-up: %s", {k: round(v, 2) for k, v in out.items()})
    return out


def _warm_up_metrics(data: Any) -> None:
    """Compile the CuPy kernels of the group metrics: a scorer over the first rows, scored by both of its
    paths (bit unpacking for a few rows, code histograms for many)."""
    from xsgpu.metrics import SelectionScorer

    y_true, y_prob = device_labels(data)
    m = min(data.n, 8192)
    if m == 0:
        return
    scorer = SelectionScorer(y_true[:m], y_prob[:m], keep_probabilities=False, vocabulary=data.vocabulary)
    scorer(array_module("gpu").arange(min(m, 64)))
    scorer()
