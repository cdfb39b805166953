"""Model overview: overall and per-attribute metrics per split, PR curves, probability histograms and a
reliability diagram per attribute, on the corrected ACT, linked to the current selection; for a run
that keeps layers, the k-NN overlap across layers ``xsgpu embed`` stored (:mod:`.overview_layers`).

The default scope is the test split (the val split when the run has no test split, all images when it has
neither): scores on the training images flatter the model. The overall figures (accuracy, micro/macro
precision, recall, F1, subset accuracy, mAP) are given for every split side by side, and for the current
selection. The curves of the chosen attribute show the scope and, dashed or outlined in the selection
colour, the current selection. Per-scope results are computed once per server process for each (scope,
cut-off, corrections) and shared by every session; the selection's are computed per change.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param

from panel_app.filters import covered_text, labelled_mask
from panel_app.panels._common import LazyRefresh, defer, fmt, labels_key, process_cached
from panel_app.panels.overview_curves import (
    EMPTY_CURVES, LiveElement, ap_bars_element, decimate_curve, histogram_element, pr_curve, pr_element,
    probability_histograms, reliability, reliability_element,
)
from panel_app.panels.overview_layers import layer_overlaps_section
from panel_app.state import AppState
from xsgpu.attributes import DEFAULT_VOCABULARY

__all__ = ["ModelOverview", "SCOPES", "OVERALL_COLUMNS", "default_scope"]

log = logging.getLogger(__name__)

#: Which images the overview scores: one split, all, the images passing the attribute filters, the selection.
SCOPES = ("test", "val", "train", "all", "filtered", "selection")
#: Columns of the per-split table (overall figures of the model), in order.
OVERALL_COLUMNS = ("scope", "n", "mAP", "accuracy", "precision_micro", "recall_micro", "f1_micro",
                   "precision_macro", "recall_macro", "f1_macro", "subset_accuracy")
_TABLE_CSS = (".tabulator { font-size: 13px; } .tabulator .tabulator-header { font-size: 13px; } "
              # headers wrap instead of being cut to "precisi..." in a 1366-px window
              ".tabulator .tabulator-header .tabulator-col .tabulator-col-content .tabulator-col-title "
              "{ white-space: normal !important; text-overflow: clip !important; }")
_TEXT = {"font-size": "14px"}


def _splits_of(samples: pd.DataFrame) -> set[str]:
    col = samples["split"]
    if isinstance(col.dtype, pd.CategoricalDtype):  # the categories in use, without a per-row conversion
        return {str(c) for c, k in zip(col.cat.categories, np.bincount(col.cat.codes[col.cat.codes >= 0],
                                                                         minlength=len(col.cat.categories))) if k}
    return set(pd.unique(col).astype(str))


def default_scope(samples: pd.DataFrame) -> str:
    """``'test'`` when the run has a test split, else ``'val'``, else ``'all'``."""
    if "split" in samples.columns:
        splits = _splits_of(samples)
        for name in ("test", "val"):
            if name in splits:
                return name
    return "all"


def _split_ids(data: Any, split: str) -> np.ndarray:
    """Sorted ids of one split (computed once per process: a 1M-row comparison costs ~0.1-0.7 s)."""
    def build() -> np.ndarray:
        col = data.samples["split"]
        if isinstance(col.dtype, pd.CategoricalDtype):
            cats = [str(c) for c in col.cat.categories]
            if split not in cats:
                return np.zeros(0, np.int64)
            return np.flatnonzero(col.cat.codes.to_numpy() == cats.index(split)).astype(np.int64)
        return np.flatnonzero(col.to_numpy() == split).astype(np.int64)

    return data.cached(("overview_split_ids", split), build)


class ModelOverview(pn.viewable.Viewer):
    """Overall and per-attribute metrics of the model per split, with PR, histogram and reliability plots.

    Parameters
    ----------
    state : AppState
    scope : one of :data:`SCOPES`
        Default :func:`default_scope` of the run (test, else val, else all).
    attribute : str
        Slug of the attribute whose curves are drawn (default the first).
    """

    state = param.ClassSelector(class_=AppState, doc="The session state.")
    scope = param.Selector(default="test", objects=list(SCOPES), doc="Images scored.")
    attribute = param.Selector(default=DEFAULT_VOCABULARY[0].slug, objects=list(DEFAULT_VOCABULARY.slugs),
                               doc="Attribute of the PR curve, histograms and reliability diagram (the run's "
                                   "slugs; default its first attribute).")

    def __init__(self, **params: Any):
        if params.get("state") is None:
            raise ValueError("The 'state' parameter of ModelOverview must be an AppState. Got None instead.")
        data = params["state"].data
        params.setdefault("scope", data.cached(("overview_default_scope",), lambda: default_scope(data.samples)))
        attribute = params.pop("attribute", None)
        super().__init__(**params)
        self.vocabulary = vocab = data.vocabulary
        if vocab.slugs != DEFAULT_VOCABULARY.slugs:
            self.param.attribute.objects = list(vocab.slugs)
            self.attribute = vocab[0].slug
        if attribute is not None:
            self.attribute = attribute
        self._scope = pn.widgets.RadioButtonGroup.from_param(self.param.scope, css_classes=["xsgpu-overview-scope"])
        self._attr = pn.widgets.Select.from_param(self.param.attribute, name="Curves of", width=220,
                                                  options={a.name: a.slug for a in vocab},
                                                  css_classes=["xsgpu-overview-attribute"])
        self._summary = pn.pane.Markdown("", css_classes=["xsgpu-overview-summary"], styles=_TEXT)
        self._splits = pn.widgets.Tabulator(pd.DataFrame(), disabled=True, show_index=False, layout="fit_columns",
                                            titles={c: c.replace("_", " ") for c in OVERALL_COLUMNS},
                                            sizing_mode="stretch_width", stylesheets=[_TABLE_CSS],
                                            css_classes=["xsgpu-overview-splits"])
        self._table = pn.widgets.Tabulator(pd.DataFrame(), disabled=True, show_index=False, height=420,
                                           layout="fit_data_table", stylesheets=[_TABLE_CSS],
                                           css_classes=["xsgpu-overview-table"])
        self._bars = pn.pane.HoloViews(None, backend="bokeh", css_classes=["xsgpu-overview-ap"])
        self._pr = pn.pane.HoloViews(None, backend="bokeh", css_classes=["xsgpu-overview-pr"])
        self._hist = pn.pane.HoloViews(None, backend="bokeh", css_classes=["xsgpu-overview-hist"])
        self._rel = pn.pane.HoloViews(None, backend="bokeh", css_classes=["xsgpu-overview-reliability"])
        #: the three curve plots, drawn once and changed in place (LiveElement)
        self._live: dict[str, LiveElement] = {
            kind: LiveElement(lambda d, make=make: make(d["curves"], title=d["title"]))
            for kind, make in (("pr", pr_element), ("hist", histogram_element), ("reliability", reliability_element))}
        #: follows the session after each event, while its tab is shown (the app's tabs call lazy.show)
        self.lazy = LazyRefresh(self)
        self.state.param.watch(lambda _e: self.lazy(self._refresh),
                               ["cutoff", "corrections_version", "filter_attributes",
                                                            "filter_mode", "filter_source", "more_filters"])
        self.state.param.watch(lambda _e: self._on_selection(), ["selection"])
        self.param.watch(lambda _e: self._refresh(), "scope")
        self.param.watch(lambda _e: self._refresh_curves(), "attribute")
        self._layout = pn.Column(
            pn.Row(self._scope, self._attr), self._summary,
            pn.pane.Markdown("**Overall, per split** (micro averages pool every (image, attribute) pair; "
                             f"macro averages the {len(vocab)} attributes)", styles=_TEXT),
            self._splits,
            pn.FlexBox(self._pr, self._hist, self._rel),   # wraps on narrow windows instead of overflowing
            pn.FlexBox(self._table, self._bars),
            sizing_mode="stretch_width", css_classes=["xsgpu-model-overview"])
        #: the stored k-NN overlaps across layers (xsgpu embed), when the run has them; else None
        self.layers = layer_overlaps_section(data, styles=_TEXT, stylesheets=[_TABLE_CSS])
        if self.layers is not None:
            self._layout.append(self.layers)
        defer(self._layout, self._refresh, lazy=self.lazy)

    # ------------------------------------------------------------------ what is scored
    def ids_of(self, scope: str, *, labelled_only: bool = True) -> np.ndarray:
        """Sample ids scored in ``scope`` (int64, sorted; frames that failed to read are never scored, nor,
        unless ``labelled_only`` is False, images without labels: ``samples.labelled``)."""
        data = self.state.data
        if labelled_only:
            ids = self.ids_of(scope, labelled_only=False)
            return ids[labelled_mask(data)[ids]]
        if scope == "all":
            ids = np.arange(data.n, dtype=np.int64)
        elif scope == "filtered":
            return np.flatnonzero(self.state.filtered_mask()).astype(np.int64)
        elif scope == "selection":
            ids = np.asarray(self.state.selection, dtype=np.int64)
        elif "split" not in data.samples.columns:
            return np.zeros(0, np.int64)
        else:
            ids = _split_ids(data, scope)
        if data.n_invalid:
            ids = ids[data.valid[ids]]
        return ids

    def scope_ids(self) -> np.ndarray:
        """Sample ids scored in the current scope (int64, sorted)."""
        return self.ids_of(self.scope)

    def _key(self, scope: str) -> tuple:
        s = self.state
        extra: tuple = ()
        if scope == "filtered":
            extra = (tuple(s.filter_attributes), s.filter_mode, s.filter_source, s.more_filters)
        return (float(s.cutoff), labels_key(s), extra)

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
        scope = self.scope

        def build():
            from xsgpu.metrics import attribute_metrics, mean_ap, restrict_order

            ids = self.ids_of(scope)
            if len(ids) == 0:
                return pd.DataFrame(), float("nan")
            # every image: no copy; AP from the run's probability order (a gather, not a sort, per attribute)
            every = len(ids) == s.data.n
            y, p = (s.y_act(), s.data.y_prob) if every else (s.y_act()[ids], s.data.y_prob[ids])
            order = restrict_order(s.data.probability_order(), ids)
            table = attribute_metrics(y, p, cutoff=s.cutoff, slugs=self.vocabulary.slugs, ap_order=order)
            table = table.reset_index(names="slug")
            table.insert(0, "attribute", [self.vocabulary.resolve(x).name for x in table["slug"]])
            return table, float(mean_ap(table["ap"].to_numpy()))

        if scope == "selection":
            return build()
        return process_cached(s, ("overview", scope, *self._key(scope)), build)

    def overall(self, scope: str) -> dict[str, float] | None:
        """Overall figures of ``scope`` (``n``, ``mAP``, accuracy, micro/macro precision, recall, F1,
        subset accuracy; ``xsgpu.metrics.selection_metrics``), or ``None`` when it holds no image."""
        s = self.state

        def build():
            from xsgpu.metrics import selection_metrics

            ids = self.ids_of(scope)
            if len(ids) == 0:
                return None
            o = selection_metrics(s.y_act(), s.data.y_prob, ids, cutoff=s.cutoff, ap=True,
                                  vocabulary=s.vocabulary, ap_order=s.data.probability_order()).overall
            return {"n": int(o["n"]), "mAP": o["map"], **{k: o[k] for k in OVERALL_COLUMNS[3:]}}

        if scope == "selection":
            return build()
        return process_cached(s, ("overview_overall", scope, *self._key(scope)), build)

    def split_table(self) -> pd.DataFrame:
        """One row per split present (test, val, train), then all images, then the current selection if any:
        the columns :data:`OVERALL_COLUMNS`."""
        rows = []
        data = self.state.data
        splits: set[str] = set()
        if "split" in data.samples.columns:
            splits = data.cached(("overview_splits",), lambda: _splits_of(data.samples))
        for scope in [x for x in ("test", "val", "train") if x in splits] + ["all", "selection"]:
            o = self.overall(scope)
            if o is not None:
                rows.append({"scope": scope, **o})
        return pd.DataFrame(rows, columns=list(OVERALL_COLUMNS))

    def curves(self) -> dict[str, dict[str, dict]]:
        """Data of the three plots for :attr:`attribute`: ``{'pr' | 'hist' | 'reliability': {label: data}}``,
        the scope first, then the current selection when it holds images (and the scope is not it)."""
        s = self.state
        j = self.vocabulary.index(self.attribute)
        parts = [(self.scope, self.scope_ids())]
        if self.scope != "selection" and len(s.selection):
            parts.append(("selection", self.ids_of("selection")))
        out: dict[str, dict[str, dict]] = {"pr": {}, "hist": {}, "reliability": {}}
        def compute(ids: np.ndarray) -> dict[str, dict]:
            y, p = s.y_act()[ids, j], s.data.y_prob[ids, j]
            # the PR curve as drawn (<= MAX_CURVE_POINTS exact points): a 1M-image scope has ~1M thresholds
            return {"pr": decimate_curve(pr_curve(y, p)), "hist": probability_histograms(y, p),
                    "reliability": reliability(y, p)}

        for label, ids in parts:
            if len(ids) == 0:
                continue
            if label == "selection":
                got = compute(ids)
            else:  # a scope's curves are shared by every session of the process
                got = process_cached(s, ("overview_curves", label, self.attribute, *self._key(label)),
                                     lambda ids=ids: compute(ids))
            for kind in out:
                out[kind][label] = got[kind]
        return out

    # ------------------------------------------------------------------ rendering
    def _on_selection(self) -> None:
        # the selection's figures follow the views and the selection manager: rendered after the event's
        # patch has gone to the browser (debounced), and only while the overview's tab is shown
        self.lazy(self._apply_selection)

    def _apply_selection(self) -> None:
        if self.scope == "selection":
            self._refresh()
            return
        self._refresh_splits()
        self._refresh_curves()

    def _refresh_splits(self) -> None:
        self._splits.value = self.split_table().round(3)

    def _refresh_curves(self) -> None:
        name = self.vocabulary.resolve(self.attribute).name
        c = self.curves()
        # the same layers whatever is selected (an empty selection slot), so that a new selection only
        # changes the drawn figures' data (LiveElement); another scope makes new figures
        slots = [self.scope] + ([] if self.scope == "selection" else ["selection"])
        for kind, pane, title in (("pr", self._pr, "Precision-recall"), ("hist", self._hist, "Predicted probability"),
                                  ("reliability", self._rel, "Reliability")):
            live = self._live[kind]
            data = {"curves": {s: c[kind].get(s, EMPTY_CURVES[kind]) for s in slots}, "title": f"{title}: {name}"}
            if live.update(data, layers=tuple(slots)):
                pane.object = live.dmap

    def _refresh(self) -> None:
        try:
            table, m_ap = self.metrics()
        except ImportError as exc:
            self._summary.object = f"Model metrics unavailable: {exc}"
            return
        n = len(self.scope_ids())
        n_all = len(self.ids_of(self.scope, labelled_only=False))
        self._refresh_splits()
        if table.empty:
            self._summary.object = (f"No labelled images in scope **{self.scope}** ({n_all:,} unlabelled)." if n_all
                                    else f"No images in scope **{self.scope}**.")
            self._table.value = pd.DataFrame()
            self._bars.object = None
            self._refresh_curves()
            return
        o = self.overall(self.scope) or {}
        figures = ", ".join(f"{k.replace('_micro', '')} {fmt(o.get(k))}"
                            for k in ("accuracy", "precision_micro", "recall_micro", "f1_micro"))
        self._summary.object = (f"**mAP {fmt(m_ap)}**, {figures} (micro), F1 macro {fmt(o.get('f1_macro'))} "
                                f"over {covered_text(n, n_all)} (scope: **{self.scope}**, "
                                f"cut-off {self.state.cutoff:g}, corrected ACT)")
        self._table.value = table.drop(columns="slug").round(3)
        self._bars.object = ap_bars_element(table["attribute"].tolist(), table["ap"].to_numpy(),
                                            [self.vocabulary.resolve(x).colour for x in table["slug"]])
        self._refresh_curves()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout
