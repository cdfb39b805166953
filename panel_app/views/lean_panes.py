"""Text panes whose updates send only what changed.

Panel's HTML and Markdown panes send their whole property set on every change of ``object``, stylesheets
included. The stylesheets come as *new* ``ImportedStyleSheet`` models each time, so every text update adds
model references to the document and makes the browser rebuild the pane's shadow-root styles: one forced
style recalculation per pane and per update. A box selection updates about ten such panes (the three view
status lines, the selection count, the group metrics heading ...); in Chromium this was about half a
second of the selection's wait (331 style recalculations, 481 ms, for one selection at 3k images).

:class:`LeanHTML` and :class:`LeanMarkdown` leave the stylesheets out of an update when they are the
ones the browser already has (same inline text, same imported URLs); every other property is sent as
Panel sends it.

:class:`MessageLine` is a one-line message (success, warning, danger ...) whose kind is a class inside its
own HTML, not of the pane: a Panel ``Alert`` shows its kind as ``css_classes`` of the pane, and changing
those made Chromium rebuild the pane and restyle the whole page (250 ms for "Recorded: ..." at 1M
images). A message's text and kind then go out as one ``text`` change.
"""
from __future__ import annotations

import html
from typing import Any

import panel as pn

from panel_app.views.docsafe import bokeh_edits

__all__ = ["LeanHTML", "LeanMarkdown", "MessageLine", "MESSAGE_KINDS", "same_stylesheets"]


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


#: The kinds of a :class:`MessageLine`, with their text, background and border colours.
MESSAGE_KINDS: dict[str, tuple[str, str, str]] = {
    "light": ("#495057", "#f8f9fa", "#e9ecef"),
    "info": ("#055160", "#cff4fc", "#b6effb"),
    "success": ("#0f5132", "#d1e7dd", "#badbcc"),
    "warning": ("#664d03", "#fff3cd", "#ffecb5"),
    "danger": ("#842029", "#f8d7da", "#f5c2c7"),
}
_MESSAGE_CSS = (".xsgpu-message { padding: 6px 10px; border: 1px solid; border-radius: 4px; line-height: 1.35; }\n"
                + "".join(f".xsgpu-message-{k} {{ color: {c}; background: {bg}; border-color: {b}; }}\n"
                          for k, (c, bg, b) in MESSAGE_KINDS.items()))


class MessageLine(LeanHTML):
    """A one-line message whose text and kind change as one ``text`` update (see the module docstring).

    Parameters
    ----------
    text : str
        The first message (plain text, shown escaped).
    kind : str
        One of :data:`MESSAGE_KINDS`.
    hide_when_empty : bool
        Hide the line while it has no text (else an empty line keeps its place).
    **params
        Passed to :class:`panel.pane.HTML` (``css_classes``, ``margin`` ...).

    Examples
    --------
    >>> line = MessageLine("Saved 3 images.", "success")
    >>> line.kind, line.message
    ('success', 'Saved 3 images.')
    """

    def __init__(self, text: str = "", kind: str = "light", *, hide_when_empty: bool = False, **params: Any):
        self._hide_when_empty = bool(hide_when_empty)
        params.setdefault("stylesheets", [_MESSAGE_CSS])
        params.setdefault("sizing_mode", "stretch_width")
        params.setdefault("visible", self._shown(text))
        super().__init__(self._markup(text, kind), **params)
        #: the kind and the plain text of the message shown
        self.kind, self.message = kind, str(text)

    def _shown(self, text: str) -> bool:
        """Whether the line is shown with ``text`` (an empty line is hidden only with ``hide_when_empty``)."""
        return bool(text) or not self._hide_when_empty

    @staticmethod
    def _checked_kind(kind: str) -> str:
        if kind not in MESSAGE_KINDS:
            raise ValueError(f"The 'kind' of a MessageLine must be one of {list(MESSAGE_KINDS)}. Got {kind!r} instead.")
        return kind

    @classmethod
    def _markup(cls, text: str, kind: str) -> str:
        kind = cls._checked_kind(kind)
        return (f"<div class='xsgpu-message xsgpu-message-{kind}' role='status'>"
                f"{html.escape(str(text), quote=False)}</div>") if text else ""

    def show(self, text: str, kind: str = "light") -> None:
        """Show ``text`` as a ``kind`` message (an empty text clears the line), sent as one patch."""
        markup = self._markup(text, kind)
        self.kind, self.message = kind, str(text)
        visible = self._shown(text)
        with bokeh_edits():
            self.param.update(object=markup, **({"visible": visible} if visible != self.visible else {}))
