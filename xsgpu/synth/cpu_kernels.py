"""Fused CPU kernel (numba) for the per-pixel work: compose the expected counts and draw the noise.

This is a CPU fast path of :meth:`xsgpu.synth.generate._RunRenderer.render`'s NumPy/CuPy reference
code: one pass over the pixels instead of ~20 array passes, parallel over images (numba ``prange``,
the GIL is released). It consumes the same 16-bit uniforms and tables as
:func:`xsgpu.synth.detector.sample_counts`, so both paths give the same counts up to float rounding
(checked in tests/synth/test_detector.py). numba is compiled on first use (cached on disk).
"""
from __future__ import annotations

import functools
import logging

import numpy as np

__all__ = ["numba_available", "compose_counts"]

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def _kernel():
    import numba

    @numba.njit(parallel=True, cache=True, fastmath=False)
    def kernel(iso, qidx, bg, glow_amp, glow, beam, trans, extra, extra_row, u, table, ztab,
               lam_steps, n_q, exact_below, dark, max_counts, noise, beam_scale, blocked, bg_sigma, out):
        n, npx = out.shape
        n_lam = table.shape[0] // n_q
        for i in numba.prange(n):
            b = bg[i]
            ga = glow_amp[i]
            er = extra_row[i]
            bs = beam_scale[i]
            blk = blocked[i]
            sg = bg_sigma[i]
            for p in range(npx):
                lam = iso[i, qidx[p]] + b + bs * beam[p]
                if ga != 0.0:
                    lam += ga * glow[p]
                if er >= 0:
                    lam += extra[er, p]
                tp = trans[p] if blk else 1.0
                lam = lam * tp + dark
                if lam < 0.0:
                    lam = 0.0
                elif lam > max_counts:
                    lam = max_counts
                if not noise:
                    out[i, p] = lam
                    continue
                uu = u[i, p]
                if sg > 0.0:  # pixel-to-pixel background noise (Gaussian, sigma sg x transmission) + counting
                    c = np.float32(np.rint(lam + np.sqrt(lam + (sg * tp) ** 2) * ztab[uu]))
                    out[i, p] = c if c > 0 else 0.0
                    continue
                if lam < exact_below:
                    li = int(lam * lam_steps + (uu & 63) * (1.0 / 64.0))
                    if li > n_lam - 1:
                        li = n_lam - 1
                    c = np.float32(table[li * n_q + (uu >> 6)])
                else:
                    c = np.float32(np.rint(lam + np.sqrt(lam) * ztab[uu]))
                    if c < 0:
                        c = 0.0
                out[i, p] = c
    return kernel


@functools.lru_cache(maxsize=1)
def numba_available() -> bool:
    """Whether the numba kernel compiles here (logged once if not)."""
    try:
        _kernel()
        return True
    except Exception as exc:  # pragma: no cover - numba is a declared dependency
        log.warning("numba kernel unavailable, using the NumPy path: %s", exc)
        return False


def compose_counts(iso, qidx, bg, glow_amp, glow, beam, trans, extra, extra_row, u, *, table, ztab,
                   lam_steps: int, n_q: int, exact_below: float, dark: float, max_counts: float,
                   noise: bool = True, beam_scale=None, blocked=None, bg_sigma=None, out=None):
    """Counts (n, npx) float32 for ``lam = (iso[i, qidx] + bg + glow_amp*glow + extra + s_i beam) * trans + dark``.

    Parameters
    ----------
    iso : float32 (n, Q)
        Summed isotropic radial profiles.
    qidx : int (npx,)
        q-bin index of each pixel.
    bg, glow_amp : float32 (n,)
    glow, beam, trans : float32 (npx,)
    extra : float32 (m, npx)
        Per-image sums of the anisotropic terms and streaks; ``extra_row[i]`` is the row for image
        ``i`` or -1.
    u : uint16 (n, npx)
        Uniforms for the noise.
    noise : bool
        False: write the expected counts ``lam`` (no counting noise).
    beam_scale : float32 (n,), optional
        Direct-beam factor ``s_i`` per image (0 for a dark frame); default 1.
    blocked : uint8 (n,), optional
        0 where an image is not multiplied by the beamstop transmission (a direct-beam frame); default 1.
    bg_sigma : float32 (n,), optional
        Pixel-to-pixel standard deviation of an image's background (before the beamstop); where > 0
        the counts are ``rint(lam + sqrt(lam + (bg_sigma trans)^2) z)``, clipped at 0. Default 0.
    out : float32 (n, npx), optional
        Where to write the counts (C-contiguous); allocated if None.
    """
    if out is None:
        out = np.empty(u.shape, dtype=np.float32)
    n = u.shape[0]
    beam_scale = np.ones(n, np.float32) if beam_scale is None else np.ascontiguousarray(beam_scale, np.float32)
    blocked = np.ones(n, np.uint8) if blocked is None else np.ascontiguousarray(blocked, np.uint8)
    bg_sigma = np.zeros(n, np.float32) if bg_sigma is None else np.ascontiguousarray(bg_sigma, np.float32)
    _kernel()(iso, qidx, bg, glow_amp, glow, beam, trans, extra, extra_row, u, table, ztab,
              float(lam_steps), int(n_q), float(exact_below), float(dark), float(max_counts), bool(noise),
              beam_scale, blocked, bg_sigma, out)
    return out
