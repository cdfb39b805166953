"""Maps at scale without a GPU: fit on a stratified sample, then place every other image on that map.

A full openTSNE fit costs hours at a million points on a few cores; cuML does it in a minute on a GPU
node, and that path stays. Elsewhere ``embed_run(..., fit_sample=N)`` fits each space on ``N`` images
chosen by :func:`stratified_sample` and places the rest with openTSNE's ``transform``
(:func:`place_rest`): each new point starts at the median of its nearest sample points' positions
and is optimised against the fixed map. The placement is done in row batches, which a Dask client can
spread over its workers (``map_fn``); each worker rebuilds the map's kNN index once from plain arrays
(:class:`~xsgpu.embed.reference.ReferenceMap`) and keeps it for the batches it is given.

Strata are the predicted label vectors (PRD >= the cutoff), so rare predicted combinations of
attributes keep their place on the map even when a random sample would miss them; the allocation is
proportional with at least one image per stratum while the sample has room (largest remainders).

Examples
--------
>>> import numpy as np
>>> from xsgpu.embed.sample_place import stratified_sample
>>> strata = np.array([0] * 90 + [1] * 9 + [2])
>>> idx = stratified_sample(strata, 10, random_state=0)
>>> len(idx), int((strata[idx] == 2).sum()) == 1
(10, True)
"""
from __future__ import annotations

import hashlib
import logging
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from xsgpu.embed.reference import ReferenceMap
from xsgpu.embed.tsne_cpu import place_points

__all__ = ["DEFAULT_FIT_SAMPLE", "stratified_sample", "prediction_strata", "place_rest", "place_batch",
           "MapFn"]

log = logging.getLogger(__name__)

DEFAULT_FIT_SAMPLE = 100_000
"""The sample size ``xsgpu embed --fit-sample`` uses when given no number."""

MapFn = Callable[[Callable[..., np.ndarray], tuple, Sequence[Any]], Iterable[np.ndarray]]
"""``map_fn(func, shared, batches)``: ``func(*shared, batch)`` for each batch, results in order.

``shared`` holds the large arguments every call needs (the map's inputs and coordinates): a Dask
implementation sends them to each worker once (``client.scatter(..., broadcast=True)``), not per task.
"""

#: per process: map token -> ReferenceMap (a worker rebuilds the kNN index once per map)
_MAPS: dict[str, ReferenceMap] = {}


def prediction_strata(prd: np.ndarray, *, cutoff: float = 0.5) -> np.ndarray:
    """Stratum id (n,) int64 of each image: its predicted label vector (PRD >= ``cutoff``) as a group."""
    bits = np.ascontiguousarray(np.asarray(prd) >= cutoff)
    _, inverse = np.unique(np.packbits(bits, axis=1), axis=0, return_inverse=True)
    return inverse.reshape(-1).astype(np.int64)


def stratified_sample(strata: np.ndarray, size: int, *, random_state: int | None = 0) -> np.ndarray:
    """Sorted indices of a stratified sample of ``size`` rows (all rows when ``size >= n``).

    Parameters
    ----------
    strata : ndarray of shape (n,), int
        Stratum id of each row.
    size : int
        Sample size (>= 1).
    random_state : int or None
        Seed of the draw within each stratum.

    Returns
    -------
    ndarray of shape (min(size, n),), int64, increasing

    Raises
    ------
    ValueError
        For a ``size`` below 1 or ``strata`` that is not one-dimensional.
    """
    strata = np.asarray(strata)
    if strata.ndim != 1:
        raise ValueError(f"The 'strata' parameter of stratified_sample must be 1-D. Got shape {strata.shape} instead.")
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
        raise ValueError(f"The 'size' parameter of stratified_sample must be a positive int. Got {size!r} instead.")
    n = strata.shape[0]
    if size >= n:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(random_state)
    labels, inverse, counts = np.unique(strata, return_inverse=True, return_counts=True)
    exact = counts * (size / n)
    take = np.floor(exact).astype(np.int64)
    if len(labels) <= size:  # every stratum at least once while there is room
        take = np.maximum(take, 1)
    # hand out what is left (or take back what is over) by largest remainders
    order = np.argsort(-(exact - np.floor(exact)), kind="stable")
    diff = size - int(take.sum())
    i = 0
    while diff != 0:
        j = order[i % len(order)]
        if diff > 0 and take[j] < counts[j]:
            take[j] += 1
            diff -= 1
        elif diff < 0 and take[j] > (1 if len(labels) <= size else 0):
            take[j] -= 1
            diff += 1
        i += 1
    rows_by_stratum = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)])
    chosen = [rng.choice(rows_by_stratum[starts[j]:starts[j + 1]], size=int(take[j]), replace=False)
              for j in range(len(labels)) if take[j] > 0]
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def _token(inputs: np.ndarray, coords: np.ndarray, params: dict) -> str:
    h = hashlib.sha256()
    for a in (inputs, coords):
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a[:: max(1, len(a) // 4096)]).tobytes())
    h.update(repr(sorted(params.items())).encode())
    return h.hexdigest()[:16]


def place_batch(token: str, inputs: np.ndarray, coords: np.ndarray, params: dict, X: np.ndarray) -> np.ndarray:
    """Place one batch ``X`` (m, d) onto the map (inputs, coords); returns (m, 2) float32.

    The map's kNN index and affinities are built on first use in this process and kept under
    ``token``, so a Dask worker builds them once for all the batches it places.
    """
    ref = _MAPS.get(token)
    if ref is None:
        ref = ReferenceMap(inputs, coords, perplexity=params.get("perplexity", 30.0),
                           random_state=params.get("random_state", 0), n_jobs=params.get("n_jobs", 1))
        _MAPS.clear()  # one map at a time: a space's index can be GBs
        _MAPS[token] = ref
    return ref.transform(X, perplexity=params.get("place_perplexity", 5.0), n_iter=params.get("n_iter", 250))


def place_rest(X: np.ndarray, sample: np.ndarray, xy_sample: np.ndarray, *, fitted: Any = None,
               perplexity: float = 30.0, random_state: int | None = 0, n_jobs: int = 1,
               batch_rows: int = 20_000, n_iter: int = 250, map_fn: MapFn | None = None,
               progress: bool = False) -> np.ndarray:
    """Coordinates (n, 2) float32 of all rows of ``X``: the sample's as fitted, the others placed.

    Parameters
    ----------
    X : ndarray of shape (n, d)
        Every image's input in this space (PCA-reduced FEA, PRD, ...).
    sample : ndarray of shape (m,), int
        Rows the map was fitted on (increasing).
    xy_sample : ndarray of shape (m, 2)
        Their fitted coordinates.
    fitted : openTSNE.TSNEEmbedding, optional
        The fitted map, used in-process when no ``map_fn`` is given (saves rebuilding its index).
    perplexity, random_state, n_jobs
        Of the map's affinities when a worker rebuilds them (as in the fit).
    batch_rows : int
        Rows placed per task.
    n_iter : int
        Optimisation steps per placed point (openTSNE's transform).
    map_fn : callable, optional
        ``map_fn(func, shared, batches)`` (see :data:`MapFn`); e.g. ``workflows.placement.dask_map_fn``
        to place batches on a Dask client's workers. Default: in this process, one batch after another.
    progress : bool
        A tqdm bar over the batches (in-process placement).
    """
    n = X.shape[0]
    xy = np.empty((n, 2), np.float32)
    xy[sample] = xy_sample
    rest = np.setdiff1d(np.arange(n), sample, assume_unique=True)
    if rest.size == 0:
        return xy
    bounds = [(s, min(s + batch_rows, rest.size)) for s in range(0, rest.size, batch_rows)]
    log.info("placing %d images onto a map fitted on %d, in %d batches of <= %d", rest.size, sample.size,
             len(bounds), batch_rows)
    if map_fn is None:
        from tqdm.auto import tqdm

        if fitted is None:
            fitted = ReferenceMap(X[sample], xy_sample, perplexity=perplexity, random_state=random_state,
                                  n_jobs=n_jobs)._build()
        for a, b in tqdm(bounds, desc="place", disable=not progress):
            xy[rest[a:b]] = place_points(fitted, np.asarray(X[rest[a:b]], np.float64), n_iter=n_iter)
        return xy
    inputs = np.ascontiguousarray(X[sample], dtype=np.float32)
    coords = np.ascontiguousarray(xy_sample, dtype=np.float64)
    params = {"perplexity": perplexity, "random_state": random_state, "n_jobs": n_jobs, "n_iter": n_iter}
    token = _token(inputs, coords, params)
    batches = [np.ascontiguousarray(X[rest[a:b]], dtype=np.float32) for a, b in bounds]
    results = map_fn(place_batch, (token, inputs, coords, params), batches)
    for (a, b), placed in zip(bounds, results):
        xy[rest[a:b]] = placed
    return xy
