"""Input checks shared by the metric functions (sklearn-style messages that name the parameter).

Every public metric validates its arrays here, so a bad input fails early with a message of the form
"The 'y_prob' parameter of selection_metrics must be ... Got ... instead." and, where there is one,
the remedy. The checks are cheap (a few passes over the data, no copies unless a conversion is needed)
and work on NumPy and CuPy arrays alike.

Examples
--------
>>> import numpy as np
>>> from xsgpu.metrics.validation import check_labels
>>> check_labels(np.array([[0, 1], [1, 1]]), n_attributes=2).dtype
dtype('bool')
"""
from __future__ import annotations

import logging
from types import ModuleType
from typing import Any

import numpy as np

from xsgpu.attributes import N_ATTRIBUTES, SLUGS, resolve_attribute

__all__ = [
    "check_labels", "check_probabilities", "check_pair", "check_cutoff", "check_selection",
    "check_attributes", "check_choice", "check_positive_int",
]

log = logging.getLogger(__name__)


def _describe(x: Any) -> str:
    shape = getattr(x, "shape", None)
    dtype = getattr(x, "dtype", None)
    if shape is not None:
        return f"an array of shape {tuple(shape)} and dtype {dtype}"
    return f"{type(x).__name__} {x!r}"[:120]


def _as_array(x: Any, xp: ModuleType, name: str, func: str):
    if isinstance(x, xp.ndarray):
        return x
    if hasattr(x, "to_numpy") and xp is np:  # pandas objects
        return x.to_numpy()
    try:
        return xp.asarray(x)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise TypeError(f"The {name!r} parameter of {func} must be an array. Got {_describe(x)} instead.") from exc


def check_labels(y: Any, *, xp: ModuleType = np, name: str = "y_true", func: str = "metrics",
                 n_attributes: int | None = N_ATTRIBUTES, ndim: int = 2):
    """Return ``y`` as a bool array after checking that it holds 0/1 labels.

    Parameters
    ----------
    y : array-like, shape (n, n_attributes) or (n,) when ``ndim=1``
        Bool, integer or float labels; only 0 and 1 (and True/False) are allowed.
    xp : module
        ``numpy`` or ``cupy`` (from :func:`xsgpu.backend.namespace_of`).
    name, func : str
        Parameter and function names used in the error message.
    n_attributes : int or None
        Required number of columns (``None``: any).
    ndim : {1, 2}
        Required number of dimensions.

    Returns
    -------
    y : bool array, same shape

    Raises
    ------
    ValueError
        Wrong number of dimensions or columns, NaN, or values other than 0/1.
    """
    y = _as_array(y, xp, name, func)
    _check_shape(y, ndim=ndim, n_attributes=n_attributes, name=name, func=func)
    if y.dtype == bool:
        return y
    if y.dtype.kind not in "biuf":
        raise ValueError(f"The {name!r} parameter of {func} must hold bool or 0/1 labels. Got {_describe(y)} instead.")
    if y.size:
        bad = xp.logical_and(y != 0, y != 1)
        if bool(bad.any()):
            first = y[bad][0]
            raise ValueError(f"The {name!r} parameter of {func} must hold only 0/1 (or bool) labels. "
                             f"Got the value {first.item()!r} ({int(bad.sum())} bad entries) instead.")
    return y != 0


def _check_shape(a: Any, *, ndim: int, n_attributes: int | None, name: str, func: str) -> None:
    """Raise a ValueError naming the parameter unless ``a`` is ``ndim``-D with ``n_attributes`` columns."""
    if a.ndim != ndim:
        want = "(n,)" if ndim == 1 else f"(n, {n_attributes if n_attributes else 'k'})"
        raise ValueError(f"The {name!r} parameter of {func} must be a {ndim}-D array of shape {want}. "
                         f"Got {_describe(a)} instead.")
    if ndim == 2 and n_attributes is not None and a.shape[1] != n_attributes:
        raise ValueError(f"The {name!r} parameter of {func} must have {n_attributes} columns (one per attribute, "
                         f"in xsgpu.attributes order). Got {_describe(a)} instead.")


def check_probabilities(p: Any, *, xp: ModuleType = np, name: str = "y_prob", func: str = "metrics",
                        n_attributes: int | None = N_ATTRIBUTES, ndim: int = 2, unit_interval: bool = True):
    """Return ``p`` as a float array after checking shape, NaN and (optionally) the range [0, 1].

    Bool input is accepted (read as 0.0/1.0, e.g. hard predictions). Integer input is converted to
    float32. Float input is returned as is (no copy).

    Parameters
    ----------
    p : array-like, shape (n, n_attributes) or (n,) when ``ndim=1``
    unit_interval : bool
        Require every value in [0, 1] (probabilities). ``False`` only requires finite values (scores).

    Raises
    ------
    ValueError
        Wrong shape, NaN or infinite values, or values outside [0, 1].
    """
    p = _as_array(p, xp, name, func)
    _check_shape(p, ndim=ndim, n_attributes=n_attributes, name=name, func=func)
    if p.dtype.kind == "b" or p.dtype.kind in "iu":
        p = p.astype(xp.float32)
    elif p.dtype.kind != "f":
        raise ValueError(f"The {name!r} parameter of {func} must hold float probabilities. Got {_describe(p)} instead.")
    if p.size == 0:
        return p
    # min/max propagate NaN, so two passes catch NaN, infinities and the range.
    lo, hi = float(p.min()), float(p.max())
    if lo != lo or hi != hi:
        n_nan = int(xp.isnan(p).sum())
        raise ValueError(f"The {name!r} parameter of {func} must not contain NaN. Got {n_nan} NaN value(s) instead. "
                         "Hint: check the predictions table (a failed inference partition?).")
    if unit_interval and (lo < 0.0 or hi > 1.0):
        raise ValueError(f"The {name!r} parameter of {func} must hold probabilities in [0, 1]. "
                         f"Got values in [{lo:g}, {hi:g}] instead. Hint: apply a sigmoid to logits first.")
    if not unit_interval and (lo in (-np.inf, np.inf) or hi in (-np.inf, np.inf)):
        raise ValueError(f"The {name!r} parameter of {func} must hold finite scores. "
                         f"Got values in [{lo:g}, {hi:g}] instead.")
    return p


def check_pair(y_true: Any, y_prob: Any, *, xp: ModuleType, func: str, true_name: str = "y_true",
               prob_name: str = "y_prob", n_attributes: int | None = N_ATTRIBUTES, ndim: int = 2):
    """Check labels and probabilities together; they must have the same number of rows."""
    yt = check_labels(y_true, xp=xp, name=true_name, func=func, n_attributes=n_attributes, ndim=ndim)
    yp = check_probabilities(y_prob, xp=xp, name=prob_name, func=func, n_attributes=n_attributes, ndim=ndim)
    if yt.shape != yp.shape:
        raise ValueError(f"The {true_name!r} and {prob_name!r} parameters of {func} must have the same shape "
                         f"(one row per image). Got {tuple(yt.shape)} and {tuple(yp.shape)} instead "
                         "(length mismatch).")
    return yt, yp


def check_cutoff(cutoff: Any, *, xp: ModuleType, func: str, n_attributes: int = N_ATTRIBUTES):
    """Return the cut-off as a Python float or an xp array of shape (n_attributes,), each in [0, 1]."""
    if isinstance(cutoff, (bool, np.bool_)):
        raise ValueError(f"The 'cutoff' parameter of {func} must be a float in [0, 1] or an array of shape "
                         f"({n_attributes},). Got {cutoff!r} instead.")
    is_array = isinstance(cutoff, (list, tuple)) or (hasattr(cutoff, "shape") and tuple(cutoff.shape) != ())
    if not is_array:
        try:
            c = float(cutoff)
        except (TypeError, ValueError):
            raise ValueError(f"The 'cutoff' parameter of {func} must be a float in [0, 1] or an array of shape "
                             f"({n_attributes},). Got {cutoff!r} instead.") from None
        if not 0.0 <= c <= 1.0:
            raise ValueError(f"The 'cutoff' parameter of {func} must be a float in [0, 1] or an array of shape "
                             f"({n_attributes},). Got {cutoff!r} instead.")
        return c
    arr = xp.asarray(cutoff, dtype=xp.float64)
    if arr.shape != (n_attributes,):
        raise ValueError(f"The 'cutoff' parameter of {func} must be a float in [0, 1] or an array of shape "
                         f"({n_attributes},) (one cut-off per attribute). Got shape {tuple(arr.shape)} instead.")
    lo, hi = float(arr.min()), float(arr.max())
    if not (lo >= 0.0 and hi <= 1.0):  # also catches NaN
        raise ValueError(f"The 'cutoff' parameter of {func} must hold values in [0, 1]. "
                         f"Got values in [{lo:g}, {hi:g}] instead.")
    return arr


def check_selection(selection: Any, n: int, *, xp: ModuleType, func: str):
    """Return a selection as a bool mask (n,) or an int64 index array (m,), checked against ``n`` rows.

    Parameters
    ----------
    selection : bool array (n,) or integer array (m,) of row positions in 0..n-1
        Duplicate positions count once per occurrence (NumPy fancy-indexing semantics).

    Raises
    ------
    ValueError
        A mask of the wrong length, indices out of range, a float array, or an empty selection.
    """
    sel = _as_array(selection, xp, "selection", func)
    if sel.ndim != 1:
        raise ValueError(f"The 'selection' parameter of {func} must be a 1-D bool mask of length {n} or a 1-D "
                         f"array of row indices. Got {_describe(sel)} instead.")
    if sel.dtype == bool:
        if sel.shape[0] != n:
            raise ValueError(f"The 'selection' parameter of {func} is a bool mask of length {sel.shape[0]}, but the "
                             f"data has {n} rows (length mismatch). Hint: pass a mask over all rows or an index array.")
        if not bool(sel.any()):
            raise ValueError(f"The 'selection' parameter of {func} selects no rows (empty selection); metrics of "
                             "an empty selection are undefined.")
        return sel
    if sel.size == 0:
        raise ValueError(f"The 'selection' parameter of {func} selects no rows (empty selection); metrics of "
                         "an empty selection are undefined.")
    if sel.dtype.kind not in "iu":
        raise ValueError(f"The 'selection' parameter of {func} must be a bool mask or integer row indices. "
                         f"Got {_describe(sel)} instead.")
    lo, hi = int(sel.min()), int(sel.max())
    if lo < 0 or hi >= n:
        raise ValueError(f"The 'selection' parameter of {func} must hold row indices in 0..{n - 1}. "
                         f"Got indices in [{lo}, {hi}] instead.")
    return sel


def check_attributes(attributes: Any, *, func: str, vocabulary: Any = None) -> list[int]:
    """Resolve attribute names/slugs/indices to positions in ``vocabulary`` (default the paper's 17).

    Unknown names raise ``ValueError``.
    """
    n = N_ATTRIBUTES if vocabulary is None else len(vocabulary)
    if attributes is None:
        return list(range(n))
    if isinstance(attributes, (str, int)):
        attributes = [attributes]
    resolve = resolve_attribute if vocabulary is None else vocabulary.resolve
    out = []
    for a in attributes:
        try:
            out.append(resolve(a).index)
        except KeyError as exc:
            slugs = SLUGS if vocabulary is None else vocabulary.slugs
            raise ValueError(f"The 'attributes' parameter of {func} names an unknown attribute {a!r}. "
                             f"Valid slugs: {', '.join(slugs)}.") from exc
    return out


def check_choice(value: Any, choices: tuple[str, ...], *, name: str, func: str) -> str:
    """Check that ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"The {name!r} parameter of {func} must be one of {', '.join(map(repr, choices))}. "
                         f"Got {value!r} instead.")
    return value


def check_positive_int(value: Any, *, name: str, func: str, minimum: int = 1) -> int:
    """Check that ``value`` is an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"The {name!r} parameter of {func} must be an int >= {minimum}. Got {value!r} instead.")
    return int(value)
