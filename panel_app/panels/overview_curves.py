"""Per-attribute curves of the model overview: precision-recall, probability histograms, reliability.

Pure NumPy functions over one attribute's labels and probabilities (the panel picks the rows: a split,
the filtered images or the current selection), and the HoloViews elements that draw them.

Examples
--------
>>> import numpy as np
>>> y = np.array([True, False, True, False]); p = np.array([0.9, 0.8, 0.3, 0.1])
>>> c = pr_curve(y, p)
>>> c["recall"].tolist(), c["precision"].tolist()
([0.5, 0.5, 1.0, 1.0], [1.0, 0.5, 0.6666666666666666, 0.5])
>>> r = reliability(y, p, n_bins=2)
>>> r["mean_predicted"].round(3).tolist(), r["fraction_positive"].tolist(), r["count"].tolist()
([0.2, 0.85], [0.5, 0.5], [2, 2])
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["pr_curve", "decimate_curve", "reliability", "probability_histograms", "pr_element", "histogram_element",
           "reliability_element", "ap_bars_element", "LiveElement", "EMPTY_CURVES", "MAX_CURVE_POINTS",
           "PLOT_BACKEND"]

#: Most points a drawn curve keeps (:func:`decimate_curve`): a 320-px plot shows no more; a PR curve over
#: 1M images has up to 1M distinct thresholds, which took minutes to send and draw in Chromium.
MAX_CURVE_POINTS = 2048
#: Bokeh output backend of the overview's small plots. HoloViews' default is WebGL, which Chromium without
#: a GPU (headless, many facility PCs) emulates in software; its read-back to the page (``drawImage``)
#: took most of a selection's wait in bench_browser at 1M. Canvas draws these few glyphs at once.
PLOT_BACKEND = "canvas"
_BACKEND_OPTS = {"plot.output_backend": PLOT_BACKEND}

_SCOPE_COLOUR = "#2171b5"
_SELECTION_COLOUR = "#ff1f5b"
_FONT = {"title": "13pt", "labels": "12pt", "xticks": "11pt", "yticks": "11pt", "legend": "11pt"}


def _pair(y_true: Any, y_score: Any, func: str) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=bool).ravel()
    p = np.asarray(y_score, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"The 'y_true' and 'y_score' parameters of {func} must have the same length. "
                         f"Got {y.shape[0]} and {p.shape[0]} instead.")
    return y, p


def pr_curve(y_true: Any, y_score: Any) -> dict[str, np.ndarray]:
    """Precision and recall at every distinct score, highest threshold first.

    Parameters
    ----------
    y_true : array of bool, shape (n,)
    y_score : array of float, shape (n,)

    Returns
    -------
    dict
        ``threshold``, ``precision``, ``recall`` (float64 arrays of the same length: predicting
        ``score >= threshold`` positive); empty arrays when there is no positive.
    """
    y, p = _pair(y_true, y_score, "pr_curve")
    n_pos = int(y.sum())
    if n_pos == 0 or len(y) == 0:
        return {"threshold": np.zeros(0), "precision": np.zeros(0), "recall": np.zeros(0)}
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(ps)), len(ps) - 1]  # the last row of each run of equal scores
    tp = np.cumsum(ys)[last].astype(np.float64)
    fp = (last + 1) - tp
    return {"threshold": ps[last], "precision": tp / (tp + fp), "recall": tp / n_pos}


def decimate_curve(curve: dict[str, np.ndarray], *, x: str = "recall", y: str = "precision",
                   max_points: int = MAX_CURVE_POINTS) -> dict[str, np.ndarray]:
    """At most ``max_points`` of a curve's points, chosen so that its drawing does not change (min-max decimation).

    The curve's ``x`` must be non-decreasing (a PR curve's recall is). Its x range is cut into
    ``max_points // 4`` equal bins; in each, the first, last, lowest and highest point are kept, in their
    order, so every peak and dip stays drawn. Kept points are the curve's own (exact) points; every
    array of ``curve`` is subset alike. A curve of at most ``max_points`` points is returned as it is.

    Examples
    --------
    >>> c = {"recall": np.linspace(0, 1, 10_001), "precision": np.r_[np.ones(5_000), 0.2, np.ones(5_000)]}
    >>> d = decimate_curve(c, max_points=40)
    >>> len(d["recall"]) <= 40, float(d["precision"].min()), float(d["recall"][-1])
    (True, 0.2, 1.0)
    """
    if int(max_points) < 4:
        raise ValueError(f"The 'max_points' parameter of decimate_curve must be >= 4. Got {max_points!r} instead.")
    xs, ys = np.asarray(curve[x], dtype=np.float64), np.asarray(curve[y], dtype=np.float64)
    n = len(xs)
    if n <= max_points:
        return curve
    bins = int(max_points) // 4
    span = xs[-1] - xs[0]
    b = np.minimum(((xs - xs[0]) / (span if span > 0 else 1.0) * bins).astype(np.int64), bins - 1)
    starts = np.r_[0, np.flatnonzero(np.diff(b)) + 1]
    ends = np.r_[starts[1:], n] - 1
    seg = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, n]))
    keep = [starts, ends]
    for reduce in (np.minimum, np.maximum):
        hit = np.flatnonzero(ys == reduce.reduceat(ys, starts)[seg])  # NaN-free: precision is tp / (tp + fp) > 0
        _, first = np.unique(seg[hit], return_index=True)
        keep.append(hit[first])
    idx = np.unique(np.concatenate(keep))
    return {k: (np.asarray(v)[idx] if np.ndim(v) == 1 and len(v) == n else v) for k, v in curve.items()}


def reliability(y_true: Any, y_prob: Any, *, n_bins: int = 10) -> dict[str, np.ndarray]:
    """Reliability (calibration) diagram data: per probability bin, mean prediction vs observed frequency.

    Bins are ``n_bins`` equal intervals of [0, 1], assigned as scikit-learn's ``calibration_curve``
    (``strategy='uniform'``) does; empty bins are left out.

    Returns
    -------
    dict
        ``mean_predicted``, ``fraction_positive`` (float64), ``count`` (int64), one entry per non-empty bin,
        and ``ece``: the expected calibration error (count-weighted mean absolute gap), NaN for no rows.
    """
    if int(n_bins) < 1:
        raise ValueError(f"The 'n_bins' parameter of reliability must be >= 1. Got {n_bins!r} instead.")
    y, p = _pair(y_true, y_prob, "reliability")
    edges = np.linspace(0.0, 1.0, int(n_bins) + 1)
    ids = np.searchsorted(edges[1:-1], p)
    count = np.bincount(ids, minlength=n_bins)
    s_prob = np.bincount(ids, weights=p, minlength=n_bins)
    s_true = np.bincount(ids, weights=y.astype(np.float64), minlength=n_bins)
    keep = count > 0
    mean_pred = s_prob[keep] / count[keep]
    frac = s_true[keep] / count[keep]
    ece = float(np.sum(count[keep] * np.abs(frac - mean_pred)) / count.sum()) if count.sum() else float("nan")
    return {"mean_predicted": mean_pred, "fraction_positive": frac, "count": count[keep].astype(np.int64),
            "ece": ece}


def probability_histograms(y_true: Any, y_prob: Any, *, n_bins: int = 20) -> dict[str, np.ndarray]:
    """Histograms of the predicted probability over [0, 1] for the images with and without the attribute.

    Returns
    -------
    dict
        ``edges`` (n_bins + 1,), ``positive`` and ``negative`` counts (n_bins,) int64.
    """
    y, p = _pair(y_true, y_prob, "probability_histograms")
    edges = np.linspace(0.0, 1.0, int(n_bins) + 1)
    pos, _ = np.histogram(p[y], bins=edges)
    neg, _ = np.histogram(p[~y], bins=edges)
    return {"edges": edges, "positive": pos.astype(np.int64), "negative": neg.astype(np.int64)}


# ---------------------------------------------------------------------- HoloViews elements
def _hv():
    import holoviews as hv

    import holoviews.plotting.bokeh  # noqa: F401  (registers the Bokeh renderer for pn.pane.HoloViews)
    return hv


def pr_element(curves: dict[str, dict], *, title: str, width: int = 320, height: int = 300):
    """An ``hv.Overlay`` of PR curves (``{label: pr_curve(...)}``); the first is the scope, the second the selection.

    Each curve is drawn with at most :data:`MAX_CURVE_POINTS` points (:func:`decimate_curve`).
    """
    hv = _hv()
    items = []
    for k, (label, c) in enumerate(curves.items()):
        c = decimate_curve(c)
        items.append(hv.Curve((c["recall"], c["precision"]), "recall", "precision", label=label).opts(
            color=_SCOPE_COLOUR if k == 0 else _SELECTION_COLOUR, line_width=2,
            line_dash="solid" if k == 0 else "dashed", interpolation="steps-post"))
    if not items:
        items.append(hv.Curve([], "recall", "precision"))
    return hv.Overlay(items).opts(title=title, width=width, height=height, xlim=(0, 1.02), ylim=(0, 1.02),
                                  legend_position="bottom_left", fontsize=_FONT, show_grid=True, toolbar=None,
                                  backend_opts=_BACKEND_OPTS)


def histogram_element(hists: dict[str, dict], *, title: str, width: int = 320, height: int = 300):
    """Probability histograms: for the scope, images with (filled) and without (outline) the attribute;
    for the selection (second entry of ``hists``), the same as step outlines in the selection colour."""
    hv = _hv()
    items = []
    for k, (label, h) in enumerate(hists.items()):
        e = h["edges"]
        if k == 0:
            items.append(hv.Histogram((e, h["negative"]), kdims="probability", vdims="images", label=f"{label}: absent")
                         .opts(fill_color="#bdbdbd", line_color="#636363", fill_alpha=0.6))
            items.append(hv.Histogram((e, h["positive"]), kdims="probability", vdims="images", label=f"{label}: present")
                         .opts(fill_color=_SCOPE_COLOUR, line_color=_SCOPE_COLOUR, fill_alpha=0.55))
        else:   # an empty slot (no selection) draws nothing, but keeps its layer (LiveElement)
            mids = np.r_[e[:-1], e[-1]] if h["positive"].sum() else np.zeros(0)
            counts = np.r_[h["positive"], h["positive"][-1:]] if len(mids) else np.zeros(0)
            items.append(hv.Curve((mids, counts), "probability", "images",
                                  label=f"{label}: present").opts(color=_SELECTION_COLOUR, line_width=2,
                                                                   interpolation="steps-post"))
    return hv.Overlay(items).opts(title=title, width=width, height=height, legend_position="top_left",
                                  fontsize=_FONT, toolbar=None, backend_opts=_BACKEND_OPTS)


def reliability_element(rels: dict[str, dict], *, title: str, width: int = 320, height: int = 300):
    """Reliability diagram: observed frequency against mean predicted probability per bin, and the diagonal."""
    hv = _hv()
    items = [hv.Curve(([0, 1], [0, 1]), "mean predicted probability", "fraction with the attribute",
                      label="perfectly calibrated").opts(color="#969696", line_dash="dotted")]
    eces = []
    for k, (label, r) in enumerate(rels.items()):
        colour = _SCOPE_COLOUR if k == 0 else _SELECTION_COLOUR
        if np.isfinite(r["ece"]):
            eces.append(f"{label} {r['ece']:.3f}")
        pts = (r["mean_predicted"], r["fraction_positive"])
        # the label stays the same whatever the data (the layers of a LiveElement); the ECE is a text element
        items.append(hv.Curve(pts, "mean predicted probability", "fraction with the attribute", label=label)
                     .opts(color=colour, line_width=2))
        items.append(hv.Scatter(pts, "mean predicted probability", "fraction with the attribute")
                     .opts(color=colour, size=6))
    # the ECE as text in the plot (a title this long was cut at 320 px); a Text element's text is data, so it
    # changes in place with the rest (LiveElement)
    items.append(hv.Text(0.03, 0.97, "ECE " + ", ".join(eces) if eces else "", halign="left", valign="top",
                         fontsize=10).opts(color="#444444"))
    return hv.Overlay(items).opts(title=title, width=width, height=height, xlim=(0, 1), ylim=(0, 1.02),
                                  legend_position="bottom_right", fontsize=_FONT, show_grid=True, toolbar=None,
                                  backend_opts=_BACKEND_OPTS)


def ap_bars_element(names: list[str], ap: np.ndarray, colours: list[str], *, width: int = 340, height: int = 420):
    """Horizontal bars of the per-attribute average precision, in the attribute colours."""
    hv = _hv()
    data = {"attribute": list(names), "AP": np.nan_to_num(np.asarray(ap, dtype=np.float64)), "colour": colours}
    return hv.Bars(data, "attribute", ["AP", "colour"]).opts(
        invert_axes=True, color="colour", width=width, height=height, xlim=(0, 1), title="Average precision",
        fontsize=_FONT, toolbar=None, tools=["hover"], invert_yaxis=True, backend_opts=_BACKEND_OPTS,
        xticks=[0, 0.25, 0.5, 0.75, 1.0])   # the AP axis (drawn horizontally): 0.1 steps overlapped at 11 pt


#: The curves of no image (an empty slot: the selection's layers while nothing is selected).
EMPTY_CURVES: dict[str, dict] = {"pr": pr_curve([], []), "hist": probability_histograms([], []),
                                 "reliability": reliability([], [])}


class LiveElement:
    """A plot that is drawn once and then changes its data in place: a HoloViews ``DynamicMap`` fed by a ``Pipe``.

    Giving a ``pn.pane.HoloViews`` a new element makes a new Bokeh figure in the browser (about 0.25 s of
    Chromium's work per plot and selection at 1M images); a ``DynamicMap`` whose ``Pipe`` is sent new data
    changes the data sources and the title of the figure already drawn. Its overlay must keep the same
    layers (element types and labels) from one update to the next; :meth:`update` makes a new map when
    the ``layers`` key changes (e.g. another scope), else it sends the data.

    Parameters
    ----------
    make : callable
        ``make(data) -> hv.Overlay`` (e.g. :func:`pr_element` with its keyword arguments bound).
    """

    def __init__(self, make: Any):
        self.make = make
        self.layers: Any = None
        self.pipe: Any = None
        self.dmap: Any = None

    def update(self, data: Any, *, layers: Any) -> bool:
        """Show ``data``; returns True when a new map was made (new layers), False when the data was sent."""
        hv = _hv()
        if self.dmap is None or layers != self.layers:
            self.layers = layers
            self.pipe = hv.streams.Pipe(data=data)
            self.dmap = hv.DynamicMap(lambda data: self.make(data), streams=[self.pipe])
            return True
        self.pipe.send(data)
        return False

    @property
    def element(self) -> Any:
        """The element shown now (the map's current frame)."""
        return None if self.dmap is None else self.dmap[()]
