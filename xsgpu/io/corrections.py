"""Label corrections: an append-only log of expert fixes to ACT, applied on read and exported as a label file.

A scientist who finds a wrong true label (ACT) in the app records a correction: which sample, which
attribute, the new value and a note. Each correction is one row appended to ``RUN/corrections.parquet/``
as its own part file (:meth:`xsgpu.io.runstore.RunStore.append_rows` with a unique, time-ordered key),
so concurrent sessions never overwrite each other and a crash never leaves a half-written log.
``samples.parquet`` is never modified: the corrected ACT is ``apply_corrections(store.labels(),
read_corrections(store))``, where the latest correction of a (sample, attribute) pair wins.

Table ``corrections`` (docs/architecture.md)::

    sample_id int64 | attribute str (slug) | old bool | new bool | note str | user str | time str (UTC ISO)

Examples
--------
>>> import numpy as np, pandas as pd
>>> y = np.zeros((3, 17), dtype=bool)
>>> log = pd.DataFrame({"sample_id": [1, 1], "attribute": ["ring", "ring"], "old": [False, True],
...                     "new": [True, False], "note": ["", "undo"], "user": ["", ""],
...                     "time": ["2026-01-01T00:00:00.000001+00:00", "2026-01-01T00:00:01.000000+00:00"]})
>>> apply_corrections(y, log)[1, 12]  # the later correction (back to False) wins
np.False_
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from xsgpu.attributes import DEFAULT_VOCABULARY, NAMES, Vocabulary
from xsgpu.errors import StoreLocked
from xsgpu.io.atomic import atomic_path
from xsgpu.io.locks import stage_lock
from xsgpu.io.runstore import RunStore, RunStoreError
from xsgpu.io.schema import CORRECTIONS

__all__ = [
    "CORRECTIONS_COLUMNS", "record_correction", "read_corrections", "apply_corrections",
    "corrected_labels", "export_labels", "compact_corrections",
]

log = logging.getLogger(__name__)

#: Columns of ``corrections.parquet``, in order.
CORRECTIONS_COLUMNS = ["sample_id", "attribute", "old", "new", "note", "user", "time"]
_TABLE = CORRECTIONS


def _empty_corrections() -> pd.DataFrame:
    return pd.DataFrame({
        "sample_id": pd.Series([], dtype="int64"), "attribute": pd.Series([], dtype=object),
        "old": pd.Series([], dtype=bool), "new": pd.Series([], dtype=bool),
        "note": pd.Series([], dtype=object), "user": pd.Series([], dtype=object),
        "time": pd.Series([], dtype=object),
    })


def _check_bool(value: Any, *, name: str, func: str) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and int(value) in (0, 1):
        return bool(value)
    raise ValueError(f"The {name!r} parameter of {func} must be a bool (or 0/1). Got {value!r} instead.")


def _check_sample_id(sample_id: Any, n: int, *, func: str) -> int:
    if isinstance(sample_id, (bool, np.bool_)) or not isinstance(sample_id, (int, np.integer)):
        raise ValueError(f"The 'sample_id' parameter of {func} must be an int in [0, {n}). "
                         f"Got {sample_id!r} instead.")
    if not 0 <= int(sample_id) < n:
        raise ValueError(f"The 'sample_id' parameter of {func} must be an int in [0, {n}) "
                         f"(the run has {n} samples). Got {sample_id!r} instead.")
    return int(sample_id)


def _stored_label(store: RunStore, sample_id: int, column: str) -> bool:
    """Read one ACT value from ``samples.parquet``, touching only the partition that holds it."""
    part_file = store.samples.partition_path(sample_id // store.partition_size)
    if part_file.is_file():
        df = pq.read_table(part_file, columns=["sample_id", column]).to_pandas()
    else:
        df = store.samples.read(columns=["sample_id", column])
    row = df.loc[df["sample_id"] == sample_id, column]
    if len(row) != 1:
        raise RunStoreError(f"{store.path}: samples table holds {len(row)} rows for sample_id {sample_id} "
                            "(expected exactly 1). Hint: the run store is incomplete; rerun ingest/synth.")
    return bool(row.iloc[0])


def read_corrections(store: RunStore) -> pd.DataFrame:
    """Read every recorded correction of a run, oldest first.

    Parameters
    ----------
    store : RunStore
        The run.

    Returns
    -------
    pd.DataFrame
        Columns :data:`CORRECTIONS_COLUMNS`, sorted by ``time`` (ties keep the order of recording);
        empty (with those columns) when nothing was recorded yet.
    """
    if not store.table_path(_TABLE).exists():
        return _empty_corrections()
    df = store.read_table(_TABLE)
    if df.empty:
        return _empty_corrections()
    missing = [c for c in CORRECTIONS_COLUMNS if c not in df.columns]
    if missing:
        raise RunStoreError(f"{store.table_path(_TABLE)}: columns {missing} are missing "
                            f"(expected {CORRECTIONS_COLUMNS}). Hint: a file there was not written by xsgpu.")
    # Part files are named by time, so the read order is already chronological; sort stably anyway.
    # a part read twice (listed again while a compaction merged it) gives the same row twice: drop it
    df = df[CORRECTIONS_COLUMNS].drop_duplicates().sort_values("time", kind="stable").reset_index(drop=True)
    return df.astype({"sample_id": "int64", "old": bool, "new": bool})


def apply_corrections(y_true: np.ndarray, corrections: pd.DataFrame, *, vocabulary: Vocabulary | None = None) -> np.ndarray:
    """Apply a correction log to ACT; the latest correction of each (sample_id, attribute) wins.

    Parameters
    ----------
    y_true : np.ndarray of bool, shape (n, 17)
        ACT as stored (not modified).
    corrections : pd.DataFrame
        As returned by :func:`read_corrections` (needs ``sample_id``, ``attribute``, ``new`` and
        ``time``; rows are taken in ``time`` order, ties in row order).
    vocabulary : Vocabulary, optional
        The attributes of ``y_true``'s columns (a run's ``store.vocabulary``); default the paper's 17.

    Returns
    -------
    np.ndarray of bool, shape (n, 17)
        A corrected copy.

    Raises
    ------
    ValueError
        If ``y_true`` is not (n, 17), or a correction names an unknown attribute or a sample id
        outside 0..n-1.
    """
    vocab = vocabulary or DEFAULT_VOCABULARY
    y = np.asarray(y_true)
    if y.ndim != 2 or y.shape[1] != len(vocab):
        raise ValueError(f"The 'y_true' parameter of apply_corrections must have shape (n, {len(vocab)}). "
                         f"Got shape {y.shape} instead.")
    out = y.astype(bool, copy=True)
    if corrections is None or len(corrections) == 0:
        return out
    for col in ("sample_id", "attribute", "new"):
        if col not in corrections.columns:
            raise ValueError(f"The 'corrections' parameter of apply_corrections needs a {col!r} column. "
                             f"Got columns {list(corrections.columns)} instead.")
    c = corrections
    if "time" in c.columns:
        c = c.sort_values("time", kind="stable")
    ids = c["sample_id"].to_numpy(np.int64)
    bad_ids = ids[(ids < 0) | (ids >= len(out))]
    if len(bad_ids):
        raise ValueError(f"The 'corrections' parameter of apply_corrections names sample ids "
                         f"{sorted(set(bad_ids.tolist()))[:10]} outside 0..{len(out) - 1}. "
                         "Hint: the corrections belong to another run.")
    cols = c["attribute"].map({s: i for i, s in enumerate(vocab.slugs)})
    if cols.isna().any():
        unknown = sorted(set(c["attribute"][cols.isna()].astype(str)))
        raise ValueError(f"The 'corrections' parameter of apply_corrections names unknown attributes "
                         f"{unknown}. Valid slugs: {', '.join(vocab.slugs)}.")
    # Fancy assignment with repeated indices keeps the last write, i.e. the latest correction.
    out[ids, cols.to_numpy(np.int64)] = c["new"].to_numpy(bool)
    return out


def corrected_labels(store: RunStore) -> np.ndarray:
    """Return the run's ACT with every recorded correction applied, bool (N, 17)."""
    return apply_corrections(store.labels(), read_corrections(store), vocabulary=store.vocabulary)


def record_correction(
    store: RunStore,
    *,
    sample_id: int,
    attribute: str | int,
    new: bool,
    note: str = "",
    user: str = "",
) -> pd.DataFrame:
    """Append one label correction to ``corrections.parquet``.

    Parameters
    ----------
    store : RunStore
        The run (its ``samples`` table must exist).
    sample_id : int
        The sample, 0 <= sample_id < N.
    attribute : str or int
        Display name, slug, column name or index (:func:`xsgpu.attributes.resolve_attribute`); stored as slug.
    new : bool
        The right value of the attribute for this sample.
    note : str
        Free text (why), stored with the row.
    user : str
        Who recorded it (the app passes the logged-in user when auth is on).

    Returns
    -------
    pd.DataFrame
        The one row written (columns :data:`CORRECTIONS_COLUMNS`); ``old`` is the value in force before
        this correction (ACT with the earlier corrections applied), ``time`` the UTC ISO time.

    Raises
    ------
    ValueError
        For a bad ``sample_id``, ``attribute``, ``new`` or ``note``.
    """
    func = "record_correction"
    sid = _check_sample_id(sample_id, store.n_samples, func=func)
    try:
        attr = store.vocabulary.resolve(attribute)
    except KeyError as exc:
        raise ValueError(f"The 'attribute' parameter of {func} must name one of the {len(store.vocabulary)} "
                         f"attributes of the run. {exc.args[0]}") from None
    new_value = _check_bool(new, name="new", func=func)
    if not isinstance(note, str) or not isinstance(user, str):
        raise ValueError(f"The 'note' and 'user' parameters of {func} must be str. "
                         f"Got {type(note).__name__} and {type(user).__name__} instead.")
    old_value = _stored_label(store, sid, attr.label_column)
    earlier = read_corrections(store)
    mine = earlier[(earlier["sample_id"] == sid) & (earlier["attribute"] == attr.slug)]
    if len(mine):
        old_value = bool(mine["new"].iloc[-1])
    now = _dt.datetime.now(_dt.timezone.utc)
    row = pd.DataFrame({
        "sample_id": pd.Series([sid], dtype="int64"), "attribute": [attr.slug],
        "old": [old_value], "new": [new_value], "note": [note], "user": [user],
        "time": [now.isoformat(timespec="microseconds")],
    })
    key = f"{now.strftime('%Y%m%dT%H%M%S%f')}-{sid}-{attr.slug}-{uuid.uuid4().hex[:8]}"
    store.append_rows(_TABLE, row, key=key)
    log.info("Recorded correction in %s: sample %d %s %s -> %s", store.path, sid, attr.slug, old_value, new_value)
    return row


def compact_corrections(store: RunStore) -> int:
    """Merge the correction part files into one (reading thousands of one-row files is slow).

    The merged file is written atomically before the parts it replaces are deleted, and only the parts
    read are deleted, so a correction recorded meanwhile is kept and a crash loses nothing (at worst a
    part is read twice, which :func:`read_corrections` drops). The merged file is named after the last
    correction it holds, so the log's stamp still changes. Readers that list a part which a compaction
    deletes before they read it list again (:meth:`RunStore.read_table`), so recording a correction
    during a compaction never fails. One compaction runs at a time (lock ``corrections-compact``); a
    second one finds the lock taken and merges nothing.

    Returns
    -------
    int
        Number of part files merged (0 when there were fewer than 2, or another compaction was running).
    """
    d = store.table_path(_TABLE)
    if not d.is_dir():
        return 0
    try:
        with stage_lock(store.path, "corrections-compact"):
            return _compact_locked(store, d)
    except StoreLocked as exc:
        log.info("not compacting: %s", exc)
        return 0


def _compact_locked(store: RunStore, d: Path) -> int:
    parts = sorted(f for f in d.iterdir() if f.suffix == ".parquet" and not f.name.startswith("."))
    if len(parts) < 2:
        return 0
    frames = [pq.read_table(f).to_pandas() for f in parts]
    merged = pd.concat(frames, ignore_index=True)[CORRECTIONS_COLUMNS]
    merged = merged.sort_values("time", kind="stable").drop_duplicates().reset_index(drop=True)
    last = parts[-1].stem
    target = store.append_rows(_TABLE, merged, key=f"{last}-compacted-{uuid.uuid4().hex[:8]}")
    for f in parts:
        if f != target:
            f.unlink(missing_ok=True)
    log.info("Compacted %d correction files of %s into %s", len(parts), store.path, target.name)
    return len(parts)


def export_labels(
    store: RunStore,
    out_path: str | os.PathLike,
    *,
    include_unlabelled: bool = False,
) -> pd.DataFrame:
    """Write the corrected label file of a run (the format ``xsgpu ingest --labels`` reads).

    Parameters
    ----------
    store : RunStore
        The run (needs ``samples``; ``corrections`` is optional).
    out_path : path
        ``.csv`` or ``.parquet`` (``.pq``); written atomically.
    include_unlabelled : bool
        Also write samples whose ``labelled`` flag is False and that have no correction (their labels are
        all 0, which ingest would read as "labelled, no attribute"). Samples with a correction are always
        written, since the expert labelled them.

    Returns
    -------
    pd.DataFrame
        The table written: ``source_uri``, ``frame``, ``sample_id``, then the run's attributes
        (``store.vocabulary``; the paper's 17 by default) by display name as int 0/1, one row per sample, ordered by ``sample_id``.

    Raises
    ------
    ValueError
        If ``out_path`` has another suffix.
    """
    out_path = Path(out_path)
    suffix = out_path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise ValueError(f"The 'out_path' parameter of export_labels must end in .csv or .parquet. "
                         f"Got {str(out_path)!r} instead.")
    vocab = store.vocabulary
    samples = store.samples.read()
    missing = [c for c in ["sample_id", "source_uri", "frame"] + vocab.label_columns() if c not in samples.columns]
    if missing:
        raise RunStoreError(f"{store.samples.path}: columns {missing} are missing; cannot export labels.")
    corrections = read_corrections(store)
    y = apply_corrections(samples[vocab.label_columns()].to_numpy(bool), corrections, vocabulary=vocab)
    keep = np.ones(len(samples), dtype=bool)
    if not include_unlabelled and "labelled" in samples.columns:
        keep = samples["labelled"].to_numpy(bool).copy()
        keep[np.unique(corrections["sample_id"].to_numpy(np.int64))] = True
    out = pd.DataFrame({
        "source_uri": samples["source_uri"].astype(str).to_numpy(),
        "frame": samples["frame"].to_numpy(np.int64),
        "sample_id": samples["sample_id"].to_numpy(np.int64),
    })
    for a in vocab:
        out[a.name] = y[:, a.index].astype(np.int8)
    out = out[keep].reset_index(drop=True)
    with atomic_path(out_path) as tmp:
        if suffix == ".csv":
            out.to_csv(tmp, index=False)
        else:
            out.to_parquet(tmp, index=False)
    log.info("Exported %d corrected labels (%d corrections) to %s", len(out), len(corrections), out_path)
    return out


# The 17 display names written by export_labels for a run of the default vocabulary (for readers and tests).
EXPORT_ATTRIBUTE_COLUMNS: tuple[str, ...] = NAMES
