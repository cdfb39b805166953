"""Text panes whose updates send only what changed.

Panel's HTML and Markdown panes send their whole property set on every change of ``object``, stylesheets
included. The stylesheets come as *new* ``ImportedStyleSheet`` models each time, so every text update adds
model references to the document and makes the browser rebuild the pane's shadow-root styles: one forced
style recalculation per pane and per update. A box selection updates about ten such panes (the three view
status lines, the selection count, the group metrics heading ...); in Chromium this was about half a
second of the selection's wait (331 style recalculations, 481 ms, for one selection at 3k images).

:class:`LeanHTML` and :class:`LeanMarkdown` leave the stylesheets out of an update when they are the
ones the browser already has (same inline text, same imported URLs); every other property is sent as
Panel sends it. :func:`show_alert` changes an alert's text, kind and visibility as one patch (three
patches, three page re-layouts of ~130 ms each at 1M images, when set one by one).
"""
from __future__ import annotations

from typing import Any

import panel as pn

from panel_app.views.docsafe import bokeh_edits

__all__ = ["LeanAlert", "LeanHTML", "LeanMarkdown", "same_stylesheets", "show_alert"]


def _sheet_key(sheet: Any) -> Any:
    url = getattr(sheet, "url", None)
    if url is not None:
        return ("url", url)
    css = getattr(sheet, "css", None)
    if css is not None:
        return ("css", css)
    return ("str", sheet) if isinstance(sheet, str) else ("id", id(sheet))


def same_stylesheets(new: list | None, old: list | None) -> bool:
    """Whether two stylesheet lists style the same way (inline texts and imported URLs, in order)."""
    if new is None or old is None or len(new) != len(old):
        return False
    return all(_sheet_key(a) == _sheet_key(b) for a, b in zip(new, old))


class _LeanUpdate:
    """Mixin: drop unchanged stylesheets from a pane's model update."""

    def _update(self, ref: str, model: Any) -> None:  # Panel's hook for in-place pane updates
        props = self._get_properties(model.document)
        if same_stylesheets(props.get("stylesheets"), list(model.stylesheets)):
            props.pop("stylesheets")
        model.update(**props)


class LeanHTML(_LeanUpdate, pn.pane.HTML):
    """:class:`panel.pane.HTML` whose text updates leave unchanged stylesheets out."""


class LeanMarkdown(_LeanUpdate, pn.pane.Markdown):
    """:class:`panel.pane.Markdown` whose text updates leave unchanged stylesheets out."""


class LeanAlert(_LeanUpdate, pn.pane.Alert):
    """:class:`panel.pane.Alert` whose text updates leave unchanged stylesheets out."""


def show_alert(alert: pn.pane.Alert, text: str, kind: str) -> None:
    """Set an alert's text and kind and show it (hide it when ``text`` is empty), sent as one patch."""
    with bokeh_edits():
        alert.param.update(object=text, alert_type=kind, visible=bool(text))
