"""The model overview's "Neighbourhoods across layers" table (issue 12.3): read, never computed.

``xsgpu embed`` writes ``layer_overlaps.parquet`` for a run that keeps layers (``xsgpu infer --layers``;
:func:`xsgpu.explain.layers.layer_overlaps`): the k-NN overlap between consecutive layers (layer1 ->
layer2 -> layer3 -> the last block) and of each with PRD. The overview shows it as a small table; a run
without the table, or with one made from another model's predictions than the embedding's, shows nothing.
"""
from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import panel as pn

from xsgpu.io.schema import LAYER_OVERLAPS

__all__ = ["read_layer_overlaps", "overlap_rows", "overlap_title", "layer_overlaps_section"]

log = logging.getLogger(__name__)

#: how a representation of the stored table is shown
_SPACE_NAMES = {"fea": "FEA (last block)", "prd": "PRD"}


def _load(data: Any) -> pd.DataFrame:
    """The stored table, or an empty frame (cached like a table, so a run without one is looked at once)."""
    store = data.store
    if store is None:
        return pd.DataFrame()
    handle = store.artifact(LAYER_OVERLAPS)
    try:
        if not handle.path.exists():
            return pd.DataFrame()
        have = handle.metadata().get("predictions")
        want = (data.embedding_meta or {}).get("predictions")
        if want and have and want != have:
            log.warning("%s was made from other predictions than the embedding; rerun `xsgpu embed %s`",
                        handle.path, store.path)
            return pd.DataFrame()
        return handle.read()
    except Exception as exc:  # noqa: BLE001 - the table is an extra; the overview works without it
        log.warning("layer overlaps of %s unavailable: %s", store.path, exc)
        return pd.DataFrame()


def read_layer_overlaps(data: Any) -> pd.DataFrame | None:
    """The run's stored ``layer_overlaps`` table (columns a, b, kind, overlap, k, n), or ``None`` without one.

    Read once per run and server process (``RunData.cached``).
    """
    table = data.cached(("layer_overlaps",), lambda: _load(data))
    return table if len(table) else None


def overlap_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows as shown: ``neighbourhoods in``, ``compared with``, ``overlap`` (3 decimals), table order."""
    def name(s: str) -> str:
        return _SPACE_NAMES.get(str(s), str(s))

    return pd.DataFrame({"neighbourhoods in": [name(s) for s in table["a"]],
                         "compared with": [name(s) for s in table["b"]],
                         "overlap": table["overlap"].astype(float).round(3).to_numpy()})


def overlap_title(table: pd.DataFrame, n_images: int) -> str:
    """Heading of the table: k, how many images, and what 1 and chance mean."""
    k, n = int(table["k"].iloc[0]), int(table["n"].iloc[0])
    on = f"on all {n:,} images" if n >= n_images else f"on {n:,} sampled images"
    chance = k / max(n - 1, 1)
    return (f"**Neighbourhoods across layers** (k-NN overlap, k={k}, {on}): the share of each image's {k} nearest "
            f"neighbours two representations have in common; 1 is the same neighbourhoods, about {chance:.2g} "
            "unrelated ones.")


def layer_overlaps_section(data: Any, *, styles: dict | None = None,
                           stylesheets: list[str] | None = None) -> pn.Column | None:
    """A heading and a small table of the stored overlaps, or ``None`` when the run holds none."""
    table = read_layer_overlaps(data)
    if table is None:
        return None
    return pn.Column(
        pn.pane.Markdown(overlap_title(table, data.n), styles=styles or {}),
        pn.widgets.Tabulator(overlap_rows(table), disabled=True, show_index=False, layout="fit_data_table",
                             stylesheets=stylesheets or [], css_classes=["xsgpu-overview-layers-table"]),
        css_classes=["xsgpu-overview-layers"])
