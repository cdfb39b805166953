"""Attribute flowers: one glyph per image with 17 petals (17 equal sectors), as Bokeh column data.

Encoding (the paper's joint mode): petal *k* in attribute *k*'s colour; its length is the predicted
probability; it is filled when the image has the attribute in ACT (corrected labels); a black border
marks a false positive (not in ACT, ``p > cutoff``); the centre dot's colour is the error distance
between ACT and PRD. ``'ACT'`` mode draws full-length filled petals for the labelled attributes only;
``'PRD'`` mode draws every petal filled, length = probability.

Petal radii are in screen pixels, so flowers keep their size while zooming.

Examples
--------
>>> import numpy as np
>>> from panel_app.views.flowers import flower_columns
>>> act = np.zeros((2, 17), bool); act[0, 3] = True
>>> prob = np.full((2, 17), 0.1, np.float32); prob[1, 5] = 0.9
>>> petals, centres = flower_columns(np.array([7, 9]), np.zeros(2), np.zeros(2), act, prob,
...                                  err=np.array([0.2, 1.0]), mode="joint", cutoff=0.5)
>>> len(centres["sample_id"]), int(np.sum(petals["line_width"] > 1))
(2, 1)
"""
from __future__ import annotations

from typing import Literal

import numpy as np

from xsgpu.attributes import ATTRIBUTES, N_ATTRIBUTES

__all__ = ["flower_columns", "PETAL_RADIUS", "CENTRE_RADIUS", "petal_angles"]

#: Outer radius of a full-length petal and radius of the centre dot, in screen pixels.
PETAL_RADIUS = 16.0
CENTRE_RADIUS = 3.5
_MIN_ACT = 0.12  # a labelled attribute with p ~ 0 still shows a stub (a false negative reads at a glance)
_COLOURS = np.array([a.colour for a in ATTRIBUTES], dtype=object)
_NAMES = [a.name for a in ATTRIBUTES]


def petal_angles(gap: float = 0.08) -> tuple[np.ndarray, np.ndarray]:
    """Start and end angles (radians, counter-clockwise from 12 o'clock) of the 17 equal sectors."""
    step = 2 * np.pi / N_ATTRIBUTES
    start = np.pi / 2 + np.arange(N_ATTRIBUTES) * step + gap * step / 2
    return start, start + step * (1 - gap)


def flower_columns(
    ids: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    act: np.ndarray,
    prob: np.ndarray,
    *,
    err: np.ndarray,
    mode: Literal["ACT", "PRD", "joint"] = "joint",
    cutoff: float = 0.5,
    selected: np.ndarray | None = None,
) -> tuple[dict, dict]:
    """Column data of the petals and the centres of ``k`` flowers.

    Parameters
    ----------
    ids : ndarray of int, shape (k,)
        Sample ids.
    x, y : ndarray of float, shape (k,)
        Flower centres (data units).
    act : ndarray of bool, shape (k, 17)
        (Corrected) labels of these images.
    prob : ndarray of float, shape (k, 17)
        Predicted probabilities.
    err : ndarray of float, shape (k,)
        Error distance ACT vs PRD (centre colour).
    mode : {'ACT', 'PRD', 'joint'}
    cutoff : float
        Probability above which a prediction is positive (false-positive border).
    selected : ndarray of bool, shape (k,), optional
        Selected flowers; when any is selected, the others are drawn faded.

    Returns
    -------
    petals : dict
        Columns ``x, y, start, end, outer, fill_color, fill_alpha, line_color, line_width, line_alpha,
        sample_id`` (one row per drawn petal; petals of zero length are left out).
    centres : dict
        Columns ``x, y, sample_id, err, alpha, act, prd`` (one row per flower; ``act`` and ``prd`` (the
        attributes with ``p > cutoff``) are text for the hover tooltip).
    """
    if mode not in ("ACT", "PRD", "joint"):
        raise ValueError(f"The 'mode' parameter of flower_columns must be 'ACT', 'PRD' or 'joint'. Got {mode!r} instead.")
    ids = np.asarray(ids, dtype=np.int64)
    k = len(ids)
    act = np.asarray(act, dtype=bool).reshape(k, N_ATTRIBUTES)
    prob = np.asarray(prob, dtype=np.float32).reshape(k, N_ATTRIBUTES)
    alpha = np.ones(k, np.float32)
    if selected is not None and np.any(selected):
        alpha = np.where(selected, 1.0, 0.22).astype(np.float32)

    if mode == "ACT":
        length = np.where(act, 1.0, 0.0)
        filled = act
        fp = np.zeros_like(act)
    elif mode == "PRD":
        length = prob.astype(np.float64)
        filled = np.ones_like(act)
        fp = np.zeros_like(act)
    else:
        length = np.where(act, np.maximum(prob, _MIN_ACT), prob).astype(np.float64)
        filled = act
        fp = (~act) & (prob > cutoff)
    draw = length > 0.02
    rows, cols = np.nonzero(draw)
    start, end = petal_angles()
    inner = CENTRE_RADIUS + 1.0
    petals = {
        "x": np.asarray(x, dtype=np.float64)[rows],
        "y": np.asarray(y, dtype=np.float64)[rows],
        "start": start[cols],
        "end": end[cols],
        "outer": inner + (PETAL_RADIUS - inner) * length[rows, cols],
        "fill_color": _COLOURS[cols],
        "fill_alpha": np.where(filled[rows, cols], 0.85, 0.0) * alpha[rows],
        "line_color": np.where(fp[rows, cols], "#000000", _COLOURS[cols]).astype(object),
        "line_width": np.where(fp[rows, cols], 1.6, 0.8),
        "line_alpha": alpha[rows],
        "sample_id": ids[rows],
    }
    centres = {
        "x": np.asarray(x, dtype=np.float64),
        "y": np.asarray(y, dtype=np.float64),
        "sample_id": ids,
        "err": np.asarray(err, dtype=np.float64),
        "alpha": alpha,
        "act": names_text(act),
        "prd": names_text(prob > cutoff),
    }
    return petals, centres


_BITS = (1 << np.arange(N_ATTRIBUTES, dtype=np.int64))
_TEXT_CACHE: dict[int, str] = {}


def _code_text(code: int) -> str:
    text = _TEXT_CACHE.get(code)
    if text is None:
        names = [_NAMES[i] for i in range(N_ATTRIBUTES) if code >> i & 1]
        text = ", ".join(names) if names else "(none)"
        if len(_TEXT_CACHE) < 200_000:
            _TEXT_CACHE[code] = text
    return text


def names_text(rows: np.ndarray) -> np.ndarray:
    """Comma-separated attribute names of each bool row of shape (k, 17) (cached per distinct row).

    Returns
    -------
    ndarray of object (str), shape (k,)
    """
    rows = np.asarray(rows, dtype=bool)
    if len(rows) == 0:
        return np.zeros(0, dtype=object)
    codes = rows.astype(np.int64) @ _BITS
    uniq, inv = np.unique(codes, return_inverse=True)
    return np.asarray([_code_text(int(c)) for c in uniq], dtype=object)[inv.ravel()]
