"""The selection manager: the current selection, named coloured groups, their metrics, export and clustering.

Everything a user does here goes through a public method (``save_group``, ``group_metrics``,
``export_group``, ``cluster_group``, ``remove_group``), so tests drive the panel without a browser; the
widgets only call those methods.
"""
from __future__ import annotations

import io
import logging
from typing import Any, Literal

import numpy as np
import pandas as pd
import panel as pn
import param

from panel_app.filters import labelled_mask
from panel_app.panels._common import fmt, labels_key, process_cached
from panel_app.state import AppState, Group
from panel_app.views.lean_panes import LeanHTML, LeanMarkdown, MessageLine

__all__ = ["SelectionManager", "CLUSTER_SPACES", "GROUP_TABLE_COLUMNS", "empty_metrics_table"]

log = logging.getLogger(__name__)

#: What a group can be clustered on: the 2-D embedding of a space, the 17 probabilities, or the FEA features
#: (PCA-reduced to 64 dims, see :mod:`panel_app.panels.neighbours`).
CLUSTER_SPACES = ("FEA", "PRD", "ACT", "probabilities", "features")
_CURRENT = "(current selection)"
#: Columns of the per-attribute group table, in order: the four ratios first, so they are never cut off.
GROUP_TABLE_COLUMNS = ("precision", "recall", "f1", "accuracy", "tp", "fp", "fn", "tn", "support")


#: What an empty group's metrics table says (Tabulator's placeholder; it keeps its height, so nothing moves).
EMPTY_GROUP_TEXT = "No images yet: select some with the box or lasso tool in a view, or choose a saved group."


def empty_metrics_table() -> pd.DataFrame:
    """A group metrics table without rows: the columns and dtypes of :meth:`SelectionManager.metrics_table`.

    The tables start (and return to) this, not to a frame without columns, so a new selection changes
    only the table's rows: Tabulator's columns and configuration are not sent again and rebuilt.
    """
    rates = ("precision", "recall", "f1", "accuracy")
    return pd.DataFrame({"attribute": pd.Series([], dtype="str"),
                         **{c: pd.Series([], dtype="float64" if c in rates else "int64") for c in GROUP_TABLE_COLUMNS}})
#: Readable table text (the Tabulator default theme sets 12 px in places; never smaller).
_TABLE_CSS = ".tabulator { font-size: 13px; } .tabulator .tabulator-header { font-size: 13px; }"


class SelectionManager(pn.viewable.Viewer):
    """Named, coloured groups of images with TP/TN/FP/FN and accuracy/precision/recall/F1, side by side.

    Parameters
    ----------
    state : AppState
        The session state; the panel reads ``selection``, ``groups``, ``cutoff`` and the corrected ACT
        (``state.y_act()``), and writes ``groups``.
    """

    state = param.ClassSelector(class_=AppState, doc="The session state.")

    def __init__(self, **params: Any):
        super().__init__(**params)
        if self.state is None:
            raise ValueError("The 'state' parameter of SelectionManager must be an AppState. Got None instead.")
        s = self.state
        self._count = LeanHTML("0", css_classes=["xsgpu-selection-count"], margin=(5, 5),
                                   styles={"font-size": "1.4em", "font-weight": "bold"})
        self._name = pn.widgets.TextInput(placeholder="group name (optional)", width=180,
                                          css_classes=["xsgpu-group-name"])
        self._save = pn.widgets.Button(label="Save selection as group", color="primary",
                                       css_classes=["xsgpu-save-group"])
        self._save.on_click(lambda _e: self._on_save())
        self._left = pn.widgets.Select(label="Group A", options=[_CURRENT], width=200, css_classes=["xsgpu-group-a"])
        self._right = pn.widgets.Select(label="Group B", options=["(none)", _CURRENT], width=200,
                                        css_classes=["xsgpu-group-b"])
        self._remove = pn.widgets.Button(label="Delete group A", css_classes=["xsgpu-remove-group"])
        self._remove.on_click(lambda _e: self._on_remove())
        # manage a saved group: rename, recolour, delete (saved in the run store)
        self._manage = pn.widgets.Select(label="Saved group", options=[], width=180,
                                         css_classes=["xsgpu-manage-group"])
        self._new_name = pn.widgets.TextInput(placeholder="new name", width=150, css_classes=["xsgpu-rename-input"])
        self._rename = pn.widgets.Button(label="Rename", css_classes=["xsgpu-rename-group"])
        self._rename.on_click(lambda _e: self._on_rename())
        self._colour = pn.widgets.ColorPicker(label="Colour", value="#e41a1c", width=70,
                                              css_classes=["xsgpu-recolour-group"])
        self._colour.param.watch(lambda _e: self._on_recolour(), "value")
        self._delete = pn.widgets.Button(label="Delete", color="danger", css_classes=["xsgpu-delete-group"])
        self._delete.on_click(lambda _e: self._on_delete())
        self._manage.param.watch(lambda _e: self._sync_colour(), "value")
        self._format = pn.widgets.RadioButtonGroup(options=["csv", "parquet"], value="csv",
                                                   css_classes=["xsgpu-export-format"])
        self._download = pn.widgets.FileDownload(callback=self._download_callback, filename="group.csv",
                                                 label="Export group A", color="success",
                                                 css_classes=["xsgpu-export-group"])
        self._format.param.watch(lambda _e: self._update_filename(), "value")
        self._cluster_method = pn.widgets.Select(label="Cluster with", options=["kmeans", "dbscan"], width=110)
        self._cluster_space = pn.widgets.Select(label="on", options=list(CLUSTER_SPACES), value="FEA", width=130)
        self._k = pn.widgets.IntInput(label="k (k-means)", value=3, start=2, end=50, width=100)
        self._eps = pn.widgets.FloatInput(label="eps (DBSCAN)", value=0.5, start=1e-6, width=100)
        self._min_samples = pn.widgets.IntInput(label="min samples", value=5, start=1, width=100)
        self._cluster = pn.widgets.Button(label="Cluster group A", css_classes=["xsgpu-cluster-group"])
        self._cluster.on_click(lambda _e: self._on_cluster())
        self._message = MessageLine("", "light", hide_when_empty=True, css_classes=["xsgpu-selection-message"])
        self._cards = [pn.Column(LeanMarkdown(""),
                                 pn.widgets.Tabulator(empty_metrics_table(), disabled=True, show_index=False, height=300,
                                                      layout="fit_data_fill", sizing_mode="stretch_width",
                                                      configuration={"placeholder": EMPTY_GROUP_TEXT},
                                                      min_width=560, stylesheets=[_TABLE_CSS],
                                                      css_classes=["xsgpu-group-metrics"]),
                                 sizing_mode="stretch_width", min_width=560)
                       for _ in range(2)]
        self._tables = pn.Row(*self._cards, sizing_mode="stretch_width", styles={"min-width": "0"})
        self._groups_view = LeanHTML("", css_classes=["xsgpu-group-list"])
        s.param.watch(lambda _e: self._refresh(), ["selection", "groups", "cutoff", "corrections_version"])
        self._left.param.watch(lambda _e: self._refresh_tables(), "value")
        self._right.param.watch(lambda _e: self._refresh_tables(), "value")
        self._refresh()

    # ------------------------------------------------------------------ public, testable actions
    def ids_of(self, name: str) -> np.ndarray:
        """Sample ids of group ``name`` (``'(current selection)'`` = the current selection)."""
        if name == _CURRENT:
            return np.asarray(self.state.selection, dtype=np.int64)
        for g in self.state.groups:
            if g.name == name:
                return g.ids
        raise KeyError(f"No group named {name!r}; groups: {[g.name for g in self.state.groups]}.")

    def save_group(self, name: str | None = None) -> Group:
        """Save the current selection as a new group (see :meth:`AppState.add_group`).

        Group A and Group B keep what they show, so the next selection's metrics still appear under
        "(current selection)".
        """
        return self.state.add_group(name=name or None)

    def rename_group(self, name: str, new_name: str) -> Group:
        """Rename a saved group (in the run store too)."""
        return self.state.rename_group(name, new_name)

    def recolour_group(self, name: str, colour: str) -> Group:
        """Give a saved group a new ``'#rrggbb'`` colour (in the run store too)."""
        return self.state.recolour_group(name, colour)

    def group_metrics(self, name: str):
        """Metrics of a group at ``state.cutoff`` on the corrected ACT.

        Uses one ``xsgpu.metrics.SelectionScorer`` per (cut-off, corrections, device) and process (labels
        packed once into 17-bit codes), so scoring a 100k selection of 1M images costs a gather and a few
        bincounts. With ``state.device == "gpu"`` the codes live on the GPU and so do the gather and the
        bincounts (CuPy); only the counts come back.

        Returns
        -------
        xsgpu.metrics.SelectionMetrics
            ``per_attribute`` (DataFrame indexed by slug: tp tn fp fn accuracy precision recall f1 ...) and
            ``overall`` (dict: n, accuracy, micro/macro/samples averages ...).

        Raises
        ------
        ValueError
            If the group is empty.
        """
        ids = self.ids_of(name)
        labelled = labelled_mask(self.state.data)
        if self.state.device == "gpu":   # the ids (the selection's: copied once) and the mask on the GPU
            from panel_app.device import on_device

            ids, labelled = on_device(ids), on_device(labelled)
        return self.scorer()(ids[labelled[ids]])

    def scorer(self):
        """The process-wide ``SelectionScorer`` for the current cut-off, corrections and device (CuPy arrays
        on ``'gpu'``: the stored labels and the probabilities are the copies made at server start)."""
        from xsgpu.metrics import SelectionScorer

        s = self.state

        def build() -> SelectionScorer:
            y_act, y_prob = s.y_act(), s.data.y_prob
            if s.device == "gpu":
                from panel_app.device import array_module, device_labels

                y_true, y_prob = device_labels(s.data)
                # corrected labels: a transient copy (the scorer keeps only their codes)
                y_act = y_true if y_act is s.data.y_true else array_module("gpu").asarray(y_act)
            return SelectionScorer(y_act, y_prob, cutoff=s.cutoff, keep_probabilities=False, vocabulary=s.vocabulary)

        return process_cached(s, ("scorer", float(s.cutoff), labels_key(s), s.device), build)

    def group_table(self, name: str) -> pd.DataFrame:
        """The rows exported for a group: ids, source files, corrected labels, predictions.

        Returns
        -------
        pd.DataFrame
            ``group, sample_id, source_uri, frame`` (plus ``run_id``/``split`` when the run has them), then
            ``y__<slug>`` (corrected ACT, bool) and ``p__<slug>`` (PRD, float32) for the run's attributes.
        """
        ids = self.ids_of(name)
        data = self.state.data
        samples = data.samples
        out = pd.DataFrame({"group": name, "sample_id": ids})
        for col in ("source_uri", "frame", "run_id", "split"):
            if col in samples.columns:
                out[col] = samples[col].to_numpy()[ids]
        y = self.state.y_act()[ids]
        p = data.y_prob[ids]
        for j, col in enumerate(self.state.vocabulary.label_columns()):
            out[col] = y[:, j]
        for j, col in enumerate(self.state.vocabulary.prob_columns()):
            out[col] = p[:, j].astype(np.float32)
        return out

    def export_group(self, name: str, fmt_: Literal["csv", "parquet"] = "csv") -> bytes:
        """Encode :meth:`group_table` as CSV or Parquet bytes (what the download button serves)."""
        if fmt_ not in ("csv", "parquet"):
            raise ValueError(f"The 'fmt_' parameter of SelectionManager.export_group must be 'csv' or 'parquet'. "
                             f"Got {fmt_!r} instead.")
        table = self.group_table(name)
        buf = io.BytesIO()
        if fmt_ == "csv":
            buf.write(table.to_csv(index=False).encode())
        else:
            table.to_parquet(buf, index=False)
        return buf.getvalue()

    def cluster_features(self, ids: np.ndarray, space: str) -> np.ndarray:
        """The vectors a group is clustered on, float32 (k, d)."""
        data = self.state.data
        if space in ("FEA", "PRD", "ACT"):
            x, y = data.coords(space, self.state.method)
            return np.column_stack([x[ids], y[ids]]).astype(np.float32)
        if space == "probabilities":
            return data.y_prob[ids].astype(np.float32)
        if space == "features":  # FEA, PCA-reduced: the process-wide neighbour index's copy (in memory)
            from panel_app.panels.neighbours import feature_index

            return feature_index(data).reduced[ids]
        raise ValueError(f"The 'space' parameter of SelectionManager.cluster_group must be one of "
                         f"{list(CLUSTER_SPACES)}. Got {space!r} instead.")

    def cluster_group(self, name: str, *, method: str = "kmeans", space: str = "FEA", **params: Any) -> list[Group]:
        """Split a group into sub-groups by clustering (k-means or DBSCAN via ``xsgpu.metrics.cluster_selection``).

        Parameters
        ----------
        name : str
            The group (or ``'(current selection)'``).
        method : {'kmeans', 'dbscan'}
        space : one of :data:`CLUSTER_SPACES`
        **params
            Passed to the clusterer (``n_clusters``, ``eps``, ``min_samples``, ``random_state`` ...).

        Returns
        -------
        list of Group
            The new groups ``<name>/c0``, ``<name>/c1`` ... (DBSCAN noise: ``<name>/noise``), added to
            ``state.groups``. The silhouette and Davies-Bouldin scores are shown in the panel's message and
            kept in :attr:`last_cluster`.
        """
        from xsgpu.metrics import cluster_selection

        ids = self.ids_of(name)
        if len(ids) < 2:
            raise ValueError(f"Group {name!r} has {len(ids)} image(s); clustering needs at least 2.")
        x = self.cluster_features(ids, space)
        result = cluster_selection(x, method=method, **params)
        labels = np.asarray(result.labels)
        base = name if name != _CURRENT else "selection"
        taken = {g.name for g in self.state.groups}
        new = []
        for lab in np.unique(labels):
            sub = f"{base}/noise" if lab < 0 else f"{base}/c{int(lab)}"
            while sub in taken:
                sub += "'"
            new.append(self.state.add_group(name=sub, ids=ids[labels == lab]))
            taken.add(sub)
        self.last_cluster = result
        self._show(f"{method} on {space}: {len(new)} sub-groups; silhouette {fmt(result.silhouette)}, "
                   f"Davies-Bouldin {fmt(result.davies_bouldin)}", "success")
        return new

    def remove_group(self, name: str) -> None:
        """Delete a group."""
        self.state.remove_group(name)

    # ------------------------------------------------------------------ widget callbacks
    def _show(self, text: str, kind: str = "light") -> None:
        self._message.show(text, kind)

    def _on_save(self) -> None:
        try:
            g = self.save_group(self._name.value.strip() or None)
        except ValueError as exc:
            self._show(str(exc), "danger")
            return
        self._name.value = ""
        self._manage.value = g.name
        self._show(f"Saved {len(g)} images as {g.name!r}.", "success")

    def _on_remove(self) -> None:
        if self._left.value == _CURRENT:
            self._show("Choose a saved group as group A to delete it.", "warning")
            return
        self.remove_group(self._left.value)

    def _on_rename(self) -> None:
        name, new = self._manage.value, self._new_name.value.strip()
        if not name:
            self._show("Save a group first.", "warning")
            return
        try:
            g = self.rename_group(name, new)
        except (ValueError, KeyError) as exc:
            self._show(str(exc), "danger")
            return
        self._new_name.value = ""
        self._manage.value = g.name
        self._show(f"Renamed {name!r} to {g.name!r}.", "success")

    def _sync_colour(self) -> None:
        for g in self.state.groups:
            if g.name == self._manage.value and self._colour.value != g.colour:
                self._syncing = True
                try:
                    self._colour.value = g.colour
                finally:
                    self._syncing = False

    def _on_recolour(self) -> None:
        name = self._manage.value
        if getattr(self, "_syncing", False) or not name:
            return
        current = next((g.colour for g in self.state.groups if g.name == name), None)
        if current is None or current == self._colour.value:
            return
        try:
            self.recolour_group(name, self._colour.value)
        except (ValueError, KeyError) as exc:
            self._show(str(exc), "danger")

    def _on_delete(self) -> None:
        name = self._manage.value
        if not name:
            self._show("Save a group first.", "warning")
            return
        try:
            self.remove_group(name)
        except KeyError as exc:
            self._show(str(exc), "danger")
            return
        self._show(f"Deleted group {name!r}.", "success")

    def _on_cluster(self) -> None:
        method = self._cluster_method.value
        params = ({"n_clusters": int(self._k.value), "random_state": 0} if method == "kmeans"
                  else {"eps": float(self._eps.value), "min_samples": int(self._min_samples.value)})
        try:
            self.cluster_group(self._left.value, method=method, space=self._cluster_space.value, **params)
        except (ValueError, KeyError) as exc:
            self._show(str(exc), "danger")

    def _update_filename(self) -> None:
        stem = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(self._left.value)).strip("_")
        self._download.filename = f"{stem or 'group'}.{self._format.value}"

    def _download_callback(self) -> io.BytesIO:
        self._update_filename()
        return io.BytesIO(self.export_group(self._left.value, self._format.value))

    # ------------------------------------------------------------------ rendering
    def _refresh(self) -> None:
        s = self.state
        self._count.object = str(len(s.selection))
        names = [_CURRENT] + [g.name for g in s.groups]
        left = self._left.value if self._left.value in names else _CURRENT
        right = self._right.value if self._right.value in names else "(none)"
        self._left.options = names
        self._right.options = ["(none)"] + names
        self._left.value, self._right.value = left, right
        saved = [g.name for g in s.groups]
        keep = self._manage.value if self._manage.value in saved else (saved[-1] if saved else None)
        self._manage.options = saved
        self._manage.value = keep
        self._sync_colour()
        self._groups_view.object = "".join(
            f'<div><span style="display:inline-block;width:12px;height:12px;background:{g.colour};'
            f'margin-right:6px"></span>{_escape(g.name)}: {len(g)}</div>' for g in s.groups
        ) or "<i>no groups yet</i>"
        self._update_filename()
        self._refresh_tables()

    def metrics_table(self, name: str) -> tuple[str, pd.DataFrame]:
        """The summary line and the per-attribute table shown for a group (display names, rounded)."""
        ids = self.ids_of(name)
        if len(ids) == 0:
            return f"**{_escape(name)}**: empty", empty_metrics_table()
        n_lab = int(np.count_nonzero(labelled_mask(self.state.data)[ids]))
        if n_lab == 0:
            return f"**{_escape(name)}**: no labelled image among its {len(ids):,}", empty_metrics_table()
        m = self.group_metrics(name)
        keys = ("accuracy", "precision_micro", "recall_micro", "f1_micro", "f1_macro")
        per = m.per_attribute
        totals = ", ".join(f"{c.upper()} {int(per[c].sum()):,}" for c in ("tp", "tn", "fp", "fn"))
        overall = totals + "; " + ", ".join(f"{k} {fmt(m.overall[k])}" for k in keys if k in m.overall)
        table = m.per_attribute[[c for c in GROUP_TABLE_COLUMNS if c in m.per_attribute.columns]]
        table = table.reset_index(names="slug")
        table.insert(0, "attribute", [self.state.vocabulary.resolve(x).name for x in table["slug"]])
        covered = "" if n_lab == len(ids) else f"; metrics over {n_lab:,} labelled"
        title = f"**{_escape(name)}** ({len(ids):,} images{covered})"
        return f"{title}  \n{overall}", table.drop(columns="slug").round(3)

    def _refresh_tables(self) -> None:
        names = [self._left.value]
        if self._right.value not in ("(none)", None):
            names.append(self._right.value)
        for k, card in enumerate(self._cards):
            card.visible = k < len(names)
            if k >= len(names):
                continue
            head, table = card.objects
            try:
                head.object, table.value = self.metrics_table(names[k])
            except ImportError as exc:  # the metrics library is missing: say so, never hide it
                head.object, table.value = f"Group metrics unavailable: {exc}", empty_metrics_table()
            # the table stays shown (its header alone when the group is empty): toggling it re-lays the page out

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Card(
            # label and count on one line, at any width (a Markdown pane of its own wrapped the count below)
            pn.Row(pn.pane.HTML("<b>Selected images:</b>", margin=(12, 5), styles={"white-space": "nowrap"}),
                   self._count, styles={"flex-wrap": "nowrap", "align-items": "baseline"}),
            pn.FlexBox(self._name, self._save),   # FlexBox rows wrap in a narrow window instead of overflowing
            self._groups_view,
            pn.FlexBox(self._left, self._right),
            pn.FlexBox(self._format, self._download, self._remove),
            pn.FlexBox(self._manage, self._new_name, pn.Column(pn.Spacer(height=18), self._rename), self._colour,
                       pn.Column(pn.Spacer(height=18), self._delete)),
            pn.FlexBox(self._cluster_method, self._cluster_space, self._k, self._eps, self._min_samples,
                       pn.Column(pn.Spacer(height=18), self._cluster)),
            self._message,
            self._tables,
            title="Selection manager", collapsible=True, sizing_mode="stretch_width",
            css_classes=["xsgpu-selection-manager"], styles={"min-width": "0"},   # never wider than the page
        )


def _escape(text: str) -> str:
    import html

    return html.escape(str(text))
