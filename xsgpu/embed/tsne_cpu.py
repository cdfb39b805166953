"""t-SNE on CPU with openTSNE (FFT-accelerated gradients above ~10k points, Barnes-Hut below).

openTSNE is the CPU twin of cuML's TSNE and the only t-SNE here that can place new points onto a
fitted map (:meth:`OpenTSNE.transform`, used for "today's images onto yesterday's map").

Determinism: with a fixed ``random_state`` the output is bit-identical run to run, for ``n_jobs=1``
and ``n_jobs=2`` alike (checked in tests/embed/test_tsne.py and reported in docs/embeddings.md).

Examples
--------
>>> import numpy as np
>>> from xsgpu.embed.tsne_cpu import OpenTSNE
>>> X = np.random.default_rng(0).normal(size=(60, 5)).astype(np.float32)
>>> est = OpenTSNE(perplexity=10, n_iter=50, early_exaggeration_iter=25, random_state=0).fit(X)
>>> est.embedding_.shape, est.embedding_.dtype
((60, 2), dtype('float32'))
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from xsgpu.embed._base import ProgressCallback, check_matrix, check_random_state

__all__ = ["OpenTSNE", "effective_perplexity", "place_points"]

log = logging.getLogger(__name__)

MIN_SAMPLES = 5


def effective_perplexity(perplexity: float, n_samples: int) -> float:
    """Perplexity usable with ``n_samples`` points: at most ``(n_samples - 1) / 3`` (logged when lowered)."""
    cap = max(1.0, (n_samples - 1) / 3.0)
    if perplexity > cap:
        log.info("perplexity %.1f is too high for %d points; using %.1f", perplexity, n_samples, cap)
        return cap
    return float(perplexity)


def place_points(embedding: Any, X: np.ndarray, *, perplexity: float = 5.0, n_iter: int = 250,
                 k: int = 25, learning_rate: float = 0.1) -> np.ndarray:
    """Place new points ``X`` (m, d) onto a fitted ``openTSNE.TSNEEmbedding``; return (m, 2) float32.

    ``TSNEEmbedding.transform`` re-centres the reference embedding in place; this undoes that shift so
    the returned coordinates are in the frame of the stored map, and leaves ``embedding`` as it was.
    The reference points stay fixed; each new point is optimised against them only.
    """
    before = np.array(embedding, dtype=np.float64, copy=True)
    n_ref = before.shape[0]
    perplexity = min(float(perplexity), max(1.0, (n_ref - 1) / 3.0))
    k = int(min(k, n_ref))
    placed = embedding.transform(X, perplexity=perplexity, n_iter=n_iter, k=k, learning_rate=learning_rate)
    shift = before[0] - np.asarray(embedding[0], dtype=np.float64)
    embedding += shift  # back to the stored frame
    return (np.asarray(placed, dtype=np.float64) + shift).astype(np.float32)


class OpenTSNE:
    """openTSNE behind the projector API.

    Parameters
    ----------
    n_components : {1, 2}
    perplexity : float
        Lowered to ``(n_samples - 1) / 3`` for small inputs (logged).
    n_iter, early_exaggeration_iter : int
        Optimisation steps after / during early exaggeration (openTSNE defaults 500 / 250).
    learning_rate : float or "auto"
    metric : str
        Input-space metric (``"euclidean"``, ``"cosine"``, ...).
    neighbors : {"auto", "exact", "annoy", "pynndescent"}
        kNN method ("auto": exact below 1,000 points, Annoy above).
    negative_gradient_method : {"auto", "fft", "bh"}
    initialization : {"pca", "spectral", "random"}
    n_jobs : int
        Threads. Output is identical for a given ``random_state`` whatever ``n_jobs``.
    random_state : int or None
    progress : bool
        Show a tqdm bar over the iterations.

    Attributes
    ----------
    embedding_ : ndarray of shape (n_samples, n_components), float32
    tsne_embedding_ : openTSNE.TSNEEmbedding
        Holds the affinities needed by :meth:`transform`.
    perplexity_ : float
        The perplexity actually used.
    kl_divergence_ : float
    n_features_in_ : int
    """

    def __init__(self, *, n_components: int = 2, perplexity: float = 30.0, n_iter: int = 500,
                 early_exaggeration_iter: int = 250, learning_rate: float | str = "auto",
                 metric: str = "euclidean", neighbors: str = "auto", negative_gradient_method: str = "auto",
                 initialization: str = "pca", n_jobs: int = 1, random_state: int | None = 0,
                 progress: bool = False):
        self.n_components = n_components
        self.perplexity = perplexity
        self.n_iter = n_iter
        self.early_exaggeration_iter = early_exaggeration_iter
        self.learning_rate = learning_rate
        self.metric = metric
        self.neighbors = neighbors
        self.negative_gradient_method = negative_gradient_method
        self.initialization = initialization
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.progress = progress

    @staticmethod
    def check_available() -> None:
        """openTSNE is a core dependency: always available."""

    def _check_params(self) -> None:
        if self.n_components not in (1, 2):
            raise ValueError(f"The 'n_components' parameter of OpenTSNE must be 1 or 2. Got {self.n_components!r} instead.")
        if not isinstance(self.perplexity, (int, float)) or self.perplexity <= 0:
            raise ValueError(f"The 'perplexity' parameter of OpenTSNE must be a positive number. "
                             f"Got {self.perplexity!r} instead.")
        for name in ("n_iter", "early_exaggeration_iter"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"The {name!r} parameter of OpenTSNE must be a non-negative int. Got {v!r} instead.")
        check_random_state(self.random_state, owner="OpenTSNE")

    def fit(self, X: Any, y: None = None) -> "OpenTSNE":
        """Embed ``X`` of shape (n_samples, n_features); sets ``embedding_``."""
        import openTSNE

        self._check_params()
        X = check_matrix(X, owner="OpenTSNE.fit", min_samples=MIN_SAMPLES)
        self.n_features_in_ = X.shape[1]
        self.perplexity_ = effective_perplexity(float(self.perplexity), X.shape[0])
        bar = None
        callbacks = None
        if self.progress:
            every = 25
            bar = ProgressCallback(self.n_iter + self.early_exaggeration_iter, every=every, desc="t-SNE")
            callbacks = [bar]
        try:
            tsne = openTSNE.TSNE(
                n_components=self.n_components, perplexity=self.perplexity_, n_iter=self.n_iter,
                early_exaggeration_iter=self.early_exaggeration_iter, learning_rate=self.learning_rate,
                metric=self.metric, neighbors=self.neighbors, negative_gradient_method=self.negative_gradient_method,
                initialization=self.initialization, n_jobs=self.n_jobs, random_state=self.random_state,
                callbacks=callbacks, callbacks_every_iters=25, verbose=False,
            )
            emb = tsne.fit(X.astype(np.float64) if X.dtype != np.float64 else X)
        finally:
            if bar is not None:
                bar.close()
        # callbacks hold a tqdm bar; drop them so the fitted object stays light
        emb.optimizer = type(emb.optimizer)()
        self.tsne_embedding_ = emb
        self.embedding_ = np.asarray(emb, dtype=np.float32)
        self.kl_divergence_ = float(emb.kl_divergence) if emb.kl_divergence is not None else float("nan")
        if not np.isfinite(self.embedding_).all():
            raise FloatingPointError("openTSNE produced non-finite coordinates; try a lower learning_rate "
                                     "or check the input for near-duplicate rows.")
        return self

    def fit_transform(self, X: Any, y: None = None) -> np.ndarray:
        """Fit and return ``embedding_`` (n_samples, n_components) float32."""
        return self.fit(X).embedding_

    def transform(self, X: Any, *, perplexity: float = 5.0, n_iter: int = 250) -> np.ndarray:
        """Place new points (m, n_features) onto the fitted map; returns (m, n_components) float32.

        The fitted points do not move; see :func:`place_points`.
        """
        if not hasattr(self, "tsne_embedding_"):
            raise NotFittedError("This OpenTSNE is not fitted yet; call fit first.")
        X = check_matrix(X, owner="OpenTSNE.transform")
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"The 'X' parameter of OpenTSNE.transform must have {self.n_features_in_} columns "
                             f"(as in fit). Got {X.shape[1]} instead.")
        return place_points(self.tsne_embedding_, X.astype(np.float64), perplexity=perplexity, n_iter=n_iter)
