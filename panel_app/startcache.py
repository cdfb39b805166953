"""Derived arrays the app needs at start, cached in the run store and memory-mapped on later starts.

The pipeline's last stage, ``app_cache`` (:func:`prepare_app_cache`), builds each array the app needs at
start (labels from ``samples``, probabilities from ``predictions``, the embedded coordinates, the x-order
and sorted points of every space's spatial index, the per-attribute probability order) and writes it to
``RUN/app_cache/<name>.npy`` (schema artifact ``app_cache/{name}``) atomically, with a ``<name>.json``
key next to it: the names of the source artifacts and the sizes and mtimes of their files. A run made
without the pipeline gets the same arrays on its first ``xsgpu serve``. Starts whose sources have the
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

__all__ = ["source_key", "cached_array", "prepare_app_cache", "stale_entries", "start_entries", "index_entry"]

log = logging.getLogger(__name__)


def index_entry(part: str, space: str, method: str | None = None) -> str:
    """The cache entry of one array of a space's spatial index: ``part`` ``order``, ``xs`` or ``ys``, under
    embedding ``method`` (``None``: the run's first, which every start reads)."""
    return f"index_{part}_{space.lower()}" + ("" if method is None else f"_{method}")


def start_entries(spaces: Iterable[str] = ("ACT", "FEA", "PRD")) -> tuple[str, ...]:
    """The entries every start of the app reads: the run's arrays and the spatial index of each of ``spaces``
    under the first embedding method (other methods' and layers' indexes are built when first shown)."""
    return ("labels", "probabilities", "coords", "probability_order") + tuple(
        index_entry(part, space) for space in spaces for part in ("order", "xs", "ys"))


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


def _cache_key(store: Any, sources: Iterable[Artifact], *, version: int, extra: Any) -> dict:
    """The key written beside an entry: what it was built from (artifact names and their files' sizes and
    mtimes), the run's size, the build's version and ``extra``."""
    sources = list(sources)
    return {"version": version, "n": int(store.n_samples), "artifacts": [a.name for a in sources],
            "sources": source_key(store, sources), "extra": extra}


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
    key = _cache_key(store, sources, version=version, extra=extra)
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


def _entry_is_current(store: Any, name: str) -> bool:
    """Whether ``app_cache/<name>`` exists and its key still matches its sources' files."""
    from xsgpu.io.schema import lookup

    path = store.npy_path(APP_CACHE.named(name=name))
    key_path = path.with_suffix(".json")
    try:
        key = json.loads(key_path.read_text())
        sources = [lookup(a) for a in key["artifacts"]]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    # the key it would be written with now (its recorded build version and extra: the stage has no builder)
    return path.is_file() and key == _cache_key(store, sources, version=key.get("version"), extra=key.get("extra"))


def stale_entries(store: Any, names: Iterable[str]) -> list[str]:
    """The ``names`` whose cached array is missing or older than its sources."""
    return [n for n in names if not _entry_is_current(store, n)]


def prepare_app_cache(run_path: Any, *, spaces: Iterable[str] = ("ACT", "FEA", "PRD")) -> list[str]:
    """Build every array of :func:`start_entries` that is missing or stale (what the first serve would).

    Parameters
    ----------
    run_path : path
        An embedded run store (samples, predictions, embedding).
    spaces : iterable of str
        The spaces whose spatial index is written.

    Returns
    -------
    list of str
        The entries that were (re)built.
    """
    from panel_app.data import load_run_data
    from panel_app.views.index import space_index
    from xsgpu.io.runstore import RunStore

    spaces = [s.upper() for s in spaces]
    before = stale_entries(RunStore.open(run_path), start_entries(spaces))
    if before:
        data = load_run_data(run_path, use_cache=False)
        for space in spaces:
            space_index(data, space)
        data.probability_order()
    log.info("app cache of %s: %s", run_path, f"built {', '.join(before)}" if before else "up to date")
    return before
