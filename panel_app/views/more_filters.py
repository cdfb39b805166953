"""The "More filters" card of the sidebar: widgets that write one :class:`~panel_app.filters.FilterSpec` to
``state.more_filters`` (run, split, file path pattern, metadata columns, probability range, outcome,
labelled / unlabelled).

The card starts collapsed, so the sidebar keeps its height until a user opens it. Widgets appear only for
what the run holds: a run or split choice when there are several, one widget per metadata column with a
value (``meta__*``, ``hdr__*``; a range for numbers, a choice for text with at most
:data:`~panel_app.filters.MAX_CHOICES` values, a substring otherwise).
"""
from __future__ import annotations

import logging
from typing import Any

import panel as pn
import param

from panel_app.filters import (
    LABELLED_CHOICES, MAX_CHOICES, OUTCOMES, ColumnFilter, FilterSpec, column_kind, metadata_columns, n_values,
    numeric_range, value_options,
)
from panel_app.state import AppState
from xsgpu.attributes import DEFAULT_VOCABULARY

__all__ = ["MoreFilters", "column_label", "set_range"]

log = logging.getLogger(__name__)

_NONE = ""
#: the run choice offers the most frequent runs up to this many
_MAX_RUNS = 2000
_PREFIX_LABEL = {"meta__": "label file", "hdr__": "header"}


def column_label(column: str) -> str:
    """A short widget label for a metadata column: ``'hdr__exposure_time'`` -> ``'exposure time (header)'``."""
    for prefix, where in _PREFIX_LABEL.items():
        if column.startswith(prefix):
            return f"{column[len(prefix):].replace('_', ' ')} ({where})"
    return column


def set_range(slider: pn.widgets.RangeSlider, value: tuple[float, float]) -> None:
    """Set a range slider as a released drag does (``value`` and the constant ``value_throttled``)."""
    slider.value = value
    with param.edit_constant(slider):
        slider.value_throttled = value


class MoreFilters(pn.viewable.Viewer):
    """Widgets of the "More filters" (a collapsed card) bound to ``state.more_filters``.

    Parameters
    ----------
    state : AppState
    """

    def __init__(self, *, state: AppState, **params: Any):
        super().__init__(**params)
        self.state = state
        data = state.data
        samples = data.samples
        self._updating = False
        widgets: list[pn.viewable.Viewable] = []
        self.run_ids = self.splits = None
        if "run_id" in samples.columns and n_values(data, "run_id") > 1:
            runs = value_options(data, "run_id", limit=_MAX_RUNS)
            self.run_ids = pn.widgets.MultiChoice(label="Run", options=runs, placeholder="all runs",
                                                  sizing_mode="stretch_width", css_classes=["xsgpu-filter-run"])
            widgets.append(self.run_ids)
        if "split" in samples.columns and 1 < n_values(data, "split") <= MAX_CHOICES:
            splits = value_options(data, "split")
            self.splits = pn.widgets.CheckButtonGroup(label="Split", options=sorted(splits), value=[],
                                                      css_classes=["xsgpu-filter-split"])
            widgets += [pn.pane.HTML("split", margin=(0, 5)), self.splits]
        self.path = pn.widgets.TextInput(label="File path", placeholder="glob or text, e.g. *.h5 or run3/",
                                         sizing_mode="stretch_width", css_classes=["xsgpu-filter-path"])
        self.labelled = pn.widgets.RadioButtonGroup(label="Labelled", options=list(LABELLED_CHOICES), value="all",
                                                    css_classes=["xsgpu-filter-labelled"])
        vocab = getattr(state, "vocabulary", DEFAULT_VOCABULARY)
        names = {"(none)": _NONE, **{a.name: a.slug for a in vocab}}
        self.prob_attribute = pn.widgets.Select(label="Probability (PRD) of", options=names,
                                                sizing_mode="stretch_width", css_classes=["xsgpu-filter-prob-attr"])
        self.prob_range = pn.widgets.RangeSlider(label="PRD in", start=0.0, end=1.0, value=(0.0, 1.0), step=0.01,
                                                 sizing_mode="stretch_width", css_classes=["xsgpu-filter-prob"])
        self.outcome_attribute = pn.widgets.Select(label="Outcome at the cut-off of", options=names,
                                                   sizing_mode="stretch_width",
                                                   css_classes=["xsgpu-filter-outcome-attr"])
        self.outcomes = pn.widgets.CheckButtonGroup(label="Outcome", options=list(OUTCOMES), value=[],
                                                    css_classes=["xsgpu-filter-outcome"])
        widgets += [self.path, pn.pane.HTML("images", margin=(0, 5)), self.labelled,
                    self.prob_attribute, self.prob_range, self.outcome_attribute, self.outcomes]
        #: metadata column -> its widget (RangeSlider, MultiChoice or TextInput)
        self.columns: dict[str, pn.widgets.Widget] = {}
        for col in data.cached(("filter_metadata_columns",), lambda: metadata_columns(samples)):
            w = self._column_widget(col)
            if w is not None:
                self.columns[col] = w
                widgets.append(w)
        self.reset_button = pn.widgets.Button(label="Reset these filters", color="light",
                                              css_classes=["xsgpu-more-filters-reset"])
        self.reset_button.on_click(lambda _e: self.reset())
        widgets.append(self.reset_button)
        for w in self._all_widgets():
            attr = "value_throttled" if isinstance(w, pn.widgets.RangeSlider) else "value"
            w.param.watch(lambda _e: self._apply(), attr)
        self._layout = pn.Card(*widgets, title="More filters", collapsible=True, collapsed=True,
                               sizing_mode="stretch_width", css_classes=["xsgpu-more-filters"])

    def _column_widget(self, col: str) -> pn.widgets.Widget | None:
        data = self.state.data
        label = column_label(col)
        css = ["xsgpu-filter-column"]
        if column_kind(data.samples[col]) == "range":
            span = numeric_range(data, col)
            if span is None or span[0] == span[1]:
                return None   # one value only: nothing to narrow down
            lo, hi = span
            return pn.widgets.RangeSlider(label=label, start=lo, end=hi, value=(lo, hi), step=(hi - lo) / 100,
                                          sizing_mode="stretch_width", css_classes=css)
        k = n_values(data, col)
        if k < 2:
            return None
        if k <= MAX_CHOICES:
            return pn.widgets.MultiChoice(label=label, options=value_options(data, col), placeholder="any",
                                          sizing_mode="stretch_width", css_classes=css)
        return pn.widgets.TextInput(label=label, placeholder="contains ...", sizing_mode="stretch_width",
                                    css_classes=css)

    def _all_widgets(self) -> list[pn.widgets.Widget]:
        ws = [self.run_ids, self.splits, self.path, self.labelled, self.prob_attribute, self.prob_range,
              self.outcome_attribute, self.outcomes, *self.columns.values()]
        return [w for w in ws if w is not None]

    # ------------------------------------------------------------------ state
    def spec(self) -> FilterSpec:
        """The :class:`FilterSpec` the widgets describe now."""
        cols = []
        for col, w in self.columns.items():
            if isinstance(w, pn.widgets.RangeSlider):
                lo, hi = w.value
                if (lo, hi) != (w.start, w.end):
                    cols.append(ColumnFilter(col, lo=None if lo <= w.start else float(lo),
                                             hi=None if hi >= w.end else float(hi)))
            elif isinstance(w, pn.widgets.MultiChoice):
                if w.value:
                    cols.append(ColumnFilter(col, values=tuple(str(v) for v in w.value)))
            elif w.value.strip():
                cols.append(ColumnFilter(col, contains=w.value.strip()))
        lo, hi = self.prob_range.value
        return FilterSpec(
            run_ids=tuple(self.run_ids.value) if self.run_ids is not None else (),
            splits=tuple(self.splits.value) if self.splits is not None else (),
            path=self.path.value.strip(), columns=tuple(cols),
            prob_attribute=self.prob_attribute.value or "", prob_range=(max(0.0, float(lo)), min(1.0, float(hi))),
            outcome_attribute=self.outcome_attribute.value or "", outcomes=tuple(self.outcomes.value),
            labelled=self.labelled.value)

    def _apply(self) -> None:
        if self._updating:
            return
        spec = self.spec()
        if spec != self.state.more_filters:
            self.state.more_filters = spec

    def reset(self) -> None:
        """Every widget back to "keep all" (one update of ``state.more_filters``)."""
        self._updating = True
        try:
            for w in self._all_widgets():
                if isinstance(w, pn.widgets.RangeSlider):
                    set_range(w, (w.start, w.end))
                elif isinstance(w, (pn.widgets.MultiChoice, pn.widgets.CheckButtonGroup)):
                    w.value = []
                elif w is self.labelled:
                    w.value = "all"
                elif isinstance(w, pn.widgets.Select):
                    w.value = _NONE
                else:
                    w.value = ""
        finally:
            self._updating = False
        self._apply()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout
