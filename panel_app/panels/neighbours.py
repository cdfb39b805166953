"""Nearest neighbours in FEA: a reduced copy of the features and a scikit-learn index, built once per process.

When the embed stage stored its PCA-reduced FEA (``RUN/fea_reduced.npy``), that copy is used as it is
(memory-mapped: a 1M-image run is ready in seconds); otherwise it is built from ``features.zarr`` as below.

Reading 1M x 2048 float16 features (4 GB) into every server process is not an option, so the index works
on a PCA-reduced copy: PCA (randomized) is fitted on a seeded sample of at most ``fit_rows`` rows, then
all rows are projected chunk by chunk (one Zarr chunk in memory at a time) into ``n_components``
float32 columns (1M x 64 = 256 MB). Queries use :class:`sklearn.neighbors.NearestNeighbors` on that
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
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["FeatureIndex", "feature_index", "BACKGROUND_ROWS"]

log = logging.getLogger(__name__)


@dataclass
class FeatureIndex:
    """A k-nearest-neighbour index over (reduced) FEA features.

    Attributes
    ----------
    reduced : ndarray of float32, shape (n, d)
        The indexed vectors (PCA-reduced when the features were wider than ``n_components``).
    sq_norms : ndarray of float32, shape (n,)
        Squared norms of the rows of ``reduced``.
    explained_variance : float or None
        Fraction of the variance kept by the PCA (``None`` without PCA).
    build_seconds : float
        Wall time of :meth:`build`.
    """

    reduced: np.ndarray
    sq_norms: np.ndarray
    explained_variance: float | None
    build_seconds: float

    @classmethod
    def build(
        cls,
        features: Any,
        *,
        n_components: int = 64,
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
        sq_norms = np.einsum("ij,ij->i", reduced, reduced)
        seconds = time.perf_counter() - t0
        log.info("FEA neighbour index: %d x %d -> %d dims (variance kept %s) in %.2f s",
                 n, d, reduced.shape[1], explained, seconds)
        return cls(reduced=reduced, sq_norms=sq_norms, explained_variance=explained, build_seconds=seconds)

    @classmethod
    def from_reduced(cls, reduced: Any, *, explained_variance: float | None = None) -> "FeatureIndex":
        """Index an already reduced feature matrix (e.g. the run's ``fea_reduced.npy``) without a PCA."""
        t0 = time.perf_counter()
        out = np.array(reduced, dtype=np.float32)  # an in-memory copy, detached from a memory map
        n = out.shape[0]
        sq_norms = np.einsum("ij,ij->i", out, out)
        seconds = time.perf_counter() - t0
        log.info("FEA neighbour index: stored %d x %d reduced features in %.2f s", n, out.shape[1], seconds)
        return cls(reduced=out, sq_norms=sq_norms, explained_variance=explained_variance, build_seconds=seconds)

    def query(self, ids: np.ndarray, *, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest other images of each id.

        Returns
        -------
        neighbours : ndarray of int64, shape (len(ids), k)
        distances : ndarray of float32, shape (len(ids), k)
            Euclidean, in the reduced space.
        """
        ids = np.asarray(ids, dtype=np.int64).ravel()
        n = len(self.reduced)
        if len(ids) and (ids.min() < 0 or ids.max() >= n):
            raise ValueError(f"The 'ids' parameter of FeatureIndex.query must hold ids in 0..{n - 1}. "
                             f"Got {ids[(ids < 0) | (ids >= n)][:5].tolist()} instead.")
        k = max(0, min(int(k), n - 1))
        out_i = np.empty((len(ids), k), dtype=np.int64)
        out_d = np.empty((len(ids), k), dtype=np.float32)
        n_cand = min(n, k + 1 + 8)  # spare candidates absorb the rounding of the norm trick
        for r, i in enumerate(ids):
            q = self.reduced[i]
            d2 = self.sq_norms - 2.0 * (self.reduced @ q) + float(q @ q)
            cand = np.argpartition(d2, n_cand - 1)[:n_cand] if n_cand < n else np.arange(n)
            cand = cand[cand != i]
            exact = np.sqrt(((self.reduced[cand] - q) ** 2).sum(axis=1))
            order = np.lexsort((cand, exact))[:k]
            out_i[r], out_d[r] = cand[order], exact[order]
        return out_i, out_d


def _take_rows(features: Any, rows: np.ndarray) -> np.ndarray:
    if hasattr(features, "get_orthogonal_selection"):
        return np.asarray(features.get_orthogonal_selection((rows, slice(None))), dtype=np.float32)
    return np.asarray(features[rows], dtype=np.float32)


def _stored_index(data: Any) -> FeatureIndex | None:
    """The index over the run's ``fea_reduced.npy`` when the embed stage wrote one for these rows, else None."""
    store = getattr(data, "store", None)
    if store is None or not store.fea_reduced.exists():
        return None
    reduced = store.fea_reduced.load()
    if reduced.ndim != 2 or reduced.shape[0] != data.n:
        log.warning("%s has shape %s, not (%d, k); building the FEA index from features.zarr instead",
                    store.fea_reduced.path, reduced.shape, data.n)
        return None
    evr = data.embedding_meta.get("spaces", {}).get("fea", {}).get("pca_explained_variance")
    return FeatureIndex.from_reduced(reduced, explained_variance=evr)


#: Above this many images the detail view does not block on a missing index: it is built in a thread.
BACKGROUND_ROWS = 200_000
_BUILDING: dict[tuple, threading.Thread] = {}
_BUILDING_LOCK = threading.Lock()


def feature_index(data: Any, *, wait: bool = True, **params: Any) -> FeatureIndex | None:
    """The process-wide :class:`FeatureIndex` of a :class:`~panel_app.data.RunData` (built on first use).

    Parameters
    ----------
    data : RunData
    wait : bool
        If False and the index is not built yet, start building it in a background thread (once per
        process) and return None at once; the caller shows "index building" and asks again later.
    **params
        Passed to :meth:`FeatureIndex.build`.

    Raises
    ------
    ValueError
        If the run has no features.
    """
    if data.features is None:
        raise ValueError("This run has no FEA features (features.zarr). Hint: run `xsgpu infer RUN --model MODEL`.")
    key = ("fea_index", tuple(sorted(params.items())))
    if wait:
        return data.cached(key, lambda: _stored_index(data) or FeatureIndex.build(data.features, **params))
    got = data._cache.get(key)  # RunData's shared cache, read without taking its build lock
    if got is not None:
        return got
    with _BUILDING_LOCK:
        running = _BUILDING.get((id(data), key))
        if running is None or not running.is_alive():
            thread = threading.Thread(target=lambda: feature_index(data, wait=True, **params),
                                      name="xsgpu-fea-index", daemon=True)
            _BUILDING[(id(data), key)] = thread
            log.info("building the FEA neighbour index of %d images in the background", data.n)
            thread.start()
    return None
