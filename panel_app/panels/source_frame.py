"""The original frame of one image, read from its source file at full resolution (issue 10.5).

The run store keeps each image resized and log-scaled; a scientist checking a label often needs the frame
as the detector wrote it. :class:`SourceFrameView` reads it with :func:`xsgpu.io.read_any` (the frame
index and HDF5 dataset that ingest used), and shows every pixel (a scrollable box, no resampling) with
linear or log scaling, a percentile contrast range, a colour bar and the frame's header metadata.
When the file is gone or unreadable, it says so and names the path.

Examples
--------
>>> import numpy as np
>>> from panel_app.panels.source_frame import display_values
>>> v, lo, hi = display_values(np.array([[1.0, 10.0], [100.0, 0.0]]), np.zeros((2, 2), bool), scaling="log",
...                            percentiles=(0.0, 100.0))
>>> bool(np.isnan(v[1, 1])), round(lo, 3), round(hi, 3)   # 0 has no logarithm: shown as masked
(True, 0.0, 2.0)
"""
from __future__ import annotations

import html
import logging
import os
import threading
from collections import OrderedDict
from typing import Any, Literal

import numpy as np
import panel as pn

from panel_app.panels._common import VIRIDIS_LUT, colour_bar_html, png_uri
from xsgpu.errors import InputError

__all__ = ["SourceFrameView", "SourceFrameUnavailable", "read_source_frame", "display_values", "render_frame_png",
           "metadata_rows", "SCALINGS", "DEFAULT_PERCENTILES"]

log = logging.getLogger(__name__)

#: How intensities map to colours.
SCALINGS: tuple[str, ...] = ("log", "linear")
#: The intensity percentiles at the two ends of the colour map, by default.
DEFAULT_PERCENTILES: tuple[float, float] = (0.5, 99.5)
#: Colour of masked pixels (gaps, bad pixels, NaN; and values <= 0 in log scale).
MASKED_RGB = (128, 128, 128)
#: Side of the box the frame is shown in (pixels; larger frames scroll inside it).
BOX_PX = 512
_CACHE_FRAMES = 4


class SourceFrameUnavailable(InputError):
    """The original frame of an image cannot be shown (no source file, file gone, unreadable)."""


def _source(data: Any, i: int) -> tuple[str, int]:
    s = data.samples
    if "source_uri" not in s.columns:
        raise SourceFrameUnavailable(f"Image {i} has no source file: this run's samples.parquet has no source_uri "
                                     f"column.")
    path = str(s["source_uri"].iloc[i])
    frame = int(s["frame"].iloc[i]) if "frame" in s.columns else 0
    return path, frame


def _h5_dataset(data: Any) -> str | None:
    """The ``--h5-dataset`` ingest was given (None: auto-detected), from the run's manifest."""
    store = getattr(data, "store", None)
    if store is None:
        return None
    try:
        return (store.manifest.get("params", {}).get("ingest") or {}).get("h5_dataset")
    except Exception:  # noqa: BLE001 - a run without an ingest record (synth): auto-detect
        return None


def read_source_frame(data: Any, sample_id: Any) -> Any:
    """Read the original frame of one image from its source file.

    Parameters
    ----------
    data : RunData
    sample_id : int

    Returns
    -------
    xsgpu.io.frame.Frame
        Cached per process (the last few frames read).

    Raises
    ------
    SourceFrameUnavailable
        When the image has no source file (an in-memory or synthetic run), the file is gone, or reading
        it fails; the message names the path and the reason.
    """
    from xsgpu.io import read_any
    from xsgpu.io.frame import ReaderError

    i = data.check_id(sample_id)
    cache: OrderedDict = data.cached(("source_frames",), OrderedDict)
    lock: threading.Lock = data.cached(("source_frames_lock",), threading.Lock)
    with lock:
        if i in cache:
            cache.move_to_end(i)
            return cache[i]
    path, frame = _source(data, i)
    if "://" in path:
        raise SourceFrameUnavailable(f"Image {i} has no source file on disk ({path}): it was generated, not read "
                                     f"from a detector file.")
    if not os.path.isfile(path):
        raise SourceFrameUnavailable(f"The source file of image {i} is not there any more: {path} (moved or deleted "
                                     f"since ingest). The stored image above is what the run kept of it.")
    try:
        got = next(iter(read_any(path, frames=[frame], h5_dataset=_h5_dataset(data))), None)
    except ReaderError as exc:
        raise SourceFrameUnavailable(f"The source file of image {i}, {path}, cannot be read now: {exc}") from exc
    except OSError as exc:
        raise SourceFrameUnavailable(f"The source file of image {i}, {path}, cannot be read now: {exc}") from exc
    if got is None:
        raise SourceFrameUnavailable(f"The source file of image {i}, {path}, holds no frame {frame} any more.")
    with lock:
        cache[i] = got
        while len(cache) > _CACHE_FRAMES:
            cache.popitem(last=False)
    return got


def display_values(data: np.ndarray, mask: np.ndarray, *, scaling: Literal["log", "linear"] = "log",
                   percentiles: tuple[float, float] = DEFAULT_PERCENTILES) -> tuple[np.ndarray, float, float]:
    """The values shown for a frame and the colour range given by intensity percentiles.

    Parameters
    ----------
    data : ndarray of float, shape (H, W)
        Intensities (counts).
    mask : ndarray of bool, shape (H, W)
        True where a pixel is invalid.
    scaling : {'log', 'linear'}
        ``'log'`` shows ``log10(intensity)``; pixels <= 0 have no logarithm and show as masked.
    percentiles : (float, float)
        Percentiles (0-100) of the valid shown values at the two ends of the colour map.

    Returns
    -------
    values : ndarray of float32, shape (H, W)
        NaN where nothing is shown (masked, not finite, or <= 0 in log scale).
    lo, hi : float
        The colour range (``lo < hi``; ``(0, 1)`` when no pixel is valid).
    """
    if scaling not in SCALINGS:
        raise ValueError(f"The 'scaling' parameter of display_values must be one of {list(SCALINGS)}. "
                         f"Got {scaling!r} instead.")
    p_lo, p_hi = (float(p) for p in percentiles)
    if not 0.0 <= p_lo < p_hi <= 100.0:
        raise ValueError(f"The 'percentiles' parameter of display_values must be (lo, hi) with 0 <= lo < hi <= 100. "
                         f"Got {percentiles!r} instead.")
    a = np.asarray(data, dtype=np.float32)
    valid = ~np.asarray(mask, dtype=bool) & np.isfinite(a)
    if scaling == "log":
        valid &= a > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.where(valid, np.log10(np.where(valid, a, 1.0)), np.nan).astype(np.float32)
    else:
        values = np.where(valid, a, np.nan).astype(np.float32)
    shown = values[valid]
    if not shown.size:
        return values, 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(shown, [p_lo, p_hi]))
    if hi <= lo:
        hi = lo + (abs(lo) * 1e-6 or 1e-6)
    return values, lo, hi


def render_frame_png(values: np.ndarray, lo: float, hi: float) -> bytes:
    """PNG bytes of shown values at full resolution (one PNG pixel per detector pixel), viridis, NaN grey."""
    from io import BytesIO

    from PIL import Image

    v = np.asarray(values, dtype=np.float32)
    scaled = np.clip((np.nan_to_num(v, nan=lo) - lo) / (hi - lo), 0.0, 1.0)
    rgb = VIRIDIS_LUT[(scaled * 255).astype(np.uint8)]
    rgb[~np.isfinite(v)] = MASKED_RGB
    buf = BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def metadata_rows(metadata: dict[str, Any], *, max_chars: int = 120) -> list[tuple[str, str]]:
    """The header metadata of a frame as (key, text) rows, in the reader's order, long values cut."""
    rows = []
    for k, v in (metadata or {}).items():
        text = str(v)
        rows.append((str(k), text if len(text) <= max_chars else text[:max_chars - 1] + "\u2026"))
    return rows


class SourceFrameView(pn.viewable.Viewer):
    """The original frame of one image with its scaling, contrast, colour bar and header metadata.

    Parameters
    ----------
    data : RunData
    sample_id : int
    """

    def __init__(self, *, data: Any, sample_id: int, **params: Any):
        super().__init__(**params)
        self.data = data
        self.sample_id = data.check_id(sample_id)
        self.scaling = pn.widgets.RadioButtonGroup(options=list(SCALINGS), value="log",
                                                   css_classes=["xsgpu-source-scaling"])
        self.percentiles = pn.widgets.RangeSlider(label="Contrast (percentiles)", start=0.0, end=100.0,
                                                  value=DEFAULT_PERCENTILES, step=0.1, width=BOX_PX - 20,
                                                  css_classes=["xsgpu-source-percentiles"])
        self.image = pn.pane.HTML("", width=BOX_PX, css_classes=["xsgpu-source-image"])
        self.colour_bar = pn.pane.HTML("", width=BOX_PX)
        self.metadata = pn.pane.HTML("", width=BOX_PX, css_classes=["xsgpu-source-metadata"])
        self.message = pn.pane.Alert("", alert_type="warning", visible=False, width=BOX_PX,
                                     css_classes=["xsgpu-source-message"])
        self.frame = None
        self.range: tuple[float, float] = (0.0, 1.0)
        try:
            self.frame = read_source_frame(data, self.sample_id)
        except SourceFrameUnavailable as exc:
            log.info("original frame of %d unavailable: %s", self.sample_id, exc)
            self.message.object, self.message.visible = html.escape(str(exc)), True
        self.scaling.param.watch(lambda _e: self.redraw(), "value")
        self.percentiles.param.watch(lambda _e: self.redraw(), "value_throttled")
        self.redraw()
        controls = [self.scaling, self.percentiles] if self.frame is not None else []
        self._layout = pn.Column(pn.pane.Markdown("**Original frame**", margin=(0, 5)), self.message, *controls,
                                 self.image, self.colour_bar, self.metadata, css_classes=["xsgpu-source-frame"],
                                 name=f"source-frame-{self.sample_id}")
        self._layout.xsgpu_view = self   # the layout a card holds leads back to its view (tests, hooks)

    def redraw(self) -> None:
        """Render the frame with the current scaling and contrast (nothing when it could not be read)."""
        if self.frame is None:
            return
        f = self.frame
        values, lo, hi = display_values(f.data, f.mask, scaling=self.scaling.value,
                                        percentiles=tuple(self.percentiles.value))
        self.range = (lo, hi)
        h, w = values.shape
        png = render_frame_png(values, lo, hi)
        self.image.object = (f'<div style="max-width:{BOX_PX}px;max-height:{BOX_PX}px;overflow:auto">'
                             f'<img src="{png_uri(png)}" width="{w}" height="{h}" data-shape="{h}x{w}" '
                             f'style="image-rendering:pixelated;display:block"/></div>')
        label = ("log10 intensity" if self.scaling.value == "log" else "intensity") + \
            (" (counts)" if f.quantitative else " (grey levels)")
        self.colour_bar.object = colour_bar_html(lo, hi, width=BOX_PX - 20, label=label)
        rows = [("file", f.source_uri), ("frame", str(f.frame)), ("shape", f"{h} x {w}"),
                ("masked pixels", f"{int(np.count_nonzero(f.mask)):,}"), *metadata_rows(f.metadata)]
        self.metadata.object = ('<table style="font-size:12px"><tr><th>header</th><th>value</th></tr>' + "".join(
            f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in rows) + "</table>")

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout
