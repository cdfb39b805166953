"""Counts of co-occurring attribute combinations: true vs correctly predicted.

A *combination* is the exact set of attributes an image carries in ACT (e.g. "Ring + Higher orders +
Wedge beamstop"). For each combination present in the labels the table gives how many images carry it
(``n_true``), how many of those are predicted exactly (every prediction right: ``n_correct``), the
rate ``n_correct / n_true``, and how many images the model assigns that exact set (``n_predicted``,
right or wrong). The full version of the seed paper shows this to reveal which label combinations the
model handles poorly.

Examples
--------
>>> import numpy as np
>>> from xsgpu.metrics import cooccurrence_table
>>> y = np.zeros((3, 17), bool); y[:, 12] = True; y[0, 8] = True
>>> p = y.astype(np.float32); p[1, 12] = 0.2
>>> cooccurrence_table(y, p)[["combination", "n_true", "n_correct"]].values.tolist()
[['Ring', 2, 1], ['Higher orders + Ring', 1, 1]]
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from xsgpu.attributes import DEFAULT_VOCABULARY
from xsgpu.backend import namespace_of, to_host
from xsgpu.metrics.validation import check_attributes, check_cutoff, check_pair

__all__ = ["cooccurrence_table", "COOCCURRENCE_COLUMNS", "NO_ATTRIBUTES"]

COOCCURRENCE_COLUMNS = ["combination", "attributes", "n_attributes", "n_true", "n_correct", "rate", "n_predicted"]
#: How the empty combination (an image without any attribute) is named.
NO_ATTRIBUTES = "(none)"


def _row_codes(b: np.ndarray) -> np.ndarray:
    """One sortable code per bool row (n, k), bit j = column j: uint32 (k <= 32), uint64 (k <= 64), else bytes."""
    n, k = b.shape
    packed = np.packbits(b, axis=1, bitorder="little")
    width = 4 if k <= 32 else 8 if k <= 64 else packed.shape[1]
    buf = np.zeros((n, width), dtype=np.uint8)
    buf[:, :packed.shape[1]] = packed
    dtype = {4: np.dtype("<u4"), 8: np.dtype("<u8")}.get(width, np.dtype((np.void, width)))
    return buf.view(dtype).reshape(n)


def _decode(code: Any, k: int) -> tuple[int, ...]:
    bits = np.unpackbits(np.frombuffer(np.asarray(code).tobytes(), dtype=np.uint8), bitorder="little")[:k]
    return tuple(int(j) for j in np.flatnonzero(bits))


def cooccurrence_table(y_true: Any, y_prob: Any, *, cutoff: float | Any = 0.5, top: int | None = 20,
                       min_count: int = 1, attributes: Sequence[str | int] | None = None,
                       vocabulary: Any = None) -> pd.DataFrame:
    """Table of exact attribute combinations in ACT with their exact-match prediction rate.

    Parameters
    ----------
    y_true : bool array, shape (n, 17)
    y_prob : float array, shape (n, 17)
        Probabilities; predicted means ``y_prob > cutoff``.
    cutoff : float or array of shape (17,)
    top : int or None
        Keep the ``top`` most frequent combinations (``None``: all).
    min_count : int
        Drop combinations carried by fewer than ``min_count`` images.
    attributes : sequence of names, slugs or indices, optional
        Only these attributes form combinations (and only they must match for ``n_correct``), e.g.
        the scattering attributes without the beamstops. Default: all of them.
    vocabulary : xsgpu.attributes.Vocabulary, optional
        The attributes of the columns (a run's ``store.vocabulary``; any number); default the paper's 17.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COOCCURRENCE_COLUMNS`: ``combination`` (display names joined by " + ", in
        canonical order; ``"(none)"`` for no attribute), ``attributes`` (tuple of slugs),
        ``n_attributes``, ``n_true``, ``n_correct``, ``rate`` (= n_correct / n_true),
        ``n_predicted``. Sorted by ``n_true`` (descending), then by combination.
    """
    vocab = DEFAULT_VOCABULARY if vocabulary is None else vocabulary
    k = len(vocab)
    xp = namespace_of(y_true, y_prob)
    yt, yp = check_pair(y_true, y_prob, xp=xp, func="cooccurrence_table", n_attributes=k)
    c = check_cutoff(cutoff, xp=xp, func="cooccurrence_table", n_attributes=k)
    if top is not None and (isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1):
        raise ValueError(f"The 'top' parameter of cooccurrence_table must be an int >= 1 or None. Got {top!r} instead.")
    if isinstance(min_count, bool) or not isinstance(min_count, (int, np.integer)) or min_count < 1:
        raise ValueError(f"The 'min_count' parameter of cooccurrence_table must be an int >= 1. "
                         f"Got {min_count!r} instead.")
    keep = np.zeros(k, dtype=bool)
    keep[check_attributes(attributes, func="cooccurrence_table", vocabulary=vocabulary)] = True
    ct = _row_codes(np.asarray(to_host(yt), dtype=bool) & keep)
    cp = _row_codes(np.asarray(to_host(yp > c), dtype=bool) & keep)
    if ct.size == 0:
        return pd.DataFrame(columns=COOCCURRENCE_COLUMNS)
    codes, inverse, n_true = np.unique(ct, return_inverse=True, return_counts=True)
    n_correct = np.bincount(inverse, weights=(ct == cp), minlength=len(codes)).astype(np.int64)
    pred_codes, pred_counts = np.unique(cp, return_counts=True)
    pos = np.searchsorted(pred_codes, codes)
    pos = np.clip(pos, 0, max(len(pred_codes) - 1, 0))
    n_pred = np.where(pred_codes[pos] == codes, pred_counts[pos], 0)
    keep = n_true >= min_count
    codes, n_true, n_correct, n_pred = codes[keep], n_true[keep], n_correct[keep], n_pred[keep]
    members = [_decode(code, k) for code in codes]
    df = pd.DataFrame({
        "combination": [" + ".join(vocab.names[j] for j in m) if m else NO_ATTRIBUTES for m in members],
        "attributes": [tuple(vocab.slugs[j] for j in m) for m in members],
        "n_attributes": np.array([len(m) for m in members], dtype=np.int64),
        "n_true": n_true.astype(np.int64),
        "n_correct": n_correct,
        "rate": n_correct / n_true,
        "n_predicted": n_pred.astype(np.int64),
    })
    df = df.sort_values(["n_true", "combination"], ascending=[False, True], kind="stable").reset_index(drop=True)
    return df.head(top) if top is not None else df
