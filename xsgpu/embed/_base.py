"""Input checks and small helpers shared by the projector implementations."""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from xsgpu.backend import import_cuml, to_host
from xsgpu.errors import XsgpuError

__all__ = ["check_matrix", "check_random_state", "import_cuml", "ProgressCallback", "EstimatorBase",
           "NotFittedError"]

log = logging.getLogger(__name__)


class NotFittedError(XsgpuError, RuntimeError):
    """A projector or estimator was asked to transform before it was fitted."""


def check_matrix(X: Any, *, name: str = "X", owner: str = "fit", min_samples: int = 1,
                 dtype: Any = np.float32) -> np.ndarray:
    """Return ``X`` as a C-contiguous 2-D host array of ``dtype``; raise on a bad shape or NaN/inf.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    name, owner : str
        Used in the error message ("The 'X' parameter of fit must be ...").
    min_samples : int
        Fewest rows accepted.

    Raises
    ------
    ValueError
        For a non-2-D array, too few rows, zero columns or non-finite values.
    """
    arr = np.asarray(to_host(X))
    if arr.ndim != 2:
        raise ValueError(f"The {name!r} parameter of {owner} must be a 2-D array (n_samples, n_features). "
                         f"Got an array of shape {arr.shape} instead.")
    if arr.shape[0] < min_samples or arr.shape[1] < 1:
        raise ValueError(f"The {name!r} parameter of {owner} must have at least {min_samples} rows and 1 column. "
                         f"Got shape {arr.shape} instead.")
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if not np.isfinite(arr).all():
        bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
        raise ValueError(f"The {name!r} parameter of {owner} must be finite; rows {bad[:5].tolist()}"
                         f"{' ...' if bad.size > 5 else ''} hold NaN or inf ({bad.size} rows).")
    return arr


def check_random_state(random_state: Any, *, owner: str) -> int | None:
    """Accept ``None`` or a non-negative int seed (a seed, not a generator, so runs are reproducible)."""
    if random_state is None:
        return None
    if isinstance(random_state, (bool, np.bool_)) or not isinstance(random_state, (int, np.integer)) \
            or random_state < 0:
        raise ValueError(f"The 'random_state' parameter of {owner} must be a non-negative int or None. "
                         f"Got {random_state!r} instead.")
    return int(random_state)


class EstimatorBase:
    """What the wrapped estimators (scikit-learn / umap-learn / openTSNE / cuML twins) share.

    ``__init__`` keeps every keyword in :attr:`_params` (defaults first) as an attribute and the rest in
    ``ignored``; :meth:`fit_transform` is :meth:`fit` then ``embedding_``; :meth:`_fitted` returns
    ``model_`` or raises :class:`~xsgpu.embed._base.NotFittedError`.
    """

    _params: dict[str, Any] = {}

    def __init__(self, **params: Any):
        for name, default in self._params.items():
            setattr(self, name, params.pop(name, default))
        self.ignored = params

    def fit(self, X: Any, y: None = None) -> "EstimatorBase":  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def fit_transform(self, X: Any, y: None = None) -> np.ndarray:
        """Fit and return ``embedding_`` (n_samples, n_components) float32."""
        return self.fit(X).embedding_

    def _fitted(self, attribute: str = "model_") -> Any:
        if not hasattr(self, attribute):
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet; call fit first.")
        return getattr(self, attribute)


class ProgressCallback:
    """An openTSNE callback that advances a tqdm bar (``callbacks_every_iters`` iterations per call)."""

    def __init__(self, total: int, *, every: int, desc: str):
        from tqdm.auto import tqdm

        self.every = every
        self.bar = tqdm(total=total, desc=desc, unit="it", leave=False)

    def __call__(self, iteration: int, error: float, embedding: np.ndarray) -> bool:
        self.bar.update(self.every)
        self.bar.set_postfix(kl=f"{error:.3f}")
        return False  # never stop the optimisation

    def close(self) -> None:
        self.bar.close()
