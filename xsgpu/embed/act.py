"""ACT (true labels) is binary with massive duplication: embed the unique vectors, then spread the copies.

N images carry only a few hundred distinct 17-bit label vectors (about 3.3 labels per image, strongly
correlated). Fed to t-SNE as is, hundreds of exact duplicates sit at distance 0: every kNN list is
all ties, the perplexity calibration degenerates, and the optimiser spends its time pushing copies of
one vector apart. So (docs/embeddings.md):

1. :func:`dedupe_labels` finds the U unique vectors, the inverse index and the counts;
2. the projector embeds the U unique vectors only (unweighted: t-SNE has no sample weights, and
   the copies add no geometry);
3. :func:`spread_duplicates` places the copies of each unique vector on a deterministic sunflower
   (Vogel spiral) disc around its point: uniform density inside the disc, radius growing with
   sqrt(count) and capped below half the distance to the nearest other unique point, so groups never
   overlap and a group of 5,000 reads as a larger, denser blot than a group of 3.

Examples
--------
>>> import numpy as np
>>> from xsgpu.embed.act import dedupe_labels, spread_duplicates
>>> y = np.array([[1, 0], [1, 0], [0, 1], [1, 0]], dtype=bool)
>>> unique, inverse, counts = dedupe_labels(y)
>>> unique.astype(int).tolist(), inverse.tolist(), counts.tolist()
([[0, 1], [1, 0]], [1, 1, 0, 1], [1, 3])
>>> xy = spread_duplicates(np.array([[0.0, 0.0], [10.0, 0.0]]), inverse, counts, random_state=0)
>>> xy.shape, bool(np.all(np.abs(xy[inverse == 1, 0] - 10) < 5))
((4, 2), True)
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

__all__ = ["dedupe_labels", "spread_duplicates", "GOLDEN_ANGLE"]

log = logging.getLogger(__name__)

GOLDEN_ANGLE = np.pi * (3.0 - np.sqrt(5.0))


def dedupe_labels(labels: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the unique label vectors, the inverse index and the counts.

    Parameters
    ----------
    labels : array-like of bool, shape (n_samples, n_attributes)

    Returns
    -------
    unique : ndarray of bool, shape (n_unique, n_attributes)
        Sorted lexicographically (deterministic).
    inverse : ndarray of int64, shape (n_samples,)
        ``unique[inverse] == labels``.
    counts : ndarray of int64, shape (n_unique,)
    """
    y = np.asarray(labels)
    if y.ndim != 2:
        raise ValueError(f"The 'labels' parameter of dedupe_labels must be 2-D (n_samples, n_attributes). "
                         f"Got shape {y.shape} instead.")
    if y.dtype != bool:
        if not np.isin(y, (0, 1)).all():
            raise ValueError("The 'labels' parameter of dedupe_labels must be binary (bool or 0/1).")
        y = y.astype(bool)
    if y.shape[0] == 0:
        return y[:0], np.zeros(0, np.int64), np.zeros(0, np.int64)
    unique, inverse, counts = np.unique(y, axis=0, return_inverse=True, return_counts=True)
    return unique, inverse.reshape(-1).astype(np.int64), counts.astype(np.int64)


def _nearest_other_distance(points: np.ndarray) -> np.ndarray:
    """Distance from each point to its nearest *other* point (inf for a single point)."""
    n = points.shape[0]
    if n < 2:
        return np.full(n, np.inf)
    from sklearn.neighbors import NearestNeighbors

    dist, _ = NearestNeighbors(n_neighbors=2).fit(points).kneighbors(points)
    return dist[:, 1]


def spread_duplicates(unique_xy: Any, inverse: Any, counts: Any, *, random_state: int | None = 0,
                      max_fraction: float = 0.45, min_fraction: float = 0.08) -> np.ndarray:
    """Place every sample near its unique vector's point on a deterministic sunflower disc.

    Parameters
    ----------
    unique_xy : ndarray of shape (n_unique, 2)
        Coordinates of the unique vectors.
    inverse : ndarray of int, shape (n_samples,)
        Index of each sample's unique vector (from :func:`dedupe_labels`).
    counts : ndarray of int, shape (n_unique,)
    random_state : int or None
        Seeds only the rotation of each disc (``None``: no rotation); output is a pure function of
        the inputs and the seed.
    max_fraction, min_fraction : float
        Disc radius of the largest / a single-sample group, as fractions of the distance to the
        nearest other unique point (the largest stays below half of it, so discs never overlap).

    Returns
    -------
    ndarray of float32, shape (n_samples, 2)
    """
    uxy = np.asarray(unique_xy, dtype=np.float64)
    inverse = np.asarray(inverse, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    if uxy.ndim != 2 or uxy.shape[1] != 2 or counts.shape != (uxy.shape[0],):
        raise ValueError(f"spread_duplicates needs unique_xy (U, 2) and counts (U,); got {uxy.shape} and {counts.shape}.")
    if not 0 < min_fraction <= max_fraction < 0.5:
        raise ValueError(f"spread_duplicates needs 0 < min_fraction <= max_fraction < 0.5; "
                         f"got {min_fraction}, {max_fraction}.")
    if inverse.size and (inverse.min() < 0 or inverse.max() >= uxy.shape[0]):
        raise ValueError("The 'inverse' parameter of spread_duplicates indexes outside unique_xy.")
    if np.bincount(inverse, minlength=uxy.shape[0]).tolist() != counts.tolist():
        raise ValueError("The 'counts' parameter of spread_duplicates does not match the inverse index.")
    spacing = _nearest_other_distance(uxy)
    if uxy.shape[0] < 2 or not np.isfinite(spacing).all():
        extent = float(np.ptp(uxy, axis=0).max()) if uxy.shape[0] > 1 else 0.0
        spacing = np.full(uxy.shape[0], extent if extent > 0 else 1.0)
    share = np.sqrt(counts / max(int(counts.max(initial=1)), 1))
    radius = spacing * (min_fraction + (max_fraction - min_fraction) * share)
    # rank of each sample within its group (stable: original order)
    order = np.argsort(inverse, kind="stable")
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.empty_like(inverse)
    rank[order] = np.arange(inverse.size) - np.repeat(starts, counts)
    rotation = (np.random.default_rng(random_state).uniform(0, 2 * np.pi, uxy.shape[0])
                if random_state is not None else np.zeros(uxy.shape[0]))
    c = counts[inverse]
    r = radius[inverse] * np.sqrt((rank + 0.5) / c)
    theta = rank * GOLDEN_ANGLE + rotation[inverse]
    r[c == 1] = 0.0  # a lone sample sits exactly on its unique point
    out = uxy[inverse] + np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)
    return out.astype(np.float32)
