"""The detail view: a strip of images side by side, ACT vs PRD per attribute, FEA neighbours, label corrections.

Each card shows one image of ``state.detail_ids`` rendered from ``data.images`` (log-scaled; PNG via
Pillow), enlargeable with its toggle, the run's attributes (its vocabulary) with the corrected ACT, the PRD probability and
the outcome at the cut-off (TP/FP/FN/TN), and its nearest neighbours in FEA (buttons that open them).
For a run inferred with heatmaps, an attribute chosen in "Heatmap" overlays its class activation map
on every image (opacity slider; :mod:`panel_app.panels.heatmap`). Below the strip, the correction form records a fix of ACT (:func:`xsgpu.io.corrections.record_correction`)
and bumps ``state.corrections_version`` so that every view and metric picks it up.
"""
from __future__ import annotations

import html
import logging
from typing import Any

import numpy as np
import panel as pn
import param

from panel_app.panels._common import after_event, colour_bar_html, intensity_range, render_image_png
from panel_app.panels.heatmap import heatmap_bar_html, heatmap_of, overlay_png, run_heatmaps
from panel_app.panels.on_demand import MAP_METHODS, STORED, explained_map, map_label, run_model_path
from panel_app.panels.neighbours import BACKGROUND_ROWS, feature_index
from panel_app.state import AppState
from panel_app.views.lean_panes import MessageLine

__all__ = ["DetailView", "outcome"]

log = logging.getLogger(__name__)

#: What the detail view's message line says when there is no message (corrections are kept in the run store).
CORRECTION_HINT = "Corrections are saved in the run store's corrections table; every view follows them."

SMALL, LARGE = 160, 512
MAX_DETAIL = 12
_OUTCOME_STYLE = {"TP": "#2ca02c", "TN": "#bbbbbb", "FP": "#d62728", "FN": "#ff7f0e"}


def outcome(act: bool, prob: float, cutoff: float) -> str:
    """'TP', 'FP', 'FN' or 'TN' for one attribute (positive prediction: ``prob > cutoff``)."""
    pred = prob > cutoff
    return ("T" if pred == act else "F") + ("P" if pred else "N")


class DetailView(pn.viewable.Viewer):
    """Images of ``state.detail_ids`` side by side, with labels, predictions, neighbours and corrections.

    Parameters
    ----------
    state : AppState
    n_neighbours : int
        FEA neighbours listed per image.
    """

    state = param.ClassSelector(class_=AppState, doc="The session state.")
    n_neighbours = param.Integer(default=5, bounds=(0, 50))

    def __init__(self, **params: Any):
        super().__init__(**params)
        if self.state is None:
            raise ValueError("The 'state' parameter of DetailView must be an AppState. Got None instead.")
        self._enlarged: set[int] = set()
        self._original: set[int] = set()   # cards showing the original frame from the source file
        # the cards wrap onto new lines instead of running off the page to the right
        self._strip = pn.FlexBox(flex_wrap="wrap", sizing_mode="stretch_width", css_classes=["xsgpu-detail-strip"])
        self._open_input = pn.widgets.TextInput(placeholder="sample ids, e.g. 12, 40", width=180,
                                                css_classes=["xsgpu-detail-ids"])
        self._open = pn.widgets.Button(label="Show", css_classes=["xsgpu-detail-open"])
        self._open.on_click(lambda _e: self._on_open())
        self._clear = pn.widgets.Button(label="Clear", css_classes=["xsgpu-detail-clear"])
        self._clear.on_click(lambda _e: self.state.param.update(detail_ids=[]))
        # one colour scale for every image shown (comparable at a glance), or one per image
        self._scale = pn.widgets.RadioButtonGroup(options=["shared scale", "per image"], value="shared scale",
                                                  css_classes=["xsgpu-detail-scale"])
        self._scale.param.watch(lambda _e: self._refresh(), "value")
        # an attribute's class activation map over the images (runs inferred with heatmaps; docs/explain.md)
        store = getattr(self.state.data, "store", None)
        stored = run_heatmaps(store) is not None
        # ... or one computed on demand with the run's model (Grad-CAM at a layer, IG, Gradient x Input)
        on_demand = run_model_path(store) is not None
        has_maps = stored or on_demand
        self._heatmap = pn.widgets.Select(label="Heatmap", options=["none", *self.state.vocabulary.names], value="none",
                                          width=150, visible=has_maps, css_classes=["xsgpu-detail-heatmap"])
        methods = [m for m in MAP_METHODS if (m == STORED and stored) or (m != STORED and on_demand)]
        self._map_method = pn.widgets.Select(label="Map", options=methods, value=methods[0] if methods else None,
                                             width=150, visible=has_maps, css_classes=["xsgpu-detail-map-method"])
        self._opacity = pn.widgets.FloatSlider(label="Opacity", start=0.0, end=1.0, step=0.05, value=0.5, width=120,
                                               visible=has_maps, css_classes=["xsgpu-detail-opacity"])
        self._heatmap.param.watch(lambda _e: self._refresh(), "value")
        self._map_method.param.watch(lambda _e: self._refresh(), "value")
        self._opacity.param.watch(lambda _e: self._refresh(), "value_throttled")  # on release of the slider
        if has_maps:  # the choice follows state.heatmap_attribute (a tapped petal) and sets it
            self._heatmap.param.watch(lambda e: setattr(self.state, "heatmap_attribute", "" if e.new == "none"
                                                        else self.state.vocabulary.resolve(e.new).slug), "value")
            self.state.param.watch(lambda e: self.set_heatmap(e.new or None), "heatmap_attribute")
        # correction form
        self._c_sample = pn.widgets.Select(label="Image", options=[], width=120, css_classes=["xsgpu-correct-sample"])
        self._c_attr = pn.widgets.Select(label="Attribute", options=list(self.state.vocabulary.names), width=180,
                                         css_classes=["xsgpu-correct-attribute"])
        self._c_value = pn.widgets.RadioButtonGroup(label="Right value", options=["present", "absent"],
                                                    value="present", css_classes=["xsgpu-correct-value"])
        self._c_note = pn.widgets.TextInput(label="Note", placeholder="why (optional)", width=240,
                                            css_classes=["xsgpu-correct-note"])
        self._c_button = pn.widgets.Button(label="Record correction", color="warning",
                                           css_classes=["xsgpu-record-correction"])
        self._c_button.on_click(lambda _e: self._on_record())
        self._c_attr.param.watch(lambda _e: self._suggest_value(), "value")
        self._c_sample.param.watch(lambda _e: self._suggest_value(), "value")
        # always shown, with a hint when there is nothing to say: a message then changes text, not the layout
        # (showing a hidden alert re-laid the page out: ~0.3 s of a correction's wait at 1M images)
        self._message = MessageLine(CORRECTION_HINT, "light", css_classes=["xsgpu-detail-message"])
        self.state.param.watch(lambda _e: self._refresh(), ["detail_ids", "cutoff", "corrections_version"])
        self._refresh()

    # ------------------------------------------------------------------ public, testable actions
    def show(self, ids: Any) -> None:
        """Put ``ids`` in the detail view (replacing what is shown)."""
        self.state.show_details(list(ids)[:MAX_DETAIL])

    def add(self, sample_id: int) -> None:
        """Put one image first in the strip, as a tap in a view does (at most :data:`MAX_DETAIL`, oldest dropped)."""
        i = self.state.data.check_id(sample_id)
        self.state.show_details([i, *[j for j in self.state.detail_ids if j != i]][:MAX_DETAIL])

    def prefill(self, sample_id: int, attribute: str | int) -> None:
        """Set the correction form to one image (shown first in the strip if it is not shown) and attribute;
        the value is preset to the opposite of the current (corrected) ACT value."""
        i = self.state.data.check_id(sample_id)
        a = self.state.vocabulary.resolve(attribute)
        if i not in self.state.detail_ids:
            self.add(i)
        self._c_sample.value = i
        self._c_attr.value = a.name
        self._suggest_value()

    def set_heatmap(self, attribute: str | int | None, opacity: float | None = None) -> None:
        """Overlay ``attribute``'s heatmap on the images (``None``: none), optionally at ``opacity`` (0..1)."""
        name = "none" if attribute is None else self.state.vocabulary.resolve(attribute).name
        if opacity is not None:
            self._opacity.value = float(opacity)
        if name != self._heatmap.value:
            self._heatmap.value = name  # redraws
        elif opacity is not None:
            self._refresh()

    def set_map_method(self, choice: str) -> None:
        """Which map the overlay shows: the stored CAM or one computed on demand (a key of ``MAP_METHODS``)."""
        if choice not in self._map_method.options:
            raise ValueError(f"The 'choice' parameter of set_map_method must be one of {self._map_method.options} "
                             f"for this run. Got {choice!r} instead.")
        self._map_method.value = choice

    def toggle_original(self, sample_id: int) -> bool:
        """Show or hide the original frame of one image, read from its source file at full resolution
        (:class:`panel_app.panels.source_frame.SourceFrameView`); returns whether it is now shown."""
        i = int(sample_id)
        self._original ^= {i}
        self._refresh()
        return i in self._original

    def toggle_enlarged(self, sample_id: int) -> bool:
        """Switch one image between the small and the large rendering; returns whether it is now large."""
        i = int(sample_id)
        if i in self._enlarged:
            self._enlarged.discard(i)
        else:
            self._enlarged.add(i)
        self._refresh()
        return i in self._enlarged

    def attribute_rows(self, sample_id: int) -> list[dict]:
        """ACT (corrected) vs PRD per attribute for one image.

        Returns
        -------
        list of dict
            One row per attribute of the run's vocabulary: ``{"attribute", "slug", "act", "prob", "outcome"}``.
        """
        i = self.state.data.check_id(sample_id)
        act = self.state.y_act()[i]
        prob = self.state.data.y_prob[i]
        return [{"attribute": a.name, "slug": a.slug, "act": bool(act[a.index]), "prob": float(prob[a.index]),
                 "outcome": outcome(bool(act[a.index]), float(prob[a.index]), self.state.cutoff)}
                for a in self.state.vocabulary]

    def neighbours(self, sample_id: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The ``n_neighbours`` nearest images in FEA (ids, distances), from the process-wide index.

        Returns None while the index of a large run (> ``BACKGROUND_ROWS`` images) is still being built
        in the background (the server's warm-up normally builds it before the first session).
        """
        data = self.state.data
        i = data.check_id(sample_id)
        index = feature_index(data, wait=data.n <= BACKGROUND_ROWS)
        if index is None:
            return None
        idx, dist = index.query(np.array([i]), k=self.n_neighbours)
        return idx[0], dist[0]

    def record(self, *, sample_id: int, attribute: str | int, new: bool, note: str = "", user: str = "",
               notify: bool = True):
        """Record a correction of ACT and tell the session (``state.corrections_version += 1``).

        With ``notify=False`` the session is not told (the caller calls :meth:`notify_corrections`): the
        "Record correction" button shows its message first and lets the views and panels follow
        after the click's patch has reached the browser.

        Returns
        -------
        pd.DataFrame
            The row written to ``corrections.parquet``.

        Raises
        ------
        ValueError
            If the run is in memory (no run store to write to) or the input is invalid.
        """
        from xsgpu.io.corrections import record_correction

        store = self.state.data.store
        if store is None:
            raise ValueError("This run is held in memory without a run store; corrections cannot be recorded.")
        row = record_correction(store, sample_id=int(sample_id), attribute=attribute, new=bool(new),
                                note=note, user=user)
        if notify:
            self.notify_corrections()
        return row

    def notify_corrections(self) -> None:
        """Tell the session that the corrections changed: every view, metric and list follows."""
        self.state.corrections_version += 1

    # ------------------------------------------------------------------ callbacks
    def _show_message(self, text: str, kind: str) -> None:
        self._message.show(text or CORRECTION_HINT, kind if text else "light")

    def _on_open(self) -> None:
        raw = self._open_input.value.replace(",", " ").split()
        try:
            ids = [self.state.data.check_id(int(t)) for t in raw]
        except ValueError:
            self._show_message(f"Sample ids must be integers in 0..{self.state.data.n - 1}; got {raw!r}.", "danger")
            return
        self.show(ids)
        self._show_message("", "light")

    def _suggest_value(self) -> None:
        """Preset the new value to the opposite of the current (corrected) ACT value."""
        if self._c_sample.value is None:
            return
        a = self.state.vocabulary.resolve(self._c_attr.value)
        current = bool(self.state.y_act()[int(self._c_sample.value), a.index])
        self._c_value.value = "absent" if current else "present"

    def _on_record(self) -> None:
        if self._c_sample.value is None:
            self._show_message("Open an image first (click it in a view, or type its id and press Show).", "warning")
            return
        user = ""
        try:
            user = str(pn.state.user or "")
        except Exception:  # noqa: BLE001 - no session (tests)
            user = ""
        try:
            row = self.record(sample_id=int(self._c_sample.value), attribute=self._c_attr.value,
                              new=self._c_value.value == "present", note=self._c_note.value, user=user,
                              notify=False)
        except ValueError as exc:
            self._show_message(str(exc), "danger")
            return
        r = row.iloc[0]
        self._c_note.value = ""
        self._show_message(f"Recorded: image {int(r['sample_id'])}, {self._c_attr.value}: "
                           f"{'present' if r['old'] else 'absent'} -> {'present' if r['new'] else 'absent'}.",
                           "success")
        # the message first; the card, the views and the panels follow right after (at once outside a server)
        after_event(self, self.notify_corrections)

    # ------------------------------------------------------------------ rendering
    def colour_range(self, i: int, shown: dict[int, np.ndarray]) -> tuple[float, float]:
        """The colour range of image ``i``: shared by all ``shown`` images, or its own ("per image")."""
        if self._scale.value == "shared scale" and shown:
            return intensity_range(*shown.values())
        return intensity_range(shown[i]) if i in shown else (0.0, 1.0)

    def _card(self, i: int, shown: dict[int, np.ndarray], errors: dict[int, Exception]) -> pn.viewable.Viewable:
        data = self.state.data
        large = i in self._enlarged
        size = LARGE if large else SMALL
        try:
            if i not in shown:
                raise errors[i]
            lo, hi = self.colour_range(i, shown)
            cam, map_error = None, None
            choice = self._map_method.value or STORED
            if self._heatmap.value != "none":
                k = self.state.vocabulary.index(self._heatmap.value)
                if choice == STORED:
                    cam = heatmap_of(getattr(data, "store", None), i, k)
                else:
                    try:
                        cam = explained_map(data.store, i, self._heatmap.value, choice)
                    except Exception as exc:  # noqa: BLE001 - the image stays; say why its map is missing
                        log.warning("%s of image %d unavailable: %s", choice, i, exc)
                        map_error = f"{choice}: {exc}"
            if cam is None:
                png = render_image_png(shown[i], size=size, vrange=(lo, hi))
            else:
                lim = float(np.abs(cam).max()) or 1.0
                png = overlay_png(shown[i], cam, size=size, vrange=(lo, hi), opacity=self._opacity.value, limit=lim)
            img: pn.viewable.Viewable = pn.Column(
                pn.pane.PNG(png, width=size, height=size, css_classes=["xsgpu-detail-image"]),
                pn.pane.HTML(colour_bar_html(lo, hi, width=size, label="log intensity (log base 1.0414 of counts)"),
                             width=size, margin=(0, 5)),
                *([pn.pane.HTML(heatmap_bar_html(lim, width=size, attribute=self._heatmap.value, what=map_label(choice)),
                                width=size, margin=(0, 5))] if cam is not None else []),
                *([pn.pane.Alert(map_error, alert_type="warning", width=size)] if map_error else []))
        except Exception as exc:  # noqa: BLE001 - show why the image is missing, keep the rest of the card
            img = pn.pane.Alert(f"image {i}: {exc}", alert_type="danger", width=size)
        toggle = pn.widgets.Toggle(label="Shrink" if large else "Enlarge", value=large, width=90,
                                   css_classes=["xsgpu-enlarge"])
        toggle.param.watch(lambda _e, i=i: self.toggle_enlarged(i), "value")
        original = pn.widgets.Toggle(label="Original frame", value=i in self._original, width=130,
                                     css_classes=["xsgpu-original-toggle"])
        original.param.watch(lambda _e, i=i: self.toggle_original(i), "value")
        source: list[pn.viewable.Viewable] = []
        if i in self._original:
            from panel_app.panels.source_frame import BOX_PX, SourceFrameView

            source, size = [SourceFrameView(data=data, sample_id=i)], max(size, BOX_PX)
        remove = pn.widgets.Button(label="Remove", width=80, css_classes=["xsgpu-detail-remove"])
        remove.on_click(lambda _e, i=i: self.state.show_details([j for j in self.state.detail_ids if j != i]))
        rows = self.attribute_rows(i)
        table = "".join(
            f'<tr><td style="color:{self.state.vocabulary[k].colour}">&#9632;</td><td>{html.escape(r["attribute"])}</td>'
            f'<td>{"1" if r["act"] else "0"}</td><td>{r["prob"]:.2f}</td>'
            f'<td style="color:{_OUTCOME_STYLE[r["outcome"]]};font-weight:bold">{r["outcome"]}</td></tr>'
            for k, r in enumerate(rows))
        src = data.samples["source_uri"].iloc[i] if "source_uri" in data.samples.columns else ""
        header = pn.pane.HTML(f'<b>#{i}</b> <span style="font-size:12px">{html.escape(str(src))}</span>',
                              width=size)
        attrs = pn.pane.HTML('<table style="font-size:13px">'
                             f'<tr><th></th><th>attribute</th><th>ACT</th>'
                             f'<th>PRD</th><th></th></tr>{table}</table>', css_classes=["xsgpu-detail-attributes"])
        neigh: list[pn.viewable.Viewable] = []
        if self.n_neighbours and data.features is not None:
            try:
                found = self.neighbours(i)
                if found is None:
                    raise RuntimeError("the FEA index is being built; reopen the image in a minute")
                ids, dist = found
                for j, dj in zip(ids.tolist(), dist.tolist()):
                    b = pn.widgets.Button(label=f"#{j} ({dj:.2f})", width=90, css_classes=["xsgpu-neighbour"])
                    b.on_click(lambda _e, j=j: self.add(j))
                    neigh.append(b)
            except Exception as exc:  # noqa: BLE001 - neighbours are an extra; say why they are missing
                log.warning("FEA neighbours of %d unavailable: %s", i, exc)
                neigh.append(pn.pane.Str(f"neighbours unavailable: {exc}"))
        return pn.Card(header, img, pn.Row(toggle, remove), original, *source, attrs,
                       pn.pane.Markdown("Nearest in FEA:") if neigh else pn.Spacer(height=0),
                       pn.FlexBox(*neigh),
                       hide_header=True, width=max(size, 230) + 20, css_classes=["xsgpu-detail-card"])

    def _read_images(self, ids: list[int]) -> tuple[dict[int, np.ndarray], dict[int, Exception]]:
        """The log-scaled images of ``ids`` that can be read, and why each of the others cannot (for its card)."""
        images: dict[int, np.ndarray] = {}
        errors: dict[int, Exception] = {}
        for i in ids:
            try:
                images[i] = np.asarray(self.state.data.image(i), dtype=np.float32)
            except Exception as exc:  # noqa: BLE001 - shown on that image's card
                errors[i] = exc
        return images, errors

    def _refresh(self) -> None:
        ids = [int(i) for i in self.state.detail_ids]
        self._enlarged &= set(ids)
        self._original &= set(ids)
        shown, errors = self._read_images(ids)
        self._strip.objects = [self._card(i, shown, errors) for i in ids] or [
            pn.pane.Markdown("*Click images in a view or in the suspicious-label list to compare them here.*")]
        current = self._c_sample.value
        self._c_sample.options = ids
        if ids:
            self._c_sample.value = current if current in ids else ids[0]
        self._suggest_value()

    def __panel__(self) -> pn.viewable.Viewable:
        form = pn.FlexBox(self._c_sample, self._c_attr, pn.Column(pn.pane.Markdown("Right value", margin=(0, 5)),
                                                              self._c_value),
                      self._c_note, pn.Column(pn.Spacer(height=18), self._c_button))
        return pn.Card(
            pn.Row(self._open_input, self._open, self._clear, self._scale, self._heatmap, self._map_method, self._opacity),
            self._strip,
            pn.pane.Markdown("**Correct a label (ACT)**"),
            form,
            self._message,
            title="Detail view", collapsible=True, sizing_mode="stretch_width", css_classes=["xsgpu-detail-view"],
        )
