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

__all__ = ["bokeh_edits", "with_bokeh_edits", "batched_edits", "with_batched_edits"]

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


@contextmanager
def batched_edits() -> Iterator[None]:
    """:func:`bokeh_edits`, with the document's model graph recomputed at most once, at the end.

    Bokeh walks every model of the document (~700 in a session of the app; 50-140 ms on the shared
    machine) after each property change that may add or drop a model reference, and every Panel pane
    update sends its stylesheets, so a selection's ~10 pane updates cost about a second there. Inside
    this context the walk is deferred and done once, before the held changes go to the browser as one
    patch, and only when a change asked for it: most events (a wheel step's raster, a text update) change
    data and text, never references, and need no walk at all (Bokeh's own ``Document.models.freeze``
    always walks when it ends, asked or not; HoloViews freezes around each plot update). Without a current
    document it changes nothing.
    """
    import panel as pn

    doc = pn.state.curdoc
    models = getattr(doc, "models", None) if doc is not None else None
    with bokeh_edits():
        if models is None or not hasattr(models, "invalidate"):
            yield
            return
        with _deferred_invalidation(models):   # the walk runs when this exits, before bokeh_edits sends
            yield


@contextmanager
def _deferred_invalidation(models: Any) -> Iterator[None]:
    """Hold the walks of the document's models until the body ends, then walk once if a change asked for it.

    Bokeh asks with ``models.invalidate()`` when a change adds or drops references; ``models.freeze()``
    (used by HoloViews around each plot update) walks when it ends whether or not anything asked, and
    ``models.recompute()`` walks at once. Inside the body the three are replaced on this instance: an
    ``invalidate`` or ``recompute`` is noted, a freeze ends without walking. A nested use joins the outer one.
    """
    if "invalidate" in vars(models):   # an outer batch holds them already
        yield
        return
    asked = [False]

    def hold() -> None:
        asked[0] = True

    def pop_freeze() -> None:   # Bokeh's, less its walk (the invalidations inside were noted by hold)
        models._freeze_count -= 1

    models.invalidate = models.recompute = hold   # instance attributes, shadowing DocumentModelManager's
    models._pop_freeze = pop_freeze
    try:
        yield
    finally:
        del models.invalidate, models.recompute, models._pop_freeze
        if asked[0]:
            models.invalidate()   # walks now, or when an enclosing freeze ends


def with_batched_edits(method: F) -> F:
    """Decorator: run ``method`` inside :func:`batched_edits` (for the handlers of browser events)."""
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with batched_edits():
            return method(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def with_bokeh_edits(method: F) -> F:
    """Decorator: run ``method`` inside :func:`bokeh_edits`."""
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with bokeh_edits():
            return method(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
