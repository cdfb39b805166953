"""Windowed scattering: the glow of a sample window or cell, a blurred square or disc (original generator).

The original generator's background adds, each with probability .1, a square and a circular window:
the indicator of ``|x - x_w| < s, |y - y_w| < s`` (square) or ``|r - r_w| < s`` (disc), of half-size
``s`` U(20, 300) px, centred ``(x_w, y_w)`` = U(-1, 1) s from the beam in each axis, blurred by a
Gaussian of sigma U(3, 50) px and scaled by 10^U(-1, 3) counts. Both are drawn here exactly: the
square is separable (a product of two blurred strips), the blurred disc is ``P(|r + Z| < s)`` for a 2-D
Gaussian ``Z``, a non-central chi-squared CDF interpolated on a 1-D radius grid. Lengths are
conceptual pixels; maps are evaluated on a run's :class:`~xsgpu.synth.geometry.PixelMaps`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xsgpu.backend import namespace_of, to_host
from xsgpu.synth.beamstops import blurred_disc, blurred_strip
from xsgpu.synth.geometry import CONCEPT_SIZE, PixelMaps

__all__ = ["Window", "draw_windows", "window_map", "P_WINDOW"]

#: probability of each window shape per background draw (the original's)
P_WINDOW = {"square": 0.1, "circle": 0.1}


@dataclass(frozen=True)
class Window:
    """One window glow: ``shape`` ("square" / "circle"), half-size, centre offset from the beam, blur, counts."""

    shape: str
    size: float
    x0: float
    y0: float
    blur: float
    counts: float


def draw_windows(g: np.random.Generator, p: dict | None = None) -> list[Window]:
    """Draw the windows of one background (host generator ``g``; the original's ranges)."""
    out = []
    for shape, prob in (P_WINDOW if p is None else p).items():
        if g.random() < prob:
            size = g.uniform(20.0, 300.0)
            x0, y0 = g.uniform(-1.0, 1.0, 2) * size
            out.append(Window(shape, size, float(x0), float(y0), g.uniform(3.0, 50.0), 10 ** g.uniform(-1.0, 3.0)))
    return out


def window_map(w: Window, maps: PixelMaps):
    """Counts of one window over the run's pixels (float32 (H*W,), in the array module of ``maps``)."""
    xp = namespace_of(maps.dx)
    dx = to_host(maps.dx).astype(np.float64) - w.x0
    dy = to_host(maps.dy).astype(np.float64) - w.y0
    if w.shape == "square":
        vals = blurred_strip(dx, w.size, w.blur) * blurred_strip(dy, w.size, w.blur)
    elif w.shape == "circle":
        r = np.sqrt(dx * dx + dy * dy)
        vals = blurred_disc(r, w.size, w.blur, np.linspace(0.0, float(r.max()) + 1.0, 1025))
    else:
        raise ValueError(f"Unknown window shape {w.shape!r}; expected 'square' or 'circle'.")
    return xp.asarray((w.counts * vals).astype(np.float32))


def window_stats(windows: list[Window], concept_maps: PixelMaps) -> tuple[float, float]:
    """Mean and max over the conceptual detector of the sum of ``windows`` (0, 0 for none)."""
    if not windows:
        return 0.0, 0.0
    assert concept_maps.size == CONCEPT_SIZE
    total = sum(to_host(window_map(w, concept_maps)).astype(np.float64) for w in windows)
    return float(total.mean()), float(total.max())
