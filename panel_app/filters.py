"""The "More filters" of the app as one value (:class:`FilterSpec`) and its mask (:func:`filter_mask`).

Beside the attribute filters (:meth:`panel_app.state.AppState.filtered_mask`), an image can be kept or
hidden by its run (``run_id``), its split, its file (a glob or a substring of ``source_uri``), any
metadata column of ``samples.parquet`` (``meta__*`` from the label file, ``hdr__*`` from the detector
headers: a choice of values for text and yes/no columns, a range for numbers), the predicted probability
of one attribute (PRD in ``[lo, hi]``), the outcome of one attribute at the cut-off (TP, FP, FN, TN; only
labelled images have one) and whether it is labelled at all.

Every mask is vectorised: text columns are factorised once per process (codes + distinct values, kept on
the shared :class:`~panel_app.data.RunData`), a value choice is a lookup in the codes, a path pattern is
matched on the distinct paths only (Arrow's RE2 kernels) and gathered through the codes. No per-row
Python, so a million images cost tens of milliseconds per change.

Examples
--------
>>> import numpy as np, pandas as pd
>>> from panel_app.data import RunData
>>> from panel_app.filters import FilterSpec, filter_mask
>>> rng = np.random.default_rng(0)
>>> samples = pd.DataFrame({"sample_id": np.arange(4), "source_uri": ["/d/a/1.tif", "/d/a/2.h5", "/d/b/3.tif",
...                         "/d/b/4.tif"], "frame": 0, "run_id": ["r1", "r1", "r2", "r2"],
...                         "split": ["train", "test", "test", "train"], "labelled": [True, True, False, True]})
>>> data = RunData.from_arrays(y_true=np.zeros((4, 17), bool), y_prob=np.full((4, 17), 0.2, np.float32),
...                            coords=rng.normal(size=(4, 6)), samples=samples)
>>> filter_mask(data, FilterSpec(path="*.tif", run_ids=("r2",))).tolist()
[False, False, True, True]
>>> filter_mask(data, FilterSpec(labelled="unlabelled")).tolist()
[False, False, True, False]
"""
from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Literal

import numpy as np
import pandas as pd

from xsgpu.attributes import DEFAULT_VOCABULARY

__all__ = ["FilterSpec", "ColumnFilter", "filter_mask", "metadata_columns", "column_kind", "value_options",
           "numeric_range", "n_values", "warm_up_filters", "path_mask", "labelled_mask", "covered_text", "OUTCOMES", "LABELLED_CHOICES", "MISSING",
           "METADATA_PREFIXES", "MAX_CHOICES"]

log = logging.getLogger(__name__)

#: The outcomes of one attribute at the cut-off (positive prediction: ``p > cutoff``).
OUTCOMES: tuple[str, ...] = ("TP", "FP", "FN", "TN")
#: Which images the labelled filter keeps.
LABELLED_CHOICES: tuple[str, ...] = ("all", "labelled", "unlabelled")
#: The value a choice filter offers for rows without a value (null in ``samples.parquet``).
MISSING = "(missing)"
#: Prefixes of the metadata columns of ``samples.parquet`` offered as filters (label file, detector headers).
METADATA_PREFIXES: tuple[str, ...] = ("meta__", "hdr__")
#: A text column with more distinct values than this is filtered by a substring, not by a choice of values.
MAX_CHOICES = 200
_GLOB_CHARS = re.compile(r"[*?\[]")
_LRU_SIZE = 24
# outcome code = 2 * ACT + PRD: TN 0, FP 1, FN 2, TP 3
_OUTCOME_CODE = {"TN": 0, "FP": 1, "FN": 2, "TP": 3}


@dataclass(frozen=True)
class ColumnFilter:
    """A filter on one column of ``samples.parquet``.

    Parameters
    ----------
    column : str
        Column name (e.g. ``'hdr__exposure_time'``, ``'meta__sample'``).
    values : tuple of str
        Keep rows whose value (as text; :data:`MISSING` for null) is one of these (choice columns).
    lo, hi : float, optional
        Keep rows with ``lo <= value <= hi`` (number columns; null never passes a range).
    contains : str
        Keep rows whose text holds this substring (text columns with many distinct values).
    """

    column: str
    values: tuple[str, ...] = ()
    lo: float | None = None
    hi: float | None = None
    contains: str = ""

    @property
    def active(self) -> bool:
        """Whether this filter hides anything at all."""
        return bool(self.values) or self.lo is not None or self.hi is not None or bool(self.contains)


@dataclass(frozen=True)
class FilterSpec:
    """The "More filters" of a session: every field left at its default keeps every image.

    Parameters
    ----------
    run_ids : tuple of str
        Keep these runs (``samples.run_id``); empty = all.
    splits : tuple of str
        Keep these splits (``samples.split``); empty = all.
    path : str
        Pattern of ``source_uri``: a glob when it holds ``*``, ``?`` or ``[`` (matched against the whole
        path, or against the file name when the pattern has no ``/``, as ``find -name`` does), else a
        substring. Case-sensitive, as paths are. Empty = all.
    columns : tuple of ColumnFilter
        Filters on metadata columns (all must hold).
    prob_attribute : str
        Slug of the attribute whose predicted probability must lie in ``prob_range``; empty = none.
    prob_range : (float, float)
        ``lo <= p <= hi``.
    outcome_attribute : str
        Slug of the attribute whose outcome at the cut-off must be one of ``outcomes``; empty = none.
    outcomes : tuple of str
        Subset of :data:`OUTCOMES`; unlabelled images have no outcome and never pass.
    labelled : {'all', 'labelled', 'unlabelled'}
    """

    run_ids: tuple[str, ...] = ()
    splits: tuple[str, ...] = ()
    path: str = ""
    columns: tuple[ColumnFilter, ...] = field(default=())
    prob_attribute: str = ""
    prob_range: tuple[float, float] = (0.0, 1.0)
    outcome_attribute: str = ""
    outcomes: tuple[str, ...] = ()
    labelled: Literal["all", "labelled", "unlabelled"] = "all"

    def __post_init__(self) -> None:
        if self.labelled not in LABELLED_CHOICES:
            raise ValueError(f"The 'labelled' parameter of FilterSpec must be one of {list(LABELLED_CHOICES)}. "
                             f"Got {self.labelled!r} instead.")
        bad = [o for o in self.outcomes if o not in OUTCOMES]
        if bad:
            raise ValueError(f"The 'outcomes' parameter of FilterSpec must hold values of {list(OUTCOMES)}. "
                             f"Got {bad!r} instead.")
        lo, hi = self.prob_range
        if not (0.0 <= float(lo) <= float(hi) <= 1.0):
            raise ValueError(f"The 'prob_range' parameter of FilterSpec must be (lo, hi) with 0 <= lo <= hi <= 1. "
                             f"Got {self.prob_range!r} instead.")

    @property
    def prob_active(self) -> bool:
        """Whether the probability range hides anything (an attribute chosen and a range narrower than [0, 1])."""
        return bool(self.prob_attribute) and tuple(map(float, self.prob_range)) != (0.0, 1.0)

    @property
    def outcome_active(self) -> bool:
        """Whether the outcome filter is on (an attribute and at least one outcome chosen)."""
        return bool(self.outcome_attribute) and bool(self.outcomes)

    @property
    def uses_labels(self) -> bool:
        """Whether the mask depends on the (corrected) labels and the cut-off (the outcome filter)."""
        return self.outcome_active

    @property
    def active(self) -> bool:
        """Whether any field hides anything."""
        return bool(self.run_ids or self.splits or self.path.strip() or self.labelled != "all"
                    or any(c.active for c in self.columns) or self.prob_active or self.outcome_active)

    def with_column(self, flt: ColumnFilter) -> "FilterSpec":
        """A copy with ``flt`` replacing any filter on the same column (dropped when it is not active)."""
        cols = tuple(c for c in self.columns if c.column != flt.column) + ((flt,) if flt.active else ())
        return replace(self, columns=cols)


# ---------------------------------------------------------------------------------------------- caches
def _lru(data: Any) -> tuple[OrderedDict, threading.Lock]:
    return data.cached(("filters_lru",), OrderedDict), data.cached(("filters_lock",), threading.Lock)


def _memo(data: Any, key: tuple, build: Callable[[], np.ndarray]) -> np.ndarray:
    """One component mask, from a small process-wide LRU on ``data`` (a slider drag reuses the others)."""
    lru, lock = _lru(data)
    with lock:
        got = lru.get(key)
        if got is not None:
            lru.move_to_end(key)
            return got
    got = build()
    got.setflags(write=False)
    with lock:
        lru[key] = got
        while len(lru) > _LRU_SIZE:
            lru.popitem(last=False)
    return got


def _column(data: Any, column: str, *, func: str) -> pd.Series:
    if column not in data.samples.columns:
        raise ValueError(f"The 'column' parameter of {func} must be a column of samples.parquet. Got {column!r} "
                         f"instead; columns: {list(data.samples.columns)}.")
    return data.samples[column]


def _codes(data: Any, column: str) -> tuple[np.ndarray, list[str]]:
    """``(codes, labels)`` of a column (cached per process): ``labels[codes[i]]`` is row i's value as text.

    Null becomes its own label, :data:`MISSING`.
    """
    def build() -> tuple[np.ndarray, list[str]]:
        col = _column(data, column, func="value_options")
        if isinstance(col.dtype, pd.CategoricalDtype):
            codes = col.cat.codes.to_numpy().astype(np.int32)
            labels = [str(c) for c in col.cat.categories]
        else:
            codes, uniques = pd.factorize(col, use_na_sentinel=True)
            codes = np.asarray(codes, dtype=np.int32)
            labels = [str(u) for u in np.asarray(uniques, dtype=object)]
        if (codes < 0).any():
            codes = np.where(codes < 0, len(labels), codes).astype(np.int32)
            labels.append(MISSING)
        codes.setflags(write=False)
        return codes, labels

    return data.cached(("filter_codes", column), build)


def _numbers(data: Any, column: str) -> np.ndarray:
    """A number column as float64 (NaN for null), cached per process."""
    def build() -> np.ndarray:
        col = _column(data, column, func="numeric_range")
        out = col.to_numpy(dtype=np.float64, na_value=np.nan)
        out.setflags(write=False)
        return out

    return data.cached(("filter_numbers", column), build)


# ---------------------------------------------------------------------------------------------- discovery
def metadata_columns(samples: pd.DataFrame) -> list[str]:
    """The metadata columns of ``samples`` offered as filters: ``meta__*`` then ``hdr__*``, in table order,
    leaving out columns that hold no value at all."""
    cols = [c for p in METADATA_PREFIXES for c in samples.columns if str(c).startswith(p)]
    return [c for c in cols if samples[c].notna().any()]


def column_kind(series: pd.Series) -> Literal["range", "values"]:
    """``'range'`` for a number column (int or float, not yes/no), ``'values'`` for the others."""
    dt = series.dtype
    if pd.api.types.is_bool_dtype(dt) or isinstance(dt, pd.CategoricalDtype):
        return "values"
    return "range" if pd.api.types.is_numeric_dtype(dt) else "values"


def value_options(data: Any, column: str, *, limit: int | None = None) -> list[str]:
    """The distinct values of a column as text, most frequent first (:data:`MISSING` for null).

    Parameters
    ----------
    data : RunData
    column : str
    limit : int, optional
        At most this many (the most frequent); the order is computed once per process.
    """
    codes, labels = _codes(data, column)

    def build() -> np.ndarray:
        counts = np.bincount(codes, minlength=len(labels))
        order = np.argsort(-counts, kind="stable")
        return order[counts[order] > 0]

    order = data.cached(("filter_order", column), build)
    return [labels[k] for k in (order if limit is None else order[:limit])]


def n_values(data: Any, column: str) -> int:
    """How many distinct values (null counted as one) a column holds."""
    return len(_codes(data, column)[1])


def numeric_range(data: Any, column: str) -> tuple[float, float] | None:
    """``(min, max)`` of the finite values of a number column, or None when it has none."""
    v = _numbers(data, column)
    fin = v[np.isfinite(v)]
    return (float(fin.min()), float(fin.max())) if fin.size else None


# ---------------------------------------------------------------------------------------------- masks
def _choice_mask(data: Any, column: str, values: tuple[str, ...]) -> np.ndarray:
    codes, labels = _codes(data, column)
    wanted = set(values)
    lut = np.fromiter((lab in wanted for lab in labels), dtype=bool, count=len(labels))
    return lut[codes] if len(labels) else np.zeros(data.n, bool)


def _glob_regex(pattern: str) -> str:
    """A RE2 regex for a glob: over the whole path, or over the file name when it has no ``/``."""
    name_only = "/" not in pattern
    star = "[^/]*" if name_only else ".*"
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            out.append(star)
        elif ch == "?":
            out.append("[^/]" if name_only else ".")
        elif ch == "[":
            j = pattern.find("]", i + 2 if pattern[i + 1:i + 2] in ("!", "^") else i + 1)
            if j < 0:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1:j]
                neg = body[:1] in ("!", "^")
                body = body[1:] if neg else body
                out.append("[" + ("^" if neg else "") + body.replace("\\", "\\\\") + "]")
                i = j
        else:
            out.append(re.escape(ch))
        i += 1
    return ("(^|/)" if name_only else "^") + "".join(out) + "$"


def _text_match(labels: list[str], pattern: str, *, glob: bool) -> np.ndarray:
    """Which of the distinct ``labels`` match (vectorised in Arrow: one call over the distinct values)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = pa.array(labels, type=pa.string())
    if glob:
        got = pc.match_substring_regex(arr, _glob_regex(pattern))
    else:
        got = pc.match_substring(arr, pattern)
    return np.asarray(got.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def path_mask(data: Any, pattern: str) -> np.ndarray:
    """Which images' ``source_uri`` matches ``pattern`` (see :class:`FilterSpec`; an empty pattern keeps all).

    Parameters
    ----------
    data : RunData
    pattern : str

    Returns
    -------
    ndarray of bool, shape (n,)
    """
    pattern = pattern.strip()
    if not pattern:
        return np.ones(data.n, bool)
    glob = bool(_GLOB_CHARS.search(pattern))

    def build() -> np.ndarray:
        codes, labels = _codes(data, "source_uri")
        hit = _text_match(labels, pattern, glob=glob)
        if labels and labels[-1] == MISSING and (codes == len(labels) - 1).any():
            hit[-1] = False
        return hit[codes]

    return _memo(data, ("path", pattern), build)


def _contains_mask(data: Any, column: str, text: str) -> np.ndarray:
    codes, labels = _codes(data, column)
    hit = _text_match(labels, text, glob=False)
    if labels and labels[-1] == MISSING:
        hit[-1] = False
    return hit[codes]


def _range_mask(data: Any, column: str, lo: float | None, hi: float | None) -> np.ndarray:
    v = _numbers(data, column)
    with np.errstate(invalid="ignore"):
        m = np.isfinite(v)
        if lo is not None:
            m &= v >= float(lo)
        if hi is not None:
            m &= v <= float(hi)
    return m


def _column_mask(data: Any, flt: ColumnFilter) -> np.ndarray:
    def build() -> np.ndarray:
        m = np.ones(data.n, bool)
        if flt.values:
            m &= _choice_mask(data, flt.column, flt.values)
        if flt.contains:
            m &= _contains_mask(data, flt.column, flt.contains)
        if flt.lo is not None or flt.hi is not None:
            m &= _range_mask(data, flt.column, flt.lo, flt.hi)
        return m

    return _memo(data, ("column", flt), build)


def _vocabulary(data: Any) -> Any:
    return getattr(data, "vocabulary", DEFAULT_VOCABULARY)   # RunData of the run's vocabulary, or the paper's 17


def _labelled(data: Any) -> np.ndarray:
    if "labelled" not in data.samples.columns:
        return data.cached(("filter_labelled",), lambda: np.ones(data.n, bool))
    return data.cached(("filter_labelled",), lambda: data.samples["labelled"].to_numpy(dtype=bool, na_value=False))


def labelled_mask(data: Any) -> np.ndarray:
    """Which images are labelled (``samples.labelled``; all when the column is absent), cached per process."""
    return _labelled(data)


def warm_up_filters(data: Any) -> None:
    """Build what the "More filters" card reads at session start (server start; the first session then
    costs what the others do): the codes of ``run_id``, ``split`` and every metadata column, their value
    order and number ranges. At 1M images with a timestamp per frame this is ~1.5 s once."""
    cols = data.cached(("filter_metadata_columns",), lambda: metadata_columns(data.samples))
    for col in [c for c in ("run_id", "split") if c in data.samples.columns] + list(cols):
        if column_kind(data.samples[col]) == "range":
            numeric_range(data, col)
        elif n_values(data, col) <= MAX_CHOICES:
            value_options(data, col)


def covered_text(n_labelled: int, n_scope: int) -> str:
    """How many images metrics cover, for the metric panels.

    Examples
    --------
    >>> covered_text(120, 1000), covered_text(300, 300)
    ('120 of 1,000 images (labelled)', '300 images (all labelled)')
    """
    if n_labelled == n_scope:
        return f"{n_scope:,} images (all labelled)"
    return f"{n_labelled:,} of {n_scope:,} images (labelled)"


def filter_mask(data: Any, spec: FilterSpec, *, y_act: Callable[[], np.ndarray] | np.ndarray | None = None,
                cutoff: float = 0.5) -> np.ndarray:
    """Which images pass every field of ``spec`` (all of them for an inactive spec).

    Parameters
    ----------
    data : RunData
    spec : FilterSpec
    y_act : ndarray of bool (n, N) or callable returning it, optional
        The (corrected) labels, needed only by the outcome filter (a callable is called only then);
        default ``data.y_true``.
    cutoff : float
        Probability above which a prediction is positive (outcome filter).

    Returns
    -------
    ndarray of bool, shape (n,)
        A new array (the caller may modify it).

    Raises
    ------
    KeyError
        If an attribute is not of the run's vocabulary (the message lists its names).
    ValueError
        If a column is not in ``samples.parquet``.
    """
    mask = np.ones(data.n, bool)
    s = data.samples
    for col, values in (("run_id", spec.run_ids), ("split", spec.splits)):
        if values:
            if col not in s.columns:
                raise ValueError(f"This run's samples.parquet has no {col!r} column; the {col} filter cannot apply.")
            mask &= _memo(data, ("choice", col, tuple(values)), lambda c=col, v=values: _choice_mask(data, c, v))
    if spec.path.strip():
        mask &= path_mask(data, spec.path)
    for flt in spec.columns:
        if flt.active:
            mask &= _column_mask(data, flt)
    if spec.labelled != "all":
        lab = _labelled(data)
        mask &= lab if spec.labelled == "labelled" else ~lab
    if spec.prob_active:
        j = _vocabulary(data).index(spec.prob_attribute)
        lo, hi = map(float, spec.prob_range)
        p = data.y_prob[:, j]
        mask &= (p >= lo) & (p <= hi)
    if spec.outcome_active:
        j = _vocabulary(data).index(spec.outcome_attribute)
        y = data.y_true if y_act is None else (y_act() if callable(y_act) else y_act)
        code = np.asarray(y[:, j], dtype=np.uint8) * 2 + (data.y_prob[:, j] > cutoff)
        lut = np.zeros(4, bool)
        lut[[_OUTCOME_CODE[o] for o in spec.outcomes]] = True
        mask &= lut[code] & _labelled(data)
    return mask
