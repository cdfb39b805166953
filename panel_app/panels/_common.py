"""Helpers shared by the panels: the process-wide result cache, image rendering, table formatting.

Heavy results (model metrics, the attribute study, the co-occurrence table, the suspicious-label list, the
FEA neighbour index) are computed once per server process and shared by every session through
:meth:`panel_app.data.RunData.cached`. Results that depend on the corrected labels are keyed by
:func:`labels_key`, which changes whenever a correction is recorded (by any session).
"""
from __future__ import annotations

import base64
import io
import logging
from collections import OrderedDict
from typing import Any, Callable

import numpy as np

from panel_app.state import AppState

__all__ = ["labels_key", "process_cached", "render_image_png", "png_uri", "VIRIDIS_LUT", "fmt", "after_event",
           "LazyRefresh"]

log = logging.getLogger(__name__)

_MAX_ENTRIES = 32


def labels_key(state: AppState) -> Any:
    """A hashable stamp of the run's corrections (changes with every correction, from any session).

    Correction part files have unique, time-ordered names, so their count and the last name identify the
    log's content; ``None`` when there is no run store or no correction.
    """
    store = state.data.store
    if store is None:
        return None
    d = store.corrections.path
    if not d.is_dir():
        return None
    names = [f.name for f in d.iterdir() if f.suffix == ".parquet" and not f.name.startswith(".")]
    return (len(names), max(names)) if names else None


def process_cached(state: AppState, key: tuple, build: Callable[[], Any]) -> Any:
    """Return the result for ``key`` from the run's process-wide cache, building it once.

    The cache is a small LRU (32 entries) stored on the shared :class:`~panel_app.data.RunData`, so
    every browser session of the server reuses it.
    """
    lru: OrderedDict = state.data.cached("panels_lru", OrderedDict)
    got = lru.get(key)
    if got is not None:
        lru.move_to_end(key)
        return got
    got = build()
    lru[key] = got
    while len(lru) > _MAX_ENTRIES:
        lru.popitem(last=False)
    return got


def _viridis_lut() -> np.ndarray:
    from bokeh.palettes import Viridis256

    return np.array([[int(h[i:i + 2], 16) for i in (1, 3, 5)] for h in Viridis256], dtype=np.uint8)


VIRIDIS_LUT: np.ndarray = _viridis_lut()


def intensity_range(*images: np.ndarray) -> tuple[float, float]:
    """The colour range of log-scaled images: the 1st and 99.8th percentile of their non-zero pixels together.

    Returns ``(0.0, 1.0)`` when no pixel is non-zero (a blank or fully masked image).
    """
    finite = [a[np.isfinite(a) & (a != 0)] for a in (np.asarray(i, dtype=np.float32) for i in images)]
    pooled = np.concatenate(finite) if finite else np.empty(0, np.float32)
    if not pooled.size:
        return 0.0, 1.0
    lo, hi = np.percentile(pooled, [1.0, 99.8])
    return float(lo), float(hi)


def colour_bar_html(lo: float, hi: float, *, width: int = 200, lut: np.ndarray = VIRIDIS_LUT,
                    label: str = "log intensity", number_format: str = ".1f",
                    css_class: str = "xsgpu-colour-bar") -> str:
    """An HTML colour bar (a gradient PNG with its end values, in ``number_format``) for ``lo`` .. ``hi``."""
    from PIL import Image

    ramp = np.repeat(lut[np.linspace(0, 255, max(width, 2)).astype(np.uint8)][None, :, :], 10, axis=0)
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, format="PNG")
    return (f'<div class="{css_class}" style="font-size:12px;width:{width}px">'
            f'<img src="{png_uri(buf.getvalue())}" width="{width}" height="10" style="display:block"/>'
            f'<span style="float:left">{lo:{number_format}}</span>'
            f'<span style="float:right">{hi:{number_format}}</span>'
            f'<div style="text-align:center">{label}</div></div>')


def render_image_png(img: np.ndarray, *, size: int | None = None, lut: np.ndarray | None = VIRIDIS_LUT,
                     vrange: tuple[float, float] | None = None) -> bytes:
    """Render a log-scaled image as PNG bytes.

    Parameters
    ----------
    img : ndarray of float, shape (H, W)
        Log-scaled intensities (``xsgpu.preprocess.log_scale``; masked pixels 0).
    size : int, optional
        Resize (nearest for enlargement, bilinear for reduction) to ``size x size`` pixels.
    lut : ndarray of uint8, shape (256, 3), optional
        Colour map; ``None`` gives grey levels.
    vrange : (float, float), optional
        The intensities at the two ends of the colour map (e.g. one range shared by several images);
        default: this image's :func:`intensity_range`.

    Returns
    -------
    bytes
        A PNG file.
    """
    from PIL import Image

    a = np.asarray(img, dtype=np.float32)
    if a.ndim != 2:
        raise ValueError(f"The 'img' parameter of render_image_png must be 2-D (H, W). Got shape {a.shape} instead.")
    lo, hi = vrange if vrange is not None else intensity_range(a)
    scaled = np.clip((np.nan_to_num(a) - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    u8 = (scaled * 255).astype(np.uint8)
    pil = Image.fromarray(lut[u8] if lut is not None else u8)
    if size is not None and size != a.shape[0]:
        pil = pil.resize((size, size), Image.NEAREST if size > a.shape[0] else Image.BILINEAR)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


def png_uri(png: bytes) -> str:
    """PNG bytes as a ``data:`` URI."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def fmt(x: Any, digits: int = 3) -> str:
    """Format a metric value for display ('-' for NaN/None)."""
    if x is None:
        return "-"
    try:
        xf = float(x)
    except (TypeError, ValueError):
        return str(x)
    if np.isnan(xf):
        return "-"
    if xf.is_integer() and abs(xf) >= 1:
        return f"{int(xf)}"
    return f"{xf:.{digits}f}"


#: Milliseconds between a browser event and the refreshes that follow it (after_event): enough for the server
#: to flush the event's patch (a selection's is ~1.2 MB: three 310 x 310 RGBA layers) before it starts on them;
#: at 30 ms the overview's rendering held the patch in the socket's buffer for seconds.
FOLLOW_DELAY_MS = 250


def after_event(owner: Any, refresh: Callable[[], None], *, delay_ms: int = FOLLOW_DELAY_MS) -> bool:
    """Run ``refresh`` shortly after the current browser event, once per burst (at once outside a served session).

    A selection or a correction first reaches the browser with what the user looks at (the three views,
    the selection manager's count and metrics, the message); panels that only follow it (the model
    overview's linked curves) call this, so their second or so of HoloViews rendering comes after that
    patch has gone out instead of before it. Calls for the same ``owner`` and ``refresh`` within
    ``delay_ms`` are merged: only the last one runs (a burst of selections renders the curves once).

    Returns
    -------
    bool
        True when ``refresh`` ran now, False when it was scheduled.
    """
    import panel as pn

    doc = pn.state.curdoc
    if doc is None or getattr(doc, "session_context", None) is None or not pn.state.loaded:
        refresh()
        return True
    from panel_app.views.docsafe import batched_edits

    pending = owner.__dict__.setdefault("_xsgpu_after_event", {})
    key = getattr(refresh, "__qualname__", repr(refresh))
    token = object()
    pending[key] = token

    def run() -> None:
        if pending.get(key) is not token:   # a later call superseded this one
            return
        del pending[key]
        with batched_edits():
            refresh()

    doc.add_timeout_callback(run, int(delay_ms))
    return False


#: Milliseconds between showing a tab and bringing its panel up to date (LazyRefresh.show).
SHOW_DELAY_MS = 150


class LazyRefresh:
    """A panel's refreshes, run after the current browser event and only while the panel is shown.

    The panels in the app's tabs follow the session (a selection, a correction, a new cut-off), but a tab
    that is not shown is not even drawn (Panel's dynamic tabs): its refreshes are remembered instead
    and run, once each, when its tab is shown (:meth:`show`). A shown panel's refreshes run through
    :func:`after_event`, so what the user acted on reaches the browser first.

    Parameters
    ----------
    owner : object
        The panel (keys the debouncing of :func:`after_event`).
    """

    def __init__(self, owner: Any):
        self.owner = owner
        self.shown = True
        self.stale: dict[str, Callable[[], None]] = {}
        #: the component whose loading spinner :func:`defer` shows (cleared while hidden: a hidden dynamic
        #: tab is drawn as a placeholder that keeps the spinner it was given, for good)
        self.component: Any = None

    def __call__(self, refresh: Callable[[], None]) -> None:
        """Run ``refresh`` after the event if the panel is shown, else remember it for :meth:`show`."""
        key = getattr(refresh, "__qualname__", repr(refresh))
        if not self.shown:
            self.stale[key] = refresh
            return
        self.stale.pop(key, None)
        after_event(self.owner, refresh)

    def show(self, shown: bool) -> None:
        """The panel's tab is now shown (True) or hidden; showing runs the refreshes missed while hidden."""
        self.shown = bool(shown)
        if not self.shown and self.component is not None and self.component.loading:
            self.component.loading = False
        if self.shown:
            # after the patch that draws the tab: a Tabulator that gets new columns in the patch that
            # creates it stays empty ("Table Not Initialized")
            missed, self.stale = list(self.stale.values()), {}
            for refresh in missed:
                after_event(self.owner, refresh, delay_ms=SHOW_DELAY_MS)


def defer(component: Any, refresh: Callable[[], None], *, lazy: LazyRefresh | None = None) -> None:
    """Run ``refresh`` once the browser session has loaded (at once outside a server session).

    Heavy panels fill in after the page appears instead of delaying it; ``component.loading`` shows a
    spinner meanwhile. With ``lazy``, hiding the panel (:meth:`LazyRefresh.show`) clears the spinner;
    the first refresh still runs at page load, so a tab's content arrives with its models when shown
    (a Tabulator that gets its columns in the patch that creates it stays empty: "Table Not Initialized").
    """
    import panel as pn

    if lazy is not None:
        lazy.component = component

    if pn.state.curdoc is None or pn.state.loaded:
        refresh()
        return
    component.loading = True

    def run() -> None:
        try:
            refresh()
        finally:
            component.loading = False

    pn.state.onload(run)
