"""Zarr arrays of a run store that refuse to read a missing or corrupt chunk as data.

Zarr returns the fill value (zeros) for a chunk whose file is absent, so a deleted chunk of
``images.zarr`` or ``features.zarr`` would silently become blank frames or zero features, and a
truncated chunk fails deep inside a codec with a message naming neither the array nor the rows.
:class:`CheckedArray` wraps the arrays that :class:`~xsgpu.io.runstore.RunStore` opens: before a read
it checks that the chunk file of every row block read exists, and it turns a failing decode into a
:class:`~xsgpu.errors.CorruptArtifact` naming the array, the rows, the partition and the remedy.

That check is only sound when every written chunk is stored, even an all-zero one, so the store
writes with ``write_empty_chunks=True`` and marks the arrays it creates with the attribute
:data:`COMPLETE_CHUNKS_ATTR`; arrays without the mark (written by older xsgpu versions, which dropped
all-zero chunks) are read without the presence check, but still with the decode check.

Examples
--------
>>> import numpy as np, os, tempfile, zarr
>>> path = tempfile.mkdtemp() + "/features.zarr"
>>> raw = zarr.open_array(path, mode="w", shape=(8, 2), chunks=(4, 2), dtype="f2", fill_value=0)
>>> arr = CheckedArray(raw.with_config({"write_empty_chunks": True}), name="features", path=path,
...                    partition_size=4, checked=True)
>>> arr[:] = np.ones((8, 2))
>>> os.remove(os.path.join(path, "c", "1", "0"))
>>> arr[4:6]
Traceback (most recent call last):
...
xsgpu.errors.CorruptArtifact: ...features.zarr: rows 4..7 (partition 1) have no stored chunk...
"""
from __future__ import annotations

import itertools
import logging
import os
from typing import Any

import numpy as np

from xsgpu.errors import CorruptArtifact
from xsgpu.io.schema import partition_file

__all__ = ["CheckedArray", "COMPLETE_CHUNKS_ATTR", "REMEDIES"]

log = logging.getLogger(__name__)

#: attribute set on arrays whose every written chunk is stored (write_empty_chunks=True)
COMPLETE_CHUNKS_ATTR = "xsgpu_complete_chunks"

#: artifact -> (table whose part marks a finished partition, the command that rewrites it)
REMEDIES: dict[str, tuple[str, str]] = {
    "images": ("samples", "the same `xsgpu ingest` (or `xsgpu synth`) command"),
    "thumbs": ("samples", "the same `xsgpu ingest` (or `xsgpu synth`) command"),
    "features": ("predictions", "`xsgpu infer RUN --model MODEL`"),
}


def _rows_of(key: Any, n: int) -> np.ndarray:
    """Row indices (axis 0) that an indexing key selects from an array of ``n`` rows."""
    first = key[0] if isinstance(key, tuple) and key else (slice(None) if isinstance(key, tuple) else key)
    if first is Ellipsis:
        first = slice(None)
    if isinstance(first, slice):
        return np.arange(*first.indices(n))
    if isinstance(first, (int, np.integer)):
        k = int(first)
        return np.array([k + n if k < 0 else k])
    rows = np.asarray(first)
    if rows.dtype == bool:
        return np.flatnonzero(rows)
    rows = rows.astype(np.int64).ravel()
    return np.where(rows < 0, rows + n, rows)


class CheckedArray:
    """A Zarr array whose reads raise :class:`~xsgpu.errors.CorruptArtifact` on missing or corrupt chunks.

    Everything else (``shape``, ``dtype``, ``chunks``, writes) is the wrapped array's.

    Parameters
    ----------
    array : zarr.Array
        The array (opened with ``write_empty_chunks=True`` when it is written through this wrapper).
    name : str
        Artifact name (``"images"``, ``"thumbs"``, ``"features"``) used in messages.
    path : path
        The array's directory (``RUN/<name>.zarr``).
    partition_size : int
        Rows per partition of the run, to name the partition in messages.
    checked : bool
        Whether to check chunk presence (the array carries :data:`COMPLETE_CHUNKS_ATTR`).
    """

    def __init__(self, array: Any, *, name: str, path: str | os.PathLike, partition_size: int, checked: bool):
        self.array = array
        self.name = name
        self.path = os.fspath(path)
        self.partition_size = int(partition_size)
        self.checked = bool(checked)

    # ---------------------------------------------------------------- delegation
    def __getattr__(self, attr: str) -> Any:
        if attr == "array" or attr.startswith("__"):  # not set yet (unpickling, copying): no recursion
            raise AttributeError(attr)
        return getattr(self.array, attr)

    def __len__(self) -> int:
        return int(self.array.shape[0])

    def __repr__(self) -> str:
        return f"CheckedArray({self.path!r}, shape={tuple(self.array.shape)}, dtype={self.array.dtype})"

    def __setitem__(self, key: Any, value: Any) -> None:
        self.array[key] = value

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[...]
        return out.astype(dtype) if dtype is not None else out

    # ---------------------------------------------------------------- checked reads
    def __getitem__(self, key: Any) -> Any:
        return self._read(key, lambda: self.array[key])

    def get_orthogonal_selection(self, selection: Any, **kwargs: Any) -> Any:
        """Orthogonal selection (as :meth:`zarr.Array.get_orthogonal_selection`), with the chunk checks."""
        return self._read(selection, lambda: self.array.get_orthogonal_selection(selection, **kwargs))

    def _read(self, key: Any, read: Any) -> Any:
        n = int(self.array.shape[0])
        try:
            rows = _rows_of(key, n)
        except (TypeError, ValueError):  # an unusual key: let zarr judge it, still decode-checked
            rows = None
        blocks = self._blocks(rows)
        if self.checked and blocks is not None:
            missing = [b for b in blocks if not self._stored(b)]
            if missing:
                raise CorruptArtifact(self._message(missing, "have no stored chunk (deleted or never written)"))
        try:
            return read()
        except (IndexError, TypeError, KeyError):
            raise
        except Exception as exc:
            bad = self._undecodable(blocks if blocks is not None else range(self.array.cdata_shape[0]))
            raise CorruptArtifact(self._message(bad or list(blocks or []), f"cannot be decoded ({exc})")) from exc

    def _blocks(self, rows: np.ndarray | None) -> list[int] | None:
        if rows is None:
            return None
        rows = rows[(rows >= 0) & (rows < int(self.array.shape[0]))]
        return sorted(set((rows // int(self.array.chunks[0])).tolist()))

    def _chunk_files(self, block: int) -> list[str]:
        rest = [range(c) for c in self.array.cdata_shape[1:]]
        meta = self.array.metadata
        return [os.path.join(self.path, *meta.encode_chunk_key((block, *other)).split("/"))
                for other in itertools.product(*rest)]

    def _stored(self, block: int) -> bool:
        return all(os.path.isfile(f) for f in self._chunk_files(block))

    def _undecodable(self, blocks: Any) -> list[int]:
        step = int(self.array.chunks[0])
        bad = []
        for b in blocks:
            try:
                self.array[b * step:(b + 1) * step]
            except Exception:  # noqa: BLE001 - any decode failure marks the block bad
                bad.append(b)
        return bad

    def _message(self, blocks: list[int], what: str) -> str:
        step, n = int(self.array.chunks[0]), int(self.array.shape[0])
        spans = [(b * step, min((b + 1) * step, n) - 1) for b in blocks[:5]]
        parts = sorted({a // self.partition_size for a, _ in spans})
        rows = ", ".join(f"{a}..{z}" for a, z in spans)
        if len(blocks) > 5:
            rows += f" and {len(blocks) - 5} more blocks"
        table, command = REMEDIES.get(self.name, ("the table of this stage", "the stage that writes it"))
        run = os.path.dirname(self.path.rstrip(os.sep))
        part_files = ", ".join(f"{table}.parquet/{partition_file(p)}" for p in parts[:3])
        where = f"partition {parts[0]}" if len(parts) == 1 else f"partitions {parts[:5]}"
        return (f"{self.path}: rows {rows} ({where}) {what}; reading them would give wrong data. "
                f"Hint: delete {part_files} in {run} and rerun {command} to rewrite those rows"
                + (", or rerun `xsgpu infer RUN --model MODEL --overwrite`." if self.name == "features" else "."))
