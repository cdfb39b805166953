"""Embedding quality: trustworthiness (Venna & Kaski) on a seeded subsample.

The measure is the one of ``sklearn.manifold.trustworthiness`` (the same value on data without tied
distances), computed in blocks of rows: scikit-learn builds and sorts the whole n x n distance matrix
(20 GB of float64 at 50,000 points), here a block of ``block`` rows x n distances is held at a time
(~200 MB at 50,000 points) and only the input-space ranks of each point's k map neighbours are
counted. It still costs O(n^2 d), so it runs on a seeded subsample of ``sample`` points (default 5,000;
50,000 takes minutes). A high value (close to 1) means that points that are near on the map are near
in the input space.

Examples
--------
>>> import numpy as np
>>> from xsgpu.embed.quality import trustworthiness
>>> X = np.random.default_rng(0).normal(size=(100, 5))
>>> round(trustworthiness(X, X[:, :2], n_neighbors=5), 2) > 0.5
True
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from xsgpu.backend import to_host
from xsgpu.embed._base import check_random_state

__all__ = ["trustworthiness", "sample_indices"]

log = logging.getLogger(__name__)


def sample_indices(n: int, sample: int | None, *, random_state: int | None = 0) -> np.ndarray:
    """Sorted indices of a seeded subsample of ``min(n, sample)`` out of ``n`` (all when ``sample`` is None)."""
    if sample is None or sample >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(random_state).choice(n, size=sample, replace=False))


def trustworthiness(X: Any, embedding: Any, *, n_neighbors: int = 10, sample: int | None = 5000,
                    random_state: int | None = 0, metric: str = "euclidean", block: int = 512) -> float:
    """Trustworthiness of ``embedding`` (n, k) for inputs ``X`` (n, d), on a subsample.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    embedding : array-like of shape (n_samples, n_components)
    n_neighbors : int
        k of the measure (the issue fixes k = 10).
    sample : int or None
        Evaluate on this many seeded random points (``None``: all).
    random_state : int or None
    metric : str
        Input-space metric (any of ``sklearn.metrics.pairwise_distances``).
    block : int
        Rows of the input-space distance matrix held at a time.

    Returns
    -------
    float in [0, 1]
    """
    X = np.asarray(to_host(X))  # no copy of an array or memory map: only the subsample is cast and checked
    Y = np.asarray(to_host(embedding))
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
        raise ValueError(f"trustworthiness needs X (n, d) and embedding (n, k) with the same n; "
                         f"got {X.shape} and {Y.shape}.")
    check_random_state(random_state, owner="trustworthiness")
    idx = sample_indices(X.shape[0], sample, random_state=random_state)
    k = int(n_neighbors)
    if not 1 <= k < len(idx) / 2:
        raise ValueError(f"The 'n_neighbors' parameter of trustworthiness must be in [1, n/2) for n={len(idx)}. "
                         f"Got {n_neighbors!r} instead.")
    X, Y = np.asarray(X[idx], dtype=np.float64), np.asarray(Y[idx], dtype=np.float64)
    if not (np.isfinite(X).all() and np.isfinite(Y).all()):
        raise ValueError("trustworthiness: X or embedding holds NaN or inf.")
    return _blocked_trustworthiness(X, Y, k, metric=metric, block=max(1, int(block)))


def _blocked_trustworthiness(X: np.ndarray, Y: np.ndarray, k: int, *, metric: str, block: int) -> float:
    """Venna & Kaski's trustworthiness of map ``Y`` for inputs ``X``, ``block`` rows of distances at a time.

    For each point i and each of its k nearest map neighbours j, the input-space rank r(i, j) is the
    number of points closer to i than j (i itself, at distance 0, is rank 0, as in scikit-learn); the
    penalty is the sum of r(i, j) - k over the pairs with r(i, j) > k.
    """
    from sklearn.metrics import pairwise_distances
    from sklearn.neighbors import NearestNeighbors

    n = X.shape[0]
    map_nbrs = NearestNeighbors(n_neighbors=k).fit(Y).kneighbors(return_distance=False)
    penalty = 0
    for start in range(0, n, block):
        rows = slice(start, min(start + block, n))
        d = pairwise_distances(X[rows], X, metric=metric)
        d[np.arange(d.shape[0]), np.arange(rows.start, rows.stop)] = -np.inf  # i itself ranks 0
        d_nbr = np.take_along_axis(d, map_nbrs[rows], axis=1)
        d.sort(axis=1)
        ranks = np.stack([np.searchsorted(d[r], d_nbr[r], side="left") for r in range(d.shape[0])])
        excess = ranks - k
        penalty += int(excess[excess > 0].sum())
    return float(1.0 - penalty * 2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0)))
