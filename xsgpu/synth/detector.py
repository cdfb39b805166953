"""The detector model: dark counts, clipping, counting noise, zingers and module-gap masks.

``lambda = clip(I * transmission + dark, 0, 2^24)``; counts ~ Poisson(lambda); zingers (isolated hot
pixels) on a few images; counts clipped at 2^24; gap pixels masked (count 0, mask True).

Counting noise is drawn with one 16-bit uniform per pixel, which keeps it cheap and identical in
NumPy and CuPy:

* ``lambda < 16``: exact Poisson quantiles from a table (lambda on a 1/32 grid with stochastic rounding
  by 6 independent bits of the uniform, so the mean is kept; 1024 quantiles per lambda, i.e. the
  outermost 1/2048 of each tail is folded into the last quantile);
* ``lambda >= 16``: Gaussian approximation ``rint(lambda + sqrt(lambda) z)`` with ``z`` the 65536-quantile
  table of the standard normal (skewness of the Poisson, ``1/sqrt(lambda) <= 0.25``, is neglected).

Examples
--------
>>> import numpy as np
>>> from xsgpu.synth.detector import sample_counts
>>> lam = np.full((2, 20000), 3.0, dtype=np.float32)
>>> c = sample_counts(lam, np.random.default_rng(0))
>>> bool(abs(c.mean() - 3.0) < 0.05), bool(abs(c.var() - 3.0) < 0.15)
(True, True)
"""
from __future__ import annotations

import functools

import numpy as np
from scipy.special import ndtri

from xsgpu.backend import namespace_of

__all__ = ["MAX_COUNTS", "DARK_RATE", "POISSON_EXACT_BELOW", "sample_counts", "uniform_u16", "gap_mask",
           "noise_tables", "LAM_STEPS", "N_QUANTILES"]

MAX_COUNTS = float(2**24)
DARK_RATE = 0.002
POISSON_EXACT_BELOW = 16.0
_LAM_STEPS = 32          # lambda grid 1/32
_N_LAM = int(POISSON_EXACT_BELOW * _LAM_STEPS) + 2
_N_Q = 1024              # quantiles per lambda (10 bits)


@functools.lru_cache(maxsize=1)
def _host_tables() -> tuple[np.ndarray, np.ndarray]:
    lam = np.arange(_N_LAM) / _LAM_STEPS
    k = np.arange(80)
    # Poisson CDF by recursion on the pmf, in float64
    log_pmf = k[None, :] * np.log(np.maximum(lam[:, None], 1e-300)) - lam[:, None] - np.cumsum(
        np.log(np.maximum(k, 1)))[None, :]
    pmf = np.exp(log_pmf)
    pmf[0] = 0.0
    pmf[0, 0] = 1.0
    cdf = np.cumsum(pmf, axis=1)
    u = (np.arange(_N_Q) + 0.5) / _N_Q
    table = np.empty((_N_LAM, _N_Q), dtype=np.uint8)
    for i in range(_N_LAM):
        table[i] = np.minimum(np.searchsorted(cdf[i], u), k[-1])
    z = ndtri((np.arange(65536) + 0.5) / 65536).astype(np.float32)
    return table.reshape(-1), z


_device_tables: dict = {}
LAM_STEPS = _LAM_STEPS
N_QUANTILES = _N_Q


def noise_tables(xp=np):
    """``(poisson_table uint8 (n_lambda * 1024,), normal_quantiles float32 (65536,))`` in ``xp``."""
    return _tables(xp)


def _tables(xp):
    if xp is np:
        return _host_tables()
    key = id(xp)
    if key not in _device_tables:
        t, z = _host_tables()
        _device_tables[key] = (xp.asarray(t), xp.asarray(z))
    return _device_tables[key]


def uniform_u16(rng, shape, xp):
    """Uniform 16-bit integers (uint16) from a NumPy or CuPy Generator."""
    if xp is np:
        return rng.integers(0, 65536, size=shape, dtype=np.uint16)
    return (rng.random(shape, dtype=xp.float32) * 65536.0).astype(xp.uint16)


def sample_counts(lam, rng=None, *, u=None):
    """Draw Poisson counts for expected counts ``lam`` (float32 array; NumPy or CuPy, ``rng`` to match).

    ``u`` (uint16, same shape) gives the uniforms explicitly; otherwise they are drawn from ``rng``.
    Returns float32 counts of the same shape (see the module docstring for the method).
    """
    xp = namespace_of(lam)
    table, ztab = _tables(xp)
    lam = xp.clip(lam, 0.0, MAX_COUNTS).astype(xp.float32, copy=False)
    if u is None:
        u = uniform_u16(rng, lam.shape, xp)
    # low-lambda path: table lookup with stochastic rounding of lambda to the 1/32 grid
    li = lam * xp.float32(_LAM_STEPS) + (u & 63).astype(xp.float32) * xp.float32(1 / 64)
    li = xp.minimum(li, xp.float32(_N_LAM - 1)).astype(xp.int32)
    flat = li * _N_Q + (u >> 6).astype(xp.int32)
    low = xp.take(table, flat).astype(xp.float32)
    # high-lambda path: Gaussian quantile of the same uniform
    high = xp.rint(lam + xp.sqrt(lam) * xp.take(ztab, u))
    return xp.where(lam < xp.float32(POISSON_EXACT_BELOW), low, xp.maximum(high, 0.0)).astype(xp.float32)


def gap_mask(maps, *, row0: float | None, col0: float | None, row_gap: float = 39.0, col_gap: float = 16.0):
    """Module-gap mask (True = no data) over the run's pixels, shape (H*W,).

    Pilatus modules are separated by 17-row and 7-column gaps of 172 um pixels, i.e. about 39 and 16
    conceptual (75 um) pixels; a 256-pixel conceptual detector sees at most one of each. ``row0`` /
    ``col0`` are their positions in conceptual pixels (None: no such gap).
    """
    xp = namespace_of(maps.dx)
    scale = maps.size / 256.0
    n = maps.size
    idx = xp.arange(n, dtype=xp.float32) + 0.5
    rows = xp.zeros(n, dtype=bool)
    cols = xp.zeros(n, dtype=bool)
    if row0 is not None:
        rows = (idx >= row0 * scale) & (idx < (row0 + row_gap) * scale)
    if col0 is not None:
        cols = (idx >= col0 * scale) & (idx < (col0 + col_gap) * scale)
    return (rows[:, None] | cols[None, :]).reshape(-1)

