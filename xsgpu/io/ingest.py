"""Ingest detector files into a run store: plan (scan + label matching), then partitions (read + preprocess).

Contract (docs/architecture.md, docs/ingest.md):

1. **Expand** the inputs: files, globs (``**`` recursive) and directories (walked recursively; hidden
   files and directories, the label file and the output directory are skipped). A path that neither
   exists nor matches anything is an error before any work. Every other file is an input: files of
   unsupported types become error rows, so samples + error rows account for every input (Eiger data
   files whose master file is also an input are read once, through the master, and marked
   ``covered_by`` in ``ingest_files.parquet``).
2. **Labels** (optional) are read and matched to the inputs (:mod:`xsgpu.io.labels`) before any scan;
   a bad label file raises :class:`~xsgpu.io.labels.LabelsError` and nothing is written.
3. **Scan** every file cheaply (:func:`xsgpu.io.scan_file`): format, frame count. A file that fails
   (unsupported, empty, corrupt, 1-D/4-D data ...) is an error row (stage ``ingest``, ``frame`` -1).
4. **Plan**: dense ``sample_id`` 0..N-1 over the frames of the files that passed, in input order;
   ``run_id`` = the name of the file's parent directory (a beamline directory per experiment, e.g.
   ``/data/2026-03-run07/img_0001.tif`` -> ``2026-03-run07``); ``split`` = train/val/test from a hash of
   ``run_id`` (~80/10/10, the same for every image of a run, stable across machines). The plan is stored
   in the run (``ingest_files.parquet``, ``ingest_plan.parquet``) so partitions can run anywhere.
5. **Partitions** (:func:`ingest_partition`): read the frames, ``log_scale`` with the mask, ``resize_batch``
   to ``size``, ``make_thumbnails``; write ``images.zarr`` and ``thumbs.zarr`` rows, then the partition's
   error rows, then the ``samples`` part (atomic; its existence marks the partition finished). Besides
   :data:`SAMPLE_COLUMNS` it holds the label file's metadata columns (``meta__<name>``,
   :func:`xsgpu.io.labels.sample_metadata`) and the header fields of every frame (``hdr__<field>``,
   :mod:`xsgpu.io.readers.headers`; always all of them, null where a file does not say).
   A frame that passed the scan but fails to read keeps its row, with ``valid=False``, a zero image
   and thumbnail and an error row naming its ``sample_id``: ids stay dense and nothing is re-planned.

A killed ingest rerun with the same arguments reuses the stored plan (after checking that the inputs'
sizes and modification times and the options did not change) and redoes only unfinished partitions.

Examples
--------
>>> import tempfile, os, numpy as np
>>> from xsgpu.io.ingest import ingest_paths
>>> d = tempfile.mkdtemp()
>>> os.mkdir(os.path.join(d, "run1"))
>>> np.save(os.path.join(d, "run1", "a.npy"), np.ones((2, 16, 16)))
>>> store = ingest_paths([d], os.path.join(d, "out"), size=8, partition_size=4, progress=False)
>>> store.samples.read()[["sample_id", "frame", "run_id", "valid"]].values.tolist()
[[0, 0, 'run1', True], [1, 1, 'run1', True]]
"""
from __future__ import annotations

import hashlib
import logging
import os
import traceback
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from xsgpu.attributes import DEFAULT_VOCABULARY, Vocabulary
from xsgpu.io.discovery import Expansion, display_path, expand_inputs
from xsgpu.errors import InputError
from xsgpu.io.frame import Frame, ReaderError
from xsgpu.io.labels import FROM_LABELS, META_PREFIX, LabelAssignment, match_labels, read_labels, sample_metadata
from xsgpu.io.limits import DEFAULT_MAX_FRAME_PIXELS, DEFAULT_MAX_FRAMES_PER_FILE, FrameLimits
from xsgpu.io.readers import read_any, scan_file
from xsgpu.io.readers.headers import HEADER_FIELDS, HEADER_PREFIX
from xsgpu.io.runstore import RunStore, RunStoreError
from xsgpu.io.schema import INGEST_FILES, INGEST_PLAN, partition_key

__all__ = ["IngestError", "expand_paths", "split_for_run", "run_id_for", "plan_ingest", "ingest_partition",
           "finish_ingest", "ingest_paths", "THUMB_SIZE", "SAMPLE_COLUMNS", "sample_columns"]

log = logging.getLogger(__name__)

STAGE = "ingest"
THUMB_SIZE = 64
PLAN_TABLE = INGEST_PLAN
FILES_TABLE = INGEST_FILES
#: samples.parquet columns written by ingest (docs/architecture.md plus ``valid``, ``format``, ``height``, ``width``)
def sample_columns(vocabulary: Vocabulary = DEFAULT_VOCABULARY) -> list[str]:
    """``samples.parquet`` columns written by ingest for a run of ``vocabulary`` (its ``y__<slug>`` columns)."""
    return (["sample_id", "source_uri", "frame", "run_id", "split", "is_synthetic", "labelled", "quantitative"]
            + vocabulary.label_columns() + ["valid", "format", "height", "width"])


#: :func:`sample_columns` of a run of the default vocabulary (the paper's 17)
SAMPLE_COLUMNS = sample_columns()


#: values of ingest parameters added after runs were first planned (a resume treats a missing key as this)
_PARAM_DEFAULTS = {"max_frame_pixels": DEFAULT_MAX_FRAME_PIXELS, "max_frames_per_file": DEFAULT_MAX_FRAMES_PER_FILE,
                   "vocabulary": list(DEFAULT_VOCABULARY.names)}


class IngestError(InputError):
    """An ingest cannot start or continue (bad arguments, changed inputs, nothing readable)."""


# ---------------------------------------------------------------------------------------------- inputs
def expand_paths(paths: Iterable[str | os.PathLike], *, exclude: Iterable[str | os.PathLike] = ()) -> list[str]:
    """Expand files, globs and directories into absolute file paths (deduplicated, deterministic order).

    The files of :func:`xsgpu.io.discovery.expand_inputs` (links to directories are not followed inside
    walks and globs; a file reached twice is listed once); :func:`plan_ingest` also records its
    skipped entries as error rows.

    Parameters
    ----------
    paths : iterable of path
        Files, directories (walked recursively, hidden entries skipped) and glob patterns
        (``*``, ``?``, ``[...]``, ``**``).
    exclude : iterable of path
        Files or directories to leave out (the label file, the output run).

    Raises
    ------
    IngestError
        If a path neither exists nor matches any file, or nothing is found at all.
    """
    return _expand(paths, exclude).files


def _expand(paths: Iterable[str | os.PathLike], exclude: Iterable[str | os.PathLike]) -> Expansion:
    given = [os.fspath(p) for p in paths]
    if not given:
        raise IngestError("No input paths given. Hint: pass files, directories or globs, e.g. "
                          "`xsgpu ingest /data/saxs`.")
    found = expand_inputs(given, exclude=exclude)
    if found.missing:
        raise IngestError(f"Input path(s) {[display_path(m) for m in found.missing]} do not exist and match no file. "
                          "Hint: check the spelling; quote globs so the shell does not expand them.")
    if not found.files and not found.skipped:
        raise IngestError(f"No input files found in {[display_path(g) for g in given]} (hidden files, the label file "
                          "and the output directory are skipped).")
    return found


def run_id_for(path: str) -> str:
    """The run of a file: the name of its parent directory (``_`` for files at the file-system root)."""
    return os.path.basename(os.path.dirname(os.path.abspath(path))) or "_"


def split_for_run(run_id: str, *, fractions: tuple[float, float] = (0.8, 0.1)) -> str:
    """Deterministic train/val/test split of a run from the SHA-256 of its id (~80/10/10).

    Examples
    --------
    >>> split_for_run("2026-03-run07") == split_for_run("2026-03-run07")
    True
    >>> sorted({split_for_run(f"run{i}") for i in range(50)})
    ['test', 'train', 'val']
    """
    u = int.from_bytes(hashlib.sha256(run_id.encode("utf-8")).digest()[:8], "big") / 2.0**64
    return "train" if u < fractions[0] else "val" if u < fractions[0] + fractions[1] else "test"


def _sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _stat_table(files: Sequence[str]) -> pd.DataFrame:
    sizes, mtimes = [], []
    for f in files:
        try:
            st = os.stat(f)
            sizes.append(st.st_size)
            mtimes.append(st.st_mtime_ns)
        except OSError:
            sizes.append(-1)
            mtimes.append(-1)
    return pd.DataFrame({"path": list(files), "size": np.asarray(sizes, np.int64),
                         "mtime_ns": np.asarray(mtimes, np.int64)})


def _error_row(path: str, exc: BaseException, *, frame: int = -1, sample_id: int = -1) -> dict[str, Any]:
    return {"source_uri": path, "error_type": type(exc).__name__, "message": str(exc),
            "frame": int(frame), "sample_id": int(sample_id)}


def _scan_one(path: str, h5_dataset: str | None, limits: FrameLimits) -> Any:
    """FileInfo of one file, or its error row."""
    try:
        return scan_file(path, h5_dataset=h5_dataset, limits=limits)
    except ReaderError as exc:
        return _error_row(path, exc)
    except Exception as exc:  # noqa: BLE001 - an unexpected library failure: logged with its traceback, recorded
        log.error("Scanning %s failed unexpectedly:\n%s", path, traceback.format_exc())
        return _error_row(path, exc)


def _scan_all(files: Sequence[str], h5_dataset: str | None, n_workers: int, limits: FrameLimits) -> Iterator[Any]:
    """:func:`_scan_one` over ``files`` in order, ``n_workers`` threads at a time (bounded queue)."""
    if n_workers == 1:
        yield from (_scan_one(f, h5_dataset, limits) for f in files)
        return
    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        step = 64 * n_workers
        for i in range(0, len(files), step):
            yield from pool.map(lambda f: _scan_one(f, h5_dataset, limits), files[i:i + step])


def _covered_files(infos: dict[str, Any]) -> dict[str, str]:
    """Inputs whose frames another input reads (Eiger data files of a master that is also an input)."""
    covered: dict[str, str] = {}
    for master, info in infos.items():
        for linked in info.linked_files:
            if linked in infos and linked != master and linked not in covered:
                covered[linked] = master
    if covered:
        log.info("%d data file(s) are read through their master file (see ingest_files.covered_by)", len(covered))
    return covered


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _limits(max_frame_pixels: Any, max_frames_per_file: Any) -> FrameLimits:
    """:class:`FrameLimits` from the ingest options, as an :class:`IngestError` when they are invalid."""
    for name, value in (("max_frame_pixels", max_frame_pixels), ("max_frames_per_file", max_frames_per_file)):
        if not _is_int(value) or value < 1:
            raise IngestError(f"The '{name}' parameter of ingest must be an int >= 1. Got {value!r} instead.")
    return FrameLimits(max_frame_pixels=int(max_frame_pixels), max_frames_per_file=int(max_frames_per_file))


def _check_options(size: int, partition_size: int, n_workers: int = 1, h5_dataset: Any = None) -> None:
    if not _is_int(size) or not 8 <= size <= 4096:
        raise IngestError(f"The 'size' parameter of ingest must be an int in [8, 4096]. Got {size!r} instead.")
    if not _is_int(partition_size) or partition_size < 1:
        raise IngestError(f"The 'partition_size' parameter of ingest must be an int >= 1. Got {partition_size!r} "
                          "instead.")
    if not _is_int(n_workers) or n_workers < 1:
        raise IngestError(f"The 'n_workers' parameter of ingest must be an int >= 1. Got {n_workers!r} instead.")
    if h5_dataset is not None and (not isinstance(h5_dataset, str) or not h5_dataset.strip("/")):
        raise IngestError(f"The 'h5_dataset' parameter of ingest must be a non-empty str or None. Got "
                          f"{h5_dataset!r} instead.")


# ---------------------------------------------------------------------------------------------- plan
def _resume(out: Path, files: pd.DataFrame, params: dict) -> RunStore | None:
    """Reopen a run started with the same inputs and options, or return None for a fresh start."""
    store = RunStore(out)
    if not store.manifest_path.exists():
        return None
    old = store.manifest.get("params", {}).get(STAGE)
    if old is None:
        raise IngestError(f"{out} already holds a run that was not made by ingest. Hint: choose another --out.")
    then = {k: old.get(k, _PARAM_DEFAULTS.get(k)) for k in params}  # runs planned before a key existed
    changed = {k: (then[k], v) for k, v in params.items() if k not in ("inputs", "n_files") and then[k] != v}
    if changed:
        raise IngestError(f"{out} holds an ingest started with other options {{option: (then, now)}}: {changed}. "
                          "Hint: rerun with the same options to resume, or write to a new --out.")
    if not store.table_path(PLAN_TABLE).is_file():
        return None  # killed while planning: plan again
    stored = store.read_table(FILES_TABLE, columns=["path", "size", "mtime_ns"])
    if not stored.equals(files):
        now = set(map(tuple, files.values.tolist()))
        diff = [r[0] for r in stored.values.tolist() if tuple(r) not in now]
        before = set(stored["path"])
        diff += [p for p in files["path"] if p not in before]
        raise IngestError(f"{out} holds an interrupted ingest of other inputs ({len(diff)} file(s) added, removed "
                          f"or modified since, e.g. {diff[:3]}). Hint: write to a new --out, or delete {out}.")
    log.info("Resuming the ingest in %s", out)
    return store


def plan_ingest(
    paths: Iterable[str | os.PathLike],
    out: str | os.PathLike,
    *,
    labels: str | os.PathLike | None = None,
    size: int = 256,
    partition_size: int = 4096,
    h5_dataset: str | None = None,
    n_workers: int = 1,
    progress: bool = True,
    max_frame_pixels: int = DEFAULT_MAX_FRAME_PIXELS,
    max_frames_per_file: int = DEFAULT_MAX_FRAMES_PER_FILE,
    vocabulary: Vocabulary | str | None = None,
) -> RunStore:
    """Scan the inputs, match labels and create (or reopen, to resume) the run store with the plan.

    Parameters are those of :func:`ingest_paths` (``n_workers`` threads scan the files: headers only,
    so threads help most on network file systems). Returns the store; its ``samples`` partitions are
    then written by :func:`ingest_partition` (one call per pending partition, anywhere).

    Raises
    ------
    IngestError, LabelsError
        Bad arguments, a bad label file, changed inputs on resume; nothing is written then.
    """
    from tqdm.auto import tqdm

    _check_options(size, partition_size, n_workers, h5_dataset)
    limits = _limits(max_frame_pixels, max_frames_per_file)
    out = Path(out).absolute()
    exclude = [out] + ([labels] if labels is not None else [])
    found = _expand(paths, exclude)
    files = found.files
    if vocabulary == FROM_LABELS and labels is None:
        raise IngestError("vocabulary 'from-labels' needs a label file. Hint: pass --labels FILE, or give "
                          "--vocabulary FILE (one attribute name per line) for an unlabelled run.")
    table = read_labels(labels, vocabulary=vocabulary) if labels is not None else None
    assignment = match_labels(table, files) if table is not None else None
    vocab = table.vocabulary if table is not None else (vocabulary or DEFAULT_VOCABULARY)
    params = {"inputs": [display_path(os.fspath(p)) for p in paths], "size": int(size),
              "partition_size": int(partition_size),
              "h5_dataset": h5_dataset,
              "labels": os.path.abspath(labels) if labels is not None else None,
              "labels_sha256": _sha256(labels) if labels is not None else None, "n_files": len(files),
              "max_frame_pixels": limits.max_frame_pixels, "max_frames_per_file": limits.max_frames_per_file,
              "vocabulary": list(vocab.names)}
    stats = _stat_table(files)
    store = _resume(out, stats, params)
    if store is not None:
        return store

    infos: dict[str, Any] = {}
    errors: list[dict[str, Any]] = list(found.skipped)
    results = _scan_all(files, h5_dataset, n_workers, limits)
    for f, res in tqdm(zip(files, results), total=len(files), desc="scan", unit="file", disable=not progress):
        if isinstance(res, dict):
            errors.append(res)
        else:
            infos[f] = res
    covered = _covered_files(infos)
    for f in covered:
        del infos[f]
    if assignment is not None:
        assignment.check_frames({f: i.n_frames for f, i in infos.items()})

    plan = _plan_table(files, infos, assignment, vocab)
    n = len(plan)
    store = RunStore.create(out, n_samples=n, partition_size=partition_size, params={STAGE: params},
                            vocabulary=vocab)
    store.set_stage(STAGE, "running", n_files=len(files), n_samples=n, n_scan_errors=len(errors))
    store.record_errors(errors, stage=STAGE, key="scan")
    error_of = {e["source_uri"]: e["error_type"] for e in errors}
    status = stats.assign(
        n_frames=[infos[f].n_frames if f in infos else 0 for f in files],
        format=[infos[f].detail if f in infos else "" for f in files],
        error_type=[error_of.get(f, "") for f in files],
        covered_by=[covered.get(f, "") for f in files])
    store.write_table(FILES_TABLE, status)
    if n:
        store.images.create((n, size, size), np.float16)
        store.thumbs.create((n, THUMB_SIZE, THUMB_SIZE), np.uint8)
    store.write_table(PLAN_TABLE, plan)  # last: its existence marks a complete plan
    log.info("Planned %d samples from %d files (%d could not be scanned) in %s", n, len(files), len(errors), out)
    return store


def _plan_table(files: Sequence[str], infos: dict, assignment: LabelAssignment | None,
                vocabulary: Vocabulary = DEFAULT_VOCABULARY) -> pd.DataFrame:
    """One row per planned frame, built column-wise (a per-file DataFrame is ~100x slower)."""
    ok = [f for f in files if f in infos]
    counts = np.array([infos[f].n_frames for f in ok], dtype=np.int64)
    n = int(counts.sum())
    file_of = np.repeat(np.arange(len(ok)), counts)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64) if len(ok) else np.zeros(0, np.int64)
    frame = (np.arange(n, dtype=np.int64) - np.repeat(starts, counts)).astype(np.int32)
    labelled = np.zeros(n, dtype=bool)
    y = np.zeros((n, len(vocabulary)), dtype=bool)
    if assignment is not None:
        for k, f in enumerate(ok):
            if f in assignment.by_file:
                sl = slice(int(starts[k]), int(starts[k] + counts[k]))
                labelled[sl], y[sl] = assignment.for_file(f, int(counts[k]))
    run_ids = [run_id_for(f) for f in ok]
    splits = {r: split_for_run(r) for r in set(run_ids)}

    def per_file(values: list) -> np.ndarray:
        return np.asarray(values, dtype=object)[file_of] if len(ok) else np.zeros(0, dtype=object)

    cols: dict[str, Any] = {
        "sample_id": np.arange(n, dtype=np.int64),
        "source_uri": per_file(ok),
        "frame": frame,
        "run_id": per_file(run_ids),
        "split": per_file([splits[r] for r in run_ids]),
        "is_synthetic": np.zeros(n, dtype=bool),
        "labelled": labelled,
        "quantitative": np.asarray([bool(infos[f].quantitative) for f in ok], dtype=bool)[file_of],
    }
    cols.update({c: y[:, i] for i, c in enumerate(vocabulary.label_columns())})
    cols["format"] = per_file([infos[f].detail for f in ok])
    plan = pd.DataFrame(cols)
    if assignment is not None and len(assignment.table.metadata.columns):
        row_of = np.full(n, -1, dtype=np.int64)
        for k, f in enumerate(ok):
            if f in assignment.by_file:
                row_of[int(starts[k]):int(starts[k] + counts[k])] = assignment.rows_for_file(f, int(counts[k]))
        plan = pd.concat([plan, _metadata_columns(sample_metadata(assignment.table), row_of)], axis=1)
    return plan


def _metadata_columns(meta: pd.DataFrame, row_of: np.ndarray) -> pd.DataFrame:
    """Label-file metadata (``meta__*``, one row per label row) spread onto samples; null without a row."""
    has = row_of >= 0
    out = {}
    for c in meta.columns:
        col = meta[c].iloc[np.where(has, row_of, 0)].reset_index(drop=True) if len(meta) else \
            pd.Series([None] * len(row_of), dtype=meta[c].dtype)
        out[c] = col.where(pd.Series(has), None) if len(row_of) else col
    return pd.DataFrame(out, index=pd.RangeIndex(len(row_of)))


def _header_columns(headers: list[dict[str, Any] | None]) -> pd.DataFrame:
    """The ``hdr__*`` columns (:mod:`xsgpu.io.readers.headers`), one row per sample, typed; null where absent."""
    out = {}
    for field, (kind, _unit) in HEADER_FIELDS.items():
        values = [None if h is None else h.get(field) for h in headers]
        if kind == "float":
            out[HEADER_PREFIX + field] = pd.Series([np.nan if v is None else float(v) for v in values],
                                                   dtype=np.float64)
        else:
            out[HEADER_PREFIX + field] = pd.Series([None if v is None else str(v) for v in values], dtype="string")
    return pd.DataFrame(out, index=pd.RangeIndex(len(headers)))


# ---------------------------------------------------------------------------------------------- partitions
def _iter_frames(path: str, frames: list[int], h5_dataset: str | None,
                 errors: list[dict[str, Any]], sample_of: dict[int, int],
                 limits: FrameLimits | None = None) -> Iterator[Frame]:
    """Yield ``frames`` of one file; a failing frame becomes an error row and the others are still read."""
    pending = list(frames)
    while pending:
        try:
            for fr in read_any(path, h5_dataset=h5_dataset, frames=pending, limits=limits):
                pending.pop(0)
                yield fr
        except Exception as exc:  # noqa: BLE001 - every failure is recorded as an error row
            if not isinstance(exc, ReaderError):
                log.error("Reading %s failed unexpectedly:\n%s", path, traceback.format_exc())
            bad = pending.pop(0)
            errors.append(_error_row(path, exc, frame=bad, sample_id=sample_of[bad]))


def _read_plan_rows(store: RunStore, start: int, stop: int) -> pd.DataFrame:
    table = pq.read_table(store.table_path(PLAN_TABLE),
                          filters=[("sample_id", ">=", start), ("sample_id", "<", stop)])
    return table.to_pandas().sort_values("sample_id", kind="stable").reset_index(drop=True)


def ingest_partition(run_path: str | os.PathLike, part: int, *,
                     on_sample: Callable[[int], Any] | None = None) -> int:
    """Read, preprocess and write partition ``part`` of a planned ingest (idempotent).

    Writes rows ``partition_bounds(part)`` of ``images.zarr`` (float16 ``log_scale`` at the run's size,
    masked pixels 0) block by block (one Zarr chunk of rows at a time, so memory stays at one chunk of
    images plus one frame), then ``thumbs.zarr`` (uint8 64x64), the partition's error rows, and last its
    ``samples`` part (atomically).

    Parameters
    ----------
    run_path : path
        A run planned by :func:`plan_ingest`.
    part : int
        Partition number.
    on_sample : callable, optional
        Called with the number of samples just processed (for progress bars).

    Returns
    -------
    int
        Number of valid (readable) samples in the partition.
    """
    from xsgpu.preprocess import log_scale, make_thumbnails, resize_batch

    store = RunStore.open(run_path)
    params = store.manifest.get("params", {}).get(STAGE)
    if params is None or not store.table_path(PLAN_TABLE).is_file():
        raise RunStoreError(f"{store.path}: no ingest plan. Hint: run `xsgpu ingest ... --out {store.path}`.")
    size, h5_dataset = int(params["size"]), params.get("h5_dataset")
    limits = FrameLimits(max_frame_pixels=int(params.get("max_frame_pixels", DEFAULT_MAX_FRAME_PIXELS)),
                         max_frames_per_file=int(params.get("max_frames_per_file", DEFAULT_MAX_FRAMES_PER_FILE)))
    start, stop = store.partition_bounds(part)
    rows = _read_plan_rows(store, start, stop)
    images_arr = store.images.open("r+")
    n = stop - start
    valid = np.zeros(n, dtype=bool)
    hw = np.zeros((n, 2), dtype=np.int32)
    headers: list[dict[str, Any] | None] = [None] * n
    thumbs = np.zeros((n, THUMB_SIZE, THUMB_SIZE), dtype=np.uint8)
    errors: list[dict[str, Any]] = []
    block = max(1, int(images_arr.chunks[0]))  # partitions start on chunk boundaries (RunStore.create_array)
    for b0 in range(0, n, block):
        b1 = min(b0 + block, n)
        images = np.zeros((b1 - b0, size, size), dtype=np.float32)
        sub = rows.iloc[b0:b1]
        for path, group in sub.groupby("source_uri", sort=False):
            sample_of = dict(zip(group["frame"].tolist(), group["sample_id"].tolist()))
            for fr in _iter_frames(path, group["frame"].tolist(), h5_dataset, errors, sample_of, limits):
                i = sample_of[fr.frame] - start
                images[i - b0] = resize_batch(log_scale(fr.data, fr.mask)[None], size)[0]
                valid[i] = True
                hw[i] = fr.shape
                headers[i] = fr.metadata.get("hdr")
                if on_sample is not None:
                    on_sample(1)
        ok = valid[b0:b1]
        if on_sample is not None and not ok.all():
            on_sample(int((~ok).sum()))  # unreadable rows count as processed too
        if ok.any():
            thumbs[b0:b1][ok] = make_thumbnails(images[ok], size=THUMB_SIZE)
        images_arr[start + b0:start + b1] = images.astype(np.float16)
    store.thumbs.open("r+")[start:stop] = thumbs
    store.record_errors(errors, stage=STAGE, key=partition_key(part))
    samples = rows.drop(columns=["format"]).assign(valid=valid, format=rows["format"], height=hw[:, 0],
                                                   width=hw[:, 1])
    meta_cols = [c for c in rows.columns if c.startswith(META_PREFIX)]
    samples = pd.concat([samples[sample_columns(store.vocabulary) + meta_cols].reset_index(drop=True),
                         _header_columns(headers)], axis=1)
    store.samples.write_partition(part, samples,
                          metadata={"stage": STAGE, "size": size, "n_valid": int(valid.sum())})
    return int(valid.sum())


def ingest_paths(
    paths: Iterable[str | os.PathLike],
    out: str | os.PathLike,
    *,
    labels: str | os.PathLike | None = None,
    size: int = 256,
    partition_size: int = 4096,
    h5_dataset: str | None = None,
    n_workers: int = 1,
    progress: bool = True,
    max_frame_pixels: int = DEFAULT_MAX_FRAME_PIXELS,
    max_frames_per_file: int = DEFAULT_MAX_FRAMES_PER_FILE,
    vocabulary: Vocabulary | str | None = None,
) -> RunStore:
    """Ingest detector files into the run store ``out`` (plan, then every pending partition).

    Parameters
    ----------
    paths : iterable of path
        Files, directories (recursive) and globs.
    out : path
        The run directory; an interrupted ingest there is resumed.
    labels : path, optional
        CSV/Parquet label file (:mod:`xsgpu.io.labels`); without it every sample is unlabelled.
    vocabulary : Vocabulary or "from-labels", optional
        The run's attributes (manifest ``vocabulary``): default the paper's 17; ``"from-labels"``
        takes them from the label file's attribute columns (:func:`xsgpu.io.labels.read_labels`).
    size : int
        Side of the stored square images (``images.zarr`` is float16 (N, size, size)).
    partition_size : int
        Samples per partition (the unit of atomic writes, resume and parallel work).
    h5_dataset : str, optional
        HDF5 dataset path / MATLAB variable / ``.npz`` key holding the frames (auto-detected if None).
    n_workers : int
        Threads that scan files, and processes that write partitions in parallel (1: all in this
        process). The result does not depend on it. For a cluster, use the Dask pipeline instead.
    progress : bool
        Show tqdm progress bars (files scanned, then frames ingested).
    max_frame_pixels, max_frames_per_file : int
        :class:`~xsgpu.io.limits.FrameLimits`: a file whose header declares a larger frame or more
        frames is an error row (``FrameLimitError``) before any pixel is read.

    Returns
    -------
    RunStore
        With ``samples``, ``images``, ``thumbs`` and (if any input failed) ``errors``; the manifest's
        ``ingest`` stage holds the counts.

    Raises
    ------
    IngestError
        Bad arguments, changed inputs on resume, or no readable frame at all (the error rows are
        written first).
    LabelsError
        A bad label file (before anything is written).
    """
    from tqdm.auto import tqdm

    store = plan_ingest(paths, out, labels=labels, vocabulary=vocabulary, size=size, partition_size=partition_size,
                        h5_dataset=h5_dataset, n_workers=n_workers, progress=progress,
                        max_frame_pixels=max_frame_pixels, max_frames_per_file=max_frames_per_file)
    if store.n_samples == 0:
        store.set_stage(STAGE, "failed", reason="no readable frames")
        n_err = len(store.read_errors())
        raise IngestError(f"None of the inputs gave a readable frame ({n_err} error rows in "
                          f"{store.errors.path}); nothing to ingest.")
    pending = store.samples.pending()
    total = sum(b - a for a, b in map(store.partition_bounds, pending))
    with tqdm(total=total, desc="ingest", unit="frame", disable=not progress) as bar:
        if n_workers == 1 or len(pending) <= 1:
            for part in pending:
                ingest_partition(store.path, part, on_sample=bar.update)
        else:
            import multiprocessing

            from xsgpu.io.workers import watch_parent

            ctx = multiprocessing.get_context("spawn")  # no fork of a process holding HDF5/zarr state
            # workers end themselves when this process dies (killed ingest: no orphans left running)
            with ProcessPoolExecutor(max_workers=min(n_workers, len(pending)), mp_context=ctx,
                                     initializer=watch_parent, initargs=(os.getpid(),)) as pool:
                futures = {pool.submit(ingest_partition, str(store.path), part): part for part in pending}
                for fut in as_completed(futures):
                    fut.result()
                    a, b = store.partition_bounds(futures[fut])
                    bar.update(b - a)
    finish_ingest(store)
    return store


def finish_ingest(store: RunStore) -> dict[str, int]:
    """Check that every partition is finished and record the counts as the ``ingest`` stage ``done``.

    Returns
    -------
    dict
        ``n_samples``, ``n_valid``, ``n_labelled``, ``n_error_rows`` (also stored in the manifest).

    Raises
    ------
    RunStoreError
        If partitions are still pending (run :func:`ingest_partition` for them first).
    """
    pending = store.samples.pending()
    if pending:
        raise RunStoreError(f"{store.path}: ingest partitions {pending[:10]} are not finished yet; run "
                            "ingest_partition for them (or rerun `xsgpu ingest` with the same arguments).")
    samples = store.samples.read(columns=["sample_id", "valid", "labelled"])
    errors = store.read_errors()
    counts = {"n_samples": int(len(samples)), "n_valid": int(samples["valid"].sum()),
              "n_labelled": int(samples["labelled"].sum()),
              "n_error_rows": int((errors["stage"] == STAGE).sum()) if len(errors) else 0}
    store.set_stage(STAGE, "done", **counts)
    log.info("Ingested %s into %s", counts, store.path)
    return counts
