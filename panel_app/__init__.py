"""The xsgpu web app: a thin Panel view over one run store.

Modules
-------
data
    :class:`~panel_app.data.RunData`, the read-only run loaded once per server process.
state
    :class:`~panel_app.state.AppState`, the per-session parameters (cut-off, filters, selection, groups).
views
    The control panel, attribute filters and the three linked embedding views (raster -> flowers).
app
    :func:`~panel_app.app.build_app`, the whole layout.
server
    Serving: address, websocket origins, authentication, the error page.
device
    ``xsgpu serve --device cpu|gpu``: the one check, and the run's CuPy copies on a GPU server.
"""
from __future__ import annotations

__all__ = ["build_app", "load_run_data", "AppState", "RunData"]


def __getattr__(name: str):  # lazy: importing panel_app must not import panel/bokeh
    if name == "build_app":
        from panel_app.app import build_app

        return build_app
    if name in ("load_run_data", "RunData"):
        from panel_app import data

        return getattr(data, name)
    if name == "AppState":
        from panel_app.state import AppState

        return AppState
    raise AttributeError(f"module 'panel_app' has no attribute {name!r}")
