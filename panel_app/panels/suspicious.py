"""Suspicious labels: (image, attribute) pairs ranked by how likely their ACT label is wrong.

When the run has ``suspicious.parquet`` (written by ``xsgpu evaluate`` after ``xsgpu embed``: every
labelled image audited once, in batch), the panel lists it; pairs corrected since drop out. Otherwise
the ranking is ``xsgpu.metrics.suspicious_labels`` over the corrected ACT, PRD and the FEA features (the
PCA-reduced copy of :mod:`panel_app.panels.neighbours`, so a million-image run never loads 2048-d
features whole), computed once per process and per corrections state, on a seeded sample of
``audit_rows`` images for large runs. Clicking a row adds the image to the detail view, where the label
can be corrected; a corrected pair drops out of the list on refresh.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param

from panel_app.panels._common import defer, labels_key, process_cached
from panel_app.panels.neighbours import feature_index
from panel_app.state import AppState
from xsgpu.attributes import resolve_attribute

__all__ = ["SuspiciousPanel"]

log = logging.getLogger(__name__)


class SuspiciousPanel(pn.viewable.Viewer):
    """A ranked list of likely label errors; clicking a row puts its image in the detail view.

    Parameters
    ----------
    state : AppState
    k : int
        Neighbours used by the score.
    limit : int
        Rows listed.
    audit_rows : int
        The all-pairs kNN of the score grows with n squared (20 s for 20k images on the shared 2-core
        machine, 380 s for 100k), so above this many images a seeded random sample of ``audit_rows``
        images is audited (neighbours found within the sample) and the panel says so.
    """

    state = param.ClassSelector(class_=AppState, doc="The session state.")
    k = param.Integer(default=10, bounds=(1, 100))
    limit = param.Integer(default=200, bounds=(1, 10_000))
    audit_rows = param.Integer(default=20_000, bounds=(2, None))
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
        self.state.param.watch(lambda _e: self._refresh(), ["corrections_version", "cutoff"])
        self._layout = pn.Column(self._note, self._table, sizing_mode="stretch_width", css_classes=["xsgpu-suspicious"])
        defer(self._layout, self._refresh)

    def ranking(self) -> pd.DataFrame:
        """The listed rows.

        Returns
        -------
        pd.DataFrame
            ``rank, sample_id, attribute`` (display name), ``slug``, ``act`` (corrected, bool), ``prob``,
            ``score``, best first, at most ``limit`` rows.
        """
        s = self.state
        stored = self.stored_table()
        key = ("suspicious", int(self.k), int(self.limit), int(self.audit_rows), labels_key(s), stored is not None)

        def build():
            y = s.y_act()
            if stored is not None:
                df = stored.sort_values("rank", kind="stable")
                ids = df["sample_id"].to_numpy(np.int64)
                cols = np.array([resolve_attribute(a).index for a in df["attribute"]], dtype=np.int64)
                unchanged = y[ids, cols] == df["label"].to_numpy(bool) if len(df) else np.zeros(0, bool)
                df = df[unchanged].head(int(self.limit)).reset_index(drop=True)   # corrected pairs drop out
            else:
                from xsgpu.metrics import suspicious_labels

                feats = feature_index(s.data, progress=False).reduced
                rows = self.audited_rows()
                df = suspicious_labels(y[rows], s.data.y_prob[rows], feats[rows], k=int(self.k), sample_ids=rows,
                                       top=int(self.limit))
                df = df.sort_values("rank", kind="stable").head(int(self.limit)).reset_index(drop=True)
            attrs = [resolve_attribute(a) for a in df["attribute"]]
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

    def audited_rows(self) -> np.ndarray:
        """Sample ids audited: all of them, or a seeded sorted sample of ``audit_rows`` for larger runs."""
        n = self.state.data.n
        if n <= self.audit_rows:
            return np.arange(n, dtype=np.int64)
        return np.sort(np.random.default_rng(0).choice(n, size=int(self.audit_rows), replace=False)).astype(np.int64)

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
        except (ImportError, ValueError) as exc:
            self._note.object = f"Suspicious-label list unavailable: {exc}"
            self._table.value = pd.DataFrame()
            return
        self._table.value = t.round({"prob": 3, "score": 3})
        n = self.state.data.n
        if self.stored_table() is not None:
            meta = self.state.data.store.suspicious.metadata()
            audited, k = int(meta.get("n_audited", n)), meta.get("k", "?")
            scope = (f"all {audited:,} labelled images, audited by `xsgpu evaluate` ({meta.get('neighbors', '?')} "
                     f"k = {k} FEA neighbours; corrected pairs removed)")
        else:
            audited = min(n, int(self.audit_rows))
            scope = (f"all {n:,} images" if audited == n else f"a seeded sample of {audited:,} of {n:,} images "
                     "(run `xsgpu evaluate` after `xsgpu embed` to audit them all)")
            scope += f" (k = {self.k} FEA neighbours)"
        self._note.object = (f"{len(t)} most suspicious (image, attribute) labels among {scope}. "
                             "Click a row to open the image in the detail view, with the correction form "
                             "set to that image and attribute.")

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout
