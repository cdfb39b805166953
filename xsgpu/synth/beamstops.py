"""Beamstop transmission maps and the direct beam (per run, on the run's pixel maps).

Three beamstop shapes of the original generator (DOMAIN.md): a linear bar from just behind the beam to
the image edge, a circular disc on a thin arm (``|chi - chi_arm| < 2 deg``), and a wedge whose apex is
displaced from the beam. Each is a multiplicative transmission in [t_in, 1] with edges blurred over
``blur`` conceptual pixels; ``t_in`` (1e-5..1e-3) lets a faint image of the direct beam through.
Beam-off runs have no beamstop (transmission 1).

Directions are azimuths in radians with the image convention of :mod:`xsgpu.synth.geometry`
(0 = up, +pi/2 = right), so a unit vector is ``(sin a, -cos a)`` in (x, y) pixel coordinates.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from xsgpu.backend import namespace_of, to_host
from xsgpu.synth.geometry import CONCEPT_SIZE, PixelMaps

__all__ = ["BEAMSTOPS", "BeamstopSpec", "transmission_map", "direct_beam_map", "ARM_HALF_ANGLE"]

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
        Transmission inside the beamstop.
    blur : float
        Edge blur length.
    """

    kind: str
    direction: float = 0.0
    width: float = 12.0
    half_angle: float = math.radians(12.0)
    t_in: float = 1e-4
    blur: float = 1.5


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


def transmission_map(spec: BeamstopSpec, maps: PixelMaps):
    """Transmission (float32, shape (H*W,)) of the beamstop over the run's pixels; 1 for ``"none"``."""
    xp = namespace_of(maps.dx)
    if spec.kind == "none":
        return xp.ones_like(maps.dx)
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
