"""Mesostructure: the scattering of a small simple-cubic cluster of spheres (original generator's "meso").

The original generator projects a 3 x 3 x 3 simple-cubic cluster of spheres (radius 10, spacing 25 in
the units of its 1000 x 1000 projection) in a uniformly random orientation onto a plane, takes
``|FFT|^2`` of the projection, zooms it by U(0.2, 1) onto the detector around the beam, damps it by a
Gaussian of sigma 1/8 of the zoomed size and by ``1 - exp(-R / (size / 16))`` at the centre, and
scales its maximum to 10^U(3, 5) counts. 80 % of these are one orientation (a single-crystal pattern
of spots: no label of the 17 but Strong scattering), 20 % the sum over 10-100 orientations (tagged
polycrystalline). Its label gate (more than 50 pixels at 10 counts or more) is not evaluated here: with a
maximum of 10^3..10^5 counts it is taken as passed.

Here the same pattern is written in closed form (facts of the model, our code): the 2-D transform of
a projection is the 3-D transform on the plane ``k_z = 0``, so with ``k`` the in-plane wavevector and
``v_a`` the projected lattice vectors,

    I(k) = F(k R)^2 * prod_a (1 + 2 cos(k . v_a))^2,   F(x) = 3 (sin x - x cos x) / x^3,

and a detector offset ``d`` (conceptual px) is ``k = 2 pi d / (1000 z)``. The many-orientation
variant is drawn in its powder limit, the orientation average ``sum_jk sin(k r_jk) / (k r_jk)`` over
the 27 sphere pairs (Debye), an isotropic profile. The original's density noise and the rounding of
projected positions to whole pixels are left out.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from xsgpu.synth.geometry import Q_PIXEL
from xsgpu.synth.kernels import sphere_form_factor

__all__ = ["MESO", "random_rotation", "projected_vectors", "radial_envelope", "structure_factor",
           "debye_cluster", "polar_stats"]

#: the original's cluster and drawing (projection units: px of its 1000-px projection)
MESO = {"radius": 10.0, "spacing": 25.0, "span": 1, "projection": 1000.0, "zoom": (0.2, 1.0),
        "log10_counts": (3.0, 5.0), "p_rotation": 0.2, "orientations": (10, 100)}


def random_rotation(g: np.random.Generator) -> np.ndarray:
    """A rotation (3 x 3) drawn as the original does: about z by U(0, 2pi), tilt arccos(2U - 1), about z."""
    def rz(a):
        c, s = math.cos(a), math.sin(a)
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])

    eta = g.uniform(0.0, 2 * math.pi)
    theta = math.acos(2 * g.uniform() - 1)
    phi = g.uniform(0.0, 2 * math.pi)
    c, s = math.cos(theta), math.sin(theta)
    rx = np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    return rz(phi) @ rx @ rz(eta)


def projected_vectors(rot: np.ndarray, zoom: float) -> np.ndarray:
    """(3, 2): the cluster's lattice vectors, rotated, projected on the detector plane, in detector px.

    A wavevector ``k`` of the projection is ``2 pi d / (projection zoom)`` at a detector offset ``d``;
    returning ``v_a 2 pi / (projection zoom)`` lets the phase be ``d . v_a`` directly.
    """
    a = MESO["spacing"] * rot[:2, :].T  # columns of rot are the rotated basis vectors; keep (x, y)
    return a * (2 * math.pi / (MESO["projection"] * zoom))


def radial_envelope(d: np.ndarray, zoom: float) -> np.ndarray:
    """Sphere form factor squared, Gaussian damping and centre removal at detector distance ``d`` (px)."""
    size = MESO["projection"] * zoom
    ff = sphere_form_factor(2 * math.pi * np.asarray(d, dtype=np.float64) / size, MESO["radius"])
    return ff * np.exp(-0.5 * (d / (size / 8.0)) ** 2) * (1.0 - np.exp(-d / (size / 16.0)))


def structure_factor(dx, dy, vectors: np.ndarray, xp=np):
    """``prod_a (1 + 2 cos(d . v_a))^2`` at detector offsets (dx, dy) (arrays of the module ``xp``)."""
    out = None
    for vx, vy in vectors:
        f = (1.0 + 2.0 * xp.cos(dx * np.float32(vx) + dy * np.float32(vy))) ** 2
        out = f if out is None else out * f
    return out


@functools.lru_cache(maxsize=1)
def _pair_distances() -> tuple[np.ndarray, np.ndarray]:
    """The cluster's distinct pair distances and how many of its 27 x 27 ordered pairs have each."""
    span = MESO["span"]
    r = np.arange(-span, span + 1) * MESO["spacing"]
    pts = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
    return np.unique(np.round(np.linalg.norm(pts[:, None] - pts[None], axis=-1), 9), return_counts=True)


def debye_cluster(d: np.ndarray, zoom: float) -> np.ndarray:
    """Orientation average of the cluster's ``|S|^2`` (Debye sum over its 27 x 27 pairs) at distance ``d``."""
    dist, count = _pair_distances()
    k = 2 * math.pi * np.asarray(d, dtype=np.float64) / (MESO["projection"] * zoom)
    return (count[None, :] * np.sinc(k[:, None] * dist[None, :] / math.pi)).sum(axis=1)


def polar_stats(vectors: np.ndarray, q: np.ndarray, n_chi: int = 128, step: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Azimuthal mean and max of :func:`structure_factor` on circles of wavevector ``q`` (1/A).

    Evaluated on every ``step``-th q (one per conceptual pixel for the quarter-pixel grid) and
    ``n_chi`` azimuths, then interpolated in q: ~50k evaluations for a 256-px detector.
    """
    q = np.asarray(q, dtype=np.float64)
    qs = q[::step]
    d = qs / Q_PIXEL
    chi = np.linspace(0.0, 2 * math.pi, n_chi, endpoint=False)
    s = structure_factor(d[:, None] * np.sin(chi)[None, :], -d[:, None] * np.cos(chi)[None, :], vectors)
    return np.interp(q, qs, s.mean(axis=1)), np.interp(q, qs, s.max(axis=1))
