"""Suspicious labels: (image, attribute) pairs ranked by how likely their ACT label is wrong.

The app only reads: the list is the run's ``suspicious.parquet``, written by ``xsgpu evaluate`` after
``xsgpu embed`` (every labelled image audited once, in batch, with ``xsgpu.metrics.suspicious_labels``);
pairs corrected since drop out. A run without it shows which command writes it
(:data:`MISSING_SUSPICIOUS`). Clicking a row adds the image to the detail view, where the label can be
corrected; a corrected pair drops out of the list on refresh.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param

from panel_app.panels._common import LazyRefresh, defer, labels_key, process_cached
from panel_app.state import AppState
from xsgpu.io.runstore import RunStoreError

__all__ = ["SuspiciousPanel", "MISSING_SUSPICIOUS"]

log = logging.getLogger(__name__)

#: What the panel says for a run without the evaluate stage's audit (``{path}``, ``{run}``).
MISSING_SUSPICIOUS = ("{path} is missing: the suspicious-label list is written by the evaluate stage. "
                      "Run `xsgpu evaluate {run}` (after `xsgpu embed {run}`) to audit the labels.")


class SuspiciousPanel(pn.viewable.Viewer):
    """A ranked list of likely label errors; clicking a row puts its image in the detail view.

    Parameters
    ----------
    state : AppState
    limit : int
        Rows listed.
    """

    state = param.ClassSelector(class_=AppState, doc="The session state.")
    limit = param.Integer(default=200, bounds=(1, 10_000))
    opened = param.Tuple(default=None, allow_None=True, length=2, constant=True,
                         doc="(sample_id, attribute display name) of the row clicked last; the app fills the "
                             "detail view's correction form with it.")

    def __init__(self, **params: Any):
        super().__init__(**params)
        if self.state is None:
            raise ValueError("The 'state' parameter of SuspiciousPanel must be an AppState. Got None instead.")
        self._table = pn.widgets.Tabulator(pd.DataFrame(), disabled=True, show_index=False, height=450,
                                           selectable=False, layout="fit_data_table",
                                           css_classes=["xsgpu-suspicious-table"])
        self._table.on_click(lambda e: self.open_row(e.row))
        self._note = pn.pane.Markdown("")
        #: follows the session after each event, while its tab is shown (the app's tabs call lazy.show)
        self.lazy = LazyRefresh(self)
        self.state.param.watch(lambda _e: self.lazy(self._refresh), ["corrections_version", "cutoff"])
        self._layout = pn.Column(self._note, self._table, sizing_mode="stretch_width", css_classes=["xsgpu-suspicious"])
        defer(self._layout, self._refresh, lazy=self.lazy)

    def ranking(self) -> pd.DataFrame:
        """The listed rows.

        Returns
        -------
        pd.DataFrame
            ``rank, sample_id, attribute`` (display name), ``slug``, ``act`` (corrected, bool), ``prob``,
            ``score``, best first, at most ``limit`` rows.

        Raises
        ------
        RunStoreError
            When the run has no ``suspicious.parquet`` (the message names ``xsgpu evaluate RUN``).
        """
        s = self.state
        stored = self.stored_table()
        if stored is None:
            store = s.data.store
            where = store.suspicious.path if store is not None else "suspicious.parquet"
            raise RunStoreError(MISSING_SUSPICIOUS.format(path=where, run=store.path if store is not None else "RUN"))
        key = ("suspicious", int(self.limit), labels_key(s))
        vocab = s.vocabulary

        def build():
            y = s.y_act()
            df = stored.sort_values("rank", kind="stable")
            ids = df["sample_id"].to_numpy(np.int64)
            cols = np.array([vocab.index(a) for a in df["attribute"]], dtype=np.int64)
            unchanged = y[ids, cols] == df["label"].to_numpy(bool) if len(df) else np.zeros(0, bool)
            df = df[unchanged].head(int(self.limit)).reset_index(drop=True)   # corrected pairs drop out
            attrs = [vocab.resolve(a) for a in df["attribute"]]
            ids = df["sample_id"].to_numpy(np.int64)
            cols = np.array([a.index for a in attrs], dtype=np.int64)
            return pd.DataFrame({
                "rank": df["rank"].to_numpy(), "sample_id": ids, "attribute": [a.name for a in attrs],
                "slug": [a.slug for a in attrs], "act": y[ids, cols] if len(ids) else np.zeros(0, bool),
                "prob": s.data.y_prob[ids, cols] if len(ids) else np.zeros(0, np.float32),
                "score": df["score"].to_numpy(np.float64),
            })

        return process_cached(s, key, build)

    def stored_table(self) -> pd.DataFrame | None:
        """The run's ``suspicious.parquet`` (from ``xsgpu evaluate``), read once per process, or None."""
        store = self.state.data.store
        if store is None or not store.suspicious.exists():
            return None
        return self.state.data.cached(("suspicious_stored",), lambda: store.suspicious.read())

    def open_row(self, row: int) -> int:
        """Put the image of listed row ``row`` first in the detail view and set :attr:`opened` to its
        (image, attribute), so the correction form can be filled with them; returns its sample id."""
        table = self.ranking()
        if not 0 <= int(row) < len(table):
            raise IndexError(f"Row {row} is out of range 0..{len(table) - 1} of the suspicious-label list.")
        sid = int(table["sample_id"].iloc[int(row)])
        from panel_app.panels.detail import MAX_DETAIL

        self.state.show_details([sid, *[i for i in self.state.detail_ids if i != sid]][:MAX_DETAIL])
        with param.edit_constant(self):
            self.opened = (sid, str(table["attribute"].iloc[int(row)]))
        return sid

    def _refresh(self) -> None:
        try:
            t = self.ranking()
        except (ImportError, ValueError, RunStoreError) as exc:
            self._note.object = f"Suspicious-label list unavailable: {exc}"
            self._table.value = pd.DataFrame()
            return
        self._table.value = t.round({"prob": 3, "score": 3})
        n = self.state.data.n
        meta = self.state.data.store.suspicious.metadata()
        audited, k = int(meta.get("n_audited", n)), meta.get("k", "?")
        scope = (f"all {audited:,} labelled images, audited by `xsgpu evaluate` ({meta.get('neighbors', '?')} "
                 f"k = {k} FEA neighbours; corrected pairs removed)")
        self._note.object = (f"{len(t)} most suspicious (image, attribute) labels among {scope}. "
                             "Click a row to open the image in the detail view, with the correction form "
                             "set to that image and attribute.")

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout
