"""The run store: one directory per run, every artifact keyed by a dense ``sample_id`` (0..N-1).

Layout (DESIGN.md "The run store")::

    RUN/manifest.json            schema version, attributes, stage status, params, counts
    RUN/samples.parquet/         part-00000.parquet ... (one file per partition)
    RUN/images.zarr              N x H x W model-ready log-scaled frames (float16)
    RUN/thumbs.zarr              N x 64 x 64 uint8 previews
    RUN/predictions.parquet/     per partition (infer)
    RUN/features.zarr            N x D features (infer)
    RUN/embedding.parquet        (embed)
    RUN/fea_reduced.npy          N x k float32: FEA after the embed stage's PCA (embed; app neighbours)
    RUN/metrics.parquet          (evaluate)
    RUN/suspicious.parquet       ranked likely label errors over all images (evaluate)
    RUN/errors.parquet/          <stage>-<key>.parquet per writer (bad inputs, never dropped silently)
    RUN/corrections.parquet/     append-only label corrections (the app)

Atomicity and resume: a partition is *finished* exactly when its Parquet part file exists. Writers fill
the partition's rows of any Zarr array first, then write the Parquet part to a temporary name and rename
it. A killed job therefore leaves no finished-looking partition with missing data, and a rerun skips the
finished partitions (:meth:`RunStore.finished_partitions`) and redoes the rest; Zarr chunks never span
two partitions (the partition size is a multiple of the chunk rows), so redoing one is idempotent.

Examples
--------
>>> import pandas as pd, tempfile
>>> from xsgpu.io.runstore import RunStore
>>> store = RunStore.create(tempfile.mkdtemp() + "/run", n_samples=10, partition_size=4)
>>> store.n_partitions, store.partition_bounds(2)
(3, (8, 10))
>>> store.write_partition("samples", 0, pd.DataFrame({"sample_id": [0, 1, 2, 3]}))
>>> sorted(store.finished_partitions("samples"))
[0]
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from xsgpu import __version__
from xsgpu.attributes import NAMES, label_columns
from xsgpu.errors import CorruptArtifact, StoreError
from xsgpu.io.chunks import COMPLETE_CHUNKS_ATTR, CheckedArray
from xsgpu.io.atomic import atomic_path, write_json_atomic

__all__ = ["RunStore", "RunStoreError", "SCHEMA_VERSION", "ERRORS_COLUMNS", "NPY_ARRAYS"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
ERRORS_COLUMNS = ["source_uri", "stage", "error_type", "message"]
#: small dense arrays kept as single ``RUN/<name>.npy`` files (memory-mappable, written atomically)
NPY_ARRAYS = ("fea_reduced",)
_PART_RE = re.compile(r"^part-(\d{5,})\.parquet$")


class RunStoreError(StoreError):
    """A run store is missing, incomplete or inconsistent; the message names the path and the remedy."""


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class RunStore:
    """Read and write one run directory.

    Use :meth:`create` for a new run and :meth:`open` for an existing one.

    Parameters
    ----------
    path : path
        The run directory (must hold ``manifest.json``).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._manifest: dict[str, Any] | None = None

    # ------------------------------------------------------------------ creation / manifest
    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        *,
        n_samples: int,
        partition_size: int = 4096,
        params: dict | None = None,
        producer: str = "xsgpu",
        exist_ok: bool = True,
    ) -> "RunStore":
        """Create (or reopen for resume) a run directory with a manifest.

        Parameters
        ----------
        n_samples : int
            Number of samples N; ``sample_id`` runs over 0..N-1.
        partition_size : int
            Rows per partition (DESIGN: 1k-10k for real runs; small values are fine in tests).
        params : dict, optional
            Parameters of the producing stage, recorded in the manifest.
        exist_ok : bool
            If the directory already has a manifest with the same ``n_samples`` and ``partition_size``,
            reopen it (resume). A mismatch raises :class:`RunStoreError`.
        """
        if n_samples < 0 or partition_size < 1:
            raise ValueError(f"n_samples must be >= 0 and partition_size >= 1; got {n_samples}, {partition_size}.")
        store = cls(path)
        if store.manifest_path.exists():
            if not exist_ok:
                raise RunStoreError(f"{store.path} already holds a run; choose another --out or delete it.")
            man = store.manifest
            if man["n_samples"] != n_samples or man["partition_size"] != partition_size:
                raise RunStoreError(
                    f"{store.path} already holds a run with n_samples={man['n_samples']}, "
                    f"partition_size={man['partition_size']}; this call asks for {n_samples}, {partition_size}. "
                    "Hint: resume with the same parameters or write to a new directory."
                )
            return store
        store.path.mkdir(parents=True, exist_ok=True)
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "attributes": list(NAMES),
            "producer": {"name": producer, "xsgpu": __version__},
            "created": _now(),
            "n_samples": int(n_samples),
            "partition_size": int(partition_size),
            "params": params or {},
            "stages": {},
        }
        write_json_atomic(store.manifest_path, manifest)
        store._manifest = manifest
        return store

    @classmethod
    def open(cls, path: str | os.PathLike, *, require: Iterable[str] = ()) -> "RunStore":
        """Open an existing run, checking that the named artifacts (e.g. ``"samples"``) exist.

        Raises
        ------
        RunStoreError
            If the directory or its manifest is missing, the schema is newer than this code, the
            attributes differ from :mod:`xsgpu.attributes`, or a required artifact is absent.
        """
        store = cls(path)
        if not store.path.is_dir():
            raise RunStoreError(f"No run store at {store.path}: the directory does not exist. "
                                "Hint: create one with `xsgpu synth` or `xsgpu ingest`.")
        if not store.manifest_path.exists():
            raise RunStoreError(f"{store.path} is not a run store: manifest.json is missing. "
                                "Hint: create one with `xsgpu synth` or `xsgpu ingest`.")
        man = store.manifest
        if man.get("schema_version", 0) > SCHEMA_VERSION:
            raise RunStoreError(f"{store.manifest_path}: schema_version {man.get('schema_version')} is newer "
                                f"than this xsgpu understands ({SCHEMA_VERSION}); upgrade xsgpu.")
        if list(man.get("attributes", [])) != list(NAMES):
            raise RunStoreError(f"{store.manifest_path}: field 'attributes' is {man.get('attributes')}, "
                                f"but this xsgpu uses {list(NAMES)}.")
        for name in require:
            if not store.has(name):
                raise RunStoreError(f"{store.path}: the run has no {name} yet "
                                    f"(stage status: {store.stage_status()}). Hint: run the stage that writes it.")
        return store

    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    @property
    def manifest(self) -> dict[str, Any]:
        """The manifest as a dict (cached; :meth:`reload` re-reads it)."""
        if self._manifest is None:
            try:
                self._manifest = json.loads(self.manifest_path.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise RunStoreError(f"{self.manifest_path}: cannot read the manifest ({exc}).") from exc
        return self._manifest

    def reload(self) -> "RunStore":
        """Drop the cached manifest so the next access re-reads it."""
        self._manifest = None
        return self

    def update_manifest(self, change: Callable[[dict], None]) -> dict:
        """Re-read the manifest, apply ``change`` to it in place, and write it back atomically."""
        self.reload()
        man = self.manifest
        change(man)
        write_json_atomic(self.manifest_path, man)
        return man

    def set_stage(self, stage: str, status: str, **info: Any) -> None:
        """Record a stage's status (``"running"``, ``"done"``, ``"failed"``) and details in the manifest."""
        def change(man: dict) -> None:
            entry = man.setdefault("stages", {}).setdefault(stage, {})
            entry.update(info)
            entry["status"] = status
            entry["updated"] = _now()
        self.update_manifest(change)

    def stage_status(self) -> dict[str, str]:
        """Return ``{stage: status}`` from the manifest."""
        return {k: v.get("status", "?") for k, v in self.reload().manifest.get("stages", {}).items()}

    # ------------------------------------------------------------------ partitions
    @property
    def n_samples(self) -> int:
        return int(self.manifest["n_samples"])

    @property
    def partition_size(self) -> int:
        return int(self.manifest["partition_size"])

    @property
    def n_partitions(self) -> int:
        return -(-self.n_samples // self.partition_size)

    def partition_bounds(self, part: int) -> tuple[int, int]:
        """Return ``(start, stop)`` sample ids of partition ``part``."""
        if not 0 <= part < self.n_partitions:
            raise IndexError(f"Partition {part} is out of range 0..{self.n_partitions - 1} for {self.path}.")
        start = part * self.partition_size
        return start, min(start + self.partition_size, self.n_samples)

    # ------------------------------------------------------------------ tables
    def table_path(self, name: str) -> Path:
        """Path of table ``name`` (``"samples"`` -> ``RUN/samples.parquet``)."""
        return self.path / f"{name}.parquet"

    def has(self, name: str) -> bool:
        """Whether artifact ``name`` exists and is complete.

        Partitioned tables count as complete when every partition is finished; ``images``,
        ``thumbs`` and ``features`` are Zarr arrays; other names are single Parquet files.
        """
        if name in ("images", "thumbs", "features"):
            return (self.path / f"{name}.zarr").exists()
        if name in NPY_ARRAYS:
            return self.npy_path(name).is_file()
        p = self.table_path(name)
        if p.is_dir():
            if name in ("errors", "corrections"):
                return True
            return len(self.finished_partitions(name)) == self.n_partitions
        return p.is_file()

    def write_partition(self, name: str, part: int, df: pd.DataFrame, *, metadata: dict | None = None) -> None:
        """Write partition ``part`` of table ``name`` atomically (temp file + rename).

        ``df`` must hold a ``sample_id`` column with exactly the ids of that partition.
        """
        start, stop = self.partition_bounds(part)
        ids = df["sample_id"].to_numpy()
        if len(ids) != stop - start or (len(ids) and (ids.min() != start or ids.max() != stop - 1)):
            raise ValueError(f"{name} partition {part} must hold sample_id {start}..{stop - 1}; "
                             f"got {len(ids)} rows ({ids.min() if len(ids) else '-'}..{ids.max() if len(ids) else '-'}).")
        self._write_parquet(self.table_path(name) / f"part-{part:05d}.parquet", df, metadata)

    def finished_partitions(self, name: str) -> set[int]:
        """Partition numbers whose part file of table ``name`` exists (i.e. finished)."""
        d = self.table_path(name)
        if not d.is_dir():
            return set()
        return {int(m.group(1)) for f in os.listdir(d) if (m := _PART_RE.match(f))}

    def pending_partitions(self, name: str) -> list[int]:
        """Partitions of table ``name`` not yet finished, in order."""
        done = self.finished_partitions(name)
        return [p for p in range(self.n_partitions) if p not in done]

    def write_table(self, name: str, df: pd.DataFrame, *, metadata: dict | None = None) -> None:
        """Write a whole, unpartitioned table ``RUN/<name>.parquet`` atomically."""
        self._write_parquet(self.table_path(name), df, metadata)

    def append_rows(self, name: str, df: pd.DataFrame, *, key: str) -> Path:
        """Add rows to an append-only table (``errors``, ``corrections``) as the part file ``<key>``.

        Writing the same ``key`` again replaces that part, so a rerun of a partition does not
        duplicate its error rows.
        """
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", key)
        target = self.table_path(name) / f"{safe}.parquet"
        self._write_parquet(target, df, None)
        return target

    def read_table(self, name: str, columns: list[str] | None = None) -> pd.DataFrame:
        """Read table ``name`` (partitioned or single file) into pandas, sorted by ``sample_id`` if present.

        Raises
        ------
        RunStoreError
            If the table does not exist.
        """
        p = self.table_path(name)
        if not p.exists():
            raise RunStoreError(f"{self.path}: table {name!r} does not exist ({p}). "
                                "Hint: run the stage that writes it.")
        if p.is_dir():
            frames = self._read_parts(p, columns)
            if not frames:
                return pd.DataFrame(columns=columns or [])
            df = pd.concat(frames, ignore_index=True)
        else:
            df = self._read_parquet(p, columns)
        if "sample_id" in df.columns and name not in ("errors", "corrections"):
            df = df.sort_values("sample_id", kind="stable").reset_index(drop=True)
        return df

    def _read_parts(self, directory: Path, columns: list[str] | None, *, attempts: int = 5) -> list[pd.DataFrame]:
        """Read every part file of a partitioned table.

        A part may vanish between listing and reading when ``compact_corrections`` merges the parts of
        an append-only table (it writes the merged file before deleting the parts): list again then.
        """
        for attempt in range(attempts):
            files = sorted(f for f in directory.iterdir() if f.suffix == ".parquet" and not f.name.startswith("."))
            try:
                return [self._read_parquet(f, columns) for f in files]
            except FileNotFoundError:
                if attempt == attempts - 1:
                    raise
                log.debug("%s: a part file vanished while reading (compacted meanwhile); listing again", directory)
        return []  # pragma: no cover - the loop returns or raises

    def _read_parquet(self, path: Path, columns: list[str] | None) -> pd.DataFrame:
        try:
            return pq.read_table(path, columns=columns).to_pandas()
        except pa.ArrowInvalid as exc:
            try:
                names = set(pq.read_schema(path).names)
            except pa.ArrowInvalid:
                names = None
            if names is not None and columns and not set(columns) <= names:
                raise  # a readable file without the asked columns: the caller's problem, not corruption
            raise CorruptArtifact(f"{path}: not a readable Parquet file ({exc}). Hint: a write was cut short or the "
                                  "file was not written by xsgpu; delete it and rerun the stage that writes it.") from exc

    def read_metadata(self, name: str) -> dict:
        """Return the ``xsgpu`` JSON metadata stored with table ``name`` (first part for partitioned ones)."""
        p = self.table_path(name)
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.suffix == ".parquet" and not f.name.startswith("."))
            if not files:
                return {}
            p = files[0]
        meta = pq.read_schema(p).metadata or {}
        raw = meta.get(b"xsgpu")
        return json.loads(raw) if raw else {}

    def read_errors(self) -> pd.DataFrame:
        """All error rows of all stages (empty frame with :data:`ERRORS_COLUMNS` if none)."""
        if not self.table_path("errors").exists():
            return pd.DataFrame(columns=ERRORS_COLUMNS)
        return self.read_table("errors")

    def record_errors(self, rows: list[dict], *, stage: str, key: str) -> None:
        """Record bad inputs of one unit of work (stage + key) in ``errors.parquet``; replaces that unit's rows.

        Each row needs ``source_uri``, ``error_type`` and ``message``; ``stage`` is filled in.
        """
        if not rows:
            stale = self.table_path("errors") / f"{stage}-{key}.parquet"
            if stale.exists():
                stale.unlink()
            return
        df = pd.DataFrame([{**r, "stage": stage} for r in rows])
        for col in ERRORS_COLUMNS:
            if col not in df:
                df[col] = ""
        self.append_rows("errors", df[ERRORS_COLUMNS + [c for c in df.columns if c not in ERRORS_COLUMNS]],
                         key=f"{stage}-{key}")

    def _write_parquet(self, target: Path, df: pd.DataFrame, metadata: dict | None) -> None:
        table = pa.Table.from_pandas(df, preserve_index=False)
        if metadata:
            meta = dict(table.schema.metadata or {})
            meta[b"xsgpu"] = json.dumps(metadata, default=str).encode()
            table = table.replace_schema_metadata(meta)
        with atomic_path(target) as tmp:
            pq.write_table(table, tmp)

    # ------------------------------------------------------------------ arrays
    def array_path(self, name: str) -> Path:
        return self.path / f"{name}.zarr"

    def create_array(self, name: str, shape: tuple[int, ...], dtype: Any, *, chunk_rows: int | None = None):
        """Create (or reopen, when the shape and dtype match) the Zarr array ``RUN/<name>.zarr``.

        Rows are chunked by ``chunk_rows`` (default: the partition size, capped so a chunk stays
        under ~64 MB); the partition size must be a multiple of it so partitions never share chunks.
        Every chunk written is stored, even an all-zero one, so that a missing chunk file always means
        lost data (:class:`~xsgpu.io.chunks.CheckedArray`).

        Returns
        -------
        CheckedArray
            The array, opened for writing.
        """
        import zarr

        path = self.array_path(name)
        row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * np.dtype(dtype).itemsize
        if chunk_rows is None:
            chunk_rows = self.partition_size
            while chunk_rows * row_bytes > 64 * 2**20 and chunk_rows % 2 == 0:
                chunk_rows //= 2
        if self.partition_size % chunk_rows:
            raise ValueError(f"partition_size {self.partition_size} must be a multiple of chunk_rows {chunk_rows}.")
        if path.exists():
            arr = self.open_array(name, mode="r+")
            if tuple(arr.shape) == tuple(shape) and np.dtype(arr.dtype) == np.dtype(dtype):
                return arr
            raise RunStoreError(f"{path} exists with shape {arr.shape} {arr.dtype}; expected {shape} {np.dtype(dtype)}. "
                                "Hint: delete it or write to a new run directory.")
        chunks = (max(1, min(chunk_rows, shape[0] or 1)),) + tuple(shape[1:])
        arr = zarr.open_array(str(path), mode="w", shape=shape, chunks=chunks, dtype=dtype, fill_value=0)
        arr.attrs[COMPLETE_CHUNKS_ATTR] = True
        return self._checked(name, arr.with_config({"write_empty_chunks": True}))

    def open_array(self, name: str, mode: str = "r"):
        """Open the Zarr array ``RUN/<name>.zarr`` (``mode="r"`` or ``"r+"``).

        Returns
        -------
        CheckedArray
            Reads of rows whose chunk file is missing or cannot be decoded raise
            :class:`~xsgpu.errors.CorruptArtifact` naming the array, the rows and the remedy, instead of
            returning zeros; writes store every chunk.
        """
        import zarr

        path = self.array_path(name)
        if not path.exists():
            raise RunStoreError(f"{self.path}: array {name!r} does not exist ({path}). Hint: run the stage that writes it.")
        try:
            arr = zarr.open_array(str(path), mode=mode)
        except (OSError, ValueError, KeyError) as exc:
            raise CorruptArtifact(f"{path}: cannot open the array ({type(exc).__name__}: {exc}). "
                                  "Hint: rerun the stage that writes it.") from exc
        return self._checked(name, arr.with_config({"write_empty_chunks": True}) if mode != "r" else arr)

    def _checked(self, name: str, arr: Any) -> CheckedArray:
        return CheckedArray(arr, name=name, path=self.array_path(name), partition_size=self.partition_size,
                            checked=bool(arr.attrs.get(COMPLETE_CHUNKS_ATTR, False)))

    def npy_path(self, name: str) -> Path:
        """Path of the single-file array ``RUN/<name>.npy``."""
        return self.path / f"{name}.npy"

    def write_npy(self, name: str, array: np.ndarray) -> Path:
        """Write ``array`` to ``RUN/<name>.npy`` atomically (temp file + rename); returns the path."""
        target = self.npy_path(name)
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, np.ascontiguousarray(array), allow_pickle=False)
        return target

    def load_npy(self, name: str, *, mmap: bool = True) -> np.ndarray:
        """Read ``RUN/<name>.npy`` (memory-mapped, read-only, by default).

        Raises
        ------
        RunStoreError
            If the file is missing or unreadable; the message names the file and the stage that writes it.
        """
        path = self.npy_path(name)
        if not path.is_file():
            raise RunStoreError(f"{self.path}: array {name!r} does not exist ({path}). Hint: run the stage that "
                                "writes it (`xsgpu embed RUN` writes fea_reduced).")
        try:
            return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise RunStoreError(f"{path}: unreadable ({exc}). Hint: delete it and rerun `xsgpu embed RUN`.") from exc

    # ------------------------------------------------------------------ labels
    def labels(self) -> np.ndarray:
        """Return ACT as a bool array of shape (N, 17) from ``samples.parquet``."""
        return self.read_table("samples", columns=["sample_id"] + label_columns())[label_columns()].to_numpy(bool)

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r})"
