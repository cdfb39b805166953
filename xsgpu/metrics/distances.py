"""Per-image error distance between the true label vector (ACT) and the probabilities (PRD).

The app draws it as the centre dot of the joint attribute flower. Three metrics:

* ``"euclidean"``: ``||t - p||_2``, in [0, sqrt(17)];
* ``"manhattan"``: ``sum_j |t_j - p_j|``, in [0, 17] (the expected number of wrong labels);
* ``"cosine"``: ``1 - <t, p> / (||t|| ||p||)``, in [0, 1] because both vectors are non-negative.
  Cosine is undefined for a zero vector; xsgpu defines it as **0 when both ACT and PRD are all
  zero** (nothing labelled, nothing predicted: perfect agreement) and **1 when exactly one of them is
  all zero** (the largest possible distance between non-negative vectors).

Examples
--------
>>> import numpy as np
>>> from xsgpu.metrics import error_distance
>>> t = np.array([[1, 0], [0, 0], [0, 0]], bool)
>>> p = np.array([[1.0, 0.0], [0.0, 0.0], [0.5, 0.0]], np.float32)
>>> error_distance(t, p, metric="cosine", n_attributes=2).tolist()
[0.0, 0.0, 1.0]
"""
from __future__ import annotations

from typing import Any, Literal

from xsgpu.attributes import N_ATTRIBUTES
from xsgpu.backend import namespace_of
from xsgpu.metrics.validation import check_choice, check_pair

__all__ = ["error_distance", "DISTANCE_METRICS"]

DISTANCE_METRICS = ("cosine", "euclidean", "manhattan")


def error_distance(y_true: Any, y_prob: Any, *, metric: Literal["cosine", "euclidean", "manhattan"] = "cosine",
                   n_attributes: int | None = N_ATTRIBUTES):
    """Distance between each image's ACT vector and its PRD vector.

    Parameters
    ----------
    y_true : bool array, shape (n, 17)
    y_prob : float array, shape (n, 17)
        Probabilities in [0, 1].
    metric : {"cosine", "euclidean", "manhattan"}
        See the module docstring (including the zero-vector convention of cosine).
    n_attributes : int or None
        Required number of columns (17; ``None`` accepts any).

    Returns
    -------
    float32 array, shape (n,), on the input's device
    """
    check_choice(metric, DISTANCE_METRICS, name="metric", func="error_distance")
    xp = namespace_of(y_true, y_prob)
    t, p = check_pair(y_true, y_prob, xp=xp, func="error_distance", n_attributes=n_attributes)
    t = t.astype(xp.float32)
    p = p.astype(xp.float32, copy=False)
    if metric == "euclidean":
        return xp.sqrt(((t - p) ** 2).sum(axis=1)).astype(xp.float32)
    if metric == "manhattan":
        return xp.abs(t - p).sum(axis=1).astype(xp.float32)
    dot = (t * p).sum(axis=1)
    nt = xp.sqrt(t.sum(axis=1))  # t is 0/1, so ||t||^2 = sum t
    npr = xp.sqrt((p * p).sum(axis=1))
    denom = nt * npr
    out = xp.ones(t.shape[0], dtype=xp.float32)
    ok = denom > 0
    out[ok] = 1.0 - dot[ok] / denom[ok]
    out[(nt == 0) & (npr == 0)] = 0.0
    return xp.clip(out, 0.0, 1.0)
