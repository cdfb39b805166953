"""Frame -> model input, batched and xp-agnostic (NumPy or CuPy, outputs match inputs).

The original model's preprocessing (DOMAIN.md, Wang et al.): ``log(I) / log(1.0414)`` with 0 where
``I <= 0`` (and where masked), resize to the model input size, per-image standardisation, one channel.
``images.zarr`` stores the log-scaled frame at the run's size (float16); resizing to the model input
and standardisation happen at training/inference time.

Examples
--------
>>> import numpy as np
>>> from xsgpu.preprocess import log_scale, resize_batch, standardise, make_thumbnails
>>> frames = np.full((2, 8, 8), 100.0, dtype=np.float32)
>>> x = log_scale(frames)
>>> round(float(x[0, 0, 0]), 2)
113.52
>>> resize_batch(x, 4).shape
(2, 4, 4)
>>> make_thumbnails(x, size=4).dtype
dtype('uint8')
"""
from __future__ import annotations

import math

from xsgpu.backend import namespace_of

__all__ = ["LOG_BASE", "log_scale", "resize_batch", "standardise", "make_thumbnails", "to_model_input"]

LOG_BASE = 1.0414
_INV_LOG_BASE = 1.0 / math.log(LOG_BASE)


def log_scale(frames, mask=None):
    """Return ``log(I) / log(1.0414)`` as float32, 0 where ``I <= 0``, non-finite, or ``mask`` is True.

    Parameters
    ----------
    frames : array, shape (..., H, W)
        Intensities (counts).
    mask : bool array broadcastable to ``frames``, optional
        True where a pixel is invalid (gaps, bad pixels).
    """
    xp = namespace_of(frames, mask)
    f = xp.asarray(frames, dtype=xp.float32)
    bad = ~(f > 0)  # also True for NaN
    bad |= xp.isinf(f)
    if mask is not None:
        bad |= xp.asarray(mask, dtype=bool)
    out = xp.log(xp.where(bad, xp.float32(1), f))  # log(1) = 0 where bad
    out *= xp.float32(_INV_LOG_BASE)
    return out


def resize_batch(batch, size: int):
    """Resize a batch (N, H, W) to (N, size, size) by bilinear interpolation (area-averaged when shrinking 2x+).

    Works on NumPy and CuPy arrays alike; returns float32.
    """
    xp = namespace_of(batch)
    b = xp.asarray(batch, dtype=xp.float32)
    n, h, w = b.shape
    if (h, w) == (size, size):
        return b
    # integer-factor box average first so bilinear does not alias
    fy, fx = h // size, w // size
    if fy >= 2 and fx >= 2 and h % fy == 0 and w % fx == 0:
        b = b.reshape(n, h // fy, fy, w // fx, fx).mean(axis=(2, 4))
        n, h, w = b.shape
        if (h, w) == (size, size):
            return b.astype(xp.float32)
    ys = (xp.arange(size, dtype=xp.float32) + 0.5) * (h / size) - 0.5
    xs = (xp.arange(size, dtype=xp.float32) + 0.5) * (w / size) - 0.5
    ys = xp.clip(ys, 0, h - 1)
    xs = xp.clip(xs, 0, w - 1)
    y0 = xp.floor(ys).astype(xp.int64)
    x0 = xp.floor(xs).astype(xp.int64)
    y1 = xp.minimum(y0 + 1, h - 1)
    x1 = xp.minimum(x0 + 1, w - 1)
    wy = (ys - y0)[None, :, None]
    wx = (xs - x0)[None, None, :]
    top = b[:, y0][:, :, x0] * (1 - wx) + b[:, y0][:, :, x1] * wx
    bot = b[:, y1][:, :, x0] * (1 - wx) + b[:, y1][:, :, x1] * wx
    return (top * (1 - wy) + bot * wy).astype(xp.float32)


def standardise(batch, eps: float = 1e-6):
    """Per-image standardisation: zero mean, unit variance over each (H, W) frame."""
    xp = namespace_of(batch)
    b = xp.asarray(batch, dtype=xp.float32)
    mean = b.mean(axis=(-2, -1), keepdims=True)
    std = b.std(axis=(-2, -1), keepdims=True)
    return ((b - mean) / (std + eps)).astype(xp.float32)


def to_model_input(log_frames, size: int):
    """Stored log-scaled frames (N, H, W) -> standardised model input (N, 1, size, size) float32."""
    return standardise(resize_batch(log_frames, size))[:, None]


def make_thumbnails(log_frames, size: int = 64):
    """Log-scaled frames (N, H, W) -> uint8 previews (N, size, size), each stretched to its 1-99.5 % range."""
    xp = namespace_of(log_frames)
    small = resize_batch(log_frames, size)
    flat = small.reshape(small.shape[0], -1)
    lo = xp.percentile(flat, 1.0, axis=1)[:, None, None]
    hi = xp.percentile(flat, 99.5, axis=1)[:, None, None]
    scaled = (small - lo) / xp.maximum(hi - lo, 1e-6)
    return (xp.clip(scaled, 0, 1) * 255 + 0.5).astype(xp.uint8)
