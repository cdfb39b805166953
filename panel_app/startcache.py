"""Derived arrays the app needs at start, cached in the run store and memory-mapped on later starts.

The first ``xsgpu serve`` of a run builds each array (labels from ``samples``, probabilities from
``predictions``, the embedded coordinates, the x-order of every space's spatial index) and writes it to
``RUN/app_cache/<name>.npy`` (schema artifact ``app_cache/{name}``) atomically, with a ``<name>.json``
key next to it: the sizes and mtimes of the source artifacts' files. Later starts whose sources have the
same key ``np.load(..., mmap_mode='r')`` the array instead of parsing Parquet or sorting; a changed source
(a rerun stage, an edited partition) changes the key and the array is rebuilt. A run store the server
cannot write to is served from arrays built in memory (logged once).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from xsgpu.io.atomic import atomic_path
from xsgpu.io.schema import APP_CACHE, Artifact

__all__ = ["source_key", "cached_array"]

log = logging.getLogger(__name__)


def source_key(store: Any, sources: Iterable[Artifact]) -> list:
    """Sizes and mtimes (ns) of every file of the ``sources`` artifacts (sorted relative paths)."""
    out: list = []
    for art in sources:
        root = store.entry_path(art)
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
        for f in files:
            if f.name.startswith("."):  # temporary files of a write in progress
                continue
            st = f.stat()
            out.append([str(f.relative_to(store.path)), st.st_size, st.st_mtime_ns])
        if not files:
            out.append([art.entry, None, None])
    return out


def cached_array(store: Any, name: str, sources: Iterable[Artifact], build: Callable[[], np.ndarray],
                 *, version: int = 1, extra: Any = None) -> np.ndarray:
    """``RUN/app_cache/<name>.npy`` memory-mapped when its key matches ``sources``; else ``build()``, written.

    Parameters
    ----------
    store : RunStore
    name : str
        Cache entry name (letters, digits, ``_ . -``).
    sources : iterable of Artifact
        What the array is derived from; their files' sizes and mtimes are the key.
    build : callable
        Computes the array (one row per sample).
    version : int
        Bump when ``build`` changes what it computes.
    extra : JSON-serialisable, optional
        Anything else the array depends on (e.g. the vocabulary's column names); part of the key.

    Returns
    -------
    ndarray
        Read-only memory map (cache hit or freshly written), or the built array when the store is read-only.
    """
    art = APP_CACHE.named(name=name)
    path = store.npy_path(art)
    key_path = path.with_suffix(".json")
    key = {"version": version, "n": int(store.n_samples), "sources": source_key(store, sources),
           "extra": extra}
    try:
        if key_path.is_file() and path.is_file() and json.loads(key_path.read_text()) == key:
            return store.load_npy(art, mmap=True)
    except (OSError, ValueError) as exc:  # unreadable cache: rebuild it
        log.warning("app cache %s unreadable (%s); rebuilding", path, exc)
    arr = build()
    try:
        store.write_npy(art, arr)
        with atomic_path(key_path) as tmp:
            Path(tmp).write_text(json.dumps(key))
        return store.load_npy(art, mmap=True)
    except OSError as exc:
        log.warning("app cache %s not written (%s); serving from memory", path, exc)
        return arr


def cache_dir(store: Any) -> Path:
    """The directory of the app cache (``RUN/app_cache``); delete it to force a rebuild."""
    return store.npy_path(APP_CACHE.named(name="x")).parent

