"""Attribute study matrices (17 x 17): mutual information, Pearson correlation, conditional entropy.

``attribute_study(y)`` relates the attributes of one label matrix to each other (ACT with ACT, or
predictions with predictions); ``attribute_study(y, other=z)`` builds the cross matrix with rows the
attributes of ``y`` (e.g. the true labels) and columns the attributes of ``z`` (e.g. the predictions).
Entry ``[i, j]`` relates column ``i`` of ``y`` (X) to column ``j`` of ``other`` (Y, = ``y`` when omitted):

* ``"mutual_information"``: ``I(X; Y)`` in **bits** (log base 2; at most 1 for binary attributes);
  symmetric when ``other`` is omitted.
* ``"conditional_entropy"``: ``H(Y | X)`` in bits: the uncertainty left about column ``j`` once column
  ``i`` is known (rows condition). The diagonal of the self-study is 0.
* ``"correlation"``: Pearson's r; NaN where a column is constant (undefined).

Mutual information and conditional entropy are computed on binary variables: float input (probabilities)
is binarised with the prediction rule ``p > cutoff``. Correlation uses the values as given (so
probabilities keep their grading). All counts come from one matrix product, so the cost is
O(n * 17 * 17) and a million images take well under a second.

Examples
--------
>>> import numpy as np
>>> from xsgpu.metrics import attribute_study
>>> y = np.zeros((4, 17), bool); y[:2, 0] = True; y[:2, 1] = True
>>> m = attribute_study(y, measure="mutual_information")
>>> round(float(m[0, 1]), 3), round(float(m[0, 0]), 3)
(1.0, 1.0)
"""
from __future__ import annotations

from typing import Any, Literal

import numpy as np

from xsgpu.attributes import N_ATTRIBUTES
from xsgpu.backend import namespace_of
from xsgpu.metrics.validation import check_choice, check_cutoff, check_labels, check_probabilities

__all__ = ["attribute_study", "STUDY_MEASURES"]

STUDY_MEASURES = ("mutual_information", "correlation", "conditional_entropy")
_CHUNK = 1 << 18


def _prepare(y: Any, *, xp, name: str, binary: bool, cutoff, n_attributes):
    """Labels -> bool; probabilities -> bool (binary measures) or float (correlation)."""
    arr = y if isinstance(y, xp.ndarray) else xp.asarray(y)
    if arr.dtype == bool or arr.dtype.kind in "iu":
        return check_labels(arr, xp=xp, name=name, func="attribute_study", n_attributes=n_attributes)
    p = check_probabilities(arr, xp=xp, name=name, func="attribute_study", n_attributes=n_attributes,
                            unit_interval=binary)
    return p > cutoff if binary else p


def _gram(a, b, xp):
    """a.T @ b, sums of a and b, sums of squares, accumulated in float64 over row chunks."""
    n, k = a.shape
    kb = b.shape[1]
    ab = xp.zeros((k, kb), dtype=xp.float64)
    sa = xp.zeros(k, dtype=xp.float64)
    sb = xp.zeros(kb, dtype=xp.float64)
    qa = xp.zeros(k, dtype=xp.float64)
    qb = xp.zeros(kb, dtype=xp.float64)
    for start in range(0, n, _CHUNK):
        ca = a[start:start + _CHUNK].astype(xp.float64)
        cb = b[start:start + _CHUNK].astype(xp.float64)
        ab += ca.T @ cb
        sa += ca.sum(axis=0)
        sb += cb.sum(axis=0)
        qa += (ca * ca).sum(axis=0)
        qb += (cb * cb).sum(axis=0)
    return ab, sa, sb, qa, qb


def _plogp(p, xp):
    """-p log2 p elementwise, 0 where p == 0."""
    out = xp.zeros(p.shape, dtype=xp.float64)
    nz = p > 0
    out[nz] = -p[nz] * xp.log2(p[nz])
    return out


def attribute_study(y: Any, *, measure: Literal["mutual_information", "correlation", "conditional_entropy"]
                    = "mutual_information", other: Any | None = None, cutoff: float | Any = 0.5,
                    n_attributes: int | None = N_ATTRIBUTES):
    """Attribute-by-attribute matrix of one label set, or of a true-vs-predicted pair.

    Parameters
    ----------
    y : array, shape (n, 17)
        Labels (bool / 0-1) or probabilities (rows of the matrix).
    measure : {"mutual_information", "correlation", "conditional_entropy"}
        See the module docstring for definitions, units and orientation.
    other : array, shape (n, 17), optional
        Second label set (columns of the matrix), e.g. predictions, for a cross matrix.
    cutoff : float or array of shape (17,)
        Binarisation rule ``p > cutoff`` for probabilities under the binary measures.
    n_attributes : int or None
        Required number of columns (17; ``None`` accepts any).

    Returns
    -------
    float64 array, shape (17, 17), on the input's device

    Raises
    ------
    ValueError
        Unknown measure, wrong shapes, length mismatch, NaN, no rows.
    """
    check_choice(measure, STUDY_MEASURES, name="measure", func="attribute_study")
    xp = namespace_of(y, other)
    cutoff = check_cutoff(cutoff, xp=xp, func="attribute_study", n_attributes=n_attributes or N_ATTRIBUTES)
    binary = measure != "correlation"
    a = _prepare(y, xp=xp, name="y", binary=binary, cutoff=cutoff, n_attributes=n_attributes)
    b = a if other is None else _prepare(other, xp=xp, name="other", binary=binary, cutoff=cutoff,
                                         n_attributes=n_attributes)
    if a.shape[0] != b.shape[0]:
        raise ValueError("The 'y' and 'other' parameters of attribute_study must have the same number of rows "
                         f"(one per image). Got {a.shape[0]} and {b.shape[0]} instead (length mismatch).")
    n = a.shape[0]
    if n == 0:
        raise ValueError("The 'y' parameter of attribute_study has no rows; the study of no images is undefined.")
    if xp is np:
        # A (n, 17)^T (n, 17) product gains nothing from BLAS threads, and on a busy machine they thrash
        # (measured 30x slower than one thread on 2 shared cores), so run it single-threaded.
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            ab, sa, sb, qa, qb = _gram(a, b, xp)
    else:
        ab, sa, sb, qa, qb = _gram(a, b, xp)
    if measure == "correlation":
        cov = ab / n - xp.outer(sa / n, sb / n)
        va = qa / n - (sa / n) ** 2
        vb = qb / n - (sb / n) ** 2
        denom = xp.sqrt(xp.outer(xp.clip(va, 0, None), xp.clip(vb, 0, None)))
        out = xp.full(cov.shape, xp.nan, dtype=xp.float64)
        ok = denom > 1e-12
        out[ok] = cov[ok] / denom[ok]
        return xp.clip(out, -1.0, 1.0)
    # joint distribution of (X_i, Y_j) from the 2 x 2 counts
    p11 = ab / n
    p10 = sa[:, None] / n - p11
    p01 = sb[None, :] / n - p11
    p00 = 1.0 - p11 - p10 - p01
    joint = [xp.clip(p, 0.0, 1.0) for p in (p00, p01, p10, p11)]
    h_xy = sum(_plogp(p, xp) for p in joint)
    px = sa / n
    py = sb / n
    h_x = _plogp(px, xp) + _plogp(1.0 - px, xp)
    h_y = _plogp(py, xp) + _plogp(1.0 - py, xp)
    if measure == "conditional_entropy":
        return xp.clip(h_xy - h_x[:, None], 0.0, None)
    return xp.clip(h_x[:, None] + h_y[None, :] - h_xy, 0.0, None)
