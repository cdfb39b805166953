"""The run store: one directory per run, every artifact keyed by a dense ``sample_id`` (0..N-1).

Layout: ``RUN/manifest.json`` (schema version, the run's attribute vocabulary, stage status, params,
counts) and one entry per artifact of :mod:`xsgpu.io.schema` (the registry, which docs/architecture.md
shows as a table). Every write is validated against the registry; every path is built from it.
Artifacts are reached through typed handles (``store.samples.read()``, ``store.features.open()``) or
the generic methods with a registry constant (``store.read_table(SAMPLES)``).

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
>>> store.synth_tags.write_partition(0, pd.DataFrame({"sample_id": [0, 1, 2, 3], "components": "ring",
...                                                    "image_kind": "sample"}))
>>> sorted(store.synth_tags.finished())
[0]
>>> len(store.vocabulary), store.vocabulary.names[0]
(17, 'BCC')
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
from xsgpu.attributes import DEFAULT_VOCABULARY, Vocabulary, VocabularyError
from xsgpu.errors import CorruptArtifact, StoreError
from xsgpu.io import schema
from xsgpu.io.chunks import COMPLETE_CHUNKS_ATTR, CheckedArray
from xsgpu.io.atomic import atomic_path, write_json_atomic
from xsgpu.io.schema import (CORRECTIONS, ERRORS, EMBEDDING, FEA_REDUCED, FEATURES, GROUPS, IMAGES, INGEST_FILES,
                             INGEST_PLAN, METRICS, PART_RE, PREDICTIONS, READABLE_VERSIONS, SAMPLES, SCHEMA_VERSION,
                             SUSPICIOUS, SYNTH_TAGS, THUMBS, HEATMAPS, Artifact, partition_file)

__all__ = ["RunStore", "RunStoreError", "ArtifactHandle", "SCHEMA_VERSION", "ERRORS_COLUMNS"]

log = logging.getLogger(__name__)

ERRORS_COLUMNS = list(ERRORS.column_names)


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
        vocabulary: Vocabulary | None = None,
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
            If the directory already has a manifest with the same ``n_samples``, ``partition_size`` and
            vocabulary, reopen it (resume). A mismatch raises :class:`RunStoreError`.
        vocabulary : Vocabulary, optional
            The run's ordered attributes (default: the paper's 17).
        """
        vocab = vocabulary or DEFAULT_VOCABULARY
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
            if store.vocabulary.slugs != vocab.slugs:
                raise RunStoreError(
                    f"{store.path} already holds a run with attributes [{', '.join(store.vocabulary.names)}]; "
                    f"this call asks for [{', '.join(vocab.names)}]. Hint: write to a new directory.")
            return store
        store.path.mkdir(parents=True, exist_ok=True)
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "vocabulary": vocab.to_manifest(),
            "attributes": list(vocab.names),
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
        """Open an existing run, checking that the named artifacts (registry constants such as ``SAMPLES`` or their names) exist.

        Raises
        ------
        RunStoreError
            If the directory or its manifest is missing, its schema version is not one this code reads
            (the message names both), its vocabulary is malformed, or a required artifact is absent.
        """
        store = cls(path)
        if not store.path.is_dir():
            raise RunStoreError(f"No run store at {store.path}: the directory does not exist. "
                                "Hint: create one with `xsgpu synth` or `xsgpu ingest`.")
        if not store.manifest_path.exists():
            raise RunStoreError(f"{store.path} is not a run store: manifest.json is missing. "
                                "Hint: create one with `xsgpu synth` or `xsgpu ingest`.")
        man = store.manifest
        version = man.get("schema_version")
        if version not in READABLE_VERSIONS:
            newer = isinstance(version, int) and version > SCHEMA_VERSION
            raise RunStoreError(
                f"{store.manifest_path}: the run was written with store schema version {version!r}; this xsgpu "
                f"({__version__}) writes version {SCHEMA_VERSION} and reads versions "
                f"{', '.join(map(str, READABLE_VERSIONS))}. Hint: "
                + ("upgrade xsgpu to read it." if newer else "rerun the stages into a new run directory."))
        try:
            store.vocabulary
        except VocabularyError as exc:
            raise RunStoreError(str(exc)) from None
        for name in require:
            if not store.has(name):
                raise RunStoreError(f"{store.path}: the run has no {name} yet "
                                    f"(stage status: {store.stage_status()}). Hint: run the stage that writes it.")
        return store

    @property
    def vocabulary(self) -> Vocabulary:
        """The run's ordered attributes (manifest field ``vocabulary``; schema v1 runs: ``attributes``)."""
        man = self.manifest
        cached = getattr(self, "_vocab", None)
        if cached is not None and cached[0] is man:
            return cached[1]
        where = str(self.manifest_path)
        if "vocabulary" in man:
            vocab = Vocabulary.from_manifest(man["vocabulary"], where=where)
        elif man.get("attributes"):
            try:
                vocab = Vocabulary.from_names(man["attributes"])
            except VocabularyError as exc:
                raise VocabularyError(f"{where}: field 'attributes': {exc}") from None
        else:
            vocab = DEFAULT_VOCABULARY
        self._vocab = (man, vocab)
        return vocab

    def artifact(self, spec: "str | Artifact", **fields: Any) -> "ArtifactHandle":
        """Typed handle of artifact ``spec`` (a registry constant or name; templates take ``fields``)."""
        art = schema.lookup(spec)
        if fields:
            art = (art.template or art).named(**fields)
        return ArtifactHandle(self, art)

    samples = property(lambda self: self.artifact(SAMPLES), doc="Handle of ``samples`` (ACT, provenance).")
    synth_tags = property(lambda self: self.artifact(SYNTH_TAGS), doc="Handle of ``synth_tags``.")
    ingest_plan = property(lambda self: self.artifact(INGEST_PLAN), doc="Handle of ``ingest_plan``.")
    ingest_files = property(lambda self: self.artifact(INGEST_FILES), doc="Handle of ``ingest_files``.")
    images = property(lambda self: self.artifact(IMAGES), doc="Handle of ``images`` (Zarr).")
    thumbs = property(lambda self: self.artifact(THUMBS), doc="Handle of ``thumbs`` (Zarr).")
    predictions = property(lambda self: self.artifact(PREDICTIONS), doc="Handle of ``predictions`` (PRD).")
    features = property(lambda self: self.artifact(FEATURES), doc="Handle of ``features`` (FEA, Zarr).")
    heatmaps = property(lambda self: self.artifact(HEATMAPS), doc="Handle of ``heatmaps`` (CAMs, Zarr).")
    fea_reduced = property(lambda self: self.artifact(FEA_REDUCED), doc="Handle of ``fea_reduced`` (.npy).")
    embedding = property(lambda self: self.artifact(EMBEDDING), doc="Handle of ``embedding`` (latest maps).")
    metrics = property(lambda self: self.artifact(METRICS), doc="Handle of ``metrics``.")
    suspicious = property(lambda self: self.artifact(SUSPICIOUS), doc="Handle of ``suspicious``.")
    errors = property(lambda self: self.artifact(ERRORS), doc="Handle of ``errors`` (append-only).")
    corrections = property(lambda self: self.artifact(CORRECTIONS), doc="Handle of ``corrections`` (append-only).")
    groups = property(lambda self: self.artifact(GROUPS), doc="Handle of ``groups`` (append-only).")

    def entry_path(self, spec: "str | Artifact") -> Path:
        """Path of artifact ``spec``'s file or directory in the run."""
        return self.path / schema.lookup(spec).entry

    def partition_path(self, spec: "str | Artifact", part: int) -> Path:
        """Path of partition ``part``'s file of the partitioned table ``spec``."""
        art = schema.lookup(spec)
        if art.kind != "partitioned":
            raise schema.SchemaError(f"{art.name} is a {art.kind} artifact, not a partitioned table.")
        return self.path / art.entry / partition_file(part)

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
    def table_path(self, name: "str | Artifact") -> Path:
        """Path of table ``name`` (``SAMPLES`` -> ``RUN/samples.parquet``)."""
        art = schema.lookup(name)
        if art.kind not in ("partitioned", "table", "append"):
            raise schema.SchemaError(f"{art.name} is a {art.kind} artifact, not a table.")
        return self.path / art.entry

    def has(self, name: "str | Artifact") -> bool:
        """Whether artifact ``name`` exists and is complete.

        Partitioned tables count as complete when every partition is finished; append-only tables as
        soon as their directory exists; arrays and single files when their entry exists.
        """
        art = schema.lookup(name)
        p = self.path / art.entry
        if art.kind == "partitioned":
            return p.is_dir() and len(self.finished_partitions(art)) == self.n_partitions
        if art.kind == "append":
            return p.is_dir()
        if art.kind == "zarr":
            return p.exists()
        return p.is_file()

    def _validate(self, art: Artifact, df: pd.DataFrame, target: Path) -> None:
        art.validate(df, vocabulary=self.vocabulary, where=str(target))

    def write_partition(self, name: "str | Artifact", part: int, df: pd.DataFrame, *,
                        metadata: dict | None = None) -> None:
        """Write partition ``part`` of table ``name`` atomically (temp file + rename), validated.

        ``df`` must hold a ``sample_id`` column with exactly the ids of that partition, and the
        columns the schema requires of ``name``.
        """
        art = schema.lookup(name)
        target = self.partition_path(art, part)
        self._validate(art, df, target)
        start, stop = self.partition_bounds(part)
        ids = df["sample_id"].to_numpy()
        if len(ids) != stop - start or (len(ids) and (ids.min() != start or ids.max() != stop - 1)):
            raise ValueError(f"{name} partition {part} must hold sample_id {start}..{stop - 1}; "
                             f"got {len(ids)} rows ({ids.min() if len(ids) else '-'}..{ids.max() if len(ids) else '-'}).")
        self._write_parquet(target, df, metadata)

    def finished_partitions(self, name: "str | Artifact") -> set[int]:
        """Partition numbers whose part file of table ``name`` exists (i.e. finished)."""
        d = self.table_path(name)
        if not d.is_dir():
            return set()
        return {int(m.group(1)) for f in os.listdir(d) if (m := PART_RE.match(f))}

    def pending_partitions(self, name: "str | Artifact") -> list[int]:
        """Partitions of table ``name`` not yet finished, in order."""
        done = self.finished_partitions(name)
        return [p for p in range(self.n_partitions) if p not in done]

    def write_table(self, name: "str | Artifact", df: pd.DataFrame, *, metadata: dict | None = None) -> None:
        """Write a whole, unpartitioned table ``RUN/<name>.parquet`` atomically, validated."""
        art = schema.lookup(name)
        if art.kind != "table":
            raise schema.SchemaError(f"{art.name} is a {art.kind} artifact; write_table writes whole tables only.")
        target = self.table_path(art)
        self._validate(art, df, target)
        self._write_parquet(target, df, metadata)

    def append_rows(self, name: "str | Artifact", df: pd.DataFrame, *, key: str) -> Path:
        """Add rows to an append-only table (``errors``, ``corrections``) as the part file ``<key>``.

        Writing the same ``key`` again replaces that part, so a rerun of a partition does not
        duplicate its error rows.
        """
        art = schema.lookup(name)
        if art.kind != "append":
            raise schema.SchemaError(f"{art.name} is a {art.kind} artifact, not an append-only table.")
        target = self.append_path(art, key)
        self._validate(art, df, target)
        self._write_parquet(target, df, None)
        return target

    def append_path(self, name: "str | Artifact", key: str) -> Path:
        """Path of the part ``key`` of an append-only table (the key made file-name safe)."""
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", key)
        return self.table_path(name) / f"{safe}.parquet"

    def read_table(self, name: "str | Artifact", columns: list[str] | None = None, *,
                   strings_as_categories: bool = False) -> pd.DataFrame:
        """Read table ``name`` (partitioned or single file) into pandas, sorted by ``sample_id`` if present.

        Parameters
        ----------
        name : str or Artifact
        columns : list of str, optional
            The columns to read (default all).
        strings_as_categories : bool
            Read the string columns as pandas Categoricals (Arrow dictionaries, one dictionary for the whole
            table) and join the parts in Arrow: for repeated strings (run ids, splits, file names of
            multi-frame files) several times faster and smaller than one Python-visible string per row.

        Raises
        ------
        RunStoreError
            If the table does not exist.
        """
        art = schema.lookup(name)
        p = self.table_path(art)
        if not p.exists():
            raise RunStoreError(f"{self.path}: table {art.name!r} does not exist ({p}). "
                                f"Hint: run the stage that writes it ({art.writer}).")
        if strings_as_categories:
            files = self._part_files(p) if p.is_dir() else [p]
            if not files:
                return pd.DataFrame(columns=columns or [])
            first = pq.read_schema(files[0])
            strings = [f.name for f in first if (columns is None or f.name in columns)
                       and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))]
            tables = self._read_parts(p, columns, read=lambda f: self._read_arrow(f, columns, strings)) \
                if p.is_dir() else [self._read_arrow(p, columns, strings)]
            df = pa.concat_tables(tables, promote_options="permissive").unify_dictionaries().to_pandas()
        elif p.is_dir():
            frames = self._read_parts(p, columns)
            if not frames:
                return pd.DataFrame(columns=columns or [])
            df = pd.concat(frames, ignore_index=True)
        else:
            df = self._read_parquet(p, columns)
        # the parts are read in partition order, so the ids are usually sorted already: check (O(n)) before sorting
        if art.sorted_by_id and "sample_id" in df.columns and not df["sample_id"].is_monotonic_increasing:
            df = df.sort_values("sample_id", kind="stable").reset_index(drop=True)
        return df

    @staticmethod
    def _part_files(directory: Path) -> list[Path]:
        return sorted(f for f in directory.iterdir() if f.suffix == ".parquet" and not f.name.startswith("."))

    def _read_parts(self, directory: Path, columns: list[str] | None, *, attempts: int = 5,
                    read: Callable[[Path], Any] | None = None) -> list[Any]:
        """Read every part file of a partitioned table (``read(path)``, default a pandas frame each).

        A part may vanish between listing and reading when ``compact_corrections`` merges the parts of
        an append-only table (it writes the merged file before deleting the parts): list again then.
        """
        read = read or (lambda f: self._read_parquet(f, columns))
        for attempt in range(attempts):
            files = self._part_files(directory)
            try:
                return [read(f) for f in files]
            except FileNotFoundError:
                if attempt == attempts - 1:
                    raise
                log.debug("%s: a part file vanished while reading (compacted meanwhile); listing again", directory)
        return []  # pragma: no cover - the loop returns or raises

    def _read_parquet(self, path: Path, columns: list[str] | None) -> pd.DataFrame:
        return self._read_arrow(path, columns).to_pandas()

    def _read_arrow(self, path: Path, columns: list[str] | None, dictionary: list[str] | None = None) -> pa.Table:
        try:
            return pq.read_table(path, columns=columns, read_dictionary=dictionary or None)
        except pa.ArrowInvalid as exc:
            try:
                names = set(pq.read_schema(path).names)
            except pa.ArrowInvalid:
                names = None
            if names is not None and columns and not set(columns) <= names:
                raise  # a readable file without the asked columns: the caller's problem, not corruption
            raise CorruptArtifact(f"{path}: not a readable Parquet file ({exc}). Hint: a write was cut short or the "
                                  "file was not written by xsgpu; delete it and rerun the stage that writes it.") from exc

    def read_metadata(self, name: "str | Artifact") -> dict:
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
        if not self.table_path(ERRORS).exists():
            return pd.DataFrame(columns=ERRORS_COLUMNS)
        return self.read_table(ERRORS)

    def record_errors(self, rows: list[dict], *, stage: str, key: str) -> None:
        """Record bad inputs of one unit of work (stage + key) in ``errors.parquet``; replaces that unit's rows.

        Each row needs ``source_uri``, ``error_type`` and ``message``; ``stage`` is filled in.
        """
        if not rows:
            stale = self.append_path(ERRORS, f"{stage}-{key}")
            if stale.exists():
                stale.unlink()
            return
        df = pd.DataFrame([{**r, "stage": stage} for r in rows])
        for col in ERRORS_COLUMNS:
            if col not in df:
                df[col] = ""
        self.append_rows(ERRORS, df[ERRORS_COLUMNS + [c for c in df.columns if c not in ERRORS_COLUMNS]],
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
    def array_path(self, name: "str | Artifact") -> Path:
        """Path of the Zarr array ``name`` (``FEATURES`` -> ``RUN/features.zarr``)."""
        art = schema.lookup(name)
        if art.kind != "zarr":
            raise schema.SchemaError(f"{art.name} is a {art.kind} artifact, not a Zarr array.")
        return self.path / art.entry

    def create_array(self, name: "str | Artifact", shape: tuple[int, ...], dtype: Any, *, chunk_rows: int | None = None):
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
        schema.lookup(name).validate_array(tuple(shape), dtype, n_samples=self.n_samples, where=str(path))
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

    def open_array(self, name: "str | Artifact", mode: str = "r"):
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
            art = schema.lookup(name)
            raise RunStoreError(f"{self.path}: array {art.name!r} does not exist ({path}). "
                                f"Hint: run the stage that writes it ({art.writer}).")
        try:
            arr = zarr.open_array(str(path), mode=mode)
        except (OSError, ValueError, KeyError) as exc:
            raise CorruptArtifact(f"{path}: cannot open the array ({type(exc).__name__}: {exc}). "
                                  "Hint: rerun the stage that writes it.") from exc
        return self._checked(name, arr.with_config({"write_empty_chunks": True}) if mode != "r" else arr)

    def _checked(self, name: "str | Artifact", arr: Any) -> CheckedArray:
        return CheckedArray(arr, name=schema.lookup(name).name, path=self.array_path(name), partition_size=self.partition_size,
                            checked=bool(arr.attrs.get(COMPLETE_CHUNKS_ATTR, False)))

    def npy_path(self, name: "str | Artifact") -> Path:
        """Path of the single-file array ``RUN/<name>.npy``."""
        art = schema.lookup(name)
        if art.kind != "npy":
            raise schema.SchemaError(f"{art.name} is a {art.kind} artifact, not a .npy array.")
        return self.path / art.entry

    def write_npy(self, name: "str | Artifact", array: np.ndarray) -> Path:
        """Write ``array`` to ``RUN/<name>.npy`` atomically (temp file + rename); returns the path.

        A Fortran-ordered array is written as such (its columns stay contiguous in the memory map); any other
        layout is written C-ordered.
        """
        target = self.npy_path(name)
        schema.lookup(name).validate_array(tuple(np.shape(array)), np.asarray(array).dtype, n_samples=self.n_samples,
                                           where=str(target))
        arr = np.asarray(array)
        arr = arr if arr.flags.f_contiguous and arr.ndim > 1 else np.ascontiguousarray(arr)
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, arr, allow_pickle=False)
        return target

    def load_npy(self, name: "str | Artifact", *, mmap: bool = True) -> np.ndarray:
        """Read ``RUN/<name>.npy`` (memory-mapped, read-only, by default).

        Raises
        ------
        RunStoreError
            If the file is missing or unreadable; the message names the file and the stage that writes it.
        """
        path = self.npy_path(name)
        if not path.is_file():
            art = schema.lookup(name)
            raise RunStoreError(f"{self.path}: array {art.name!r} does not exist ({path}). Hint: run the stage that "
                                f"writes it ({art.writer}).")
        try:
            return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise RunStoreError(f"{path}: unreadable ({exc}). Hint: delete it and rerun `xsgpu embed RUN`.") from exc

    # ------------------------------------------------------------------ labels
    def labels(self) -> np.ndarray:
        """Return ACT as a bool array of shape (N, n_attributes) from ``samples.parquet``."""
        cols = self.vocabulary.label_columns()
        return self.read_table(SAMPLES, columns=["sample_id"] + cols)[cols].to_numpy(bool)

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r})"


class ArtifactHandle:
    """One artifact of one run: its path and the reads and writes its kind allows.

    Get one from a store (``store.samples``, ``store.artifact(EMBEDDING_BY_METHOD, method="pca")``).
    Every method forwards to the store's generic method of the same meaning, so validation and
    atomicity are the same whichever is used.
    """

    def __init__(self, store: RunStore, artifact: Artifact):
        self.store = store
        self.spec = artifact

    @property
    def name(self) -> str:
        """The artifact's name in the run."""
        return self.spec.name

    @property
    def path(self) -> Path:
        """Its file or directory in the run."""
        return self.store.path / self.spec.entry

    def exists(self) -> bool:
        """Whether it exists and is complete (:meth:`RunStore.has`)."""
        return self.store.has(self.spec)

    # tables
    def read(self, columns: list[str] | None = None, *, strings_as_categories: bool = False) -> pd.DataFrame:
        """Read the table (:meth:`RunStore.read_table`)."""
        return self.store.read_table(self.spec, columns, strings_as_categories=strings_as_categories)

    def metadata(self) -> dict:
        """Its stored ``xsgpu`` metadata (:meth:`RunStore.read_metadata`)."""
        return self.store.read_metadata(self.spec)

    def write(self, df: pd.DataFrame, *, metadata: dict | None = None) -> None:
        """Write the whole table (:meth:`RunStore.write_table`)."""
        self.store.write_table(self.spec, df, metadata=metadata)

    def write_partition(self, part: int, df: pd.DataFrame, *, metadata: dict | None = None) -> None:
        """Write one partition (:meth:`RunStore.write_partition`)."""
        self.store.write_partition(self.spec, part, df, metadata=metadata)

    def partition_path(self, part: int) -> Path:
        """File of partition ``part``."""
        return self.store.partition_path(self.spec, part)

    def finished(self) -> set[int]:
        """Finished partitions."""
        return self.store.finished_partitions(self.spec)

    def pending(self) -> list[int]:
        """Partitions still to do, in order."""
        return self.store.pending_partitions(self.spec)

    def append(self, df: pd.DataFrame, *, key: str) -> Path:
        """Add the part ``key`` to an append-only table (:meth:`RunStore.append_rows`)."""
        return self.store.append_rows(self.spec, df, key=key)

    # arrays
    def create(self, shape: tuple[int, ...], dtype: Any, *, chunk_rows: int | None = None):
        """Create or reopen the Zarr array (:meth:`RunStore.create_array`)."""
        return self.store.create_array(self.spec, shape, dtype, chunk_rows=chunk_rows)

    def open(self, mode: str = "r"):
        """Open the Zarr array (:meth:`RunStore.open_array`)."""
        return self.store.open_array(self.spec, mode)

    def save(self, array: np.ndarray) -> Path:
        """Write the .npy array (:meth:`RunStore.write_npy`)."""
        return self.store.write_npy(self.spec, array)

    def load(self, *, mmap: bool = True) -> np.ndarray:
        """Read the .npy array (:meth:`RunStore.load_npy`)."""
        return self.store.load_npy(self.spec, mmap=mmap)

    def __repr__(self) -> str:
        return f"ArtifactHandle({self.spec.name!r} of {self.store.path})"
