"""PCA: a 2-D map (scikit-learn randomized / cuML) and the streaming reduction of FEA before t-SNE.

* :class:`SklearnPCA` and :class:`CumlPCA` are projector implementations (``make_projector("pca")``).
  scikit-learn always runs with ``svd_solver="randomized"`` (``"full"`` takes ~250 s on 100k x 2048).
* :class:`StreamingPCA` reduces FEA (N x 2048, float16 in ``features.zarr``) to ~50 dimensions
  without loading it whole: it accumulates the mean and the D x D scatter matrix in float64 batch by
  batch (NumPy or CuPy batches alike) and takes the top eigenvectors. For tall, narrow data (N >> D)
  this is exact PCA at the cost of one pass; memory is O(D^2 + batch), not O(N D).

Examples
--------
>>> import numpy as np
>>> from xsgpu.embed.pca import StreamingPCA
>>> X = np.random.default_rng(0).normal(size=(200, 8)) * np.arange(1, 9)
>>> pca = StreamingPCA(n_components=3)
>>> for batch in np.array_split(X, 4):
...     _ = pca.partial_fit(batch)
>>> pca.transform(X).shape
(200, 3)
>>> bool(np.all(np.diff(pca.explained_variance_) <= 0))
True
"""
from __future__ import annotations

import logging
from typing import Any, Iterable

import numpy as np

from xsgpu.backend import namespace_of, resolve_device, to_host
from xsgpu.embed._base import EstimatorBase, NotFittedError, check_matrix, check_random_state, import_cuml

__all__ = ["SklearnPCA", "CumlPCA", "StreamingPCA"]

log = logging.getLogger(__name__)


def _check_n_components(n_components: Any, n_samples: int, n_features: int, owner: str) -> int:
    if not isinstance(n_components, (int, np.integer)) or isinstance(n_components, bool) or n_components < 1:
        raise ValueError(f"The 'n_components' parameter of {owner} must be a positive int. Got {n_components!r} instead.")
    if n_components > min(n_samples, n_features):
        raise ValueError(f"The 'n_components' parameter of {owner} must be <= min(n_samples, n_features) = "
                         f"{min(n_samples, n_features)}. Got {n_components} instead.")
    return int(n_components)


class SklearnPCA(EstimatorBase):
    """scikit-learn PCA with the randomized solver.

    Parameters
    ----------
    n_components : int
    random_state : int or None
    whiten : bool

    Attributes
    ----------
    embedding_ : ndarray of shape (n_samples, n_components), float32
    components_ : ndarray of shape (n_components, n_features)
    mean_ : ndarray of shape (n_features,)
    explained_variance_ratio_ : ndarray of shape (n_components,)
    """

    _params = {"n_components": 2, "random_state": 0, "whiten": False}

    @staticmethod
    def check_available() -> None:
        """scikit-learn is a core dependency: always available."""

    def fit(self, X: Any, y: None = None) -> "SklearnPCA":
        from sklearn.decomposition import PCA

        X = check_matrix(X, owner="SklearnPCA.fit", min_samples=2)
        n = _check_n_components(self.n_components, *X.shape, owner="SklearnPCA")
        rs = check_random_state(self.random_state, owner="SklearnPCA")
        self.model_ = PCA(n_components=n, svd_solver="randomized", whiten=self.whiten, random_state=rs)
        # fit then transform (not fit_transform): randomized SVD's U*S is only close to X @ V.T, and the
        # stored map must agree exactly with transform() of the same points
        self.embedding_ = self.model_.fit(X).transform(X).astype(np.float32)
        self.components_ = self.model_.components_
        self.mean_ = self.model_.mean_
        self.explained_variance_ratio_ = self.model_.explained_variance_ratio_
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: Any) -> np.ndarray:
        self._fitted()
        X = check_matrix(X, owner="SklearnPCA.transform")
        return self.model_.transform(X).astype(np.float32)


class CumlPCA(EstimatorBase):
    """cuML PCA (GPU; imported lazily). Same attributes as :class:`SklearnPCA`, on the host."""

    _params = {"n_components": 2, "random_state": 0, "whiten": False}

    @staticmethod
    def check_available() -> None:
        resolve_device("gpu")
        import_cuml("decomposition")

    def fit(self, X: Any, y: None = None) -> "CumlPCA":
        self.check_available()
        n = _check_n_components(self.n_components, *X.shape, owner="CumlPCA")
        self.model_ = import_cuml("decomposition").PCA(n_components=n, whiten=self.whiten, output_type="numpy")
        self.embedding_ = np.asarray(to_host(self.model_.fit_transform(X)), dtype=np.float32)
        self.components_ = np.asarray(to_host(self.model_.components_))
        self.mean_ = np.asarray(to_host(self.model_.mean_))
        self.explained_variance_ratio_ = np.asarray(to_host(self.model_.explained_variance_ratio_))
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: Any) -> np.ndarray:
        self._fitted()
        return np.asarray(to_host(self.model_.transform(X)), dtype=np.float32)


class StreamingPCA:
    """Exact PCA of a tall matrix from batches: mean and scatter matrix in float64, then ``eigh``.

    Parameters
    ----------
    n_components : int
        Output dimensions (e.g. 50 for FEA before t-SNE).

    The eigen-decomposition runs once, lazily, in :meth:`fit` or the first :meth:`transform`
    after new batches.

    Attributes
    ----------
    n_samples_seen_ : int
    mean_ : ndarray of shape (n_features,), float64
    components_ : ndarray of shape (n_components, n_features), float64
        Rows are unit eigenvectors, sign fixed so the largest-magnitude entry is positive.
    explained_variance_ : ndarray of shape (n_components,)
    explained_variance_ratio_ : ndarray of shape (n_components,)
    """

    def __init__(self, n_components: int = 50):
        self.n_components = n_components

    def partial_fit(self, batch: Any) -> "StreamingPCA":
        """Add a batch of rows, shape (b, n_features); NumPy or CuPy (accumulates on that device)."""
        xp = namespace_of(batch)
        b = xp.asarray(batch, dtype=xp.float64)
        if b.ndim != 2:
            raise ValueError(f"The 'batch' parameter of StreamingPCA.partial_fit must be 2-D. Got shape {b.shape} instead.")
        if not bool(xp.isfinite(b).all()):
            raise ValueError("The 'batch' parameter of StreamingPCA.partial_fit must be finite; it holds NaN or inf.")
        if not hasattr(self, "_sum"):
            self._xp = xp
            self._sum = xp.zeros(b.shape[1], dtype=xp.float64)
            self._scatter = xp.zeros((b.shape[1], b.shape[1]), dtype=xp.float64)
            self.n_samples_seen_ = 0
        elif b.shape[1] != self._sum.shape[0]:
            raise ValueError(f"StreamingPCA.partial_fit: batch has {b.shape[1]} columns; earlier batches had "
                             f"{self._sum.shape[0]}.")
        # shift by the first batch's mean for numerical stability of the scatter accumulation
        if not hasattr(self, "_shift"):
            self._shift = b.mean(axis=0)
        c = b - self._shift
        self._sum += c.sum(axis=0)
        self._scatter += c.T @ c
        self.n_samples_seen_ += b.shape[0]
        self._dirty = True
        return self

    def _finalize(self) -> None:
        if not getattr(self, "_dirty", False):
            return
        self._dirty = False
        xp = self._xp
        n = self.n_samples_seen_
        d = self._sum.shape[0]
        k = _check_n_components(self.n_components, max(n, 1), d, owner="StreamingPCA") if n >= 1 else 0
        mean_c = self._sum / n
        cov = (self._scatter - n * xp.outer(mean_c, mean_c)) / max(n - 1, 1)
        w, v = xp.linalg.eigh(cov)
        order = xp.argsort(w)[::-1][:k]
        w, v = w[order], v[:, order].T
        signs = xp.sign(v[xp.arange(k), xp.argmax(xp.abs(v), axis=1)])
        signs[signs == 0] = 1
        self.components_ = v * signs[:, None]
        self.explained_variance_ = xp.clip(w, 0, None)
        total = float(xp.trace(cov))
        self.explained_variance_ratio_ = self.explained_variance_ / (total if total > 0 else 1.0)
        self.mean_ = mean_c + self._shift

    def fit(self, batches: Iterable[Any]) -> "StreamingPCA":
        """Fit from an iterable of batches (each (b, n_features))."""
        for batch in batches:
            self.partial_fit(batch)
        if not hasattr(self, "_sum"):
            raise ValueError("StreamingPCA.fit got no batches.")
        self._finalize()
        return self

    @classmethod
    def from_arrays(cls, components: np.ndarray, mean: np.ndarray) -> "StreamingPCA":
        """Rebuild a fitted reducer from stored ``components_`` (k, d) and ``mean_`` (d,) (e.g. a reference run)."""
        components = np.asarray(components, dtype=np.float64)
        mean = np.asarray(mean, dtype=np.float64)
        if components.ndim != 2 or mean.shape != (components.shape[1],):
            raise ValueError(f"StreamingPCA.from_arrays needs components (k, d) and mean (d,); "
                             f"got {components.shape} and {mean.shape}.")
        obj = cls(n_components=components.shape[0])
        obj._xp, obj._sum, obj._dirty = np, mean, False
        obj.components_, obj.mean_ = components, mean
        return obj

    def transform(self, X: Any) -> Any:
        """Project rows (m, n_features) -> (m, n_components) float32, on the input's device."""
        if not hasattr(self, "_sum"):
            raise NotFittedError("This StreamingPCA is not fitted yet; call partial_fit first.")
        self._finalize()
        xp = namespace_of(X)
        comps = xp.asarray(self.components_, dtype=xp.float32) if xp is self._xp else \
            xp.asarray(to_host(self.components_), dtype=xp.float32)
        mean = xp.asarray(self.mean_ if xp is self._xp else to_host(self.mean_), dtype=xp.float32)
        return (xp.asarray(X, dtype=xp.float32) - mean) @ comps.T
