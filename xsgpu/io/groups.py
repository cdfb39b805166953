"""Named, coloured groups of images (saved selections), kept in the run store so they outlive a session.

A scientist saves a selection as a group in the app; the group must be there when the page is reloaded,
in another browser, and after the server restarts. Each group is one Parquet part file of
``RUN/groups.parquet/``, named by the group's stable id and written atomically (temp file + rename, through
:meth:`xsgpu.io.runstore.RunStore.append_rows`). Renaming or recolouring rewrites only that group's file;
deleting removes it. Two sessions editing different groups never overwrite each other.

Table ``groups`` (long format: one row per member image)::

    group_id str | name str | colour str ('#rrggbb') | created str (UTC ISO) | sample_id int64

Examples
--------
>>> import tempfile
>>> from xsgpu.io.runstore import RunStore
>>> store = RunStore.create(tempfile.mkdtemp() + "/run", n_samples=10, partition_size=10)
>>> g = save_group(store, name="rings", colour="#e41a1c", ids=[3, 1, 3])
>>> [(h.name, h.ids.tolist()) for h in read_groups(store)]
[('rings', [1, 3])]
>>> _ = rename_group(store, g.group_id, name="weak rings")
>>> delete_group(store, g.group_id); read_groups(store)
[]
"""
from __future__ import annotations

import datetime as _dt
import logging
import re
import uuid
from dataclasses import dataclass, field, replace
from typing import Any, Iterable

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from xsgpu.io.runstore import RunStore, RunStoreError
from xsgpu.io.schema import GROUPS

__all__ = ["GROUPS_COLUMNS", "StoredGroup", "save_group", "read_groups", "rename_group", "recolour_group",
           "delete_group", "check_colour"]

log = logging.getLogger(__name__)

#: Columns of ``groups.parquet``, in order.
GROUPS_COLUMNS = ["group_id", "name", "colour", "created", "sample_id"]
_TABLE = GROUPS
_COLOUR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
_ID_RE = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True, eq=False)
class StoredGroup:
    """One group as stored.

    Attributes
    ----------
    group_id : str
        Stable id (32 hex digits): the part file's name; never changes on rename or recolour.
    name : str
    colour : str
        ``'#rrggbb'``.
    created : str
        UTC ISO time of the first save (groups are listed in this order).
    ids : ndarray of int64, shape (k,)
        Sorted, unique sample ids.
    """

    group_id: str
    name: str
    colour: str
    created: str
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


def check_colour(colour: Any, *, func: str) -> str:
    """Validate a ``'#rrggbb'`` colour (returned lower-case)."""
    if not isinstance(colour, str) or not _COLOUR_RE.match(colour):
        raise ValueError(f"The 'colour' parameter of {func} must be a hex colour like '#e41a1c'. "
                         f"Got {colour!r} instead.")
    return colour.lower()


def _check_name(name: Any, *, func: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"The 'name' parameter of {func} must be a non-empty string. Got {name!r} instead.")
    return name.strip()


def _check_ids(ids: Iterable[Any], n: int, *, func: str) -> np.ndarray:
    arr = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids)
    if arr.size == 0:
        raise ValueError(f"The 'ids' parameter of {func} must hold at least one sample id. Got none instead.")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"The 'ids' parameter of {func} must hold integer sample ids. "
                         f"Got dtype {arr.dtype} instead.")
    arr = np.unique(arr.astype(np.int64).ravel())
    if arr[0] < 0 or arr[-1] >= n:
        bad = int(arr[0] if arr[0] < 0 else arr[-1])
        raise ValueError(f"The 'ids' parameter of {func} must hold sample ids in 0..{n - 1} "
                         f"(the run has {n} samples). Got {bad} instead.")
    return arr


def _check_group_id(group_id: Any, *, func: str) -> str:
    if not isinstance(group_id, str) or not _ID_RE.match(group_id):
        raise ValueError(f"The 'group_id' parameter of {func} must be 32 hex digits (as save_group returns). "
                         f"Got {group_id!r} instead.")
    return group_id


def _part(store: RunStore, group_id: str):
    return store.append_path(_TABLE, group_id)


def _write(store: RunStore, g: StoredGroup) -> None:
    k = len(g.ids)
    df = pd.DataFrame({
        "group_id": pd.Series([g.group_id] * k, dtype=object), "name": pd.Series([g.name] * k, dtype=object),
        "colour": pd.Series([g.colour] * k, dtype=object), "created": pd.Series([g.created] * k, dtype=object),
        "sample_id": np.asarray(g.ids, dtype=np.int64),
    })
    store.append_rows(_TABLE, df, key=g.group_id)   # atomic: temp file + rename onto <group_id>.parquet


def _read_part(path) -> StoredGroup:
    df = pq.read_table(path).to_pandas()
    missing = [c for c in GROUPS_COLUMNS if c not in df.columns]
    if missing or df.empty:
        raise RunStoreError(f"{path}: columns {missing} are missing or the group is empty "
                            f"(expected {GROUPS_COLUMNS}). Hint: a file there was not written by xsgpu.")
    first = df.iloc[0]
    return StoredGroup(group_id=str(first["group_id"]), name=str(first["name"]), colour=str(first["colour"]),
                       created=str(first["created"]), ids=np.sort(df["sample_id"].to_numpy(np.int64)))


def read_groups(store: RunStore) -> list[StoredGroup]:
    """Every stored group of a run, oldest first (empty list when none was saved).

    Raises
    ------
    RunStoreError
        If a part file of ``groups.parquet/`` was not written by xsgpu.
    """
    d = store.table_path(_TABLE)
    if not d.is_dir():
        return []
    parts = [f for f in d.iterdir() if f.suffix == ".parquet" and not f.name.startswith(".")]
    groups = [_read_part(f) for f in parts]
    return sorted(groups, key=lambda g: (g.created, g.group_id))


def _find(store: RunStore, group_id: str, *, func: str) -> StoredGroup:
    gid = _check_group_id(group_id, func=func)
    path = _part(store, gid)
    if not path.is_file():
        raise KeyError(f"{func}: no group {gid!r} in {store.table_path(_TABLE)} (deleted by another session?).")
    return _read_part(path)


def _check_unique(store: RunStore, name: str, *, func: str, except_id: str | None = None) -> None:
    taken = {g.name for g in read_groups(store) if g.group_id != except_id}
    if name in taken:
        raise ValueError(f"The 'name' parameter of {func} must be new; a group {name!r} exists.")


def save_group(store: RunStore, *, name: str, colour: str, ids: Iterable[int] | np.ndarray) -> StoredGroup:
    """Store a new group.

    Parameters
    ----------
    store : RunStore
    name : str
        Unique among the run's groups.
    colour : str
        ``'#rrggbb'``.
    ids : iterable of int
        Sample ids in ``0..N-1`` (sorted and de-duplicated before writing).

    Returns
    -------
    StoredGroup
        With a new ``group_id``.

    Raises
    ------
    ValueError
        For an empty or taken name, a bad colour, no ids or ids out of range.
    """
    func = "save_group"
    name = _check_name(name, func=func)
    colour = check_colour(colour, func=func)
    arr = _check_ids(ids, store.n_samples, func=func)
    _check_unique(store, name, func=func)
    g = StoredGroup(group_id=uuid.uuid4().hex, name=name, colour=colour,
                    created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds"), ids=arr)
    _write(store, g)
    log.info("Saved group %r (%d images) in %s", name, len(arr), store.path)
    return g


def rename_group(store: RunStore, group_id: str, *, name: str) -> StoredGroup:
    """Give a stored group a new (unique) name; returns the updated group."""
    func = "rename_group"
    name = _check_name(name, func=func)
    g = _find(store, group_id, func=func)
    _check_unique(store, name, func=func, except_id=g.group_id)
    g = replace(g, name=name)
    _write(store, g)
    return g


def recolour_group(store: RunStore, group_id: str, *, colour: str) -> StoredGroup:
    """Give a stored group a new ``'#rrggbb'`` colour; returns the updated group."""
    colour = check_colour(colour, func="recolour_group")
    g = replace(_find(store, group_id, func="recolour_group"), colour=colour)
    _write(store, g)
    return g


def delete_group(store: RunStore, group_id: str) -> None:
    """Remove a stored group (a group already deleted, e.g. by another session, is not an error)."""
    gid = _check_group_id(group_id, func="delete_group")
    _part(store, gid).unlink(missing_ok=True)
    log.info("Deleted group %s from %s", gid, store.path)
