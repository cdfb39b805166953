"""Attribute flowers: one glyph per image with one petal per shown attribute (equal sectors), as Bokeh column data.

Encoding (the paper's joint mode): petal *k* in attribute *k*'s colour; its length is the predicted
probability; it is filled when the image has the attribute in ACT (corrected labels); a false positive
(not in ACT, ``p > cutoff``) keeps its attribute's colour but is lightly filled, with a thicker dashed
outline (not hatched: Chromium drew each hatched petal through a pattern canvas of its own: 0.9 s for 23
flowers); the centre dot's colour is the error distance between ACT and PRD. ``'ACT'`` mode draws
full-length filled petals for the labelled attributes only; ``'PRD'`` mode draws every petal filled,
length = probability. The user may show only some attributes (``attributes``): the petals then share
the circle among those, in vocabulary order. Any number of attributes is drawn (the run's vocabulary,
``vocabulary``; the paper's 17 by default): ``N`` petals share the circle, ``2 pi / N`` each.

Petal radii are in screen pixels, so flowers keep their size while zooming. Whether a view draws flowers
at all depends on how crowded they would be on screen (:func:`crowding`, :func:`glyphs_legible`).

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
>>> round(crowding(np.array([0., 1., 100.]), np.array([0., 1., 100.]), cell=32.0), 2)  # 3 images in 2 cells
1.5
"""
from __future__ import annotations

from typing import Literal, Sequence

import numpy as np

from xsgpu.attributes import DEFAULT_VOCABULARY, Vocabulary

__all__ = ["flower_columns", "PETAL_RADIUS", "CENTRE_RADIUS", "petal_angles", "crowding", "glyphs_legible",
           "FP_DASH", "FP_FILL_ALPHA", "FEW_GLYPHS", "DEFAULT_CROWDING"]

#: Outer radius of a full-length petal and radius of the centre dot, in screen pixels.
PETAL_RADIUS = 16.0
CENTRE_RADIUS = 3.5
#: Dash pattern of a false-positive petal's outline (it keeps its attribute's colour: outline and a light fill).
FP_DASH = "3 2"
#: Fill opacity of a false-positive petal (a labelled one is filled at 0.85, a true negative not at all).
FP_FILL_ALPHA = 0.3
#: Glyphs are always drawn when the viewport holds at most this many images (exact duplicates never spread).
FEW_GLYPHS = 30
#: Default limit of :func:`crowding` (mean images per flower-sized screen cell) for drawing glyphs.
DEFAULT_CROWDING = 1.3
_MIN_ACT = 0.12  # a labelled attribute with p ~ 0 still shows a stub (a false negative reads at a glance)


def petal_angles(gap: float = 0.08, k: int = len(DEFAULT_VOCABULARY)) -> tuple[np.ndarray, np.ndarray]:
    """Start and end angles (radians, counter-clockwise from 12 o'clock) of ``k`` equal sectors."""
    k = max(int(k), 1)
    step = 2 * np.pi / k
    start = np.pi / 2 + np.arange(k) * step + gap * step / 2
    return start, start + step * (1 - gap)


def crowding(x_px: np.ndarray, y_px: np.ndarray, *, cell: float = 2 * PETAL_RADIUS) -> float:
    """How crowded glyphs would be on screen: mean number of images per occupied flower-sized cell.

    The screen is cut into square cells of ``cell`` pixels (a flower's diameter); the result is the
    number of images divided by the number of cells holding at least one. 1.0 means no two flowers
    share a cell; a solid pile of flowers gives ten or more.

    Parameters
    ----------
    x_px, y_px : ndarray of float, shape (k,)
        Screen positions of the images (pixels).
    cell : float
        Cell size in pixels.

    Returns
    -------
    float
        0.0 for no images.
    """
    x_px = np.asarray(x_px, dtype=np.float64)
    if len(x_px) == 0:
        return 0.0
    cx = np.floor(x_px / cell).astype(np.int64)
    cy = np.floor(np.asarray(y_px, dtype=np.float64) / cell).astype(np.int64)
    cells = np.unique((cx - cx.min()) * (int(cy.max() - cy.min()) + 1) + (cy - cy.min()))
    return float(len(x_px) / len(cells))


def glyphs_legible(n_view: int, crowd: float, *, max_glyphs: int, max_crowding: float | None) -> bool:
    """The switch from raster to glyphs: at most ``max_glyphs`` images (the drawing-cost cap) and either
    at most :data:`FEW_GLYPHS` images or a :func:`crowding` of at most ``max_crowding`` (``None``: no
    crowding limit, the count alone decides)."""
    if n_view > max_glyphs:
        return False
    if max_crowding is None or n_view <= FEW_GLYPHS:
        return True
    return crowd <= max_crowding


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
    attributes: Sequence[int] | None = None,
    vocabulary: Vocabulary | None = None,
    labelled: np.ndarray | None = None,
) -> tuple[dict, dict]:
    """Column data of the petals and the centres of ``k`` flowers.

    Parameters
    ----------
    ids : ndarray of int, shape (k,)
        Sample ids.
    x, y : ndarray of float, shape (k,)
        Flower centres (data units).
    act : ndarray of bool, shape (k, N)
        (Corrected) labels of these images, one column per attribute of ``vocabulary``.
    prob : ndarray of float, shape (k, N)
        Predicted probabilities.
    err : ndarray of float, shape (k,)
        Error distance ACT vs PRD (centre colour).
    mode : {'ACT', 'PRD', 'joint'}
    cutoff : float
        Probability above which a prediction is positive (false-positive border).
    selected : ndarray of bool, shape (k,), optional
        Selected flowers; when any is selected, the others are drawn faded.
    attributes : sequence of int, optional
        Indices (vocabulary order) of the attributes drawn as petals; default all N. The petals share
        the circle equally, in vocabulary order.
    vocabulary : Vocabulary, optional
        The run's attributes (petal colours, tooltip names); default the paper's 17.
    labelled : ndarray of bool, shape (k,), optional
        Which images have labels (``samples.labelled``; default all). An unlabelled image is drawn with PRD
        alone in every mode: filled petals of length p, no ACT fill, no false-positive dash, its centre
        without an error distance (``err`` NaN: the mapper's NaN colour) and ``act`` ``'(unlabelled)'``.

    Returns
    -------
    petals : dict
        Columns ``x, y, start, end, outer, fill_color, fill_alpha, line_color, line_width, line_alpha,
        line_dash, sample_id`` (one row per drawn petal; petals of zero length are left out).
        A false positive keeps its attribute's colour: ``line_dash`` :data:`FP_DASH`, a light fill
        and a thicker outline (``line_width`` > 1, only for false positives).
    centres : dict
        Columns ``x, y, sample_id, err, alpha, act, prd`` (one row per flower; ``act`` and ``prd`` (the
        attributes with ``p > cutoff``) are text for the hover tooltip).
    """
    if mode not in ("ACT", "PRD", "joint"):
        raise ValueError(f"The 'mode' parameter of flower_columns must be 'ACT', 'PRD' or 'joint'. Got {mode!r} instead.")
    ids = np.asarray(ids, dtype=np.int64)
    k = len(ids)
    vocab = DEFAULT_VOCABULARY if vocabulary is None else vocabulary
    n_attr = len(vocab)
    colours = np.array(vocab.colours, dtype=object)
    act = np.asarray(act, dtype=bool).reshape(k, n_attr)
    prob = np.asarray(prob, dtype=np.float32).reshape(k, n_attr)
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
    unl = np.zeros(k, bool) if labelled is None else ~np.asarray(labelled, dtype=bool).reshape(k)
    if unl.any():   # no ACT to compare with: PRD alone
        length = np.where(unl[:, None], prob.astype(np.float64), length)
        filled = filled | unl[:, None]
        fp = fp & ~unl[:, None]
    shown = np.arange(n_attr) if attributes is None else np.asarray(sorted(set(int(a) for a in attributes)),
                                                                     dtype=np.int64)
    if len(shown) and (shown.min() < 0 or shown.max() >= n_attr):
        raise ValueError(f"The 'attributes' parameter of flower_columns must hold indices in 0..{n_attr - 1}. "
                         f"Got {list(attributes)!r} instead.")
    sector = np.full(n_attr, -1, np.int64)
    sector[shown] = np.arange(len(shown))
    draw = (length > 0.02) & (sector >= 0)[None, :]
    rows, cols = np.nonzero(draw)
    start, end = petal_angles(k=len(shown))
    start, end = start[sector[cols]] if len(cols) else start[:0], end[sector[cols]] if len(cols) else end[:0]
    inner = CENTRE_RADIUS + 1.0
    petals = {
        "x": np.asarray(x, dtype=np.float64)[rows],
        "y": np.asarray(y, dtype=np.float64)[rows],
        "start": start,
        "end": end,
        "outer": inner + (PETAL_RADIUS - inner) * length[rows, cols],
        "fill_color": colours[cols],
        "fill_alpha": np.where(filled[rows, cols], 0.85, np.where(fp[rows, cols], FP_FILL_ALPHA, 0.0)) * alpha[rows],
        "line_color": colours[cols].astype(object),
        "line_width": np.where(fp[rows, cols], 1.6, 0.8),
        "line_dash": np.where(fp[rows, cols], FP_DASH, "solid").astype(object),
        "line_alpha": alpha[rows],
        "sample_id": ids[rows],
    }
    centres = {
        "x": np.asarray(x, dtype=np.float64),
        "y": np.asarray(y, dtype=np.float64),
        "sample_id": ids,
        "err": np.asarray(err, dtype=np.float64),
        "alpha": alpha,
        "act": names_text(act, vocab.names),
        "prd": names_text(prob > cutoff, vocab.names),
    }
    if unl.any():
        centres["err"] = np.where(unl, np.nan, centres["err"])
        centres["act"] = np.where(unl, "(unlabelled)", centres["act"]).astype(object)
    return petals, centres


#: (attribute names, packed row bytes) -> text; shared by every vocabulary, bounded
_TEXT_CACHE: dict[tuple[tuple[str, ...], bytes], str] = {}


def _code_text(names: tuple[str, ...], code: bytes) -> str:
    text = _TEXT_CACHE.get((names, code))
    if text is None:
        bits = np.unpackbits(np.frombuffer(code, dtype=np.uint8))[:len(names)]
        shown = [names[i] for i in np.flatnonzero(bits)]
        text = ", ".join(shown) if shown else "(none)"
        if len(_TEXT_CACHE) < 200_000:
            _TEXT_CACHE[(names, code)] = text
    return text


def names_text(rows: np.ndarray, names: Sequence[str] | None = None) -> np.ndarray:
    """Comma-separated attribute names of each bool row of shape (k, N) (cached per distinct row).

    Parameters
    ----------
    rows : ndarray of bool, shape (k, N)
    names : sequence of str, optional
        The N attribute names (the run's vocabulary); default the paper's 17.

    Returns
    -------
    ndarray of object (str), shape (k,)
    """
    names = DEFAULT_VOCABULARY.names if names is None else tuple(names)
    rows = np.asarray(rows, dtype=bool)
    if len(rows) == 0:
        return np.zeros(0, dtype=object)
    if rows.ndim != 2 or rows.shape[1] != len(names):
        raise ValueError(f"The 'rows' parameter of names_text must have shape (k, {len(names)}) (one column per "
                         f"attribute name). Got {rows.shape} instead.")
    packed = np.ascontiguousarray(np.packbits(rows, axis=1))   # any number of attributes, 1 bit each
    keys = packed.view(np.dtype((np.void, packed.shape[1]))).ravel()
    uniq, inv = np.unique(keys, return_inverse=True)
    return np.asarray([_code_text(names, u.tobytes()) for u in uniq], dtype=object)[inv.ravel()]
