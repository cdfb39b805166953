"""Clustering of a selection (k-means or DBSCAN) with silhouette and Davies-Bouldin scores.

CPU: scikit-learn. GPU: cuML (imported lazily, only after :func:`xsgpu.backend.resolve_device` chose the
GPU). ``device="auto"`` falls back to scikit-learn with a logged reason when cuML is missing; an
explicit ``device="gpu"`` then raises :class:`xsgpu.backend.GPUUnavailable`.

Scores (computed on the points that are not DBSCAN noise, label -1):

* silhouette in [-1, 1] (higher is better), on a random sample of at most ``silhouette_sample_size``
  points for big selections (the exact score is O(m^2));
* Davies-Bouldin >= 0 (lower is better), exact, computed here in xp (same on both backends) with
  scikit-learn's definition.

Both are NaN when fewer than 2 clusters (or as many clusters as points) remain.

Examples
--------
>>> import numpy as np
>>> from xsgpu.metrics import cluster_selection
>>> rng = np.random.default_rng(0)
>>> x = np.concatenate([rng.normal(0, 0.1, (20, 3)), rng.normal(5, 0.1, (20, 3))])
>>> r = cluster_selection(x, method="kmeans", n_clusters=2, device="cpu")
>>> r.n_clusters, r.silhouette > 0.9
(2, True)
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from xsgpu.backend import gpu_fallback, import_cuml, import_gpu, namespace_of, to_host
from xsgpu.metrics.validation import check_choice, check_positive_int

__all__ = ["ClusterResult", "cluster_selection", "davies_bouldin", "CLUSTER_METHODS"]

log = logging.getLogger(__name__)

CLUSTER_METHODS = ("kmeans", "dbscan")


@dataclass(frozen=True)
class ClusterResult:
    """Result of :func:`cluster_selection`.

    Attributes
    ----------
    labels : int array, shape (m,)
        Cluster of each point (-1 = DBSCAN noise), on the input's device.
    silhouette : float
        Mean silhouette (sampled for big selections); NaN if undefined.
    davies_bouldin : float
        Davies-Bouldin index; NaN if undefined.
    n_clusters : int
        Clusters found (noise excluded).
    device : {"cpu", "gpu"}
    params : dict
        Method and parameters used.
    """

    labels: Any
    silhouette: float
    davies_bouldin: float
    n_clusters: int = 0
    device: str = "cpu"
    params: dict = field(default_factory=dict)


def davies_bouldin(x: Any, labels: Any) -> float:
    """Davies-Bouldin index (scikit-learn's definition), xp-agnostic; NaN for fewer than 2 clusters.

    Parameters
    ----------
    x : float array, shape (m, d)
    labels : int array, shape (m,); points labelled -1 are ignored
    """
    xp = namespace_of(x, labels)
    keep = labels >= 0
    x, labels = x[keep], labels[keep]
    ids = xp.unique(labels)
    k = int(ids.shape[0])
    if k < 2 or k >= x.shape[0]:
        return float("nan")
    x = x.astype(xp.float64)
    cents = xp.stack([x[labels == c].mean(axis=0) for c in ids.tolist()])
    intra = xp.stack([xp.sqrt(((x[labels == c] - cents[i]) ** 2).sum(axis=1)).mean()
                      for i, c in enumerate(ids.tolist())])
    d = xp.sqrt(((cents[:, None, :] - cents[None, :, :]) ** 2).sum(axis=2))
    if bool(xp.allclose(intra, 0)) or bool(xp.allclose(d, 0)):
        return 0.0
    d[d == 0] = xp.inf
    return float(((intra[:, None] + intra[None, :]) / d).max(axis=1).mean())


def _silhouette(x, labels, *, sample_size: int, random_state: int, device: str) -> float:
    xp = namespace_of(x, labels)
    keep = labels >= 0
    x, labels = x[keep], labels[keep]
    m = int(x.shape[0])
    if m > sample_size:
        idx = np.sort(np.random.default_rng(random_state).choice(m, size=sample_size, replace=False))
        idx = xp.asarray(idx)
        x, labels = x[idx], labels[idx]
    k = int(xp.unique(labels).shape[0])
    if k < 2 or k >= x.shape[0]:
        return float("nan")
    if device == "gpu":
        return float(import_cuml("metrics.cluster").silhouette_score(x, labels))
    from sklearn.metrics import silhouette_score

    return float(silhouette_score(to_host(x), to_host(labels)))


def cluster_selection(x: Any, *, method: Literal["kmeans", "dbscan"] = "kmeans", device: str = "auto",
                      n_clusters: int = 8, eps: float = 0.5, min_samples: int = 5, random_state: int = 0,
                      silhouette_sample_size: int = 10_000) -> ClusterResult:
    """Cluster the rows of ``x`` (FEA or PRD of a selection) and score the clustering.

    Parameters
    ----------
    x : float array, shape (m, d)
        The selection's features (e.g. FEA after PCA, or the 17 probabilities).
    method : {"kmeans", "dbscan"}
    device : {"auto", "cpu", "gpu"}
    n_clusters : int
        k-means only.
    eps, min_samples : float, int
        DBSCAN only (neighbourhood radius, core-point size).
    random_state : int
        Seeds k-means and the silhouette sample.
    silhouette_sample_size : int
        Silhouette is computed on at most this many random points.

    Returns
    -------
    ClusterResult

    Raises
    ------
    ValueError
        Bad method or parameters, fewer than 2 rows, NaN in ``x``, ``n_clusters`` > rows.
    GPUUnavailable
        ``device="gpu"`` without a usable cuML.
    """
    func = "cluster_selection"
    check_choice(method, CLUSTER_METHODS, name="method", func=func)
    n_clusters = check_positive_int(n_clusters, name="n_clusters", func=func)
    min_samples = check_positive_int(min_samples, name="min_samples", func=func)
    silhouette_sample_size = check_positive_int(silhouette_sample_size, name="silhouette_sample_size", func=func,
                                                minimum=2)
    if not (isinstance(eps, (int, float)) and eps > 0):
        raise ValueError(f"The 'eps' parameter of {func} must be a float > 0. Got {eps!r} instead.")
    xp = namespace_of(x)
    x = x if isinstance(x, xp.ndarray) else xp.asarray(x)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"The 'x' parameter of {func} must be a 2-D array (m, d) with m >= 2 rows. "
                         f"Got shape {tuple(x.shape)} instead.")
    if x.dtype.kind not in "fiub":
        raise ValueError(f"The 'x' parameter of {func} must hold numbers. Got dtype {x.dtype} instead.")
    x = x.astype(xp.float32, copy=x.dtype != xp.float32)
    if not bool(xp.isfinite(x).all()):
        raise ValueError(f"The 'x' parameter of {func} must not contain NaN or infinite values.")
    if method == "kmeans" and n_clusters > x.shape[0]:
        raise ValueError(f"The 'n_clusters' parameter of {func} must be <= the number of rows ({x.shape[0]}). "
                         f"Got {n_clusters} instead.")
    dev, _ = gpu_fallback(device, func, lambda: import_cuml("cluster"))
    params: dict[str, Any] = {"method": method}
    if dev == "gpu":
        cupy = import_gpu("cupy")
        cuml_cluster = import_cuml("cluster")
        xg = cupy.asarray(x)
        if method == "kmeans":
            labels = cuml_cluster.KMeans(n_clusters=n_clusters, random_state=random_state).fit_predict(xg)
        else:
            labels = cuml_cluster.DBSCAN(eps=eps, min_samples=min_samples).fit_predict(xg)
        labels = cupy.asarray(labels).astype(cupy.int64)
        xs = xg
    else:
        xs = np.asarray(to_host(x))
        if method == "kmeans":
            from sklearn.cluster import KMeans

            labels = KMeans(n_clusters=n_clusters, random_state=random_state, n_init="auto").fit_predict(xs)
        else:
            from sklearn.cluster import DBSCAN

            labels = DBSCAN(eps=eps, min_samples=min_samples).fit_predict(xs)
        labels = labels.astype(np.int64)
    params.update({"n_clusters": n_clusters, "random_state": random_state} if method == "kmeans"
                  else {"eps": eps, "min_samples": min_samples})
    lab_xp = namespace_of(labels)
    found = int(lab_xp.unique(labels[labels >= 0]).shape[0])
    sil = _silhouette(xs, labels, sample_size=silhouette_sample_size, random_state=random_state, device=dev)
    db = davies_bouldin(xs, labels)
    if xp is np and dev == "gpu":
        labels = labels.get()
    elif xp is not np and dev == "cpu":
        labels = xp.asarray(labels)
    return ClusterResult(labels=labels, silhouette=sil, davies_bouldin=db, n_clusters=found, device=dev,
                         params=params)
