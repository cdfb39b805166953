"""UMAP behind the projector API: umap-learn on CPU (optional extra ``[umap]``), cuML UMAP on GPU.

Both implementations can place new points (``transform``). umap-learn is imported only in ``fit``;
without it the error names the remedy (``pip install umap-learn``).
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from xsgpu.backend import resolve_device, to_host
from xsgpu.embed._base import EstimatorBase, check_matrix, check_random_state, import_cuml

__all__ = ["UmapLearn", "CumlUMAP"]

log = logging.getLogger(__name__)


class UmapLearn(EstimatorBase):
    """umap-learn's UMAP.

    Parameters
    ----------
    n_components : int
    n_neighbors : int
        Lowered to ``n_samples - 1`` for tiny inputs.
    min_dist : float
    metric : str
    random_state : int or None
        A seed makes umap-learn single-threaded and reproducible.

    Attributes
    ----------
    embedding_ : ndarray of shape (n_samples, n_components), float32
    model_ : umap.UMAP
    """

    _params = {"n_components": 2, "n_neighbors": 15, "min_dist": 0.1, "metric": "euclidean", "random_state": 0}

    @staticmethod
    def check_available() -> None:
        """Raise ImportError with the remedy if umap-learn is missing."""
        try:
            import umap  # noqa: F401
        except ImportError as exc:
            raise ImportError("method='umap' needs umap-learn. Please install it: pip install 'xsgpu[umap]' "
                              "(or pip install umap-learn).") from exc

    def fit(self, X: Any, y: None = None) -> "UmapLearn":
        self.check_available()
        import umap

        X = check_matrix(X, owner="UmapLearn.fit", min_samples=4)
        rs = check_random_state(self.random_state, owner="UmapLearn")
        k = int(min(self.n_neighbors, X.shape[0] - 1))
        self.model_ = umap.UMAP(n_components=self.n_components, n_neighbors=k, min_dist=self.min_dist,
                                metric=self.metric, random_state=rs, n_jobs=1 if rs is not None else -1)
        self.embedding_ = np.asarray(self.model_.fit_transform(X), dtype=np.float32)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: Any) -> np.ndarray:
        self._fitted()
        X = check_matrix(X, owner="UmapLearn.transform")
        return np.asarray(self.model_.transform(X), dtype=np.float32)


class CumlUMAP(EstimatorBase):
    """cuML UMAP (GPU; imported lazily). Same API as :class:`UmapLearn`; outputs on the host."""

    _params = {"n_components": 2, "n_neighbors": 15, "min_dist": 0.1, "metric": "euclidean", "random_state": 0}

    @staticmethod
    def check_available() -> None:
        resolve_device("gpu")
        import_cuml("manifold")

    def fit(self, X: Any, y: None = None) -> "CumlUMAP":
        self.check_available()
        UMAP = import_cuml("manifold").UMAP
        k = int(min(self.n_neighbors, X.shape[0] - 1))
        self.model_ = UMAP(n_components=self.n_components, n_neighbors=k, min_dist=self.min_dist,
                           metric=self.metric, random_state=self.random_state, output_type="numpy")
        self.embedding_ = np.asarray(to_host(self.model_.fit_transform(X)), dtype=np.float32)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: Any) -> np.ndarray:
        self._fitted()
        return np.asarray(to_host(self.model_.transform(X)), dtype=np.float32)
