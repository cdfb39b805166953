"""The whole app layout: :func:`build_app` (one call per browser session).

Layout (the paper's letters)::

    +-------------+---------------------------------------------+
    | (A) controls| (C) ACT view | (D) FEA view | (E) PRD view  |
    | (B) filters +---------------------------------------------+
    |             | (F) selection manager | (G) detail view     |
    |             +---------------------------------------------+
    |             | model overview | attribute study | co-occurrence | suspicious |
    +-------------+---------------------------------------------+

Run data is loaded once per process (:func:`panel_app.data.load_run_data`); each session gets its own
:class:`panel_app.state.AppState`. A missing or incomplete run store gives a page that says which stage
to run instead of a traceback.
"""
from __future__ import annotations

import html
import logging
import os
from typing import Any

import panel as pn
from pyarrow.lib import ArrowException

from panel_app.data import RunData, check_run, load_run_data
from panel_app.state import AppState
from xsgpu.config import load_settings
from xsgpu.errors import StoreError

__all__ = ["build_app", "error_page", "failure_page", "make_state"]

log = logging.getLogger(__name__)

_CSS = """
.xsgpu-title { margin: 0 0 4px 0; }
.xsgpu-error { max-width: 900px; }
"""


def make_state(data: RunData, **settings: Any) -> AppState:
    """Create the per-session state for ``data`` with the app settings (``cutoff``, ``flower_threshold``).

    Raises
    ------
    ValueError
        For an unknown setting (names the valid ones).
    """
    s = load_settings(overrides={k: v for k, v in settings.items() if k in ("cutoff", "flower_threshold")})
    unknown = set(settings) - _KNOWN_SETTINGS
    if unknown:
        raise ValueError(f"Unknown setting(s) {sorted(unknown)} for build_app; valid: {sorted(_KNOWN_SETTINGS)}.")
    return AppState(data=data, cutoff=float(s.cutoff), flower_threshold=int(s.flower_threshold))


_KNOWN_SETTINGS = {"cutoff", "flower_threshold", "title"}


def error_page(run_path: str | os.PathLike, problems: list[str], *, remedies: list[str] | None = None,
               incident: str | None = None) -> pn.viewable.Viewable:
    """A readable page for a run store that cannot be served: the problems and the remedies.

    No traceback and no local path reach the browser: the run is named by its folder name, paths in
    the messages are scrubbed (:func:`panel_app.errors.scrub_paths`) and the details are in the
    server log under ``incident``.
    """
    from panel_app.errors import scrub_paths

    def items(lines: list[str], code: bool = True) -> str:
        wrap = ("<code>", "</code>") if code else ("", "")
        return "".join(f"<li>{wrap[0]}{html.escape(scrub_paths(x, run_path))}{wrap[1]}</li>" for x in lines)

    name = os.path.basename(os.path.normpath(os.fspath(run_path))) or "RUN"
    body = (f"<h2>xsgpu cannot show this run yet</h2>"
            f"<p>Run store: <code>{html.escape(name)}</code> (RUN below)</p>")
    if remedies:
        body += f"<p>What went wrong:</p><ul>{items(problems)}</ul><p>What to do:</p><ul>{items(remedies, code=False)}</ul>"
    else:
        body += f"<p>What is missing, and the command that makes it:</p><ul>{items(problems)}</ul>"
        body += "<p>Then reload this page.</p>"
    if incident:
        body += f"<p>The server log has the details under incident <code>{html.escape(incident)}</code>.</p>"
    return pn.pane.HTML(body, css_classes=["xsgpu-error"], sizing_mode="stretch_width")


def failure_page(run_path: str | os.PathLike, exc: BaseException, *, what: str) -> pn.viewable.Viewable:
    """Log ``exc`` with its traceback and return the :func:`error_page` with its problem and remedy."""
    from panel_app.errors import describe_failure, log_failure

    incident = log_failure(exc, what=what, run_path=run_path)
    problem, remedy = describe_failure(exc, run_path)
    return error_page(run_path, [problem], remedies=[remedy], incident=incident)


def build_app(run_path: str | os.PathLike | RunData, **settings: Any) -> pn.viewable.Viewable:
    """Build the whole app for one session.

    Parameters
    ----------
    run_path : path or RunData
        A run store (loaded once per process and cached) or already loaded data.
    **settings
        ``cutoff`` (float, default 0.5), ``flower_threshold`` (int, default 2000: flowers when the
        viewport holds at most this many images), ``title`` (str).

    Returns
    -------
    panel.viewable.Viewable
        The layout; or an error page naming the missing artifacts and the commands that write them.
    """
    if isinstance(run_path, RunData):
        data = run_path
        where = data.store.path if data.store is not None else "in-memory run"
    else:
        where = run_path
        problems = check_run(run_path)
        if problems:
            log.warning("run store %s cannot be served: %s", run_path, problems)
            return error_page(run_path, problems)
        try:
            data = load_run_data(run_path)
        except Exception as exc:  # noqa: BLE001 - any unreadable artifact: a page, never a traceback
            return failure_page(run_path, exc, what="the run store could not be loaded")
    title = settings.pop("title", "xsgpu")
    state = make_state(data, **settings)
    try:
        return _layout(state, title=title, where=str(where))
    except (StoreError, OSError, ArrowException) as exc:  # e.g. a stray file in corrections.parquet/
        return failure_page(where, exc, what="the run store could not be read while building the page")


def _layout(state: AppState, *, title: str, where: str) -> pn.viewable.Viewable:
    from panel_app.panels import (
        AttributeStudyPanel, CooccurrencePanel, DetailView, ModelOverview, SelectionManager, SuspiciousPanel,
    )
    from panel_app.views import AttributeFilters, ControlPanel, EmbeddingViews

    header = pn.pane.HTML(f"<h2 class='xsgpu-title'>{html.escape(title)}</h2>"
                          f"<div>{html.escape(where)} &middot; {state.data.n:,} images</div>")
    from panel_app.views.legend import FlowerLegend

    sidebar = pn.Column(header, ControlPanel(state=state), AttributeFilters(state=state), FlowerLegend(state=state),
                        width=300)
    views = EmbeddingViews(state=state)
    detail = DetailView(state=state)
    suspicious = SuspiciousPanel(state=state)
    # a click in the suspicious-label list opens the image with the correction form set to that label
    suspicious.param.watch(lambda e: detail.prefill(*e.new) if e.new else None, "opened", onlychanged=False)
    bottom = pn.Row(SelectionManager(state=state), detail, sizing_mode="stretch_width")
    tabs = pn.Tabs(("Model overview", ModelOverview(state=state)),
                   ("Attribute study", AttributeStudyPanel(state=state)),
                   ("Co-occurrence", CooccurrencePanel(state=state)),
                   ("Suspicious labels", suspicious),
                   dynamic=True, sizing_mode="stretch_width")
    main = pn.Column(views, bottom, tabs, sizing_mode="stretch_width")
    layout = pn.Row(sidebar, main, sizing_mode="stretch_width", stylesheets=[_CSS])
    layout.xsgpu_state = state  # for tests and server hooks
    return layout
