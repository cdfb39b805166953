"""Colouring the maps by where an attribute's heatmap lies (issue 12.5): on the beamstop or the image edge.

``xsgpu evaluate`` writes ``heatmap_shares.parquet`` (:mod:`xsgpu.explain.shares`): per image and
attribute the share of the positive class-activation mass on masked/zero pixels (``beamstop__<slug>``)
and on the outer 10 % border (``edge__<slug>``). The app offers each column as a colour-by choice
("Heatmap on beamstop: Ring"); the raster shows the mean share per pixel, glyphs their own share, on
[0, 1]. An image whose map has no positive mass (NaN in the table) is coloured as share 0. A run without
the table, or with one from another model's heatmaps, offers no such choice.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from xsgpu.io.schema import HEATMAP_SHARES

__all__ = ["SHARE_KINDS", "is_share_key", "share_tables", "share_keys", "share_label", "share_values"]

log = logging.getLogger(__name__)

#: column prefix -> words in the colour-by label
SHARE_KINDS = {"beamstop": "beamstop", "edge": "edge"}


def is_share_key(key: str) -> bool:
    """Whether a colour-by value is a heatmap share column (``beamstop__<slug>`` / ``edge__<slug>``)."""
    kind, sep, _ = str(key).partition("__")
    return bool(sep) and kind in SHARE_KINDS


def _load(data: Any) -> dict[str, np.ndarray]:
    store = data.store
    if store is None:
        return {}
    handle = store.artifact(HEATMAP_SHARES)
    try:
        if not handle.path.exists():
            return {}
        want = store.predictions.metadata().get("weights_sha256") if store.predictions.path.exists() else None
        have = handle.metadata().get("weights_sha256")
        if want and have and want != have:
            log.warning("%s holds another model's heatmap shares; rerun `xsgpu evaluate %s`", handle.path, store.path)
            return {}
        df = handle.read()
    except Exception as exc:  # noqa: BLE001 - colouring by shares is an extra; the views work without it
        log.warning("heatmap shares of %s unavailable: %s", store.path, exc)
        return {}
    ids = df["sample_id"].to_numpy(np.int64)
    if len(ids) != data.n or (len(ids) and (ids.min() < 0 or ids.max() >= data.n)):
        log.warning("%s: %d rows for %d images; not shown (rerun `xsgpu evaluate`)", handle.path, len(ids), data.n)
        return {}
    out = {}
    for slug in data.vocabulary.slugs:
        for kind in SHARE_KINDS:
            col = f"{kind}__{slug}"
            if col in df.columns:
                v = np.zeros(data.n, np.float32)
                v[ids] = np.nan_to_num(df[col].to_numpy(np.float32), nan=0.0)
                out[col] = v
    return out


def share_tables(data: Any) -> dict[str, np.ndarray]:
    """Every share column of the run: ``{"beamstop__ring": float32 (N,), ...}`` (read once per run)."""
    return data.cached(("heatmap_shares",), lambda: _load(data))


def share_keys(data: Any) -> list[str]:
    """The colour-by values the run offers: beamstop shares of every attribute, then edge shares."""
    tables = share_tables(data)
    return [f"{kind}__{s}" for kind in SHARE_KINDS for s in data.vocabulary.slugs if f"{kind}__{s}" in tables]


def share_label(key: str, vocabulary: Any) -> str:
    """``"Heatmap on beamstop: Ring"`` for ``beamstop__ring``."""
    kind, _, slug = key.partition("__")
    return f"Heatmap on {SHARE_KINDS[kind]}: {vocabulary.resolve(slug).name}"


def share_values(data: Any, key: str) -> np.ndarray:
    """float32 (N,) shares in [0, 1] of one colour-by key (NaN read as 0)."""
    return share_tables(data)[key]
