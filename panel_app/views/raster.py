"""Datashader rasters of an embedded space for a Bokeh ``image_rgba`` glyph.

Three colourings: point density (``eq_hist``), mean error distance per pixel, and one attribute's
outcome per image (TP / FP / FN / TN, ``count_cat``). Points outside the attribute filter are dropped
by weight (density), by NaN (mean) or by a hidden category (outcome), so the shared coordinate arrays
are never copied per session. A second layer draws the current selection on top.

Given CuPy arrays (``xsgpu serve --device gpu``), :func:`rasterize` aggregates on the GPU: datashader over a
``cudf.DataFrame`` of the same columns (outcomes binned by ``category_modulo`` over integer codes instead of a
categorical column); only the aggregate, one value per pixel, is copied to the host, and it is shaded there
exactly as on the CPU.

Examples
--------
>>> import numpy as np
>>> from panel_app.views.raster import rasterize
>>> x = np.array([0., 1., 1.], np.float32); y = np.array([0., 1., 1.], np.float32)
>>> out = rasterize(x, y, x_range=(0, 1), y_range=(0, 1), width=4, height=4)
>>> out["image"][0].shape, out["count"]
((4, 4), 3)
"""
from __future__ import annotations

import logging
import time
from typing import Literal

import numpy as np
import pandas as pd

from xsgpu.backend import import_gpu, namespace_of, to_host

__all__ = [
    "rasterize", "empty_image", "warmup", "warmup_gpu", "OUTCOME_COLOURS", "OUTCOMES", "UNLABELLED_CODE", "UNLABELLED_COLOUR", "DENSITY_CMAP", "ERROR_CMAP",
    "SELECTION_COLOUR", "outcome_codes",
]

log = logging.getLogger(__name__)

OUTCOMES = ("TP", "FP", "FN", "TN")
#: Outcome colours: true positive green, false positive black, false negative orange, true negative grey.
OUTCOME_COLOURS = {"TP": "#1a9641", "FP": "#000000", "FN": "#fd8d3c", "TN": "#bdbdbd"}
#: Code and colour of an unlabelled image in outcome mode: no ACT, so no outcome; light blue, its own category.
UNLABELLED_CODE = len(OUTCOMES)
UNLABELLED_COLOUR = "#9ecae1"
DENSITY_CMAP = ["#c6dbef", "#6baed6", "#2171b5", "#08306b"]
ERROR_CMAP = ["#fee8c8", "#fdbb84", "#e34a33", "#7f0000"]
SELECTION_COLOUR = "#ff1f5b"


def outcome_codes(act: np.ndarray, prob: np.ndarray, *, cutoff: float,
                  labelled: np.ndarray | None = None) -> np.ndarray:
    """Outcome code per image for one attribute: 0 TP, 1 FP, 2 FN, 3 TN, :data:`UNLABELLED_CODE` unlabelled.

    Parameters
    ----------
    act : ndarray of bool, shape (n,)
    prob : ndarray of float, shape (n,)
    labelled : ndarray of bool, shape (n,), optional
        Images without labels get :data:`UNLABELLED_CODE` (default: all labelled).

    Returns
    -------
    ndarray of uint8, shape (n,)
    """
    pred = prob > cutoff
    act = np.asarray(act, dtype=bool)
    # TP=0 (act&pred), FP=1 (~act&pred), FN=2 (act&~pred), TN=3
    codes = ((~pred).astype(np.uint8) * 2 + (~act).astype(np.uint8)).astype(np.uint8)
    if labelled is not None:
        codes[~np.asarray(labelled, dtype=bool)] = UNLABELLED_CODE
    return codes


def _rgba_word(colour: str, alpha: int = 235) -> np.uint32:
    """``'#rrggbb'`` as the little-endian RGBA uint32 that Bokeh's ``image_rgba`` reads."""
    h = colour.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return np.uint32(r | g << 8 | b << 16 | alpha << 24)


def empty_image(x_range, y_range) -> dict:
    """An image source with one transparent pixel covering the viewport (nothing to draw)."""
    return {"image": [np.zeros((1, 1), np.uint32)], "x": [float(x_range[0])], "y": [float(y_range[0])],
            "dw": [float(x_range[1] - x_range[0])], "dh": [float(y_range[1] - y_range[0])]}


def rasterize(
    x: np.ndarray,
    y: np.ndarray,
    *,
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    width: int,
    height: int,
    mask: np.ndarray | None = None,
    how: Literal["density", "mean", "outcome", "mask"] = "density",
    values: np.ndarray | None = None,
    value_span: tuple[float, float] | None = None,
    colour: str | None = None,
    with_counts: bool = False,
) -> dict:
    """Rasterize points to an RGBA image for Bokeh's ``image_rgba``.

    Parameters
    ----------
    x, y : ndarray of float32, shape (n,)
        NumPy arrays, or CuPy arrays to aggregate on the GPU (``mask`` and ``values`` then CuPy too).
    x_range, y_range : (float, float)
        The viewport in data units.
    width, height : int
        Image size in pixels.
    mask : ndarray of bool, shape (n,), optional
        Only these points are drawn.
    how : {'density', 'mean', 'outcome', 'mask'}
        ``'density'``: count per pixel; ``'mean'``: mean of ``values`` (e.g. error distance);
        ``'outcome'``: ``values`` are :func:`outcome_codes`, shaded by :data:`OUTCOME_COLOURS`;
        ``'mask'``: a uint8 image, 1 where a pixel holds a point and 0 elsewhere (one byte per pixel, a
        quarter of an RGBA layer: the selection layer, coloured in the browser by a colour mapper).
    values : ndarray, shape (n,), optional
        Needed for ``'mean'`` and ``'outcome'``.
    value_span : (float, float), optional
        Fixed colour span for ``'mean'``.
    colour : str, optional
        Draw every point in this one colour (the selection layer).
    with_counts : bool
        Also return ``counts``: [uint32 (height, width)], the images drawn in each pixel (for the hover).

    Returns
    -------
    dict
        ``image`` ([uint32 (height, width)]), ``x``, ``y``, ``dw``, ``dh`` (Bokeh image source columns),
        ``count`` (points drawn inside the viewport) and, with ``with_counts``, ``counts``.
    """
    import datashader as ds
    import datashader.transfer_functions as tf

    if width < 1 or height < 1:
        raise ValueError(f"The 'width' and 'height' parameters of rasterize must be >= 1. Got {width}x{height}.")
    x0, x1 = sorted(map(float, x_range))
    y0, y1 = sorted(map(float, y_range))
    if not (x1 > x0 and y1 > y0):
        out = {**empty_image((x0, x1 if x1 > x0 else x0 + 1), (y0, y1 if y1 > y0 else y0 + 1)), "count": 0}
        if with_counts:
            out["counts"] = [np.zeros((1, 1), np.uint32)]
        return out
    xp = namespace_of(x, y)
    gpu = xp is not np
    cvs = ds.Canvas(plot_width=int(width), plot_height=int(height), x_range=(x0, x1), y_range=(y0, y1))
    cols = {"x": x, "y": y}
    if how in ("density", "mask"):
        if mask is not None:
            cols["w"] = mask.view(np.uint8) if mask.dtype == bool else mask
            agg = _aggregate(cvs, cols, ds.sum("w"), gpu=gpu)
        else:
            agg = _aggregate(cvs, cols, ds.count(), gpu=gpu)
        count = int(np.nansum(agg.values))
        per_pixel = agg.values
        occupied = np.nan_to_num(agg.values) > 0
        frame = {"x": [x0], "y": [y0], "dw": [x1 - x0], "dh": [y1 - y0], "count": count}
        if how == "mask":   # one byte per pixel, coloured in the browser
            return {"image": [occupied.astype(np.uint8)], **frame}
        if colour is not None:  # one colour: no colour mapping needed, build the RGBA words directly
            return {"image": [np.where(occupied, _rgba_word(colour), np.uint32(0)).astype(np.uint32)], **frame}
        img = tf.shade(agg, cmap=DENSITY_CMAP, how="eq_hist", min_alpha=90)
    elif how == "mean":
        if values is None:
            raise ValueError("rasterize(how='mean') needs the 'values' parameter (one value per point).")
        v = xp.asarray(values, dtype=np.float32)
        if mask is not None:
            v = xp.where(mask, v, np.float32(np.nan)).astype(np.float32, copy=False)
        cols["v"] = v
        # the count is of the shown points, whether they have a value or not (NaN: no value, e.g. unlabelled)
        cols["w"] = (xp.ones(len(v), bool) if mask is None else xp.asarray(mask, bool)).view(np.uint8)
        agg = _aggregate(cvs, cols, ds.summary(mean=ds.mean("v"), count=ds.sum("w")), gpu=gpu)
        per_pixel = agg["count"].values
        count = int(np.nansum(per_pixel))
        img = tf.shade(agg["mean"], cmap=ERROR_CMAP, how="linear", span=value_span, min_alpha=120)
    elif how == "outcome":
        if values is None:
            raise ValueError("rasterize(how='outcome') needs the 'values' parameter (outcome_codes).")
        codes = xp.asarray(values, dtype=np.uint8)
        if mask is not None:
            codes = xp.where(mask, codes, np.uint8(UNLABELLED_CODE + 1)).astype(np.uint8, copy=False)
        agg = _outcome_aggregate(cvs, x, y, codes, gpu=gpu)
        per_pixel = agg.values.sum(axis=-1)
        count = int(np.nansum(per_pixel))
        img = tf.shade(agg, color_key={**OUTCOME_COLOURS, "unlabelled": UNLABELLED_COLOUR}, min_alpha=90,
                       how="eq_hist")
    else:
        raise ValueError(f"The 'how' parameter of rasterize must be 'density', 'mean', 'outcome' or 'mask'. "
                         f"Got {how!r} instead.")
    out = {"image": [np.ascontiguousarray(img.data, dtype=np.uint32)], "x": [x0], "y": [y0],
           "dw": [x1 - x0], "dh": [y1 - y0], "count": count}
    if with_counts:
        out["counts"] = [np.ascontiguousarray(np.nan_to_num(per_pixel), dtype=np.uint32)]
    return out


_SHOWN_OUTCOMES = [*OUTCOMES, "unlabelled"]


def _aggregate(cvs, cols: dict, agg, *, gpu: bool):
    """``cvs.points`` over a pandas frame of host columns, or a cuDF frame of CuPy columns (``gpu``); the
    aggregate (an xarray DataArray or Dataset, one value per pixel) is returned on the host either way."""
    if gpu and len(cols["x"]) == 0:   # an empty viewport: nothing to launch a CUDA kernel over (0 blocks)
        cols, gpu = {k: to_host(v) for k, v in cols.items()}, False
    if not gpu:
        return cvs.points(pd.DataFrame(cols, copy=False), "x", "y", agg=agg)
    cudf = import_gpu("cudf", remedy="install cudf-cu13 (pip install '.[gpu]')")
    return _host_aggregate(cvs.points(cudf.DataFrame(cols, nan_as_null=False), "x", "y", agg=agg))


def _host_aggregate(agg):
    """A datashader aggregate with its (CuPy) values copied to NumPy; coordinates and attributes kept."""
    import xarray as xr

    def host(a: xr.DataArray) -> xr.DataArray:
        return xr.DataArray(to_host(a.data), coords=a.coords, dims=a.dims, attrs=a.attrs, name=a.name)

    if isinstance(agg, xr.Dataset):
        return xr.Dataset({k: host(v) for k, v in agg.data_vars.items()}, attrs=agg.attrs)
    return host(agg)


def _outcome_aggregate(cvs, x, y, codes, *, gpu: bool, modulo: bool | None = None):
    """Images per pixel and outcome: a (height, width, 5) aggregate with categories TP, FP, FN, TN, unlabelled.

    ``codes`` are :func:`outcome_codes`, with ``UNLABELLED_CODE + 1`` for hidden images. On the host they
    become a pandas categorical counted by ``count_cat``; on the GPU (``modulo``, default ``gpu``) the integer
    codes are binned by datashader's ``category_modulo`` (no categorical column to build on the device) and
    the categories renamed: the same counts.
    """
    import datashader as ds

    if not (gpu if modulo is None else modulo):
        cats = pd.Categorical.from_codes(codes, categories=[*_SHOWN_OUTCOMES, "hidden"])
        return _aggregate(cvs, {"x": x, "y": y, "c": cats}, ds.count_cat("c"), gpu=gpu).sel(c=_SHOWN_OUTCOMES)
    cols = {"x": x, "y": y, "c": codes.astype(np.int32)}
    by_code = ds.by(ds.category_modulo("c", modulo=len(_SHOWN_OUTCOMES) + 1), ds.count())
    agg = _aggregate(cvs, cols, by_code, gpu=gpu)
    return agg.isel(c=slice(0, len(_SHOWN_OUTCOMES))).assign_coords(c=_SHOWN_OUTCOMES)


def warmup(which: str = "all") -> float:
    """Compile datashader's numba kernels once (server start); returns the seconds it took.

    Parameters
    ----------
    which : {'all', 'first_page', 'rest'}
        ``'first_page'``: the plain density raster every view draws first (no filter, no selection yet);
        ``'rest'``: the masked density (filters), the one-colour and mask layers (selection, groups), the mean
        (error distance) and outcome colourings.
    """
    if which not in ("all", "first_page", "rest"):
        raise ValueError(f"The 'which' parameter of warmup must be 'all', 'first_page' or 'rest'. Got {which!r} instead.")
    t = time.perf_counter()
    x, y, variants = _warmup_variants()
    for part in ("first_page", "rest") if which == "all" else (which,):
        for kw in variants[part]:
            rasterize(x, y, x_range=(0, 1), y_range=(0, 1), width=50, height=50, **kw)
    dt = time.perf_counter() - t
    log.info("datashader warm-up (%s) took %.1f s", which, dt)
    return dt


def _warmup_variants() -> tuple[np.ndarray, np.ndarray, dict[str, list[dict]]]:
    """1000 seeded points and the :func:`rasterize` options of each warm-up part."""
    rng = np.random.default_rng(0)
    x = rng.random(1000).astype(np.float32)
    y = rng.random(1000).astype(np.float32)
    m = rng.random(1000) < 0.5
    codes = rng.integers(0, 4, 1000).astype(np.uint8)
    variants = {"first_page": [{"with_counts": True}],
                "rest": [{"mask": m}, {"colour": SELECTION_COLOUR}, {"how": "mask", "mask": m},
                         {"how": "mean", "values": x, "mask": m}, {"how": "outcome", "values": codes, "mask": m}]}
    return x, y, variants


def warmup_gpu() -> float:
    """Compile datashader's CUDA kernels for every variant :func:`warmup` compiles (a ``--device gpu`` server's
    start); returns the seconds it took. Needs CuPy and cuDF (:class:`~xsgpu.backend.GPUUnavailable` otherwise)."""
    cp = import_gpu("cupy")
    t = time.perf_counter()
    x, y, variants = _warmup_variants()
    dx, dy = cp.asarray(x), cp.asarray(y)
    for kw in variants["first_page"] + variants["rest"]:
        kw = {k: cp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
        rasterize(dx, dy, x_range=(0, 1), y_range=(0, 1), width=50, height=50, **kw)
    dt = time.perf_counter() - t
    log.info("datashader GPU warm-up took %.1f s", dt)
    return dt
