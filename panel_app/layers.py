"""The FEA view's layer switch (issue 12.3): maps of earlier layers kept by ``xsgpu infer --layers``.

``xsgpu embed`` maps each kept layer like FEA and writes its coordinates as ``fea_<layer>_x`` /
``fea_<layer>_y`` columns of the embedding tables. The FEA view shows the last block's map (``"fea"``)
first and, when the current method's table has such columns, switches to a layer's map
(:attr:`panel_app.state.AppState.fea_layer`); the selection, filters and detail view stay linked, as
they are ids, not coordinates.
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np

from xsgpu.errors import InputError
from xsgpu.io.runstore import RunStoreError

__all__ = ["LAST_BLOCK", "fea_layers", "layer_coords", "layer_index", "layer_label"]

#: the FEA view's default: the last block's features (``fea_x``/``fea_y``)
LAST_BLOCK = "fea"
_COLUMN = re.compile(r"fea_(?P<layer>[A-Za-z0-9_.-]+)_x")


def _table(data: Any, method: str):
    from xsgpu.embed.run import method_table
    from xsgpu.io.schema import EMBEDDING

    return EMBEDDING if method == data.method else method_table(method)


def fea_layers(data: Any, method: str | None = None) -> list[str]:
    """Layers whose FEA-like map the ``method`` table holds (both columns), in the table's column order."""
    if data.store is None:
        return []
    method = data.method if method is None else str(method)

    def build() -> list[str]:
        import pyarrow.parquet as pq

        path = data.store.table_path(_table(data, method))
        if not path.is_file():
            return []
        names = pq.read_schema(path).names
        return [m["layer"] for c in names if (m := _COLUMN.fullmatch(c)) and f"fea_{m['layer']}_y" in names]

    return data.cached(("fea_layers", method), build)


def layer_coords(data: Any, layer: str, method: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """float32 (x, y) of one layer's map under ``method`` (``"fea"``: the FEA view's default map)."""
    method = data.method if method is None else str(method)
    if layer == LAST_BLOCK:
        return data.coords("FEA", method)
    if layer not in fea_layers(data, method):
        raise InputError(f"The embedding ({method}) of {data.store.path if data.store else 'this run'} has no map of "
                         f"layer {layer!r}; it has {fea_layers(data, method) or 'none'}. Hint: `xsgpu infer RUN "
                         f"--model MODEL --layers {layer} --overwrite` then `xsgpu embed RUN --method {method}`.")

    def build() -> tuple[np.ndarray, np.ndarray]:
        cols = [f"fea_{layer}_x", f"fea_{layer}_y"]
        table = data.store.read_table(_table(data, method), columns=["sample_id", *cols])
        ids = table["sample_id"].to_numpy(np.int64)
        if len(ids) != data.n or not (ids == np.arange(data.n)).all():
            raise RunStoreError(f"{data.store.table_path(_table(data, method))}: sample_id is not 0..{data.n - 1}. "
                             "Hint: rerun `xsgpu embed`.")
        xy = table[cols].to_numpy(np.float32)
        if not np.isfinite(xy).all():
            raise RunStoreError(f"{data.store.table_path(_table(data, method))}: {cols} hold NaN/inf. "
                             "Hint: rerun `xsgpu embed`.")
        return np.ascontiguousarray(xy[:, 0]), np.ascontiguousarray(xy[:, 1])

    return data.cached(("coords", "fea", layer, method), build)


def layer_index(data: Any, layer: str, method: str | None = None):
    """The process-wide spatial index of one layer's map (built once, like :func:`space_index`)."""
    from panel_app.views.index import SpatialIndex, space_index

    method = data.method if method is None else str(method)
    if layer == LAST_BLOCK:
        return space_index(data, "FEA", method)
    return data.cached(("index", "FEA", layer, method), lambda: SpatialIndex(*layer_coords(data, layer, method)))


def layer_label(layer: str) -> str:
    """What the selector and the view's title call a layer (``"last block"`` for the default)."""
    return "last block" if layer == LAST_BLOCK else layer
