"""The neuron panel (issue 12.4): which last-block channels tell the selection apart, and what they fire on.

For the current selection against the rest of the run, :func:`xsgpu.explain.neurons.rank_channels` ranks
the channels of FEA (the last block's pooled activations, ``features.zarr``) by effect size (Cohen's d);
the panel lists the ``top`` channels, each with its ``k`` most activating images of the whole run
(:func:`~xsgpu.explain.neurons.top_images`; clicking a thumbnail opens it in the detail view), and an
attribute x channel correlation heatmap (Pearson r of PRD or ACT with those channels,
:func:`~xsgpu.explain.neurons.attribute_channel_correlation`; HoloViews ``HeatMap`` with a colour bar).

Each result streams ``features.zarr`` once and is cached per server process (the ranking per selection,
the correlation per source), so sessions share them; the panel refreshes while its tab is shown.
"""
from __future__ import annotations

import hashlib
import html
import logging
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param

from panel_app.panels._common import LazyRefresh, defer, process_cached
from panel_app.state import AppState

__all__ = ["NeuronPanel", "correlation_heatmap"]

log = logging.getLogger(__name__)

#: thumbnails kept in the detail view when one is opened from here
_DETAIL_KEEP = 12


def _selection_key(ids: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(ids, dtype=np.int64).tobytes()).hexdigest()


def correlation_heatmap(corr: pd.DataFrame, channels: list[int], *, title: str):
    """HoloViews ``HeatMap`` of ``corr`` (attributes x channels) restricted to ``channels``, r on [-1, 1]."""
    import holoviews as hv
    import holoviews.plotting.bokeh  # noqa: F401 - registers the Bokeh backend the options below are for

    rows = [(f"ch {c}", a, float(corr.at[a, c])) for a in corr.index for c in channels]
    hm = hv.HeatMap(rows, kdims=["channel", "attribute"], vdims=["r"])
    height = max(260, 40 + 18 * len(corr.index))
    return hm.opts(cmap="RdBu_r", clim=(-1.0, 1.0), colorbar=True, tools=["hover"], title=title,
                   width=max(360, 120 + 28 * len(channels)), height=height, xrotation=60,
                   invert_yaxis=True, colorbar_opts={"title": "Pearson r"})


class NeuronPanel(pn.viewable.Viewer):
    """Top channels of the selection vs the rest, their most activating images, attribute x channel r.

    Parameters
    ----------
    state : AppState
    top : int
        Channels listed (ranked by Cohen's d, the ones the selection excites most first).
    k : int
        Most activating images shown per channel.
    source : {'prd', 'act'}
        What the correlation heatmap correlates the channels with.
    """

    state = param.ClassSelector(class_=AppState, doc="The session state.")
    top = param.Integer(default=8, bounds=(1, 64))
    k = param.Integer(default=6, bounds=(1, 24))
    source = param.Selector(default="prd", objects=["prd", "act"])

    def __init__(self, **params: Any):
        super().__init__(**params)
        if self.state is None:
            raise ValueError("The 'state' parameter of NeuronPanel must be an AppState. Got None instead.")
        self._top = pn.widgets.IntInput.from_param(self.param.top, name="Channels", width=100)
        self._k = pn.widgets.IntInput.from_param(self.param.k, name="Images per channel", width=130)
        self._source = pn.widgets.RadioButtonGroup.from_param(
            self.param.source, options={"PRD": "prd", "ACT": "act"}, css_classes=["xsgpu-neuron-source"])
        self._caption = pn.pane.Markdown("", css_classes=["xsgpu-neuron-caption"])
        self._channels = pn.Column(sizing_mode="stretch_width", css_classes=["xsgpu-neuron-channels"])
        self._heatmap = pn.Column(css_classes=["xsgpu-neuron-heatmap"])
        self.lazy = LazyRefresh(self)   # follows the selection after each event, while its tab is shown
        self.state.param.watch(lambda _e: self.lazy(self._refresh), ["selection"])
        self.param.watch(lambda _e: self._refresh(), ["top", "k", "source"])
        self._layout = pn.Column(pn.Row(self._top, self._k, self._source), self._caption,
                                 pn.Row(self._channels, self._heatmap, sizing_mode="stretch_width"),
                                 sizing_mode="stretch_width", css_classes=["xsgpu-neurons"])
        defer(self._layout, self._refresh, lazy=self.lazy)

    # ------------------------------------------------------------------ results
    def _store_path(self) -> Any:
        store = self.state.data.store
        if store is None or not store.features.exists():
            return None
        return store.path

    def ranked(self) -> pd.DataFrame | None:
        """:func:`~xsgpu.explain.neurons.rank_channels` of the selection (all channels), or ``None``
        without a run store, without a selection or when everything is selected."""
        sel = np.asarray(self.state.selection, np.int64)
        path = self._store_path()
        if path is None or len(sel) == 0 or len(sel) >= self.state.data.n:
            return None

        def build() -> pd.DataFrame:
            from xsgpu.explain.neurons import rank_channels

            return rank_channels(path, sel)

        return process_cached(self.state, ("neurons_rank", _selection_key(sel)), build)

    def top_images(self, channels: list[int]) -> pd.DataFrame:
        """The ``k`` most activating images of each channel (:func:`~xsgpu.explain.neurons.top_images`)."""
        path = self._store_path()

        def build() -> pd.DataFrame:
            from xsgpu.explain.neurons import top_images

            return top_images(path, channels, k=int(self.k))

        return process_cached(self.state, ("neurons_top", tuple(channels), int(self.k)), build)

    def correlation(self) -> pd.DataFrame:
        """Attribute x channel Pearson r (all channels) of the current :attr:`source`."""
        path = self._store_path()

        def build() -> pd.DataFrame:
            from xsgpu.explain.neurons import attribute_channel_correlation

            return attribute_channel_correlation(path, source=self.source)

        return process_cached(self.state, ("neurons_corr", self.source), build)

    def open(self, sample_id: int) -> None:
        """Open one image first in the detail view (keeping the others shown, at most 12)."""
        i = int(sample_id)
        self.state.show_details([i, *[j for j in self.state.detail_ids if j != i]][:_DETAIL_KEEP])

    # ------------------------------------------------------------------ rendering
    def _thumb(self, sample_id: int, activation: float) -> pn.viewable.Viewable:
        uri = self.state.data.thumbnail_uri(sample_id)
        img = pn.pane.HTML(f"<img src='{uri}' width='64' height='64' title='#{sample_id}: {activation:.3f}'>",
                           margin=0, width=64, height=64)
        button = pn.widgets.Button(label=f"#{sample_id}", width=64, margin=(0, 0, 4, 0),
                                   css_classes=["xsgpu-neuron-thumb"])
        button.on_click(lambda _e, i=sample_id: self.open(i))
        return pn.Column(img, button, margin=(0, 4, 0, 0))

    def _refresh(self) -> None:
        if not self.lazy.shown:  # a hidden tab at page load: stream features.zarr when the tab is first shown
            self.lazy(self._refresh)
            return
        if self._store_path() is None:
            self._caption.object = "No `features.zarr` in this run: run `xsgpu infer RUN --model MODEL`."
            self._channels.objects, self._heatmap.objects = [], []
            return
        try:
            ranked = self.ranked()
            corr = self.correlation()
        except Exception as exc:  # noqa: BLE001 - the panel is an extra; say why it is empty
            log.warning("neuron panel: %s", exc)
            self._caption.object = f"Neurons unavailable: {html.escape(str(exc))}"
            self._channels.objects, self._heatmap.objects = [], []
            return
        if ranked is None:
            order = np.argsort(-np.abs(corr.to_numpy()).max(axis=0), kind="stable")
            channels = [int(c) for c in corr.columns[order[:max(int(self.top), 16)]]]
            self._caption.object = ("Select images in a view to rank the last block's channels for them against "
                                    "the rest of the run. The heatmap shows the channels most correlated with "
                                    "any attribute.")
            self._channels.objects = []
        else:
            head = ranked.head(int(self.top))
            channels = [int(c) for c in head["channel"]]
            n1, n0 = ranked.attrs.get("n_selection"), ranked.attrs.get("n_rest")
            self._caption.object = (f"The {len(channels)} channels of the last block that fire most on the "
                                    f"{n1:,} selected images against the other {n0:,} (Cohen's d), each with its "
                                    f"{int(self.k)} most activating images of the whole run (click one to open it).")
            tops = self.top_images(channels)
            rows = []
            for _, r in head.iterrows():
                c = int(r["channel"])
                t = tops[tops["channel"] == c]
                label = pn.pane.HTML(
                    f"<b>channel {c}</b><br><span style='font-size:12px'>d = {r['cohen_d']:.2f}<br>"
                    f"mean {r['mean_selection']:.3f} vs {r['mean_rest']:.3f}</span>", width=130)
                thumbs = [self._thumb(int(i), float(a)) for i, a in zip(t["sample_id"], t["activation"])]
                rows.append(pn.Row(label, *thumbs, css_classes=["xsgpu-neuron-row"]))
            self._channels.objects = rows
        title = f"{self.source.upper()} x channel correlation"
        self._heatmap.objects = [pn.pane.HoloViews(correlation_heatmap(corr, channels, title=title),
                                                   backend="bokeh")]

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout
