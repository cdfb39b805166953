"""t-SNE on one GPU with RAPIDS cuML (imported lazily; never at module import).

cuML's TSNE is 2-D only and cannot place new points onto a fitted map; :class:`CumlTSNE` says so
by raising :class:`~xsgpu.backend.UnsupportedOnGPU` before importing anything, and
:class:`~xsgpu.embed.projectors.Projector` turns that into a logged CPU fallback for ``device="auto"``.
A map made here can still be a reference for later runs: :mod:`xsgpu.embed.reference` stores its
coordinates and inputs, and openTSNE places new points against them.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from xsgpu.backend import UnsupportedOnGPU, resolve_device, to_host
from xsgpu.embed._base import check_matrix, check_random_state, import_cuml

__all__ = ["CumlTSNE"]

log = logging.getLogger(__name__)


def _import_cuml():
    return import_cuml("manifold").TSNE


class CumlTSNE:
    """cuML TSNE behind the projector API.

    Parameters
    ----------
    n_components : {2}
        cuML supports only 2; anything else raises :class:`UnsupportedOnGPU`.
    perplexity : float
    n_iter : int
        Total iterations (cuML counts early exaggeration inside them).
    learning_rate : float
    n_neighbors : int or None
        kNN graph size (default ``3 * perplexity``).
    method : {"fft", "barnes_hut"}
    random_state : int or None
        cuML's FFT t-SNE is not bit-reproducible even with a seed (atomic adds on the GPU).

    Attributes
    ----------
    embedding_ : ndarray of shape (n_samples, 2), float32 (host)
    kl_divergence_ : float
    """

    def __init__(self, *, n_components: int = 2, perplexity: float = 30.0, n_iter: int = 1000,
                 learning_rate: float = 200.0, n_neighbors: int | None = None, method: str = "fft",
                 random_state: int | None = 0, **ignored: Any):
        self.n_components = n_components
        self.perplexity = perplexity
        self.n_iter = n_iter
        self.learning_rate = learning_rate
        self.n_neighbors = n_neighbors
        self.method = method
        self.random_state = random_state
        # CPU-only options (progress, n_jobs, neighbors, ...) are accepted and ignored with a note
        self.ignored = ignored

    @staticmethod
    def check_available() -> None:
        """Raise :class:`GPUUnavailable` unless a GPU is usable and cuML imports."""
        resolve_device("gpu")
        _import_cuml()

    def fit(self, X: Any, y: None = None) -> "CumlTSNE":
        """Embed ``X`` (n_samples, n_features) on the GPU; sets ``embedding_`` (host float32)."""
        if self.n_components != 2:
            raise UnsupportedOnGPU(f"cuml.TSNE supports n_components in [2]; got n_components={self.n_components}. "
                                   "Hint: use device='cpu' or n_components=2.")
        check_random_state(self.random_state, owner="CumlTSNE")
        if self.ignored:
            log.debug("CumlTSNE ignores CPU-only options %s", sorted(self.ignored))
        TSNE = _import_cuml()
        if not hasattr(X, "__cuda_array_interface__"):
            X = check_matrix(X, owner="CumlTSNE.fit", min_samples=5)
        n = X.shape[0]
        perplexity = min(float(self.perplexity), max(1.0, (n - 1) / 3.0))
        n_neighbors = self.n_neighbors or min(n - 1, int(3 * perplexity))
        model = TSNE(n_components=2, perplexity=perplexity, n_neighbors=n_neighbors, n_iter=self.n_iter,
                     learning_rate=self.learning_rate, method=self.method, random_state=self.random_state,
                     output_type="numpy")
        self.embedding_ = np.asarray(to_host(model.fit_transform(X)), dtype=np.float32)
        self.kl_divergence_ = float(getattr(model, "kl_divergence_", float("nan")))
        self.n_features_in_ = X.shape[1]
        if not np.isfinite(self.embedding_).all():
            raise FloatingPointError("cuML TSNE produced non-finite coordinates; try method='barnes_hut' or device='cpu'.")
        return self

    def fit_transform(self, X: Any, y: None = None) -> np.ndarray:
        return self.fit(X).embedding_

    def transform(self, X: Any) -> np.ndarray:
        """Always raises: cuML's TSNE cannot place new points."""
        raise UnsupportedOnGPU("cuml.TSNE cannot place new points onto a fitted map (no transform). "
                               "Hint: fit with device='cpu' (openTSNE), or place them with "
                               "xsgpu.embed.ReferenceMap built from the fitted coordinates.")
