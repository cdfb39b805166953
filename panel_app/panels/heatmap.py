"""The detail view's heatmap overlay: one attribute's class activation map (``heatmaps.zarr``) over the image.

``xsgpu infer`` stores, for every image, one map per attribute at the last block's resolution
(docs/explain.md). :func:`overlay_png` upsamples the chosen attribute's map bilinearly to the rendered
size and blends it over the image in grey: red where the map raises the attribute's logit, blue where it
lowers it, on a scale symmetric around 0 (:func:`heatmap_bar_html` says the range).
"""
from __future__ import annotations

import html
import io
import logging
from typing import Any

import numpy as np

from panel_app.panels._common import colour_bar_html

__all__ = ["DIVERGING_LUT", "run_heatmaps", "heatmap_of", "overlay_png", "heatmap_bar_html"]

log = logging.getLogger(__name__)


def _diverging_lut() -> np.ndarray:
    """256 x 3 uint8: blue (-) through white (0) to red (+)."""
    t = np.linspace(-1.0, 1.0, 256)
    blue, white, red = np.array([33, 102, 172]), np.array([247, 247, 247]), np.array([178, 24, 43])
    lo = white + (blue - white) * np.clip(-t, 0, 1)[:, None]
    hi = white + (red - white) * np.clip(t, 0, 1)[:, None]
    return np.where(t[:, None] < 0, lo, hi).round().astype(np.uint8)


#: colour map of the overlay (symmetric around 0)
DIVERGING_LUT = _diverging_lut()

_OPEN: dict[str, Any] = {}


def run_heatmaps(store: Any) -> Any | None:
    """The run's ``heatmaps.zarr`` (opened once per run), or ``None`` if it has none or they are another model's."""
    if store is None:
        return None
    key = str(store.path)
    if key not in _OPEN:
        arr = None
        try:
            if store.heatmaps.path.exists():
                arr = store.heatmaps.open()
                want = store.predictions.metadata().get("weights_sha256") if store.predictions.path.exists() else None
                have = arr.attrs.get("weights_sha256")
                if want and have and want != have:
                    log.warning("%s holds another model's heatmaps; not shown", store.heatmaps.path)
                    arr = None
        except Exception as exc:  # noqa: BLE001 - the overlay is an extra; the view works without it
            log.warning("heatmaps of %s unavailable: %s", store.path, exc)
            arr = None
        _OPEN[key] = arr
    return _OPEN[key]


def heatmap_of(store: Any, sample_id: int, attribute: int) -> np.ndarray | None:
    """The (h, w) float32 map of one attribute (its index) for one image, or ``None`` without heatmaps."""
    arr = run_heatmaps(store)
    if arr is None:
        return None
    return np.asarray(arr[int(sample_id), int(attribute)], np.float32)


def overlay_png(img: np.ndarray, cam: np.ndarray, *, size: int, vrange: tuple[float, float],
                opacity: float = 0.5, limit: float | None = None) -> bytes:
    """PNG of ``img`` (log intensities, grey between ``vrange``) with ``cam`` blended over it.

    Parameters
    ----------
    img : ndarray (H, W)
    cam : ndarray (h, w)
        The class activation map; upsampled bilinearly to ``size`` (it covers the whole frame).
    size : int
        Rendered width and height in pixels.
    vrange : (float, float)
        Intensities at black and white.
    opacity : float
        0: the image alone; 1: the map alone.
    limit : float, optional
        |value| at full colour (default: the map's largest |value|).
    """
    from PIL import Image

    lo, hi = vrange
    grey = np.clip((np.nan_to_num(np.asarray(img, np.float32)) - lo) / max(hi - lo, 1e-6), 0, 1)
    g = Image.fromarray((grey * 255).astype(np.uint8)).resize((size, size), Image.BILINEAR)
    rgb = np.repeat(np.asarray(g, np.float32)[:, :, None], 3, axis=2)
    c = Image.fromarray(np.asarray(cam, np.float32), mode="F").resize((size, size), Image.BILINEAR)
    lim = float(limit if limit is not None else np.abs(cam).max()) or 1.0
    idx = np.clip((np.asarray(c) / lim + 1) / 2 * 255, 0, 255).astype(np.uint8)
    a = float(np.clip(opacity, 0.0, 1.0))
    out = (1 - a) * rgb + a * DIVERGING_LUT[idx].astype(np.float32)
    buf = io.BytesIO()
    Image.fromarray(out.round().astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def heatmap_bar_html(limit: float, *, width: int, attribute: str,
                     what: str = "class activation map (logit contribution)") -> str:
    """An HTML colour bar for the overlay: -limit (blue) .. 0 .. +limit (red); ``what`` names the map."""
    return colour_bar_html(-limit, limit, width=width, lut=DIVERGING_LUT, number_format=".3g",
                           css_class="xsgpu-heatmap-bar",
                           label=f"{html.escape(attribute)}: {html.escape(what)}")
