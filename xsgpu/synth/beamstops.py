"""Beamstop transmission maps and the direct beam (per run, on the run's pixel maps).

Three beamstop shapes of the original generator (DOMAIN.md): a linear bar from just behind the beam to
the image edge, a circular disc on a thin arm (``|chi - chi_arm| < 2 deg``), and a wedge whose apex is
displaced from the beam. Each is a multiplicative transmission in [t_in, 1] with edges blurred over
``blur`` conceptual pixels; ``t_in`` (1e-5..1e-3) lets a faint image of the direct beam through.
Beam-off runs have no beamstop (transmission 1).

Two styles: ``"sharp"`` (ours: opaque to ``t_in``, edges ramped over ``blur`` px) and ``"soft"`` (the
original generator's: one minus the beamstop's indicator blurred by a Gaussian of sigma ``blur`` px, so
a small beamstop under a wide blur lets much of the direct beam through). A soft linear bar reaches
``back`` px behind the beam; the soft circular disc and its arm, and the wedge, are blurred the same way.

Directions are azimuths in radians with the image convention of :mod:`xsgpu.synth.geometry`
(0 = up, +pi/2 = right), so a unit vector is ``(sin a, -cos a)`` in (x, y) pixel coordinates.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from xsgpu.backend import namespace_of, to_host
from xsgpu.synth.geometry import CONCEPT_SIZE, PixelMaps

__all__ = ["BEAMSTOPS", "BeamstopSpec", "transmission_map", "direct_beam_map", "ARM_HALF_ANGLE", "blurred_strip",
           "blurred_disc"]

BEAMSTOPS = ("none", "linear", "circular", "wedge")
ARM_HALF_ANGLE = math.radians(2.0)


@dataclass(frozen=True)
class BeamstopSpec:
    """Parameters of one run's beamstop (lengths in conceptual pixels, angles in radians).

    Attributes
    ----------
    kind : {"none", "linear", "circular", "wedge"}
    direction : float
        Azimuth of the bar / arm / wedge axis.
    width : float
        Bar width (linear) or disc radius (circular) or apex offset behind the beam (wedge).
    half_angle : float
        Half opening angle of the wedge.
    t_in : float
        Transmission inside the beamstop (``"sharp"`` style).
    blur : float
        Edge blur length (``"sharp"``: linear ramp width; ``"soft"``: Gaussian sigma), conceptual px.
    style : {"sharp", "soft"}
        Our opaque beamstops with ramped edges, or the original generator's Gaussian-blurred ones.
    back : float
        How far a ``"soft"`` linear bar reaches behind the beam (px).
    """

    kind: str
    direction: float = 0.0
    width: float = 12.0
    half_angle: float = math.radians(12.0)
    t_in: float = 1e-4
    blur: float = 1.5
    style: str = "sharp"
    back: float = 0.0


def _wrap(a, xp):
    return (a + math.pi) % (2 * math.pi) - math.pi


def outside_distance(spec: BeamstopSpec, maps: PixelMaps):
    """Signed distance (conceptual px) of each pixel from the beamstop edge: < 0 inside, > 0 outside."""
    xp = namespace_of(maps.dx)
    dx, dy = maps.dx, maps.dy
    ux, uy = math.sin(spec.direction), -math.cos(spec.direction)
    if spec.kind == "linear":
        along = dx * ux + dy * uy
        perp = xp.abs(-dx * uy + dy * ux)
        return xp.maximum(perp - spec.width / 2, -spec.width / 2 - along)
    if spec.kind == "circular":
        disc = maps.r - spec.width
        dchi = xp.abs(_wrap(maps.chi - spec.direction, xp))
        arm = maps.r * xp.sin(xp.minimum(dchi - ARM_HALF_ANGLE, math.pi / 2))
        arm = xp.where(dchi < math.pi / 2, arm, maps.r)
        return xp.minimum(disc, arm)
    if spec.kind == "wedge":
        ax, ay = -spec.width * ux, -spec.width * uy  # apex behind the beam, opposite to the axis
        vx, vy = dx - ax, dy - ay
        dist = xp.sqrt(vx * vx + vy * vy)
        phi = xp.arctan2(vx, -vy)
        dphi = xp.abs(_wrap(phi - spec.direction, xp))
        return dist * xp.sin(xp.clip(dphi - spec.half_angle, -math.pi / 2, math.pi / 2))
    raise ValueError(f"Unknown beamstop kind {spec.kind!r}; expected one of {BEAMSTOPS}.")


def blurred_strip(p, half: float, sigma: float, xp=np):
    """Gaussian-blurred indicator of ``|p| < half`` (exact in 1-D), float64 in ``xp``."""
    from scipy.special import erf

    c = 1.0 / (sigma * math.sqrt(2.0))
    p = to_host(p).astype(np.float64)
    return xp.asarray(0.5 * (erf((half - p) * c) + erf((half + p) * c)))


def blurred_disc(r, radius: float, sigma: float, grid: np.ndarray, xp=np):
    """Gaussian-blurred indicator of a disc at distance ``r`` from its centre: ``P(|r + Z| < radius)``.

    ``Z`` is a 2-D Gaussian of sigma ``sigma``; the non-central chi-squared CDF is evaluated on the
    1-D radius ``grid`` and interpolated at ``r``.
    """
    from scipy.stats import ncx2

    disc = ncx2.cdf((radius / sigma) ** 2, 2, (grid / sigma) ** 2)
    return xp.asarray(np.interp(to_host(r), grid, disc))


def _edge(d, sigma: float, xp):
    """Gaussian-blurred indicator of ``d < 0`` (a half-plane at signed distance ``d``)."""
    from scipy.special import erfc

    return xp.asarray(0.5 * erfc(to_host(d).astype(np.float64) / (sigma * math.sqrt(2.0))))


def _soft_blocked(spec: BeamstopSpec, maps: PixelMaps):
    """Blocked fraction (0..1) of a Gaussian-blurred beamstop (the original generator's drawing)."""
    xp = namespace_of(maps.dx)
    s = max(spec.blur, 1e-3)
    ux, uy = math.sin(spec.direction), -math.cos(spec.direction)
    along = maps.dx * ux + maps.dy * uy
    perp = -maps.dx * uy + maps.dy * ux
    if spec.kind == "linear":  # separable: a strip across, a half-line along
        return blurred_strip(perp, spec.width / 2, s, xp) * _edge(-(along + spec.back), s, xp)
    if spec.kind == "circular":
        blocked = blurred_disc(maps.r, spec.width, s, np.linspace(0.0, 2.0 * CONCEPT_SIZE, 2049), xp)
        half = xp.maximum(along, 0.0) * math.tan(ARM_HALF_ANGLE)
        arm = _blurred_arm(perp, half, along, s, xp)
        return xp.maximum(blocked, arm)
    if spec.kind == "wedge":
        return _edge(outside_distance(spec, maps), s, xp)
    raise ValueError(f"Unknown beamstop kind {spec.kind!r}; expected one of {BEAMSTOPS}.")


def _blurred_arm(perp, half, along, sigma: float, xp):
    """A ray of half-width ``half`` (growing with the distance along it), blurred across and at its start."""
    from scipy.special import erf

    c = 1.0 / (sigma * math.sqrt(2.0))
    p, h = to_host(perp).astype(np.float64), to_host(half).astype(np.float64)
    across = 0.5 * (erf((h - p) * c) + erf((h + p) * c))
    return xp.asarray(across) * _edge(-along, sigma, xp)


def transmission_map(spec: BeamstopSpec, maps: PixelMaps):
    """Transmission (float32, shape (H*W,)) of the beamstop over the run's pixels; 1 for ``"none"``."""
    xp = namespace_of(maps.dx)
    if spec.kind == "none":
        return xp.ones_like(maps.dx)
    if spec.style == "soft":
        return (1.0 - _soft_blocked(spec, maps)).astype(xp.float32)
    if spec.style != "sharp":
        raise ValueError(f"Unknown beamstop style {spec.style!r}; expected 'sharp' or 'soft'.")
    scale = CONCEPT_SIZE / maps.size
    blur = max(spec.blur, 0.5 * scale)  # at least half an output pixel, so edges are anti-aliased
    d = outside_distance(spec, maps)
    t = xp.clip(d / blur + 0.5, 0.0, 1.0)
    return (spec.t_in + (1.0 - spec.t_in) * t).astype(xp.float32)


def direct_beam_map(maps: PixelMaps, *, peak: float = 1e5, fwhm_x: float = 8.0, fwhm_y: float = 2.0):
    """The direct beam: a 2-D Gaussian at the beam centre (FWHM 8 x 2 conceptual px, peak 1e5).

    Each output pixel holds the Gaussian's mean over its area (exact, via the error function), so the
    integrated flux is the same at every output size even when the beam is narrower than a pixel.
    """
    from scipy.special import erf

    xp = namespace_of(maps.dx)
    n = maps.size
    pix = CONCEPT_SIZE / n
    f = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    sx, sy = fwhm_x * f, fwhm_y * f
    centres = (np.arange(n) + 0.5) * pix
    dx0 = float(to_host(maps.dx[0])) - centres[0]   # beam-relative offset of the first column
    dy0 = float(to_host(maps.dy[0])) - centres[0]
    x = centres + dx0
    y = centres + dy0

    def box(d, s):
        return 0.5 * (erf((d + pix / 2) / (s * math.sqrt(2))) - erf((d - pix / 2) / (s * math.sqrt(2))))

    flux = peak * 2.0 * math.pi * sx * sy / pix**2
    img = flux * np.outer(box(y, sy), box(x, sx))
    return xp.asarray(img.reshape(-1).astype(np.float32))
