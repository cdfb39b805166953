"""Nearest neighbours in FEA over the embed stage's PCA-reduced features, loaded once per process.

The app only reads: the reduced copy of FEA is ``RUN/fea_reduced.npy``, written by ``xsgpu embed RUN``
(reading 1M x 2048 float16 features, 4 GB, into every server process is not an option; the reduced copy
of 1M x 50 float32 is 200 MB). A run without it has no neighbour lists, and the app says which command
writes it (:data:`MISSING_FEA_REDUCED`). An in-memory run (:meth:`~panel_app.data.RunData.from_arrays`,
no run store) indexes its ``features`` as given. Queries are exact (brute force with the norm trick).

Examples
--------
>>> import numpy as np
>>> f = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
>>> index = FeatureIndex.from_reduced(f)
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

__all__ = ["FeatureIndex", "feature_index", "BACKGROUND_ROWS", "MISSING_FEA_REDUCED"]

log = logging.getLogger(__name__)

#: Why a run has no FEA neighbours, and the command that fixes it (``{path}``: the missing file).
MISSING_FEA_REDUCED = ("{path} is missing: FEA neighbours need the embed stage's PCA-reduced features. "
                       "Run `xsgpu embed {run}` to write it.")


@dataclass
class FeatureIndex:
    """A k-nearest-neighbour index over (reduced) FEA features.

    Attributes
    ----------
    reduced : ndarray of float32, shape (n, d)
        The indexed vectors (the embed stage's ``fea_reduced.npy``).
    sq_norms : ndarray of float32, shape (n,)
        Squared norms of the rows of ``reduced``.
    explained_variance : float or None
        Fraction of the variance kept by the PCA (``None`` without PCA).
    build_seconds : float
        Wall time of :meth:`from_reduced`.
    """

    reduced: np.ndarray
    sq_norms: np.ndarray
    explained_variance: float | None
    build_seconds: float

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


def _stored_index(data: Any) -> FeatureIndex:
    """The index over the run's ``fea_reduced.npy`` (or, in memory, the features as given).

    Raises
    ------
    RunStoreError
        When the run has no ``fea_reduced.npy`` or one of other rows; the message names ``xsgpu embed``.
    """
    from xsgpu.io.runstore import RunStoreError

    store = getattr(data, "store", None)
    if store is None:
        return FeatureIndex.from_reduced(data.features)
    path = store.fea_reduced.path
    if not store.fea_reduced.exists():
        raise RunStoreError(MISSING_FEA_REDUCED.format(path=path, run=store.path))
    reduced = store.fea_reduced.load()
    if reduced.ndim != 2 or reduced.shape[0] != data.n:
        raise RunStoreError(f"{path} has shape {reduced.shape}, not ({data.n}, k): it is from other samples. "
                            f"Run `xsgpu embed {store.path}` to write it again.")
    evr = data.embedding_meta.get("spaces", {}).get("fea", {}).get("pca_explained_variance")
    return FeatureIndex.from_reduced(reduced, explained_variance=evr)


#: Above this many images the detail view does not block on a missing index: it is built in a thread.
BACKGROUND_ROWS = 200_000
_BUILDING: dict[tuple, threading.Thread] = {}
_BUILDING_LOCK = threading.Lock()


def feature_index(data: Any, *, wait: bool = True) -> FeatureIndex | None:
    """The process-wide :class:`FeatureIndex` of a :class:`~panel_app.data.RunData` (loaded on first use).

    Parameters
    ----------
    data : RunData
    wait : bool
        If False and the index is not loaded yet, start loading it in a background thread (once per
        process) and return None at once; the caller shows "index loading" and asks again later.

    Raises
    ------
    ValueError
        If the run has no features.
    RunStoreError
        If the run has no ``fea_reduced.npy`` (the message names ``xsgpu embed RUN``).
    """
    if data.features is None:
        raise ValueError("This run has no FEA features (features.zarr). Hint: run `xsgpu infer RUN --model MODEL`.")
    store = data.store
    if store is not None and not store.fea_reduced.exists():   # said at once, never left to a background thread
        from xsgpu.io.runstore import RunStoreError

        raise RunStoreError(MISSING_FEA_REDUCED.format(path=store.fea_reduced.path, run=store.path))
    key = ("fea_index",)
    if wait:
        return data.cached(key, lambda: _stored_index(data))
    got = data._cache.get(key)  # RunData's shared cache, read without taking its build lock
    if got is not None:
        return got
    with _BUILDING_LOCK:
        running = _BUILDING.get((id(data), key))
        if running is None or not running.is_alive():
            thread = threading.Thread(target=lambda: feature_index(data, wait=True),
                                      name="xsgpu-fea-index", daemon=True)
            _BUILDING[(id(data), key)] = thread
            log.info("loading the FEA neighbour index of %d images in the background", data.n)
            thread.start()
    return None
