"""Outputs computed elsewhere (TensorFlow/Keras, a facility pipeline ...) imported as if ``xsgpu infer`` wrote them.

:func:`import_outputs` reads a predictions table and, optionally, a features array, checks them
against the run, and writes ``predictions.parquet/`` (sample_id, p__<slug> float32 x17, per partition,
with model_id / arch / weights_sha256 in the metadata) and ``features.zarr`` (N x D float16) through the
same RunStore calls as :func:`xsgpu.model.infer_partition`, so ``xsgpu embed``, ``xsgpu evaluate`` and
the app read them unchanged.

Predictions (CSV or Parquet, one row per sample)
-------------------------------------------------
* the key: a ``sample_id`` column (the run's ids), or a file column (``source_uri``, ``file``, ``path``
  or ``filename``; matched to the run's ``source_uri`` by the label-file rules of
  :mod:`xsgpu.io.labels`: absolute path, relative to the predictions file, relative to an ingested
  directory, or a bare name) with a ``frame`` column for multi-frame files (an empty frame cell means
  "the only frame of a single-frame file");
* 17 attribute columns, named like label columns (``Ring``, ``ring``, ``p__ring``, ``logit__ring``);
  other columns are ignored (logged);
* ``kind="probabilities"`` (values in [0, 1]) or ``"logits"`` (any finite value; the sigmoid is applied).

Every sample of the run must have exactly one row. NaN/inf, values outside [0, 1] for probabilities,
unknown or repeated keys and missing samples are refused with the rows or keys named, before anything
is written.

Features (optional)
-------------------
``.npy`` (memory-mapped), Zarr (``.zarr`` directory: an array, or a group with ``dataset``) or HDF5
(``.h5``/``.hdf5``: ``dataset``, default the only 2-D dataset), float, shape (N, D). Rows are in
sample-id order (``features_order="sample_id"``), or in the row order of the predictions file
(``"predictions"``); a 1-D integer ``sample_id`` array/dataset beside the features in a Zarr group or
HDF5 file keys the rows instead. Rows are streamed partition by partition (1M x 2048 never sits in
memory); NaN/inf rows are refused.

Examples
--------
::

    from xsgpu.io.import_outputs import import_outputs
    import_outputs("runs/beamline", predictions="keras_out/preds.csv", features="keras_out/fea.npy")
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.special import expit

from xsgpu.attributes import DEFAULT_VOCABULARY, Vocabulary
from xsgpu.errors import InputError, StoreError
from xsgpu.io.labels import KEY_COLUMNS, resolve_file_keys
from xsgpu.io.runstore import RunStore
from xsgpu.io.schema import SAMPLES

__all__ = ["OutputsImportError", "import_outputs", "read_predictions_table", "open_features"]

log = logging.getLogger(__name__)

_SHOW = 8
_PREFIXES = ("p__", "logit__", "prob__", "y__")


class OutputsImportError(InputError):
    """A predictions or features file does not fit the run; the message names the rows, keys or columns."""


def _show(items) -> str:
    items = list(items)
    more = f" ... and {len(items) - _SHOW} more" if len(items) > _SHOW else ""
    return ", ".join(str(i) for i in items[:_SHOW]) + more


def read_predictions_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a predictions file (``.csv`` or ``.parquet``); keys stay strings in CSV."""
    path = Path(path)
    if not path.is_file():
        raise OutputsImportError(f"Predictions file {path} does not exist. Hint: check --predictions.")
    ext = path.suffix.lower()
    try:
        if ext in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if ext == ".csv":
            df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
            return df
    except Exception as exc:
        raise OutputsImportError(f"Predictions file {path}: cannot parse it ({type(exc).__name__}: {exc}).") from exc
    raise OutputsImportError(f"Predictions file {path}: unsupported extension {ext!r}; expected .csv or .parquet.")


def _attribute_columns(path: Path, df: pd.DataFrame, skip: set[str],
                       vocab: Vocabulary = DEFAULT_VOCABULARY) -> list[str]:
    """The column holding each attribute of the run's vocabulary, in its order."""
    col_of: dict[int, list[str]] = {}
    ignored = []
    for c in df.columns:
        if c in skip:
            continue
        name = c.strip().lower()
        for prefix in _PREFIXES:
            if name.startswith(prefix):
                name = name[len(prefix):]
                break
        try:
            col_of.setdefault(vocab.resolve(name).index, []).append(c)
        except KeyError:
            ignored.append(c)
    if ignored:
        log.info("Predictions file %s: ignoring non-attribute column(s) %s", path, ", ".join(map(str, ignored)))
    names, k = vocab.names, len(vocab)
    dup = {names[j]: cols for j, cols in col_of.items() if len(cols) > 1}
    if dup:
        raise OutputsImportError(f"Predictions file {path}: attribute(s) given by more than one column: {dup}.")
    missing = [names[j] for j in range(k) if j not in col_of]
    if missing:
        raise OutputsImportError(
            f"Predictions file {path}: missing attribute column(s) {_show(missing)}; all {k} of the run's "
            f"attributes are needed (named like {names[0]!r}, {vocab[0].slug!r} or {vocab.prob_columns()[0]!r}).")
    return [col_of[j][0] for j in range(k)]


def _values(path: Path, df: pd.DataFrame, cols: list[str], rows: np.ndarray, kind: str) -> np.ndarray:
    """(n, len(cols)) float32 probabilities from the attribute columns, checked."""
    out = np.empty((len(df), len(cols)), np.float32)
    for j, c in enumerate(cols):
        v = pd.to_numeric(df[c], errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(v)
        if bad.any():
            cells = [f"row {rows[i]}: {df[c].iloc[i]!r}" for i in np.flatnonzero(bad)]
            raise OutputsImportError(f"Predictions file {path}: column {c!r} must hold finite numbers; got "
                                     f"{_show(cells)}.")
        if kind == "probabilities":
            off = (v < 0) | (v > 1)
            if off.any():
                cells = [f"row {rows[i]}: {v[i]:.6g}" for i in np.flatnonzero(off)]
                raise OutputsImportError(
                    f"Predictions file {path}: column {c!r} holds values outside [0, 1] ({_show(cells)}). Hint: if "
                    "these are logits (before the sigmoid), pass --kind logits.")
            out[:, j] = v
        else:
            out[:, j] = expit(v)
    return out


def _sample_ids(path: Path, df: pd.DataFrame, samples: pd.DataFrame, rows: np.ndarray) -> tuple[np.ndarray, set[str]]:
    """The sample id of each row, and the key columns used."""
    n = len(samples)
    cols = {c.lower(): c for c in df.columns}
    if "sample_id" in cols:
        c = cols["sample_id"]
        v = pd.to_numeric(df[c], errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(v) | (v != np.round(v)) | (v < 0) | (v >= n)
        if bad.any():
            cells = [f"row {rows[i]}: {df[c].iloc[i]!r}" for i in np.flatnonzero(bad)]
            raise OutputsImportError(f"Predictions file {path}: sample_id must be an integer in 0..{n - 1} (the run "
                                     f"has {n} samples); got {_show(cells)}.")
        return v.astype(np.int64), {c}
    keys = [cols[k] for k in KEY_COLUMNS if k in cols]
    if len(keys) != 1:
        raise OutputsImportError(
            f"Predictions file {path}: needs a key, either a sample_id column or exactly one file column of "
            f"{list(KEY_COLUMNS)} (plus frame); found {keys or 'none'} among {list(df.columns)[:20]}.")
    key = keys[0]
    frame_col = cols.get("frame")
    uris = samples["source_uri"].astype(str).to_numpy()
    frames = samples["frame"].to_numpy(np.int64)
    unique = sorted(set(uris))
    by_uri: dict[str, dict[int, int]] = {}
    for sid, (u, f) in enumerate(zip(uris, frames)):
        by_uri.setdefault(u, {})[int(f)] = sid
    key_vals = [str(k).strip() for k in df[key].tolist()]
    targets, unmatched, ambiguous = resolve_file_keys(key_vals, unique, base=path.resolve().parent, rows=rows)
    if ambiguous or unmatched:
        raise OutputsImportError(
            f"Predictions file {path}: " + "; ".join(
                x for x in (f"ambiguous keys: {_show(ambiguous)}" if ambiguous else "",
                            f"keys matching no sample of the run: {_show(unmatched)}" if unmatched else "") if x)
            + ". Hint: keys are the run's source_uri (absolute), paths relative to the predictions file or an "
            "ingested directory, or bare file names; or key the rows by sample_id.")
    ids = np.empty(len(df), np.int64)
    bad: list[str] = []
    fvals = df[frame_col].tolist() if frame_col else [None] * len(df)
    for i, (t, fv) in enumerate(zip(targets, fvals)):
        known = by_uri[t]
        empty = fv is None or (isinstance(fv, float) and np.isnan(fv)) or (isinstance(fv, str) and not fv.strip())
        if empty:
            if len(known) != 1:
                bad.append(f"row {rows[i]}: {key_vals[i]!r} has {len(known)} frames, give the frame")
                continue
            ids[i] = next(iter(known.values()))
            continue
        try:
            fr = int(float(fv))
        except (TypeError, ValueError):
            bad.append(f"row {rows[i]}: frame {fv!r}")
            continue
        if fr not in known:
            bad.append(f"row {rows[i]}: {key_vals[i]!r} frame {fr} (the run has frames {sorted(known)[:5]})")
            continue
        ids[i] = known[fr]
    if bad:
        raise OutputsImportError(f"Predictions file {path}: rows naming no sample: {_show(bad)}.")
    return ids, {key} | ({frame_col} if frame_col else set())


def _check_once(path: Path, ids: np.ndarray, rows: np.ndarray, samples: pd.DataFrame) -> None:
    n = len(samples)
    counts = np.bincount(ids, minlength=n)
    if (counts > 1).any():
        dup = []
        for sid in np.flatnonzero(counts > 1)[:_SHOW]:
            where = ", ".join(str(r) for r in rows[ids == sid][:4])
            dup.append(f"sample_id {sid} ({samples['source_uri'].iloc[sid]} frame {samples['frame'].iloc[sid]}; "
                       f"rows {where})")
        raise OutputsImportError(f"Predictions file {path}: {int((counts > 1).sum())} samples have several rows: "
                                 f"{_show(dup)}. Keep one row per sample.")
    if (counts == 0).any():
        miss = [f"sample_id {sid} ({samples['source_uri'].iloc[sid]} frame {samples['frame'].iloc[sid]})"
                for sid in np.flatnonzero(counts == 0)[:_SHOW]]
        raise OutputsImportError(
            f"Predictions file {path}: {int((counts == 0).sum())} of the run's {n} samples have no row: {_show(miss)}. "
            "Every sample needs one (give unreadable frames, samples.valid False, any value: they are left out of "
            "evaluate and hidden by the app).")


def open_features(path: str | os.PathLike, *, dataset: str | None = None) -> tuple[Any, np.ndarray | None]:
    """Open a features file lazily: ``(array-like (N, D), sample ids (N,) or None)``.

    Raises
    ------
    OutputsImportError
        A missing file, an unknown format, or no (unique) 2-D float array.
    """
    path = Path(path)
    if not path.exists():
        raise OutputsImportError(f"Features file {path} does not exist. Hint: check --features.")
    ext = path.suffix.lower()
    key_ids = None
    if ext == ".npy":
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    elif ext == ".zarr" or path.is_dir():
        import zarr

        node = zarr.open(str(path), mode="r")
        if isinstance(node, zarr.Array):
            arr = node
        else:
            arrays = {k: v for k, v in node.arrays()}
            arr = _pick_dataset(path, {k: v for k, v in arrays.items() if len(v.shape) == 2}, dataset, arrays)
            if "sample_id" in arrays and len(arrays["sample_id"].shape) == 1:
                key_ids = np.asarray(arrays["sample_id"][:])
    elif ext in (".h5", ".hdf5", ".hdf"):
        import h5py

        fh = h5py.File(path, "r")
        found: dict[str, Any] = {}
        fh.visititems(lambda name, obj: found.__setitem__(name, obj) if isinstance(obj, h5py.Dataset) else None)
        arr = _pick_dataset(path, {k: v for k, v in found.items() if v.ndim == 2}, dataset, found)
        if "sample_id" in found and found["sample_id"].ndim == 1:
            key_ids = np.asarray(found["sample_id"][:])
    else:
        raise OutputsImportError(f"Features file {path}: unsupported format {ext!r}; expected .npy, .zarr or .h5.")
    if len(arr.shape) != 2 or np.dtype(arr.dtype).kind not in "fiu":
        raise OutputsImportError(f"Features file {path}: expected a numeric (N, D) array; got shape "
                                 f"{tuple(arr.shape)} of {arr.dtype}.")
    return arr, key_ids


def _pick_dataset(path: Path, two_d: dict[str, Any], dataset: str | None, everything: dict[str, Any]):
    if dataset is not None:
        if dataset not in everything:
            raise OutputsImportError(f"Features file {path}: no array {dataset!r}; it holds {sorted(everything)}.")
        return everything[dataset]
    if "features" in two_d:
        return two_d["features"]
    if len(two_d) == 1:
        return next(iter(two_d.values()))
    raise OutputsImportError(f"Features file {path}: cannot tell which array holds the features among 2-D arrays "
                             f"{sorted(two_d) or 'none'}. Hint: name it with --features-dataset.")


def _take(arr: Any, idx: np.ndarray) -> np.ndarray:
    """Rows ``idx`` of a lazily read array, read in increasing order (h5py needs it)."""
    order = np.argsort(idx, kind="stable")
    sorted_idx = idx[order]
    if len(sorted_idx) and (sorted_idx == np.arange(sorted_idx[0], sorted_idx[0] + len(sorted_idx))).all():
        vals = np.asarray(arr[int(sorted_idx[0]):int(sorted_idx[-1]) + 1])
    elif hasattr(arr, "get_orthogonal_selection"):
        vals = np.asarray(arr.get_orthogonal_selection((sorted_idx, slice(None))))
    else:
        vals = np.asarray(arr[sorted_idx])
    out = np.empty_like(vals)
    out[order] = vals
    return out


def _feature_rows(path: Path, arr: Any, key_ids: np.ndarray | None, n: int, *, order: str,
                  pred_ids: np.ndarray) -> np.ndarray:
    """``src[sid]`` = the row of the features file holding sample ``sid``."""
    if arr.shape[0] != n:
        raise OutputsImportError(f"Features file {path}: {arr.shape[0]} rows, but the run has {n} samples; one row "
                                 "per sample is needed.")
    if key_ids is not None:
        ids = key_ids.astype(np.int64)
        if len(ids) != n or ids.min() < 0 or ids.max() >= n or len(np.unique(ids)) != n:
            raise OutputsImportError(f"Features file {path}: its sample_id array must hold each of 0..{n - 1} once.")
    elif order == "predictions":
        ids = pred_ids
    else:
        return np.arange(n, dtype=np.int64)
    src = np.empty(n, np.int64)
    src[ids] = np.arange(n, dtype=np.int64)
    return src


def _fingerprint(paths: list[Path], extra: str) -> str:
    h = hashlib.sha256(extra.encode())
    for p in paths:
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file():
                    h.update(f.relative_to(p).as_posix().encode())
                    h.update(f.read_bytes())
        else:
            with open(p, "rb") as fh:
                while block := fh.read(1 << 20):
                    h.update(block)
    return h.hexdigest()


def import_outputs(
    run_path: str | os.PathLike,
    *,
    predictions: str | os.PathLike,
    features: str | os.PathLike | None = None,
    kind: Literal["probabilities", "logits"] = "probabilities",
    features_dataset: str | None = None,
    features_order: Literal["sample_id", "predictions"] = "sample_id",
    model_id: str | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Check and import predictions (and features) computed elsewhere into a run; return a summary.

    Parameters
    ----------
    run_path : path
        A run store with ``samples``.
    predictions : path
        CSV or Parquet (see the module docstring).
    features : path, optional
        ``.npy``, ``.zarr`` or ``.h5`` (N, D).
    kind : {"probabilities", "logits"}
    features_dataset : str, optional
        Array/dataset name inside a Zarr group or HDF5 file.
    features_order : {"sample_id", "predictions"}
        Row order of a features file without a ``sample_id`` array.
    model_id : str, optional
        Stored as the predictions' ``model_id`` (default ``imported-<hash>``).
    overwrite : bool
        Replace predictions/features already in the run (from infer or an earlier import).

    Returns
    -------
    dict
        n_samples, feature_dim (0 without features), model_id, weights_sha256.

    Raises
    ------
    OutputsImportError
        Files that do not fit the run, named by row, key or column; nothing is written then.
    StoreError
        The run already holds predictions (without ``overwrite``).
    """
    if kind not in ("probabilities", "logits"):
        raise OutputsImportError(f"The 'kind' parameter of import_outputs must be 'probabilities' or 'logits'. "
                                 f"Got {kind!r} instead.")
    if features_order not in ("sample_id", "predictions"):
        raise OutputsImportError(f"The 'features_order' parameter must be 'sample_id' or 'predictions'. "
                                 f"Got {features_order!r} instead.")
    store = RunStore.open(run_path, require=[SAMPLES])
    pred_path = Path(predictions)
    samples = store.samples.read(columns=["sample_id", "source_uri", "frame"]).sort_values("sample_id")
    samples = samples.reset_index(drop=True)
    n = store.n_samples
    df = read_predictions_table(pred_path)
    df.columns = [str(c).strip() for c in df.columns]
    rows = np.arange(len(df), dtype=np.int64) + 2
    ids, key_cols = _sample_ids(pred_path, df, samples, rows)
    cols = _attribute_columns(pred_path, df, key_cols, store.vocabulary)
    probs = _values(pred_path, df, cols, rows, kind)
    _check_once(pred_path, ids, rows, samples)
    by_sid = np.empty((n, len(store.vocabulary)), np.float32)
    by_sid[ids] = probs

    feat_arr, src, dim = None, None, 0
    if features is not None:
        feat_path = Path(features)
        feat_arr, key_ids = open_features(feat_path, dataset=features_dataset)
        src = _feature_rows(feat_path, feat_arr, key_ids, n, order=features_order, pred_ids=ids)
        dim = int(feat_arr.shape[1])
        for p in range(store.n_partitions):  # validate everything before writing anything
            a, b = store.partition_bounds(p)
            block = _take(feat_arr, src[a:b]).astype(np.float32)
            bad = ~np.isfinite(block).all(axis=1)
            if bad.any():
                raise OutputsImportError(f"Features file {feat_path}: rows for sample_id "
                                         f"{_show((a + np.flatnonzero(bad)).tolist())} hold NaN/inf.")

    if store.predictions.finished() or store.features.path.exists():
        if not overwrite:
            raise StoreError(f"{store.path} already holds predictions or features (from `xsgpu infer` or an earlier "
                             "import). Hint: pass --overwrite to replace them.")
        log.info("overwrite: removing predictions and features of %s", store.path)
        shutil.rmtree(store.predictions.path, ignore_errors=True)
        shutil.rmtree(store.features.path, ignore_errors=True)

    files = [pred_path] + ([Path(features)] if features is not None else [])
    sha = _fingerprint(files, f"{kind}:{features_dataset}:{features_order}")
    mid = model_id or f"imported-{sha[:12]}"
    meta = {"model_id": mid, "arch": "imported", "weights_sha256": sha, "input_size": None, "feature_dim": dim,
            "stage": "import-outputs", "kind": kind, "predictions_file": str(pred_path.absolute()),
            "features_file": str(Path(features).absolute()) if features is not None else None}
    store.set_stage("infer", "running", model_id=mid, imported=True)
    out = None
    if feat_arr is not None:
        from xsgpu.model.infer import ensure_features_array

        out = ensure_features_array(store, dim)
    for p in range(store.n_partitions):
        a, b = store.partition_bounds(p)
        if out is not None:
            out[a:b] = _take(feat_arr, src[a:b]).astype(np.float16)
        part = pd.DataFrame(by_sid[a:b], columns=store.vocabulary.prob_columns())
        part.insert(0, "sample_id", np.arange(a, b, dtype=np.int64))
        store.predictions.write_partition(p, part, metadata=meta)
    if hasattr(feat_arr, "file") and hasattr(feat_arr.file, "close"):  # an h5py dataset
        feat_arr.file.close()
    store.set_stage("infer", "done", model_id=mid, imported=True, n_images=n, feature_dim=dim)
    log.info("imported %d predictions%s into %s as %s", n, f" and {dim}-D features" if dim else "", store.path, mid)
    return {"n_samples": n, "feature_dim": dim, "model_id": mid, "weights_sha256": sha}
