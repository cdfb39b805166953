"""Precompute the panels' shared results at server start, so the first session does not pay for them."""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

__all__ = ["warm_up", "warm_up_steps"]

log = logging.getLogger(__name__)


def warm_up_steps(data: Any, *, cutoff: float = 0.5, device: str = "cpu") -> list[tuple[str, Callable[[], Any]]]:
    """The steps of :func:`warm_up`, in order, as ``(name, step)`` pairs (a server runs them one at a time
    in the background, between page builds).

    Parameters
    ----------
    data : panel_app.data.RunData
    cutoff : float
        The app's default cut-off.
    device : {'cpu', 'gpu'}
        The server's device (``'gpu'``: the selection scorer is built on the GPU copies of the labels).

    Returns
    -------
    list of (str, callable)
        ``fea_index``, ``overview``, ``study``, ``cooccurrence``, ``suspicious``, ``scorer``; each step leaves its
        result in the process-wide caches of ``data``.
    """
    from panel_app.panels.neighbours import feature_index
    from panel_app.panels.overview import ModelOverview
    from panel_app.panels.selection import SelectionManager
    from panel_app.panels.study import AttributeStudyPanel, CooccurrencePanel
    from panel_app.panels.suspicious import SuspiciousPanel
    from panel_app.state import AppState

    state = AppState(data=data, cutoff=cutoff, device=device)
    # what a stage has not written yet is skipped here; the panels say which command writes it
    has_reduced = data.features is not None and (data.store is None or data.store.fea_reduced.exists())
    has_suspicious = data.store is not None and data.store.suspicious.exists()
    return [("fea_index", lambda: feature_index(data) if has_reduced else None),
            ("overview", lambda: ModelOverview(state=state).metrics()),
            ("study", lambda: AttributeStudyPanel(state=state).matrices()),
            ("cooccurrence", lambda: CooccurrencePanel(state=state).table()),
            ("suspicious", lambda: SuspiciousPanel(state=state).ranking() if has_suspicious else None),
            ("scorer", lambda: SelectionManager(state=state).scorer())]


def warm_up(data: Any, *, cutoff: float = 0.5, device: str = "cpu") -> dict[str, float]:
    """Build the FEA neighbour index and the default overview, study, co-occurrence and suspicious results.

    Parameters
    ----------
    data : panel_app.data.RunData
        The process-wide run; results land in its cache and every later session reuses them.
    cutoff : float
        The app's default cut-off.
    device : {'cpu', 'gpu'}
        The server's device (see :func:`warm_up_steps`).

    Returns
    -------
    dict
        Seconds per step: ``fea_index``, ``overview``, ``study``, ``cooccurrence``, ``suspicious``,
        ``scorer`` (the selection manager's, so that the first selection does not build it).
    """
    out: dict[str, float] = {}
    for name, step in warm_up_steps(data, cutoff=cutoff, device=device):
        t0 = time.perf_counter()
        step()
        out[name] = time.perf_counter() - t0
    log.info("panels warm-up: %s", {k: round(v, 2) for k, v in out.items()})
    return out
