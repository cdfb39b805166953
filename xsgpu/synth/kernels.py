"""Physics kernels of the generator: pure functions of q (1/A) or azimuth chi (radians).

Formulas follow DOMAIN.md "Kernels" (physics, written here in our own code). All functions take and
return arrays of one namespace (NumPy or CuPy, :func:`xsgpu.backend.namespace_of`), except the lattice
tables which are small host constants.

Examples
--------
>>> import numpy as np
>>> from xsgpu.synth.kernels import lattice_peaks, orientation
>>> [round(float(r), 3) for r in lattice_peaks("bcc")[0][:4]]
[1.0, 1.414, 1.732, 2.0]
>>> [round(float(r), 3) for r in lattice_peaks("fcc")[0][:4]]
[1.0, 1.155, 1.633, 1.915]
>>> chi = np.linspace(-np.pi, np.pi, 3600, endpoint=False)
>>> round(float(orientation(chi, eta=0.8, n=2, chi0=0.3).mean()), 3)
1.0
"""
from __future__ import annotations

import functools
import itertools
import math

import numpy as np

from xsgpu.backend import namespace_of

__all__ = [
    "gaussian", "orientation", "orientation_peak", "sphere_form_factor", "debye_waller",
    "porod", "ornstein_zernike", "debye_bueche", "guinier", "diffuse_high_q",
    "lattice_peaks", "LATTICES", "sum_gaussians", "oval_factor",
]

LATTICES = ("bcc", "fcc", "hexagonal", "lamellar")


def gaussian(q, q0, dq):
    """Ring radial profile ``exp(-(q - q0)^2 / (2 dq^2))`` (peak 1 at ``q0``)."""
    xp = namespace_of(q)
    return xp.exp(-0.5 * ((q - q0) / dq) ** 2)


def orientation(chi, *, eta, n, chi0):
    """n-fold orientation kernel (wrapped Cauchy), normalised to mean 1 over the circle.

    ``A(chi) = (1 - eta^2) / ((1 + eta)^2 - 4 eta cos^2(n (chi - chi0) / 2))``; ``eta`` in [0, 1)
    sets the sharpness (0: isotropic), ``n`` the (even) symmetry. Parameters broadcast with ``chi``.
    """
    xp = namespace_of(chi)
    c = xp.cos(0.5 * n * (chi - chi0))
    return (1.0 - eta**2) / ((1.0 + eta) ** 2 - 4.0 * eta * c * c)


def orientation_peak(eta):
    """Maximum of :func:`orientation`: ``(1 + eta) / (1 - eta)``."""
    return (1.0 + eta) / (1.0 - eta)


def sphere_form_factor(q, radius):
    """Sphere form factor ``9 [sin(qR) - qR cos(qR)]^2 / (qR)^6`` (1 at q = 0)."""
    xp = namespace_of(q)
    x = xp.maximum(q * radius, 1e-6)
    small = x < 1e-2
    x2 = x * x
    f = 9.0 * (xp.sin(x) - x * xp.cos(x)) ** 2 / (x2 * x2 * x2)
    return xp.where(small, 1.0 - x * x / 5.0, f)


def debye_waller(q, q0, sigma_rel):
    """Debye-Waller factor ``exp(-s_r^2 (q d0)^2)`` with ``d0 = 2 pi / q0``."""
    xp = namespace_of(q)
    d0 = 2.0 * math.pi / q0
    return xp.exp(-(sigma_rel**2) * (q * d0) ** 2)


def porod(q, *, exponent, q_ref=0.01, q_min=0.002):
    """Power law ``(q / q_ref)^a`` (a in [-4.5, -1.8]), held constant below ``q_min``."""
    xp = namespace_of(q)
    return (xp.maximum(q, q_min) / q_ref) ** exponent


def ornstein_zernike(q, *, xi):
    """Ornstein-Zernike ``1 / (1 + q^2 xi^2)``."""
    return 1.0 / (1.0 + (q * xi) ** 2)


def debye_bueche(q, *, a):
    """Debye-Bueche ``1 / (1 + q^2 a^2)^2``."""
    return 1.0 / (1.0 + (q * a) ** 2) ** 2


def guinier(q, *, rg):
    """Guinier ``exp(-q^2 Rg^2 / 3)``."""
    xp = namespace_of(q)
    return xp.exp(-((q * rg) ** 2) / 3.0)


def diffuse_high_q(q, *, s):
    """Wide-angle diffuse rise ``1 - exp(-s^2 q^2)``."""
    xp = namespace_of(q)
    return 1.0 - xp.exp(-((s * q) ** 2))


def oval_factor(chi, *, ecc, chi0):
    """q scale of a distorted lattice: ``sqrt(sin^2(chi - chi0) + e^2 cos^2(chi - chi0))``."""
    xp = namespace_of(chi)
    return xp.sqrt(xp.sin(chi - chi0) ** 2 + (ecc * xp.cos(chi - chi0)) ** 2)


@functools.lru_cache(maxsize=None)
def lattice_peaks(kind: str, n_peaks: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Powder-ring positions ``q / q1`` and multiplicities of a superlattice.

    Parameters
    ----------
    kind : {"bcc", "fcc", "hexagonal", "lamellar"}
        bcc: reflections with h + k + l even; fcc: h, k, l all odd or all even (3-D cubic);
        hexagonal: 2-D hexagonal lattice of cylinders (q/q1 = 1, sqrt3, 2, sqrt7, ...);
        lamellar: 1, 2, 3, ...
    n_peaks : int
        Number of distinct rings returned.

    Returns
    -------
    ratios : float64 (n_peaks,)
        Ring positions relative to the first ring.
    multiplicities : float64 (n_peaks,)
        Number of equivalent reflections of each ring.
    """
    counts: dict[int, int] = {}
    rng = range(-6, 7)
    if kind in ("bcc", "fcc"):
        for h, k, l in itertools.product(rng, rng, rng):
            if (h, k, l) == (0, 0, 0):
                continue
            if kind == "bcc" and (h + k + l) % 2:
                continue
            if kind == "fcc" and len({h % 2, k % 2, l % 2}) != 1:
                continue
            n2 = h * h + k * k + l * l
            counts[n2] = counts.get(n2, 0) + 1
    elif kind == "hexagonal":
        for h, k in itertools.product(rng, rng):
            if (h, k) != (0, 0):
                n2 = h * h + h * k + k * k
                counts[n2] = counts.get(n2, 0) + 1
    elif kind == "lamellar":
        counts = {i * i: 2 for i in range(1, n_peaks + 1)}
    else:
        raise ValueError(f"The 'kind' parameter of lattice_peaks must be one of {LATTICES}. Got {kind!r} instead.")
    keys = sorted(counts)[:n_peaks]
    ratios = np.sqrt(np.array(keys, dtype=np.float64) / keys[0])
    return ratios, np.array([counts[k] for k in keys], dtype=np.float64)


def sum_gaussians(n_rows: int, n_bins: int, bin_width: float, rows, centres, sigmas, heights,
                  *, n_sigma: float = 6.0) -> np.ndarray:
    """Sum many Gaussian peaks into rows of a 1-D grid, evaluating each only within +-``n_sigma``.

    Host (NumPy) helper used to build radial profiles of thousands of rings at once; the cost is the
    total window length, not ``n_peaks * n_bins``.

    Parameters
    ----------
    n_rows, n_bins : int
        Output shape (one row per component).
    bin_width : float
        Grid spacing; bin ``j`` is at ``j * bin_width``.
    rows : int (P,)
        Output row of each peak.
    centres, sigmas, heights : float (P,)
        Peak position, width (same units as ``bin_width``) and height.

    Returns
    -------
    float64 (n_rows, n_bins)
    """
    rows = np.asarray(rows, dtype=np.int64)
    centres = np.asarray(centres, dtype=np.float64) / bin_width
    sigmas = np.maximum(np.asarray(sigmas, dtype=np.float64) / bin_width, 1e-3)
    heights = np.asarray(heights, dtype=np.float64)
    out = np.zeros(n_rows * n_bins, dtype=np.float64)
    lo = np.clip(np.floor(centres - n_sigma * sigmas), 0, n_bins).astype(np.int64)
    hi = np.clip(np.ceil(centres + n_sigma * sigmas) + 1, 0, n_bins).astype(np.int64)
    lengths = hi - lo
    keep = lengths > 0
    if not keep.any():
        return out.reshape(n_rows, n_bins)
    rows, centres, sigmas, heights, lo, lengths = (a[keep] for a in (rows, centres, sigmas, heights, lo, lengths))
    peak = np.repeat(np.arange(len(lengths)), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    bins = lo[peak] + offsets
    vals = heights[peak] * np.exp(-0.5 * ((bins - centres[peak]) / sigmas[peak]) ** 2)
    out += np.bincount(rows[peak] * n_bins + bins, weights=vals, minlength=n_rows * n_bins)
    return out.reshape(n_rows, n_bins)
