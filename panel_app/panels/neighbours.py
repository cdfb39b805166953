"""Nearest neighbours in FEA: a reduced copy of the features and a scikit-learn index, built once per process.

Reading 1M x 2048 float16 features (4 GB) into every server process is not an option, so the index works
on a PCA-reduced copy: PCA (randomized) is fitted on a seeded sample of at most ``fit_rows`` rows, then
all rows are projected chunk by chunk (one Zarr chunk in memory at a time) into ``n_components``
float32 columns (1M x 32 = 128 MB). Queries use :class:`sklearn.neighbors.NearestNeighbors` on that
copy. Small feature sets (``D <= n_components``) are indexed as they are.

Examples
--------
>>> import numpy as np
>>> f = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
>>> index = FeatureIndex.build(f, n_components=16, progress=False)
>>> ids, dist = index.query(np.array([3]), k=2)  # the 2 nearest images other than 3 itself
>>> ids.shape, 3 in ids
((1, 2), False)
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["FeatureIndex", "feature_index"]

log = logging.getLogger(__name__)


@dataclass
class FeatureIndex:
    """A k-nearest-neighbour index over (reduced) FEA features.

    Attributes
    ----------
    reduced : ndarray of float32, shape (n, d)
        The indexed vectors (PCA-reduced when the features were wider than ``n_components``).
    nn : sklearn.neighbors.NearestNeighbors
        Fitted on ``reduced``.
    explained_variance : float or None
        Fraction of the variance kept by the PCA (``None`` without PCA).
    build_seconds : float
        Wall time of :meth:`build`.
    """

    reduced: np.ndarray
    nn: Any
    explained_variance: float | None
    build_seconds: float

    @classmethod
    def build(
        cls,
        features: Any,
        *,
        n_components: int = 32,
        fit_rows: int = 20_000,
        chunk_rows: int = 16_384,
        random_state: int = 0,
        progress: bool = True,
    ) -> "FeatureIndex":
        """Reduce and index a feature matrix.

        Parameters
        ----------
        features : array-like, shape (n, D)
            A NumPy or Zarr array (read in chunks of ``chunk_rows`` rows).
        n_components : int
            Dimensions kept by the PCA.
        fit_rows : int
            Rows (a seeded random sample) used to fit the PCA.
        chunk_rows : int
            Rows read and projected at a time.
        random_state : int
        progress : bool
            Show a tqdm bar while projecting.
        """
        from sklearn.decomposition import PCA
        from sklearn.neighbors import NearestNeighbors
        from tqdm.auto import tqdm

        t0 = time.perf_counter()
        shape = tuple(features.shape)
        if len(shape) != 2 or shape[0] < 2:
            raise ValueError(f"The 'features' parameter of FeatureIndex.build must have shape (n >= 2, D). "
                             f"Got shape {shape} instead.")
        n, d = shape
        pca = None
        explained = None
        if d > n_components:
            rng = np.random.default_rng(random_state)
            rows = np.sort(rng.choice(n, size=min(n, fit_rows), replace=False))
            sample = _take_rows(features, rows)
            k = min(n_components, len(rows), d)
            pca = PCA(n_components=k, svd_solver="randomized" if k < min(sample.shape) - 1 else "full",
                      random_state=random_state).fit(sample)
            explained = float(pca.explained_variance_ratio_.sum())
            reduced = np.empty((n, k), dtype=np.float32)
        else:
            reduced = np.empty((n, d), dtype=np.float32)
        for start in tqdm(range(0, n, chunk_rows), disable=not progress, desc="FEA index", unit="chunk"):
            block = np.asarray(features[start:start + chunk_rows], dtype=np.float32)
            reduced[start:start + len(block)] = pca.transform(block) if pca is not None else block
        nn = NearestNeighbors(algorithm="auto").fit(reduced)
        seconds = time.perf_counter() - t0
        log.info("FEA neighbour index: %d x %d -> %d dims (variance kept %s) in %.2f s",
                 n, d, reduced.shape[1], explained, seconds)
        return cls(reduced=reduced, nn=nn, explained_variance=explained, build_seconds=seconds)

    def query(self, ids: np.ndarray, *, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest other images of each id.

        Returns
        -------
        neighbours : ndarray of int64, shape (len(ids), k)
        distances : ndarray of float32, shape (len(ids), k)
            Euclidean, in the reduced space.
        """
        ids = np.asarray(ids, dtype=np.int64)
        k_eff = min(k + 1, len(self.reduced))
        dist, idx = self.nn.kneighbors(self.reduced[ids], n_neighbors=k_eff)
        out_i = np.empty((len(ids), k_eff - 1), dtype=np.int64)
        out_d = np.empty((len(ids), k_eff - 1), dtype=np.float32)
        for r, i in enumerate(ids):
            keep = idx[r] != i
            row_i, row_d = idx[r][keep][: k_eff - 1], dist[r][keep][: k_eff - 1]
            out_i[r], out_d[r] = row_i, row_d
        return out_i, out_d


def _take_rows(features: Any, rows: np.ndarray) -> np.ndarray:
    if hasattr(features, "get_orthogonal_selection"):
        return np.asarray(features.get_orthogonal_selection((rows, slice(None))), dtype=np.float32)
    return np.asarray(features[rows], dtype=np.float32)


def feature_index(data: Any, **params: Any) -> FeatureIndex:
    """The process-wide :class:`FeatureIndex` of a :class:`~panel_app.data.RunData` (built on first use).

    Raises
    ------
    ValueError
        If the run has no features.
    """
    if data.features is None:
        raise ValueError("This run has no FEA features (features.zarr). Hint: run `xsgpu infer RUN --model MODEL`.")
    return data.cached(("fea_index", tuple(sorted(params.items()))), lambda: FeatureIndex.build(data.features, **params))
