"""Embedding quality: trustworthiness (Venna & Kaski) on a seeded subsample.

scikit-learn's ``trustworthiness`` builds an n x n distance matrix, so it runs on at most ``sample``
points (default 5,000: ~200 MB of float64 distances). A high value (close to 1) means that points
that are near on the map are near in the input space.

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
                    random_state: int | None = 0, metric: str = "euclidean") -> float:
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
        Input-space metric.

    Returns
    -------
    float in [0, 1]
    """
    from sklearn.manifold import trustworthiness as _tw

    X = np.asarray(to_host(X), dtype=np.float64)
    Y = np.asarray(to_host(embedding), dtype=np.float64)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
        raise ValueError(f"trustworthiness needs X (n, d) and embedding (n, k) with the same n; "
                         f"got {X.shape} and {Y.shape}.")
    check_random_state(random_state, owner="trustworthiness")
    idx = sample_indices(X.shape[0], sample, random_state=random_state)
    k = int(n_neighbors)
    if not 1 <= k < len(idx) / 2:
        raise ValueError(f"The 'n_neighbors' parameter of trustworthiness must be in [1, n/2) for n={len(idx)}. "
                         f"Got {n_neighbors!r} instead.")
    if not (np.isfinite(X[idx]).all() and np.isfinite(Y[idx]).all()):
        raise ValueError("trustworthiness: X or embedding holds NaN or inf.")
    return float(_tw(X[idx], Y[idx], n_neighbors=k, metric=metric))
