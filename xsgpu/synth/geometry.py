"""Detector geometry of the synthetic runs: the 256 x 256 "conceptual" SAXS detector and its maps.

Every run is defined on the conceptual detector of the original generator (DOMAIN.md "Geometry"):
E = 8.8984 keV, pixel 75 um, distance 0.594 m, 256 x 256 pixels. An output image of ``size`` pixels
samples the same physical area with pixels ``256 / size`` times larger, so a run's physics (and its
labels, which are computed in q units on the conceptual detector) do not depend on ``size``.

Intensities are counts per conceptual pixel; smaller outputs show the same counts per pixel (the
detector is "rebinned by averaging"), so thresholds keep their meaning at every size.

Examples
--------
>>> import numpy as np
>>> from xsgpu.synth.geometry import q_of_radius
>>> round(float(q_of_radius(np.array(35.0))), 3), round(float(q_of_radius(176.0)), 3)
(0.02, 0.1)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from xsgpu.backend import namespace_of

__all__ = [
    "ENERGY_KEV", "PIXEL_M", "DISTANCE_M", "CONCEPT_SIZE", "WAVELENGTH_A", "K_INV_A", "Q_BIN",
    "q_of_radius", "RunGeometry", "PixelMaps", "make_pixel_maps", "N_CHI", "Q_PIXEL",
    "chi_grid", "q_grid", "conceptual_histogram",
]

ENERGY_KEV = 8.8984
PIXEL_M = 75e-6
DISTANCE_M = 0.594
CONCEPT_SIZE = 256
WAVELENGTH_A = 12.3984 / ENERGY_KEV
K_INV_A = 2.0 * math.pi / WAVELENGTH_A
#: q width of one conceptual pixel near the beam (1/A)
Q_PIXEL = K_INV_A * PIXEL_M / DISTANCE_M
#: bin width of the 1-D q grid on which every radial profile is evaluated (a quarter conceptual pixel)
Q_BIN = Q_PIXEL / 4.0
#: number of bins of the 1-D azimuth grid (0.5 degree bins)
N_CHI = 720


def q_of_radius(r_px):
    """Momentum transfer q (1/A) at a distance of ``r_px`` conceptual pixels from the beam.

    ``q = 2 k sin(0.5 atan(r p / D))``; works on NumPy and CuPy arrays.
    """
    xp = namespace_of(r_px)
    return 2.0 * K_INV_A * xp.sin(0.5 * xp.arctan(r_px * (PIXEL_M / DISTANCE_M)))


@dataclass(frozen=True)
class RunGeometry:
    """Beam centre of one run in conceptual pixel coordinates (pixel centres at 0.5 .. 255.5).

    Attributes
    ----------
    x0, y0 : float
        Beam centre; outside ``[0, 256]`` for a beam-off run.
    """

    x0: float
    y0: float

    @property
    def beam_on_detector(self) -> bool:
        return 0.0 <= self.x0 <= CONCEPT_SIZE and 0.0 <= self.y0 <= CONCEPT_SIZE

    def radius_range(self) -> tuple[float, float]:
        """Smallest and largest distance (conceptual px) from the beam to any detector point."""
        cx = min(max(self.x0, 0.0), CONCEPT_SIZE)
        cy = min(max(self.y0, 0.0), CONCEPT_SIZE)
        rmin = math.hypot(self.x0 - cx, self.y0 - cy)
        rmax = max(math.hypot(self.x0 - x, self.y0 - y) for x in (0, CONCEPT_SIZE) for y in (0, CONCEPT_SIZE))
        return rmin, rmax

    def q_range(self) -> tuple[float, float]:
        """Visible q range (1/A) of the detector for this beam centre."""
        rmin, rmax = self.radius_range()
        return float(q_of_radius(rmin)), float(q_of_radius(rmax))

    def n_q_bins(self) -> int:
        """Length of the run's 1-D q grid (covers the farthest detector corner)."""
        return int(math.ceil(self.q_range()[1] / Q_BIN)) + 3


@dataclass
class PixelMaps:
    """Per-run pixel maps at one output size (arrays of the run's xp, shape (size*size,) unless noted).

    Attributes
    ----------
    size : int
    dx, dy : float32 (H*W,)
        Pixel offsets from the beam in conceptual pixels (x right, y down).
    r : float32 (H*W,)
        Distance from the beam (conceptual px).
    q : float32 (H*W,)
        Momentum transfer (1/A).
    chi : float32 (H*W,)
        Azimuth in radians, ``atan2(dx, -dy)`` (0 = up, +pi/2 = right).
    qidx : intp (H*W,)
        Index of the pixel's q in the run's 1-D q grid.
    cidx : intp (H*W,)
        Index of the pixel's azimuth in the 1-D chi grid of :data:`N_CHI` bins.
    """

    size: int
    dx: object
    dy: object
    r: object
    q: object
    chi: object
    qidx: object
    cidx: object


def make_pixel_maps(geom: RunGeometry, size: int, xp: ModuleType = np) -> PixelMaps:
    """Compute the pixel maps of a run at output ``size`` (pixel centres of the conceptual detector)."""
    scale = CONCEPT_SIZE / size
    c = (xp.arange(size, dtype=xp.float32) + 0.5) * xp.float32(scale)
    dx = xp.broadcast_to(c[None, :] - xp.float32(geom.x0), (size, size)).reshape(-1)
    dy = xp.broadcast_to(c[:, None] - xp.float32(geom.y0), (size, size)).reshape(-1)
    r = xp.sqrt(dx * dx + dy * dy)
    q = q_of_radius(r).astype(xp.float32)
    chi = xp.arctan2(dx, -dy).astype(xp.float32)
    n_q = geom.n_q_bins()
    qidx = xp.clip(xp.rint(q / xp.float32(Q_BIN)).astype(xp.intp), 0, n_q - 1)
    cidx = (xp.floor((chi + xp.float32(math.pi)) * xp.float32(N_CHI / (2 * math.pi))).astype(xp.intp)) % N_CHI
    return PixelMaps(size=size, dx=dx, dy=dy, r=r, q=q, chi=chi, qidx=qidx, cidx=cidx)


def chi_grid() -> np.ndarray:
    """Centres (radians) of the 1-D azimuth grid matching :attr:`PixelMaps.cidx`."""
    return (np.arange(N_CHI) + 0.5) * (2 * math.pi / N_CHI) - math.pi


def q_grid(n_bins: int) -> np.ndarray:
    """Centres (1/A) of a 1-D q grid of ``n_bins`` bins matching :attr:`PixelMaps.qidx`."""
    return np.arange(n_bins) * Q_BIN


def conceptual_histogram(geom: RunGeometry) -> np.ndarray:
    """Number of conceptual (256 x 256) detector pixels per bin of the run's q grid, shape (n_q_bins,).

    The tags (sample max/mean, pixels above a threshold) are computed from 1-D profiles weighted by
    this histogram, so they are the same at every output size.
    """
    maps = make_pixel_maps(geom, CONCEPT_SIZE, np)
    return np.bincount(maps.qidx, minlength=geom.n_q_bins()).astype(np.float64)
