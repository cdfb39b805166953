"""(A) The control panel and (B) the attribute filters: widgets bound to :class:`AppState` parameters."""
from __future__ import annotations

import html
from typing import Any

import numpy as np
import panel as pn

from panel_app.shares import share_keys, share_label
from panel_app.state import AppState
from panel_app.filters import labelled_mask
from panel_app.views.lean_panes import LeanHTML
from panel_app.views.raster import OUTCOME_COLOURS, UNLABELLED_COLOUR
from xsgpu.attributes import DEFAULT_VOCABULARY, Vocabulary

__all__ = ["ControlPanel", "AttributeFilters", "attribute_legend"]

_DISTANCE_LABELS = {"Cosine": "cosine", "Euclidean": "euclidean", "Manhattan": "manhattan"}


def attribute_legend(vocabulary: Vocabulary | None = None) -> str:
    """HTML legend of the run's attribute colours (petal order, starting at 12 o'clock, counter-clockwise).

    Parameters
    ----------
    vocabulary : Vocabulary, optional
        The run's attributes; default the paper's 17.
    """
    vocab = DEFAULT_VOCABULARY if vocabulary is None else vocabulary
    items = "".join(
        f"<div style='display:flex;align-items:center;font-size:11px'>"
        f"<span style='display:inline-block;width:10px;height:10px;margin-right:4px;background:{a.colour}'></span>"
        f"{html.escape(a.name)}</div>" for a in vocab)
    return f"<div class='xsgpu-legend'>{items}</div>"


class ControlPanel(pn.viewable.Viewer):
    """Which spaces and embedding method, dots or flowers, flower mode, how box / lasso selections combine
    (replace, add, subtract, intersect), error distance, cut-off, colouring."""

    def __init__(self, *, state: AppState, **params: Any):
        super().__init__(**params)
        self.state = state
        self.spaces = pn.widgets.CheckButtonGroup.from_param(state.param.spaces, name="Spaces")
        self.method = pn.widgets.Select.from_param(state.param.method, name="Embedding method")
        self.glyph = pn.widgets.RadioButtonGroup.from_param(state.param.glyph, name="Glyph")
        self.flower_mode = pn.widgets.RadioButtonGroup.from_param(state.param.flower_mode, name="Flower mode")
        self.distance = pn.widgets.Select.from_param(state.param.distance, name="Error distance",
                                                     options=_DISTANCE_LABELS)
        self.cutoff = pn.widgets.FloatSlider.from_param(state.param.cutoff, name="Cut-off", step=0.01)
        colour_opts = {"Density": "density", "Error distance": "error_distance",
                       **{f"Outcome: {a.name}": a.slug for a in state.vocabulary},
                       **{share_label(k, state.vocabulary): k for k in share_keys(state.data)}}
        self.colour_by = pn.widgets.Select.from_param(state.param.colour_by, name="Colour dense views by",
                                                      options=colour_opts)
        self.threshold = pn.widgets.IntInput.from_param(state.param.flower_threshold, name="Glyphs at or below",
                                                        step=500)
        self.selection_mode = pn.widgets.RadioButtonGroup.from_param(
            state.param.selection_mode, name="Box / lasso", css_classes=["xsgpu-selection-mode"])
        colours = dict(OUTCOME_COLOURS)
        if not labelled_mask(state.data).all():  # zoomed out, unlabelled images are their own category
            colours["unlabelled"] = UNLABELLED_COLOUR
        outcome = " ".join(f"<span style='color:{c}'>&#9632;</span>{k}" for k, c in colours.items())
        self._layout = pn.Card(
            pn.pane.HTML("<b>Spaces</b>", margin=(0, 5)), self.spaces, self.method,
            pn.pane.HTML("<b>Glyph</b>", margin=(0, 5)), self.glyph,
            pn.pane.HTML("<b>Flower mode</b>", margin=(0, 5)), self.flower_mode,
            pn.pane.HTML("<b>Box / lasso selection</b>", margin=(0, 5)), self.selection_mode,
            self.distance, self.cutoff, self.colour_by, self.threshold,
            pn.pane.HTML(f"<div style='font-size:11px'>Outcome colours: {outcome}</div>"),
            pn.pane.HTML(attribute_legend(state.vocabulary)),
            title="Controls", collapsible=True, sizing_mode="stretch_width", css_classes=["xsgpu-controls"])

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


class AttributeFilters(pn.viewable.Viewer):
    """Show only the images with one or several attributes (any or all; on ACT or on PRD)."""

    def __init__(self, *, state: AppState, **params: Any):
        super().__init__(**params)
        self.state = state
        options = {a.name: a.slug for a in state.vocabulary}
        self.attributes = pn.widgets.MultiChoice.from_param(state.param.filter_attributes, name="Attributes",
                                                            options=options, placeholder="all images")
        self.mode = pn.widgets.RadioButtonGroup.from_param(state.param.filter_mode, name="Match")
        self.source = pn.widgets.RadioButtonGroup.from_param(state.param.filter_source, name="On")
        self.clear = pn.widgets.Button(label="Clear filters", color="light")
        from panel_app.views.more_filters import MoreFilters

        self.more = MoreFilters(state=state)   # run, split, path, metadata, PRD range, outcome, labelled
        self.clear.on_click(lambda event: (setattr(state, "filter_attributes", []), self.more.reset()))
        self.count = LeanHTML("", css_classes=["xsgpu-filter-count"])
        state.param.watch(self._update_count, ["filter_attributes", "filter_mode", "filter_source", "cutoff",
                                               "corrections_version", "more_filters"])
        self._update_count()
        self._layout = pn.Card(self.attributes, pn.Row(pn.pane.HTML("match"), self.mode),
                               pn.Row(pn.pane.HTML("on"), self.source), self.more, self.clear, self.count,
                               title="Attribute filters", collapsible=True, sizing_mode="stretch_width",
                               css_classes=["xsgpu-filters"])

    def _update_count(self, *events: Any) -> None:
        n = int(np.count_nonzero(self.state.filtered_mask()))
        unread = self.state.data.n_invalid
        hidden = f" ({unread:,} unreadable frames hidden; see errors.parquet)" if unread else ""
        self.count.object = (f"<span data-count='{n}'>{n:,} of {self.state.data.n:,} images shown{hidden}</span>")

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout
