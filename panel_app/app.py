"""The whole app layout: :func:`build_app` (one call per browser session).

Layout (the paper's letters)::

    +-------------+---------------------------------------------+
    | (B) filters | (C) ACT view | (D) FEA view | (E) PRD view  |
    | (A) controls+---------------------------------------------+
    | legend      | (F) selection manager                       |
    | (sticky,    +---------------------------------------------+
    |  scrolls)   | (G) detail view (cards wrap)                |
    |             +---------------------------------------------+
    |             | model overview | attribute study | co-occurrence | suspicious |
    +-------------+---------------------------------------------+

One panel per row below the views, so a panel that grows never overlaps its neighbour; the views are
:data:`VIEW_PX` square at least, so that the sidebar and three views fit a 1366-px window, and grow with a
wider window up to :data:`MAX_VIEW_PX`.

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
#: Width of the sidebar (title, attribute filters, controls, legend) in pixels.
SIDEBAR_PX = 310
#: Least frame size of each embedding view: three views fit beside the sidebar in a 1366-px window.
VIEW_PX = 310
#: Greatest frame size of each view: wider windows give the views their width up to this (square frames;
#: the rasters grow with them: 480 px is 2.4x the bytes of 310 px per layer).
MAX_VIEW_PX = 480
# the sidebar scrolls on its own and stays in place, so the filters stay in reach while the page scrolls
_SIDEBAR_STYLES = {"position": "sticky", "top": "0", "align-self": "flex-start", "max-height": "100vh",
                   "overflow-y": "auto"}


def make_state(data: RunData, **settings: Any) -> AppState:
    """Create the per-session state for ``data`` with the app settings (``cutoff``, ``flower_threshold``,
    ``device``: ``'cpu'`` or ``'gpu'``, see :mod:`panel_app.device`).

    Raises
    ------
    ValueError
        For an unknown setting (names the valid ones).
    """
    s = load_settings(overrides={k: v for k, v in settings.items() if k in ("cutoff", "flower_threshold")})
    unknown = set(settings) - _KNOWN_SETTINGS
    if unknown:
        raise ValueError(f"Unknown setting(s) {sorted(unknown)} for build_app; valid: {sorted(_KNOWN_SETTINGS)}.")
    return AppState(data=data, cutoff=float(s.cutoff), flower_threshold=int(s.flower_threshold),
                    device=settings.get("device", "cpu"))


_KNOWN_SETTINGS = {"cutoff", "flower_threshold", "title", "device"}


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
        viewport holds at most this many images), ``title`` (str), ``device`` (``'cpu'``, default, or
        ``'gpu'``: rasters, spatial queries and group metrics on CuPy/cuDF; :mod:`panel_app.device`).

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
        AttributeStudyPanel, CooccurrencePanel, DetailView, ModelOverview, NeuronPanel, SelectionManager,
        SuspiciousPanel,
    )
    from panel_app.views import AttributeFilters, ControlPanel, EmbeddingViews

    # the run's name (its folder); the full path in the tooltip, so a long path never pushes the sidebar wider
    name = os.path.basename(os.path.normpath(where)) if where != "in-memory run" else where
    header = pn.pane.HTML(f"<h2 class='xsgpu-title'>{html.escape(title)}</h2>"
                          f"<div class='xsgpu-run-name' title='{html.escape(where, quote=True)}'>"
                          f"{html.escape(name or where)} &middot; {state.data.n:,} images</div>")
    from panel_app.views.legend import FlowerLegend

    # filters first: they are what a user reaches for most, and must be visible without scrolling
    sidebar = pn.Column(header, AttributeFilters(state=state), ControlPanel(state=state), FlowerLegend(state=state),
                        width=SIDEBAR_PX, styles=_SIDEBAR_STYLES, css_classes=["xsgpu-sidebar"])
    views = EmbeddingViews(state=state, width=VIEW_PX, height=VIEW_PX, grow=(VIEW_PX, MAX_VIEW_PX))
    detail = DetailView(state=state)
    suspicious = SuspiciousPanel(state=state)
    # a click in the suspicious-label list opens the image with the correction form set to that label
    suspicious.param.watch(lambda e: detail.prefill(*e.new) if e.new else None, "opened", onlychanged=False)
    tab_panels = [("Model overview", ModelOverview(state=state)),
                  ("Attribute study", AttributeStudyPanel(state=state)),
                  ("Co-occurrence", CooccurrencePanel(state=state)),
                  ("Suspicious labels", suspicious),
                  ("Neurons", NeuronPanel(state=state))]
    tabs = pn.Tabs(*tab_panels,
                   dynamic=True, sizing_mode="stretch_width", css_classes=["xsgpu-tabs"],
                   styles={"overflow-x": "auto", "min-width": "0"})  # wide tab content scrolls in the tab
    # a tab's panel follows the session (selection, corrections, cut-off) only while it is shown: a hidden tab
    # is not even drawn; showing it brings it up to date (panels._common.LazyRefresh)
    def show_tab(active: int) -> None:
        for k, (_name, panel) in enumerate(tab_panels):
            panel.lazy.show(k == active)

    show_tab(tabs.active)
    tabs.param.watch(lambda e: show_tab(e.new), "active")
    # one panel per row: panels whose content grows (group tables, detail cards) never overlap a neighbour,
    # and collapsing one never squeezes another
    main = pn.Column(views, SelectionManager(state=state), detail, tabs, sizing_mode="stretch_width",
                     css_classes=["xsgpu-main"], styles={"min-width": "0"})
    # Panel gives a stretching layout the sum of its children's fixed widths as min-width, so one wide plot
    # deep in a tab would widen the whole page past the window: the page never gets wider than the window,
    # and wide tab content scrolls inside its tab instead
    layout = pn.Row(sidebar, main, sizing_mode="stretch_width", stylesheets=[_CSS], styles={"min-width": "0"})
    layout.xsgpu_state = state  # for tests and server hooks
    return layout
