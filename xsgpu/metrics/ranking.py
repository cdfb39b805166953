"""Average precision (AP) per attribute and its mean (mAP), tie-exact.

AP is the area under the step precision-recall curve, as scikit-learn's
``average_precision_score`` defines it: ``AP = sum_k (R_k - R_{k-1}) P_k`` over the distinct score
thresholds in decreasing order. Images with equal scores form one threshold (ties are never split), so
each positive contributes ``P_g / n_pos`` where ``P_g`` is the precision at the end of its tie group.
Results equal scikit-learn's within floating-point rounding (tested to 1e-6, ties included).

An attribute without positives has no defined AP: it is reported as NaN, and
:func:`mean_average_precision` averages over the attributes that have at least one positive
(scikit-learn instead warns and returns 0 for such a column).

Examples
--------
>>> import numpy as np
>>> from xsgpu.metrics import average_precision
>>> round(average_precision(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.8, 0.1])), 4)
0.8333
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from xsgpu.backend import namespace_of, to_host
from xsgpu.metrics.validation import check_labels, check_probabilities

__all__ = ["average_precision", "mean_average_precision"]

log = logging.getLogger(__name__)


def _ap_1d(t, s, xp) -> float:
    """AP of one column: t bool (n,), s float (n,)."""
    n_pos = int(xp.count_nonzero(t))
    if n_pos == 0:
        return float("nan")
    order = xp.argsort(-s)
    s_sorted = s[order]
    t_sorted = t[order]
    n = s_sorted.shape[0]
    tps = xp.cumsum(t_sorted, dtype=xp.int64)
    is_end = xp.ones(n, dtype=bool)
    is_end[:-1] = s_sorted[1:] != s_sorted[:-1]
    ends = xp.flatnonzero(is_end)
    # group id of each position = number of group ends strictly before it
    gid = xp.zeros(n, dtype=xp.int64)
    gid[1:] = xp.cumsum(is_end[:-1], dtype=xp.int64)
    end_of_pos = ends[gid[t_sorted]]  # group end of every positive
    precision_at_end = tps[end_of_pos].astype(xp.float64) / (end_of_pos + 1).astype(xp.float64)
    return float(precision_at_end.sum()) / n_pos


def average_precision(y_true: Any, y_score: Any):
    """Average precision per column (tie-exact; NaN for a column without positives).

    Parameters
    ----------
    y_true : bool array, shape (n,) or (n, k)
        Binary labels (0/1 integers accepted).
    y_score : float array, same shape
        Scores or probabilities (any finite values; higher means more likely positive).

    Returns
    -------
    float for 1-D input, or float64 array of shape (k,) on the input's device for 2-D input.

    Raises
    ------
    ValueError
        Shape or length mismatch, NaN or infinite scores, non-binary labels, no rows.
    """
    xp = namespace_of(y_true, y_score)
    ndim = getattr(y_true, "ndim", np.ndim(y_true))
    if ndim not in (1, 2):
        raise ValueError("The 'y_true' parameter of average_precision must be a 1-D (n,) or 2-D (n, k) array. "
                         f"Got {ndim} dimensions instead.")
    t = check_labels(y_true, xp=xp, func="average_precision", n_attributes=None, ndim=ndim)
    s = check_probabilities(y_score, xp=xp, name="y_score", func="average_precision", n_attributes=None,
                            ndim=ndim, unit_interval=False)
    if t.shape != s.shape:
        raise ValueError("The 'y_true' and 'y_score' parameters of average_precision must have the same shape. "
                         f"Got {tuple(t.shape)} and {tuple(s.shape)} instead (length mismatch).")
    if t.shape[0] == 0:
        raise ValueError("The 'y_true' parameter of average_precision has no rows; AP of no images is undefined.")
    if ndim == 1:
        return _ap_1d(t, s, xp)
    return xp.asarray([_ap_1d(t[:, j], s[:, j], xp) for j in range(t.shape[1])], dtype=xp.float64)


def mean_average_precision(y_true: Any, y_prob: Any) -> float:
    """mAP: the mean AP over the attributes (columns) that have at least one positive.

    Parameters
    ----------
    y_true : bool array, shape (n, k)
    y_prob : float array, shape (n, k)

    Returns
    -------
    float
        NaN (with a logged warning) when no column has a positive.
    """
    ap = np.atleast_1d(np.asarray(to_host(average_precision(y_true, y_prob)), dtype=np.float64))
    if np.isnan(ap).all():
        log.warning("mean_average_precision: no attribute has a positive label; mAP is undefined (NaN).")
        return float("nan")
    return float(np.nanmean(ap))
