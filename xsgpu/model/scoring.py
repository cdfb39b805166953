"""Scores used while training: mean average precision and the prevalence baseline.

mAP is the macro mean of average precision over attributes with at least one positive, computed by
``xsgpu.metrics.mean_average_precision``, so training and evaluation report the same number.

Examples
--------
>>> import numpy as np
>>> from xsgpu.model.scoring import mean_ap, prevalence_map
>>> y = np.array([[1, 0], [0, 0], [1, 1], [0, 1]], dtype=bool)
>>> mean_ap(y, y.astype(float))
1.0
>>> prevalence_map(y, np.array([0.5, 0.5]))
0.5
"""
from __future__ import annotations

import logging

import numpy as np

from xsgpu.metrics.ranking import mean_average_precision

__all__ = ["mean_ap", "prevalence_map"]

log = logging.getLogger(__name__)


def mean_ap(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Macro mAP over attributes with at least one positive (NaN if none has one).

    Parameters
    ----------
    y_true : bool array, shape (n, k)
    y_score : float array, shape (n, k)
    """
    y_true = np.asarray(y_true, dtype=bool)
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_true.shape != y_score.shape or y_true.ndim != 2:
        raise ValueError(f"y_true and y_score must both have shape (n, k). Got {y_true.shape} and {y_score.shape} instead.")
    return float(mean_average_precision(y_true, y_score))


def prevalence_map(y_true: np.ndarray, prevalence: np.ndarray) -> float:
    """mAP of the baseline that scores every image with each attribute's frequency ``prevalence`` (k,).

    A constant score ranks nothing, so each attribute's AP equals its positive fraction in ``y_true``.
    """
    y_true = np.asarray(y_true, dtype=bool)
    score = np.broadcast_to(np.asarray(prevalence, dtype=np.float64)[None, :], y_true.shape)
    return mean_ap(y_true, np.ascontiguousarray(score))
