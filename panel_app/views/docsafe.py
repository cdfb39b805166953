"""Changing plain Bokeh models from any Panel callback without breaking the session.

Bokeh's server session expects every document change to happen while it holds the document lock: its
``_document_patched`` raises ``RuntimeError: _pending_writes should be non-None when we have a document
lock`` otherwise. Panel runs some callbacks without that lock: a button click (any Bokeh event) that
arrives while another widget change is still pending (for example a text input whose ``value_input``
was typed just before the click) is scheduled through ``param.parameterized.async_executor``, which Panel
sets to run *unlocked*. Panel's own widgets cope because Panel applies their changes inside
:func:`panel.io.document.unlocked`, which writes the patch to the websockets itself. The embedding views
are plain Bokeh figures changed directly, so they must do the same: every change to their models goes
through :func:`bokeh_edits`.

Outside a served session (tests, notebooks, document construction) :func:`bokeh_edits` changes nothing.
"""
from __future__ import annotations

import functools
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

__all__ = ["bokeh_edits", "with_bokeh_edits"]

F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def bokeh_edits() -> Iterator[None]:
    """Apply the Bokeh model changes made in the body safely, with or without the document lock.

    Inside a served session the changes are held and sent to the browser as one patch when the body
    ends (Panel's ``unlocked``); nested uses join the outer one.
    """
    from panel.io.document import unlocked

    with unlocked():
        yield


def with_bokeh_edits(method: F) -> F:
    """Decorator: run ``method`` inside :func:`bokeh_edits`."""
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with bokeh_edits():
            return method(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
