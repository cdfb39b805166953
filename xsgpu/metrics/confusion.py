"""Per-attribute confusion counts and the ratios built on them, for a whole run or a selection.

Conventions (the same everywhere in xsgpu, and in the app's flower glyphs):

* **Prediction rule.** An attribute is *predicted* when its probability is strictly greater than the
  cut-off: ``y_pred = y_prob > cutoff`` (DOMAIN.md: "predicted (p > 0.5)"). ``cutoff`` is a float in
  [0, 1] (0.5 by default) or an array of shape (17,) with one cut-off per attribute.
* **Zero division.** A ratio whose denominator is 0 is defined as **0** (scikit-learn's
  ``zero_division=0``): precision is 0 for an attribute never predicted, recall is 0 for an attribute
  absent from the labels, F1 is 0 when ``tp + fp + fn == 0``. No warning is issued.
* **Averages** (the ``overall`` dict of :class:`SelectionMetrics`), equal to scikit-learn's
  ``precision_recall_fscore_support(..., average=..., zero_division=0)``:
  ``micro`` pools the counts of all attributes; ``macro`` is the unweighted mean over all 17
  attributes (absent ones included, as 0); ``samples`` is the mean over images of the per-image
  precision/recall/F1 of its 17 labels. ``accuracy`` is the fraction of correct (image, attribute)
  cells (Hamming accuracy), ``subset_accuracy`` the fraction of images whose 17 labels are all right.

Speed: the 17 labels of an image are packed into one 17-bit integer code (for ACT and for PRD), so the
counts of any selection reduce to a gather of two (n,) code arrays, three ``bincount`` calls over the
2**17 codes (ACT, PRD, ACT & PRD) and popcounts for the per-image averages. All these statistics are
additive, so a mask selecting more than half the rows is scored as "all rows minus the rest". :class:`SelectionScorer` packs once and then scores each selection in a few passes over the
selected rows (the interactive path of the app); :func:`selection_metrics` is the one-shot pure form.
Another vocabulary (``vocabulary=``) of up to :data:`CODE_MAX_ATTRIBUTES` attributes is packed the same
way; a wider one keeps its bool rows and sums their columns (O(rows x attributes) per selection).

Examples
--------
>>> import numpy as np
>>> from xsgpu.metrics import confusion_counts
>>> y_true = np.zeros((4, 17), bool); y_true[:2, 0] = True
>>> y_prob = np.zeros((4, 17), np.float32); y_prob[[0, 2], 0] = 0.9
>>> c = confusion_counts(y_true, y_prob)
>>> int(c["tp"][0]), int(c["fp"][0]), int(c["fn"][0]), int(c["tn"][0])
(1, 1, 1, 1)
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Sequence

import numpy as np
import pandas as pd

from xsgpu.attributes import N_ATTRIBUTES, SLUGS
from xsgpu.backend import namespace_of, to_host
from xsgpu.metrics.validation import check_cutoff, check_pair, check_probabilities, check_selection

__all__ = [
    "predict_labels", "confusion_counts", "ratios", "attribute_metrics", "SelectionMetrics",
    "SelectionScorer", "selection_metrics", "PER_ATTRIBUTE_COLUMNS", "encode_rows",
]

log = logging.getLogger(__name__)

#: Columns of :func:`attribute_metrics` and ``SelectionMetrics.per_attribute`` (index: attribute slug).
PER_ATTRIBUTE_COLUMNS = ["tp", "tn", "fp", "fn", "accuracy", "precision", "recall", "f1", "ap", "support"]



def predict_labels(y_prob: Any, *, cutoff: float | Any = 0.5):
    """Apply the prediction rule ``y_prob > cutoff``.

    Parameters
    ----------
    y_prob : float array, shape (n, 17)
        Probabilities in [0, 1].
    cutoff : float or array of shape (17,)

    Returns
    -------
    y_pred : bool array, shape (n, 17), on the input's device
    """
    xp = namespace_of(y_prob)
    y_prob = check_probabilities(y_prob, xp=xp, func="predict_labels")
    c = check_cutoff(cutoff, xp=xp, func="predict_labels")
    return y_prob > c


def _safe_div(num, den, xp: ModuleType):
    """``num / den`` elementwise, 0 where ``den == 0`` (the zero-division convention)."""
    num = xp.asarray(num, dtype=xp.float64)
    den = xp.asarray(den, dtype=xp.float64)
    out = xp.zeros(num.shape, dtype=xp.float64)
    nz = den != 0
    out[nz] = num[nz] / den[nz]
    return out


def ratios(tp, fp, fn, tn) -> dict[str, Any]:
    """Accuracy, precision, recall and F1 from confusion counts (zero division -> 0).

    Parameters
    ----------
    tp, fp, fn, tn : int arrays of the same shape (e.g. (17,))

    Returns
    -------
    dict with float64 arrays ``accuracy``, ``precision``, ``recall``, ``f1``.
    """
    xp = namespace_of(tp, fp, fn, tn)
    tp, fp, fn, tn = (xp.asarray(a) for a in (tp, fp, fn, tn))
    return {
        "accuracy": _safe_div(tp + tn, tp + tn + fp + fn, xp),
        "precision": _safe_div(tp, tp + fp, xp),
        "recall": _safe_div(tp, tp + fn, xp),
        "f1": _safe_div(2 * tp, 2 * tp + fp + fn, xp),
    }


def confusion_counts(y_true: Any, y_prob: Any, *, cutoff: float | Any = 0.5,
                     n_attributes: int = N_ATTRIBUTES) -> dict[str, Any]:
    """Count true/false positives/negatives per attribute.

    Parameters
    ----------
    y_true : bool array, shape (n, 17)
        ACT labels (0/1 integers are accepted).
    y_prob : float array, shape (n, 17)
        PRD probabilities in [0, 1].
    cutoff : float or array of shape (17,)
        Predicted means ``y_prob > cutoff``.

    Returns
    -------
    dict
        ``tp``, ``fp``, ``fn``, ``tn``: int64 arrays of shape (17,) on the input's device.
    """
    xp = namespace_of(y_true, y_prob)
    yt, yp = check_pair(y_true, y_prob, xp=xp, func="confusion_counts", n_attributes=n_attributes)
    c = check_cutoff(cutoff, xp=xp, func="confusion_counts", n_attributes=n_attributes)
    pred = yp > c
    n = yt.shape[0]
    tp = xp.count_nonzero(yt & pred, axis=0).astype(xp.int64)
    n_true = xp.count_nonzero(yt, axis=0).astype(xp.int64)
    n_pred = xp.count_nonzero(pred, axis=0).astype(xp.int64)
    fp = n_pred - tp
    fn = n_true - tp
    return {"tp": tp, "fp": fp, "fn": fn, "tn": n - tp - fp - fn}


def _per_attribute_frame(counts: dict[str, Any], ap: Any | None, slugs: Sequence[str] | None = None) -> pd.DataFrame:
    h = {k: np.asarray(to_host(v)) for k, v in counts.items()}
    r = ratios(h["tp"], h["fp"], h["fn"], h["tn"])
    n = len(h["tp"])
    columns = {
        "tp": h["tp"], "tn": h["tn"], "fp": h["fp"], "fn": h["fn"],
        "accuracy": r["accuracy"], "precision": r["precision"], "recall": r["recall"], "f1": r["f1"],
        "ap": np.asarray(to_host(ap), dtype=np.float64) if ap is not None else np.full(n, np.nan),
        "support": h["tp"] + h["fn"],
    }
    return pd.DataFrame(columns, index=pd.Index(list(SLUGS if slugs is None else slugs), name="attribute"),
                        columns=PER_ATTRIBUTE_COLUMNS)


def attribute_metrics(y_true: Any, y_prob: Any, *, cutoff: float | Any = 0.5,
                      slugs: Sequence[str] | None = None, ap_order: Any = None) -> pd.DataFrame:
    """Per-attribute confusion counts, accuracy, precision, recall, F1, AP and support.

    Parameters
    ----------
    y_true : bool array, shape (n, 17)
    y_prob : float array, shape (n, 17)
    cutoff : float or array of shape (17,)
    slugs : sequence of str, optional
        The attributes of the columns (a run's ``store.vocabulary.slugs``; then the arrays have
        ``len(slugs)`` columns). Default: the paper's 17.
    ap_order : int array, shape (n, 17), optional
        The rows by decreasing probability per attribute (``xsgpu.metrics.ranking.descending_order`` or
        ``restrict_order``): AP without sorting.

    Returns
    -------
    pandas.DataFrame
        Index: attribute slug (17 rows, canonical order, or ``slugs``); columns :data:`PER_ATTRIBUTE_COLUMNS`
        (``ap`` is NaN for an attribute without positives; ``support`` = number of positives).
    """
    from xsgpu.metrics.ranking import average_precision

    xp = namespace_of(y_true, y_prob)
    k = N_ATTRIBUTES if slugs is None else len(slugs)
    yt, yp = check_pair(y_true, y_prob, xp=xp, func="attribute_metrics", n_attributes=k)
    if yt.shape[0] == 0:
        raise ValueError("The 'y_true' parameter of attribute_metrics has no rows; metrics of no images are undefined.")
    counts = confusion_counts(yt, yp, cutoff=cutoff, n_attributes=k)
    return _per_attribute_frame(counts, average_precision(yt, yp, order=ap_order), slugs)


@dataclass(frozen=True)
class SelectionMetrics:
    """Metrics of one selection of images.

    Attributes
    ----------
    per_attribute : pandas.DataFrame
        As :func:`attribute_metrics` (``ap`` is NaN unless computed with ``ap=True``).
    overall : dict[str, float]
        ``n`` (selected images), ``accuracy``, ``subset_accuracy``, ``precision_micro``,
        ``recall_micro``, ``f1_micro``, the same with ``_macro`` and ``_samples``, and ``map``
        (NaN unless ``ap=True``). See the module docstring for the definitions.
    """

    per_attribute: pd.DataFrame
    overall: dict[str, float] = field(default_factory=dict)


@functools.lru_cache(maxsize=4)
def _bit_table(n_bits: int) -> np.ndarray:
    """(2**n_bits, n_bits) float64 table: row c holds the bits of c."""
    codes = np.arange(2**n_bits, dtype=np.int64)
    return ((codes[:, None] >> np.arange(n_bits)) & 1).astype(np.float64)


@functools.lru_cache(maxsize=2)
def _popcount_table(n_bits: int) -> np.ndarray:
    return _bit_table(n_bits).sum(axis=1).astype(np.uint8)


#: Runs of up to this many attributes are scored through per-image codes (2**k-cell histograms); wider
#: vocabularies through column sums of the bool rows.
CODE_MAX_ATTRIBUTES = 20


def encode_rows(b: Any):
    """Pack each row of a bool array (n, k <= 32) into one uint32 code (bit j = column j).

    >>> import numpy as np
    >>> encode_rows(np.array([[True, False, True], [False, False, False]])).tolist()
    [5, 0]
    """
    xp = namespace_of(b)
    n, k = b.shape
    if k > 32:
        raise ValueError(f"encode_rows packs at most 32 columns; got {k}.")
    if xp is np:
        packed = np.packbits(b, axis=1, bitorder="little")
        buf = np.zeros((n, 4), dtype=np.uint8)
        buf[:, : packed.shape[1]] = packed
        return buf.view("<u4").reshape(n)
    shifts = xp.arange(k, dtype=xp.uint32)
    return (b.astype(xp.uint32) << shifts).sum(axis=1, dtype=xp.uint32)


class SelectionScorer:
    """Score many selections of the same images fast (the app's interactive path).

    Packs ACT and PRD (after the cut-off) into one 17-bit code per image once; each call then costs a
    gather of the selected codes and a few ``bincount`` passes (see the module docstring).

    Parameters
    ----------
    y_true : bool array, shape (n, 17)
    y_prob : float array, shape (n, 17)
    cutoff : float or array of shape (17,)
    keep_probabilities : bool
        Keep a reference to ``y_prob`` (and ``y_true``) so that ``ap=True`` can compute AP per
        selection. No copy is made.
    ap_order : int array, shape (n, 17), optional
        ``xsgpu.metrics.ranking.descending_order(y_prob)``, computed once elsewhere (the app caches it):
        ``ap=True`` then gathers each selection's order from it instead of sorting (large selections).

    Notes
    -----
    The counts come from codes packed at construction: after changing the labels (a correction) or
    the cut-off, build a new scorer. Memory: two uint32 codes per image (8 MB per million).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y_true = rng.random((100, 17)) < 0.3
    >>> y_prob = rng.random((100, 17)).astype(np.float32)
    >>> scorer = SelectionScorer(y_true, y_prob)
    >>> m = scorer(np.arange(10))
    >>> m.overall["n"], m.per_attribute.shape
    (10, (17, 10))
    """

    def __init__(self, y_true: Any, y_prob: Any, *, cutoff: float | Any = 0.5, keep_probabilities: bool = True,
                 vocabulary: Any = None, ap_order: Any = None, _func: str = "SelectionScorer"):
        xp = namespace_of(y_true, y_prob)
        self.slugs = tuple(SLUGS if vocabulary is None else vocabulary.slugs)
        self.k = k = len(self.slugs)
        yt, yp = check_pair(y_true, y_prob, xp=xp, func=_func, n_attributes=k)
        self.cutoff = check_cutoff(cutoff, xp=xp, func=_func, n_attributes=k)
        self.xp = xp
        self.n = int(yt.shape[0])
        if k <= CODE_MAX_ATTRIBUTES:
            self.true_codes = encode_rows(yt)
            self.pred_codes = encode_rows(yp > self.cutoff)
        else:  # too wide for one code per image: the bool rows themselves ((n, k) each)
            self.true_codes, self.pred_codes = yt, yp > self.cutoff
        self._y_true = yt if keep_probabilities else None
        self._y_prob = yp if keep_probabilities else None
        if ap_order is not None and tuple(ap_order.shape) != tuple(yp.shape):
            raise ValueError(f"The 'ap_order' parameter of {_func} must have the shape of y_prob {tuple(yp.shape)}. "
                             f"Got {tuple(ap_order.shape)} instead.")
        self._ap_order = ap_order
        self._func = _func
        self._full: _RawStatistics | None = None

    def __call__(self, selection: Any = None, *, ap: bool = False) -> SelectionMetrics:
        """Metrics of the selected rows (a bool mask (n,) or row indices; ``None`` = all rows).

        ``ap=True`` adds per-attribute AP and the mAP (sorting: O(m log m) per attribute, so much slower
        than the counts on big selections).
        """
        xp = self.xp
        if selection is None:
            sel, raw = None, self._full_statistics()
        else:
            sel = check_selection(selection, self.n, xp=xp, func=self._func)
            if sel.dtype == bool:
                m = int(xp.count_nonzero(sel))
                if 2 * m > self.n:  # counts are additive: all rows minus the unselected ones is cheaper
                    rest = ~sel
                    raw = self._full_statistics() - _raw_statistics(
                        xp.compress(rest, self.true_codes, axis=0), xp.compress(rest, self.pred_codes, axis=0), xp,
                        self.k)
                else:  # compress is several times faster than boolean indexing in NumPy
                    raw = _raw_statistics(xp.compress(sel, self.true_codes, axis=0),
                                          xp.compress(sel, self.pred_codes, axis=0), xp, self.k)
            else:
                raw = _raw_statistics(self.true_codes[sel], self.pred_codes[sel], xp, self.k)
        if raw.m == 0:
            raise ValueError(f"The 'selection' parameter of {self._func} selects no rows (empty selection); "
                             "metrics of an empty selection are undefined.")
        return _metrics_from_raw(raw, ap_arrays=self._ap_arrays(sel) if ap else None, slugs=self.slugs)

    def _full_statistics(self) -> "_RawStatistics":
        if self._full is None:
            self._full = _raw_statistics(self.true_codes, self.pred_codes, self.xp, self.k)
        return self._full

    def _ap_arrays(self, sel):
        if self._y_prob is None:
            raise ValueError("ap=True needs the probabilities; create the SelectionScorer with keep_probabilities=True.")
        if sel is None:
            return self._y_true, self._y_prob, self._ap_order
        order = None
        if self._ap_order is not None:
            from xsgpu.metrics.ranking import restrict_order
            order = restrict_order(self._ap_order, sel)
            if order is self._ap_order:  # every row, in row order: no copy
                return self._y_true, self._y_prob, order
        if sel.dtype == bool:
            return self.xp.compress(sel, self._y_true, axis=0), self.xp.compress(sel, self._y_prob, axis=0), order
        return self._y_true[sel], self._y_prob[sel], order


@dataclass(frozen=True)
class _RawStatistics:
    """Additive sufficient statistics of a set of rows (host NumPy).

    ``counts``: (3, 17) rows with the bit set in ACT, PRD, ACT & PRD; ``cells``: (18**3,) histogram of the
    per-row (tp, t, p) popcounts; ``exact``: rows with ACT == PRD; ``m``: rows.
    """

    counts: np.ndarray
    cells: np.ndarray
    exact: int
    m: int

    def __sub__(self, other: "_RawStatistics") -> "_RawStatistics":
        return _RawStatistics(self.counts - other.counts, self.cells - other.cells, self.exact - other.exact,
                              self.m - other.m)


def _raw_statistics(ct, cp, xp: ModuleType, n_attributes: int = N_ATTRIBUTES) -> _RawStatistics:
    """Statistics of the rows with codes ``ct`` (ACT) and ``cp`` (PRD).

    Per-attribute counts: one ``bincount`` over the 2**17 codes for ACT, PRD and ACT & PRD each, with the
    bits folded out of the histograms. Per-image averages: the popcounts of a row's three codes give its
    (tp, t, p); their joint histogram (18**3 cells) yields the mean precision/recall/F1 over images
    without per-row floats.
    """
    if ct.ndim == 2:  # bool rows of a wide vocabulary
        return _row_statistics(ct, cp, xp)
    n_codes = 1 << n_attributes
    k = n_attributes + 1
    both = ct & cp
    if ct.shape[0] * n_attributes < n_codes:  # few rows: unpack their bits instead of 2**17-cell histograms
        shifts = xp.arange(n_attributes, dtype=xp.uint32)
        counts = xp.stack([((a[:, None] >> shifts) & 1).sum(axis=0, dtype=xp.int64) for a in (ct, cp, both)])
    else:
        counts = _bit_sums(xp.stack([xp.bincount(a, minlength=n_codes) for a in (ct, cp, both)]), xp)
    if hasattr(xp, "bitwise_count"):
        pt, pp, ptp = (xp.bitwise_count(a).astype(xp.uint16) for a in (ct, cp, both))
    else:  # NumPy < 2.0 / CuPy: lookup table
        pop = xp.asarray(_popcount_table(n_attributes))
        pt, pp, ptp = (pop[a].astype(xp.uint16) for a in (ct, cp, both))
    key = ptp * xp.uint16(k * k)
    key += pt * xp.uint16(k)
    key += pp
    cells = xp.bincount(key, minlength=k ** 3)
    return _RawStatistics(np.asarray(to_host(counts), dtype=np.int64), np.asarray(to_host(cells), dtype=np.int64),
                          int(xp.count_nonzero(ct == cp)), int(ct.shape[0]))


def _row_statistics(t, p, xp: ModuleType) -> _RawStatistics:
    """:func:`_raw_statistics` of bool rows (m, k): column sums and per-row popcounts, no codes."""
    both = t & p
    counts = xp.stack([a.sum(axis=0, dtype=xp.int64) for a in (t, p, both)])
    k = t.shape[1] + 1
    pt, pp, ptp = (a.sum(axis=1, dtype=xp.int64) for a in (t, p, both))
    cells = xp.bincount(ptp * (k * k) + pt * k + pp, minlength=k ** 3)
    exact = int(xp.count_nonzero((t == p).all(axis=1)))
    return _RawStatistics(np.asarray(to_host(counts), dtype=np.int64), np.asarray(to_host(cells), dtype=np.int64),
                          exact, int(t.shape[0]))


def _bit_sums(hist, xp: ModuleType):
    """(r, 2**17) code histograms -> (r, 17) counts of rows with each bit set (exact integer sums).

    Reshape-and-sum rather than a product with the bit table: no BLAS call, whose threads thrash on a
    busy machine (measured 10x slower there).
    """
    r = hist.shape[0]
    n_bits = int(hist.shape[1]).bit_length() - 1
    out = xp.empty((r, n_bits), dtype=xp.int64)
    h = hist.astype(xp.int64, copy=False)
    for j in reversed(range(n_bits)):  # fold out the top bit each step: 2 * 2**17 adds in all
        half = 1 << j
        out[:, j] = h[:, half:].sum(axis=1)
        h = h[:, :half] + h[:, half:]
    return out


@functools.lru_cache(maxsize=2)
def _count_grid(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(np.meshgrid(*(np.arange(k, dtype=np.float64),) * 3, indexing="ij"))


@functools.lru_cache(maxsize=8)
def _ratio_grid(k: int, which: str) -> np.ndarray:
    """Per-image ratio for every (tp, t, p) cell, zero division -> 0."""
    g_tp, g_t, g_p = _count_grid(k)
    num, den = {"precision": (g_tp, g_p), "recall": (g_tp, g_t), "f1": (2 * g_tp, g_t + g_p)}[which]
    return _safe_div(num, den, np)


def _metrics_from_codes(ct, cp, xp: ModuleType, *, ap_arrays=None) -> SelectionMetrics:
    return _metrics_from_raw(_raw_statistics(ct, cp, xp), ap_arrays=ap_arrays)


def _metrics_from_raw(raw: _RawStatistics, *, ap_arrays=None, slugs: Sequence[str] | None = None) -> SelectionMetrics:
    m = raw.m
    n_true, n_pred, tp = raw.counts
    fp = n_pred - tp
    fn = n_true - tp
    tn = m - tp - fp - fn
    ap = None
    if ap_arrays is not None:
        from xsgpu.metrics.ranking import average_precision
        t, p, *order = ap_arrays  # (y_true, y_prob[, order of their rows by decreasing probability or None])
        ap = np.asarray(to_host(average_precision(t, p, order=order[0] if order else None)), dtype=np.float64)
    per = _per_attribute_frame({"tp": tp, "fp": fp, "fn": fn, "tn": tn}, ap, slugs)
    stp, sfp, sfn = int(tp.sum()), int(fp.sum()), int(fn.sum())
    n_attributes = raw.counts.shape[1]
    k = n_attributes + 1
    cells = raw.cells.astype(np.float64).reshape(k, k, k)
    overall: dict[str, float] = {"n": m, "accuracy": float((tp.sum() + tn.sum()) / (m * n_attributes))}
    overall["subset_accuracy"] = raw.exact / m
    for name in ("precision", "recall", "f1"):
        overall[f"{name}_samples"] = float((cells * _ratio_grid(k, name)).sum()) / m
    overall["precision_micro"] = stp / (stp + sfp) if stp + sfp else 0.0
    overall["recall_micro"] = stp / (stp + sfn) if stp + sfn else 0.0
    overall["f1_micro"] = 2 * stp / (2 * stp + sfp + sfn) if stp + sfp + sfn else 0.0
    for col in ("precision", "recall", "f1"):
        overall[f"{col}_macro"] = float(per[col].to_numpy().mean())
    overall["map"] = float(np.nanmean(ap)) if ap is not None and not np.isnan(ap).all() else float("nan")
    return SelectionMetrics(per_attribute=per, overall=overall)


def selection_metrics(y_true: Any, y_prob: Any, selection: Any, *, cutoff: float | Any = 0.5,
                      ap: bool = False, vocabulary: Any = None, ap_order: Any = None) -> SelectionMetrics:
    """Metrics of a selection of images (a lasso in the app, a named group, a filter result).

    Parameters
    ----------
    y_true : bool array, shape (n, 17)
    y_prob : float array, shape (n, 17)
    selection : bool array (n,) or int array (m,)
        A mask over the n rows or row positions (duplicates count once per occurrence).
    cutoff : float or array of shape (17,)
    ap : bool
        Also compute per-attribute AP and the mAP of the selection (sorts the selected rows: slower).
    vocabulary : xsgpu.attributes.Vocabulary, optional
        The attributes of the columns (a run's ``store.vocabulary``); default the paper's 17.
    ap_order : int array, shape (n, 17), optional
        ``xsgpu.metrics.ranking.descending_order(y_prob)`` computed once before: with ``ap=True`` a large
        selection's AP gathers its order from it instead of sorting.

    Returns
    -------
    SelectionMetrics

    Raises
    ------
    ValueError
        Bad shapes, NaN or out-of-range probabilities, a mask of the wrong length, indices out of
        range, or an empty selection.

    Notes
    -----
    For repeated calls on the same arrays (an interactive app) build a :class:`SelectionScorer` once
    and call it per selection: this function packs all n rows on every call.
    Selections of at most half the rows are gathered first and only they are packed.
    """
    if vocabulary is not None and not vocabulary.is_default:
        return SelectionScorer(y_true, y_prob, cutoff=cutoff, keep_probabilities=ap, vocabulary=vocabulary,
                               ap_order=ap_order if ap else None, _func="selection_metrics")(selection, ap=ap)
    xp = namespace_of(y_true, y_prob)
    yt, yp = check_pair(y_true, y_prob, xp=xp, func="selection_metrics")
    sel = check_selection(selection, yt.shape[0], xp=xp, func="selection_metrics")
    n = yt.shape[0]
    m = int(xp.count_nonzero(sel)) if sel.dtype == bool else int(sel.shape[0])
    if 2 * m <= n:  # gathering the selected rows and packing only them is cheaper than packing all rows
        c = check_cutoff(cutoff, xp=xp, func="selection_metrics")
        if sel.dtype == bool:
            st, sp = xp.compress(sel, yt, axis=0), xp.compress(sel, yp, axis=0)
        else:
            st, sp = yt[sel], yp[sel]
        ct, cp = encode_rows(st), encode_rows(sp > c)
        order = None
        if ap and ap_order is not None:
            from xsgpu.metrics.ranking import restrict_order
            order = restrict_order(ap_order, sel)
        return _metrics_from_codes(ct, cp, xp, ap_arrays=(st, sp, order) if ap else None)
    scorer = SelectionScorer(yt, yp, cutoff=cutoff, ap_order=ap_order if ap else None, _func="selection_metrics")
    return scorer(sel, ap=ap)

