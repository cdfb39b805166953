"""Suspicious-label scores: a ranked list of (image, attribute) labels that are likely wrong.

For image ``i`` and attribute ``j`` with label ``a = y_true[i, j]`` (0 or 1):

* model disagreement ``d_model = |a - y_prob[i, j]|``;
* neighbour disagreement ``d_nbr = |a - r|`` where ``r`` is the fraction of the ``k`` nearest
  neighbours of image ``i`` (in the given feature space, FEA or PRD; the image itself excluded) that
  carry attribute ``j`` in ACT;
* ``score = weight * d_model + (1 - weight) * d_nbr`` in [0, 1].

A label that both the model and the image's look-alikes contradict scores near 1. Without
``features`` only the model term is used. Neighbours come from cuML's exact ``NearestNeighbors`` on GPU;
on CPU from scikit-learn's exact search up to :data:`EXACT_MAX_ROWS` images and from an approximate
Annoy forest (the one openTSNE ships) above it (``neighbors="auto"``). The exact search grows with n
squared; on a quiet 2-core machine, 100k images in 50 dimensions took 36.5 s exact and 20.6 s with
Annoy (recall 0.97 of the exact 10 neighbours), and the gap widens with n. A neighbour *rate* over
k = 10 barely moves when one neighbour in ten is a near miss. For FEA (2048-d) reduce to ~50
dimensions with PCA first (the embed stage stores that copy as ``fea_reduced.npy``).

Examples
--------
>>> import numpy as np
>>> from xsgpu.metrics import suspicious_labels
>>> y = np.zeros((6, 17), bool); y[:3, 0] = True
>>> p = y.astype(np.float32) * 0.9 + 0.05; y[4, 0] = True   # image 4 labelled wrongly
>>> f = np.array([[0.0], [0.1], [0.2], [5.0], [5.1], [5.2]])
>>> top = suspicious_labels(y, p, f, k=2, device="cpu")
>>> int(top["sample_id"][0]), top["attribute"][0]
(4, 'bcc')
"""
from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np
import pandas as pd

from xsgpu.attributes import N_ATTRIBUTES, SLUGS
from xsgpu.backend import gpu_fallback, import_cuml, import_gpu, namespace_of, to_host
from xsgpu.metrics.validation import check_attributes, check_pair, check_positive_int

__all__ = ["suspicious_labels", "neighbour_label_rate", "knn_indices", "SUSPICIOUS_COLUMNS", "EXACT_MAX_ROWS"]

log = logging.getLogger(__name__)

SUSPICIOUS_COLUMNS = ["sample_id", "attribute", "label", "prob", "neighbour_rate", "score", "rank"]
_CHUNK = 65536
#: ``neighbors="auto"`` searches exactly on CPU up to this many images, approximately (Annoy) above
EXACT_MAX_ROWS = 50_000
_NEIGHBOR_MODES = ("auto", "exact", "approx")


def knn_indices(features: Any, k: int, *, device: str = "auto", neighbors: str = "auto", n_jobs: int = -1,
                random_state: int = 0):
    """Indices (n, k) of each row's k nearest neighbours (Euclidean), the row itself excluded.

    Parameters
    ----------
    features : float array, shape (n, d)
    k : int
        Neighbours per row; must be < n.
    device : {"auto", "cpu", "gpu"}
        GPU: cuML's exact search (``"auto"`` falls back to CPU, logged, without cuML).
    neighbors : {"auto", "exact", "approx"}
        CPU search: scikit-learn's exact one, or an Annoy forest (openTSNE's); ``"auto"`` is exact up
        to :data:`EXACT_MAX_ROWS` rows. Ignored on GPU.
    n_jobs : int
        Annoy threads (-1: all cores).
    random_state : int
        Seed of the Annoy forest.

    Returns
    -------
    int64 array, shape (n, k), on the namespace of ``features``.

    Examples
    --------
    >>> import numpy as np
    >>> f = np.array([[0.0], [0.1], [5.0], [5.2]])
    >>> knn_indices(f, 1, device="cpu").ravel().tolist()
    [1, 0, 3, 2]
    """
    if neighbors not in _NEIGHBOR_MODES:
        raise ValueError(f"The 'neighbors' parameter of knn_indices must be one of {list(_NEIGHBOR_MODES)}. "
                         f"Got {neighbors!r} instead.")
    xp = namespace_of(features)
    n = int(features.shape[0])
    dev, _ = gpu_fallback(device, "suspicious_labels", lambda: import_cuml("neighbors"))
    if dev == "gpu":
        cupy = import_gpu("cupy")
        CuNN = import_cuml("neighbors").NearestNeighbors
        xg = cupy.asarray(features, dtype=cupy.float32)
        ind = cupy.asarray(CuNN(n_neighbors=k + 1).fit(xg).kneighbors(xg, return_distance=False)).astype(cupy.int64)
        ind = ind.get()
    elif (neighbors == "approx" or (neighbors == "auto" and n > EXACT_MAX_ROWS)) and n > k + 2:
        from openTSNE.nearest_neighbors import Annoy

        xh = np.ascontiguousarray(to_host(features), dtype=np.float32)
        log.info("suspicious_labels: approximate (Annoy) %d-NN search over %d x %d", k, n, xh.shape[1])
        # openTSNE drops each row's first hit, assuming it is the row itself; with exact duplicates it
        # may be the twin, so ask for one more and remove the row below like the exact path does
        ind, _ = Annoy(xh, k + 1, n_jobs=n_jobs, random_state=random_state).build()
        ind = np.asarray(ind, dtype=np.int64)
    else:
        from sklearn.neighbors import NearestNeighbors

        xh = np.asarray(to_host(features), dtype=np.float32)
        ind = NearestNeighbors(n_neighbors=k + 1).fit(xh).kneighbors(xh, return_distance=False)
    is_self = ind == np.arange(n)[:, None]
    no_self = ~is_self.any(axis=1)  # exact duplicates can push the row itself out of its own list
    is_self[no_self, -1] = True
    out = ind[~is_self].reshape(n, k)
    return xp.asarray(out) if xp is not np else out


def neighbour_label_rate(y_true: Any, neighbours: Any):
    """Fraction of each image's neighbours carrying each attribute.

    Parameters
    ----------
    y_true : bool array, shape (n, 17)
    neighbours : int array, shape (n, k)

    Returns
    -------
    float32 array, shape (n, 17)
    """
    xp = namespace_of(y_true, neighbours)
    n, k = neighbours.shape
    out = xp.empty(y_true.shape, dtype=xp.float32)
    for start in range(0, n, _CHUNK):
        nb = neighbours[start:start + _CHUNK]
        out[start:start + _CHUNK] = y_true[nb].sum(axis=1, dtype=xp.float32) / k
    return out


def suspicious_labels(y_true: Any, y_prob: Any, features: Any | None = None, *, k: int = 10, weight: float = 0.5,
                      top: int | None = 1000, sample_ids: Any | None = None, attributes: Sequence[str | int] | None = None,
                      device: str = "auto", neighbors: str = "auto", vocabulary: Any = None) -> pd.DataFrame:
    """Rank (image, attribute) labels by how strongly the model and the neighbours contradict them.

    Parameters
    ----------
    y_true : bool array, shape (n, 17)
        ACT labels to audit.
    y_prob : float array, shape (n, 17)
        PRD probabilities.
    features : float array, shape (n, d), optional
        Feature space for the neighbours (FEA, ideally PCA-reduced, or PRD). ``None``: model term only.
    k : int
        Neighbours per image (excluding itself); must be < n.
    weight : float in [0, 1]
        Weight of the model term (``1 - weight`` goes to the neighbour term).
    top : int or None
        Return the ``top`` highest scores (``None``: all n * 17 rows).
    sample_ids : int array, shape (n,), optional
        Ids reported in the table (default ``0..n-1``, i.e. row positions).
    attributes : sequence of names, slugs or indices, optional
        Audit only these attributes (default: all 17).
    device : {"auto", "cpu", "gpu"}
        Where the kNN search runs.
    neighbors : {"auto", "exact", "approx"}
        CPU kNN search (see :func:`knn_indices`): exact up to :data:`EXACT_MAX_ROWS` images by default.
    vocabulary : xsgpu.attributes.Vocabulary, optional
        The attributes of the columns (a run's ``store.vocabulary``); default the paper's 17.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SUSPICIOUS_COLUMNS`: ``sample_id``, ``attribute`` (slug), ``label`` (current ACT),
        ``prob``, ``neighbour_rate`` (NaN without features), ``score``, ``rank`` (1 = most suspicious).
        Sorted by score (descending); ties by row position, then attribute order.
    """
    func = "suspicious_labels"
    xp = namespace_of(y_true, y_prob, features)
    yt, yp = check_pair(y_true, y_prob, xp=xp, func=func,
                        n_attributes=N_ATTRIBUTES if vocabulary is None else len(vocabulary))
    n = int(yt.shape[0])
    if n == 0:
        raise ValueError(f"The 'y_true' parameter of {func} has no rows.")
    k = check_positive_int(k, name="k", func=func)
    if neighbors not in _NEIGHBOR_MODES:
        raise ValueError(f"The 'neighbors' parameter of {func} must be one of {list(_NEIGHBOR_MODES)}. "
                         f"Got {neighbors!r} instead.")
    if not (isinstance(weight, (int, float)) and not isinstance(weight, bool) and 0.0 <= weight <= 1.0):
        raise ValueError(f"The 'weight' parameter of {func} must be a float in [0, 1]. Got {weight!r} instead.")
    if top is not None:
        top = check_positive_int(top, name="top", func=func)
    ids = np.arange(n, dtype=np.int64) if sample_ids is None else np.asarray(to_host(sample_ids), dtype=np.int64)
    if ids.shape != (n,):
        raise ValueError(f"The 'sample_ids' parameter of {func} must have shape ({n},) (one id per row). "
                         f"Got shape {ids.shape} instead (length mismatch).")
    a = yt.astype(xp.float32)
    d_model = xp.abs(a - yp.astype(xp.float32))
    if features is None:
        rate = None
        score = d_model
    else:
        f = features if isinstance(features, xp.ndarray) else xp.asarray(features)
        if f.ndim != 2 or f.shape[0] != n:
            raise ValueError(f"The 'features' parameter of {func} must have shape ({n}, d) (one row per image). "
                             f"Got shape {tuple(f.shape)} instead (length mismatch).")
        if k >= n:
            raise ValueError(f"The 'k' parameter of {func} must be smaller than the number of images ({n}). "
                             f"Got {k} instead.")
        if not bool(xp.isfinite(f.astype(xp.float32)).all()):
            raise ValueError(f"The 'features' parameter of {func} must not contain NaN or infinite values.")
        rate = neighbour_label_rate(yt, knn_indices(f, k, device=device, neighbors=neighbors))
        score = weight * d_model + (1.0 - weight) * xp.abs(a - rate)
    cols_kept = np.asarray(check_attributes(attributes, func=func, vocabulary=vocabulary), dtype=np.int64)
    score_h = np.asarray(to_host(score), dtype=np.float32)[:, cols_kept]
    n_cols = len(cols_kept)
    flat = score_h.ravel()
    m = flat.shape[0] if top is None else min(top, flat.shape[0])
    # order: score desc, then row, then attribute == flat position ascending
    if m < flat.shape[0]:
        cand = np.argpartition(-flat, m - 1)[:m]
        thresh = flat[cand].min()
        cand = np.flatnonzero(flat >= thresh)  # all ties at the threshold, then cut after a stable sort
    else:
        cand = np.arange(flat.shape[0])
    order = cand[np.lexsort((cand, -flat[cand]))][:m]
    rows, sub = np.divmod(order, n_cols)
    cols = cols_kept[sub]
    yt_h = np.asarray(to_host(yt))
    yp_h = np.asarray(to_host(yp))
    return pd.DataFrame({
        "sample_id": ids[rows],
        "attribute": np.asarray(SLUGS if vocabulary is None else vocabulary.slugs, dtype=object)[cols],
        "label": yt_h[rows, cols],
        "prob": yp_h[rows, cols].astype(np.float32),
        "neighbour_rate": (np.asarray(to_host(rate))[rows, cols] if rate is not None
                           else np.full(len(rows), np.nan, dtype=np.float32)),
        "score": flat[order],
        "rank": np.arange(1, len(order) + 1, dtype=np.int64),
    })[SUSPICIOUS_COLUMNS]
