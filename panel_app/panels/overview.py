"""Model overview: per-attribute accuracy, precision, recall, F1 and AP, and the mAP, on the corrected ACT.

Computed once per server process for each (scope, cut-off, corrections) and shared by every session.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param

from panel_app.panels._common import defer, fmt, labels_key, process_cached
from panel_app.state import AppState
from xsgpu.attributes import ATTRIBUTES, resolve_attribute

__all__ = ["ModelOverview", "SCOPES"]

log = logging.getLogger(__name__)

#: Which images the overview scores: all, one split, or the images passing the attribute filters.
SCOPES = ("all", "test", "val", "train", "filtered")


class ModelOverview(pn.viewable.Viewer):
    """Per-attribute metrics (table + AP bars) and the mAP of the model on the corrected ACT.

    Parameters
    ----------
    state : AppState
    scope : one of :data:`SCOPES`
    """

    state = param.ClassSelector(class_=AppState, doc="The session state.")
    scope = param.Selector(default="all", objects=list(SCOPES), doc="Images scored.")

    def __init__(self, **params: Any):
        super().__init__(**params)
        if self.state is None:
            raise ValueError("The 'state' parameter of ModelOverview must be an AppState. Got None instead.")
        self._scope = pn.widgets.RadioButtonGroup.from_param(self.param.scope, css_classes=["xsgpu-overview-scope"])
        self._summary = pn.pane.Markdown("", css_classes=["xsgpu-overview-summary"])
        self._table = pn.widgets.Tabulator(pd.DataFrame(), disabled=True, show_index=False, height=420,
                                           layout="fit_data_table", css_classes=["xsgpu-overview-table"])
        self._plot = pn.pane.Bokeh(None)
        self.state.param.watch(lambda _e: self._refresh(), ["cutoff", "corrections_version", "filter_attributes",
                                                            "filter_mode"])
        self.param.watch(lambda _e: self._refresh(), "scope")
        self._layout = pn.Column(self._scope, self._summary, pn.Row(self._table, self._plot),
                                 sizing_mode="stretch_width", css_classes=["xsgpu-model-overview"])
        defer(self._layout, self._refresh)

    def scope_ids(self) -> np.ndarray:
        """Sample ids scored in the current scope (int64, sorted)."""
        data = self.state.data
        if self.scope == "all":
            return np.arange(data.n, dtype=np.int64)
        if self.scope == "filtered":
            return np.flatnonzero(self.state.filtered_mask()).astype(np.int64)
        if "split" not in data.samples.columns:
            return np.zeros(0, np.int64)
        return np.flatnonzero(data.samples["split"].to_numpy() == self.scope).astype(np.int64)

    def metrics(self) -> tuple[pd.DataFrame, float]:
        """Per-attribute metrics and mAP for the current scope and cut-off.

        Returns
        -------
        table : pd.DataFrame
            ``attribute`` (display name), ``slug``, then ``xsgpu.metrics.attribute_metrics`` columns
            (tp tn fp fn accuracy precision recall f1 ap support).
        map : float
            Mean average precision over the attributes present in the scope.
        """
        s = self.state
        key = ("overview", self.scope, float(s.cutoff), labels_key(s),
               tuple(s.filter_attributes) + (s.filter_mode,) if self.scope == "filtered" else ())

        def build():
            from xsgpu.metrics import attribute_metrics, mean_average_precision

            ids = self.scope_ids()
            if len(ids) == 0:
                return pd.DataFrame(), float("nan")
            y, p = s.y_act()[ids], s.data.y_prob[ids]
            table = attribute_metrics(y, p, cutoff=s.cutoff)
            table = table.reset_index(names="slug")
            table.insert(0, "attribute", [resolve_attribute(x).name for x in table["slug"]])
            return table, float(mean_average_precision(y, p))

        return process_cached(s, key, build)

    def _refresh(self) -> None:
        try:
            table, m_ap = self.metrics()
        except ImportError as exc:
            self._summary.object = f"Model metrics unavailable: {exc}"
            return
        n = len(self.scope_ids())
        if table.empty:
            self._summary.object = f"No images in scope **{self.scope}**."
            self._table.value = pd.DataFrame()
            self._plot.object = None
            return
        self._summary.object = (f"**mAP {fmt(m_ap)}** over {n:,} images (scope: {self.scope}, cut-off "
                                f"{self.state.cutoff:g}, corrected ACT)")
        self._table.value = table.round(3)
        self._plot.object = _ap_bars(table)

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


def _ap_bars(table: pd.DataFrame):
    from bokeh.models import ColumnDataSource, HoverTool
    from bokeh.plotting import figure

    names = table["attribute"].tolist()
    src = ColumnDataSource({"attribute": names, "ap": table["ap"].fillna(0).to_numpy(),
                            "f1": table["f1"].to_numpy(), "colour": [a.colour for a in ATTRIBUTES][:len(names)]})
    fig = figure(y_range=names[::-1], x_range=(0, 1), width=380, height=420, title="Average precision",
                 toolbar_location=None)
    fig.hbar(y="attribute", right="ap", height=0.8, color="colour", source=src)
    fig.add_tools(HoverTool(tooltips=[("attribute", "@attribute"), ("AP", "@ap{0.000}"), ("F1", "@f1{0.000}")]))
    return fig
