"""The attribute study (N x N MI / correlation / conditional entropy, ACT vs PRD) and co-occurrence tables.

Both are computed once per server process for each (measure or cut-off, corrections) and shared by
every session; the panels only render them. Both follow the run's vocabulary (N attributes).
"""
from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np
import pandas as pd
import panel as pn
import param

from panel_app.filters import covered_text, labelled_mask
from panel_app.panels._common import LazyRefresh, defer, labels_key, process_cached
from panel_app.state import AppState
from xsgpu.attributes import DEFAULT_VOCABULARY

__all__ = ["AttributeStudyPanel", "CooccurrencePanel", "MEASURES", "study_heatmap"]

log = logging.getLogger(__name__)

MEASURES = ("mutual_information", "correlation", "conditional_entropy")
_PALETTES = {"correlation": "RdBu11", "mutual_information": "Viridis256", "conditional_entropy": "Viridis256"}


class AttributeStudyPanel(pn.viewable.Viewer):
    """Two N x N heatmaps (N attributes of the run): a pairwise measure on the true labels (corrected ACT) and on the predictions.

    Parameters
    ----------
    state : AppState
    measure : one of :data:`MEASURES`
    """

    state = param.ClassSelector(class_=AppState, doc="The session state.")
    measure = param.Selector(default="mutual_information", objects=list(MEASURES))

    def __init__(self, **params: Any):
        super().__init__(**params)
        if self.state is None:
            raise ValueError("The 'state' parameter of AttributeStudyPanel must be an AppState. Got None instead.")
        self._measure = pn.widgets.RadioButtonGroup.from_param(self.param.measure, css_classes=["xsgpu-study-measure"])
        self._plots = pn.Row(sizing_mode="stretch_width")
        self.lazy = LazyRefresh(self)   # follows the session after each event, while its tab is shown
        self.state.param.watch(lambda _e: self.lazy(self._refresh), ["cutoff", "corrections_version"])
        self.param.watch(lambda _e: self._refresh(), "measure")
        self._caption = pn.pane.Markdown("", css_classes=["xsgpu-study-caption"])
        self._layout = pn.Column(self._measure, self._caption, self._plots, sizing_mode="stretch_width",
                                 css_classes=["xsgpu-attribute-study"])
        defer(self._layout, self._refresh, lazy=self.lazy)

    def matrices(self) -> dict[str, np.ndarray]:
        """The study matrices for the current measure.

        Returns
        -------
        dict
            ``"ACT"`` and ``"PRD"`` -> float (N, N): ``xsgpu.metrics.attribute_study`` of the corrected
            ACT and of the predicted labels (``y_prob > cutoff``), over the labelled images
            (``samples.labelled``).
        """
        s = self.state
        key = ("study", self.measure, float(s.cutoff), labels_key(s))

        def build():
            from xsgpu.metrics import attribute_study

            k = s.n_attributes
            lab = labelled_mask(s.data)   # both over the labelled images (unlabelled ones have no ACT)
            rows = slice(None) if lab.all() else lab
            return {"ACT": np.asarray(attribute_study(s.y_act()[rows], measure=self.measure, n_attributes=k),
                                      dtype=np.float64),
                    "PRD": np.asarray(attribute_study(s.data.y_prob[rows] > s.cutoff, measure=self.measure,
                                                      n_attributes=k), dtype=np.float64)}

        return process_cached(s, key, build)

    def _refresh(self) -> None:
        try:
            mats = self.matrices()
        except ImportError as exc:
            self._plots.objects = [pn.pane.Alert(f"Attribute study unavailable: {exc}", alert_type="danger")]
            return
        lo = min(np.nanmin(m) for m in mats.values())
        hi = max(np.nanmax(m) for m in mats.values())
        if self.measure == "correlation":
            lo, hi = -1.0, 1.0
        lab = labelled_mask(self.state.data)
        over = covered_text(int(np.count_nonzero(lab)), len(lab))
        self._caption.object = f"ACT and PRD over {over}"
        self._plots.objects = [
            pn.pane.Bokeh(study_heatmap(m, title=f"{label}: {self.measure.replace('_', ' ')}", measure=self.measure,
                                        low=lo, high=hi, names=self.state.vocabulary.names),
                          css_classes=["xsgpu-study-heatmap"])
            for label, m in mats.items()
        ]

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


def study_heatmap(matrix: np.ndarray, *, title: str, measure: str, low: float, high: float,
                  names: Sequence[str] | None = None):
    """A Bokeh N x N heatmap (rect glyphs, hover with both attribute names and the value).

    Parameters
    ----------
    matrix : ndarray of float, shape (N, N)
        Row = first attribute, column = second (for conditional entropy: H(row | column)).
    names : sequence of str, optional
        The N attribute names (the run's vocabulary); default the paper's 17.
    """
    from bokeh.models import ColorBar, ColumnDataSource, HoverTool, LinearColorMapper
    from bokeh.plotting import figure

    names = list(DEFAULT_VOCABULARY.names if names is None else names)
    k = len(names)
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (k, k):
        raise ValueError(f"The 'matrix' parameter of study_heatmap must have shape ({k}, {k}) (one row and column "
                         f"per attribute name). Got {m.shape} instead.")
    rows, cols = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    src = ColumnDataSource({"a": [names[i] for i in rows.ravel()], "b": [names[j] for j in cols.ravel()],
                            "value": m.ravel()})
    mapper = LinearColorMapper(palette=_PALETTES.get(measure, "Viridis256"), low=low,
                               high=high if high > low else low + 1e-9, nan_color="#eeeeee")
    side = max(500, 20 + 16 * k)  # 40 attributes: 16 px per cell keeps the axis labels apart
    fig = figure(x_range=names, y_range=names[::-1], width=side + 20, height=side, title=title,
                 toolbar_location=None, x_axis_location="above")
    fig.rect(x="b", y="a", width=1, height=1, source=src, line_color=None,
             fill_color={"field": "value", "transform": mapper})
    fig.xaxis.major_label_orientation = 1.0
    fig.add_tools(HoverTool(tooltips=[("row", "@a"), ("column", "@b"), ("value", "@value{0.000}")]))
    fig.add_layout(ColorBar(color_mapper=mapper, width=10), "right")
    return fig


class CooccurrencePanel(pn.viewable.Viewer):
    """The most frequent attribute combinations in ACT, with how often the model predicted them exactly.

    Parameters
    ----------
    state : AppState
    top : int
        Rows shown.
    """

    state = param.ClassSelector(class_=AppState, doc="The session state.")
    top = param.Integer(default=20, bounds=(1, 500))

    def __init__(self, **params: Any):
        super().__init__(**params)
        if self.state is None:
            raise ValueError("The 'state' parameter of CooccurrencePanel must be an AppState. Got None instead.")
        self._top = pn.widgets.IntInput.from_param(self.param.top, label="Rows", width=100, css_classes=["xsgpu-cooccurrence-top"])
        self._table = pn.widgets.Tabulator(pd.DataFrame(), disabled=True, show_index=False, height=450,
                                           selectable=False, layout="fit_data_table",
                                           css_classes=["xsgpu-cooccurrence-table"])
        self._table.on_click(lambda e: self.select_row(e.row))
        self._note = pn.pane.Markdown("")
        self.lazy = LazyRefresh(self)   # follows the session after each event, while its tab is shown
        self.state.param.watch(lambda _e: self.lazy(self._refresh), ["cutoff", "corrections_version"])
        self.param.watch(lambda _e: self._refresh(), "top")
        self._layout = pn.Column(self._top, self._note, self._table,
                                 sizing_mode="stretch_width", css_classes=["xsgpu-cooccurrence"])
        defer(self._layout, self._refresh, lazy=self.lazy)

    def table(self) -> pd.DataFrame:
        """``xsgpu.metrics.cooccurrence_table`` of the corrected ACT and PRD at the cut-off (top rows)."""
        s = self.state
        key = ("cooccurrence", int(self.top), float(s.cutoff), labels_key(s))

        def build():
            from xsgpu.metrics import cooccurrence_table

            return cooccurrence_table(s.y_act(), s.data.y_prob, cutoff=s.cutoff, top=int(self.top),
                                      vocabulary=s.vocabulary)

        return process_cached(s, key, build)

    def select_row(self, row: int) -> np.ndarray:
        """Select (``state.select``, in the current selection mode) the images whose corrected ACT is
        exactly the combination of listed row ``row``; returns their ids.

        Raises
        ------
        IndexError
            If ``row`` is not a listed row.
        """
        t = self.table()
        if not 0 <= int(row) < len(t):
            raise IndexError(f"Row {row} is out of range 0..{len(t) - 1} of the co-occurrence table.")
        vocab = self.state.vocabulary
        want = np.zeros(len(vocab), dtype=bool)
        for slug in t["attributes"].iloc[int(row)]:
            want[vocab.index(slug)] = True
        ids = np.flatnonzero((self.state.y_act() == want).all(axis=1)).astype(np.int64)
        self.state.select(ids, mode=self.state.selection_mode)
        return ids

    def _refresh(self) -> None:
        try:
            t = self.table()
        except ImportError as exc:
            self._note.object = f"Co-occurrence table unavailable: {exc}"
            return
        shown = t.drop(columns=[c for c in ("attributes",) if c in t.columns])  # tuples of slugs: not for display
        self._table.value = shown.round(3) if len(shown) else shown
        self._note.object = (f"Top {len(t)} attribute combinations in the corrected ACT and how many of them the "
                             f"model predicts exactly (cut-off {self.state.cutoff:g}). Click a row to select "
                             "its images in the views.")

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout
