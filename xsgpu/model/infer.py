"""Run inference over a run store: ``predictions.parquet`` (PRD) and ``features.zarr`` (FEA).

Per partition, :func:`infer_partition` reads the partition's frames from ``images.zarr`` in batches
(a background thread reads the next batch while the model runs), writes the feature rows into
``features.zarr`` (float16, N x D) first and the predictions part (sample_id, p__<slug> float32 x17,
with model_id, arch, weights_sha256, input_size in the Parquet metadata) last and atomically. A
partition is finished exactly when its predictions part exists, so :func:`infer_run` resumes a
killed job by skipping finished partitions; a rerun of a partition rewrites the same rows.

With ``heatmaps=True`` (the default of ``xsgpu infer``) a model ending in global average pooling +
linear also writes ``heatmaps.zarr`` (float16, N x C x h x w: one class activation map per attribute
at the last block's spatial size, :mod:`xsgpu.explain.cam`), and ``layers=("layer2", ...)`` writes each
block's globally pooled activations as ``features_<layer>.zarr`` (float16, N x K). They come from the
same forward pass, are chunked by partition like ``features.zarr`` and written before the predictions
part, so the same finished-partition rule covers them. The arrays a partition got are listed under
``outputs`` in the part's metadata; a resume asking for other outputs is refused (``--overwrite``
redoes all partitions).

The Dask pipeline loads one :class:`~xsgpu.model.predictor.Predictor` per worker and maps
:func:`infer_partition` over :meth:`RunStore.predictions.pending()`; it writes the extra outputs its
predictor was set up for (:meth:`~xsgpu.model.predictor.Predictor.set_outputs`).

Examples
--------
::

    from xsgpu.model import infer_run
    infer_run("runs/demo", model="models/r18", device="auto", batch_size=256)
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from xsgpu.io.chunks import COMPLETE_CHUNKS_ATTR
from xsgpu.io.locks import stage_lock
from xsgpu.io.runstore import RunStore, RunStoreError
from xsgpu.io.staging import Staging, recover
from xsgpu.model.predictor import HEATMAPS, Predictor, layer_of
from xsgpu.io.schema import FEATURES, IMAGES, PREDICTIONS

__all__ = ["infer_partition", "infer_run", "plan_infer", "finish_infer", "InferPlan", "finished_models",
           "prediction_metadata", "ensure_features_array", "ensure_output_array", "read_batches", "extra_arrays",
           "MODEL_ATTR"]

log = logging.getLogger(__name__)


def prediction_metadata(predictor: Predictor) -> dict[str, Any]:
    """The metadata stored with every predictions part."""
    m = predictor.meta
    out = {"model_id": m["model_id"], "arch": m["arch"], "weights_sha256": m["weights_sha256"],
           "input_size": m["input_size"], "feature_dim": predictor.feature_dim, "stage": "infer"}
    extra = getattr(predictor, "extra_outputs", ())
    out["outputs"] = {name: list(predictor.extra_shapes[name]) for name in extra}
    if m.get("path"):  # what `xsgpu explain` loads by default
        out["model_path"] = os.path.abspath(str(m["path"]))
    return out


#: Zarr attribute of the extra arrays naming the model (weights hash) whose outputs they hold
MODEL_ATTR = "weights_sha256"


def extra_arrays(store: RunStore) -> list[str]:
    """The extra inference arrays a run holds (``heatmaps``, ``features_<layer>``), sorted."""
    if not store.path.is_dir():
        return []
    names = [e[:-len(".zarr")] for e in os.listdir(store.path) if e.endswith(".zarr")]
    return sorted(n for n in names if n == HEATMAPS or layer_of(n) is not None)


def ensure_output_array(store: RunStore, name: str, row_shape: tuple[int, ...], *,
                        attrs: dict[str, Any] | None = None):
    """Open the Zarr array ``RUN/<name>.zarr`` (N, *row_shape) float16, creating it atomically if absent.

    Creation happens in a temporary directory renamed into place, so Dask workers starting together
    never clobber each other's rows; a loser of the race just opens the winner's array. Rows are
    chunked by partition (a chunk capped at ~64 MB). ``attrs`` are written at creation; an existing
    array whose :data:`MODEL_ATTR` differs from ``attrs``' holds another model's rows and is refused.
    """
    import zarr

    handle = store.artifact(name)
    path = handle.path
    shape = (store.n_samples, *row_shape)
    row_bytes = int(np.prod(row_shape, dtype=np.int64)) * 2
    if not path.exists():
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        chunk_rows = store.partition_size
        while chunk_rows * row_bytes > 64 * 2**20 and chunk_rows % 2 == 0:
            chunk_rows //= 2
        new = zarr.open_array(str(tmp), mode="w", shape=shape,
                              chunks=(max(1, min(chunk_rows, store.n_samples or 1)), *row_shape), dtype=np.float16,
                              fill_value=0)
        # every chunk is stored: a missing one is lost data
        new.attrs.update({COMPLETE_CHUNKS_ATTR: True, **(attrs or {})})
        try:
            os.rename(tmp, path)
        except OSError:  # another worker won the race
            shutil.rmtree(tmp, ignore_errors=True)
    arr = handle.open(mode="r+")
    hint = "Hint: rerun with overwrite=True (--overwrite) to replace another model's outputs."
    if tuple(arr.shape) != shape or np.dtype(arr.dtype) != np.float16:
        raise RunStoreError(f"{path} has shape {arr.shape} {arr.dtype}, but this model writes {shape} float16. {hint}")
    want, have = (attrs or {}).get(MODEL_ATTR), arr.attrs.get(MODEL_ATTR)
    if want is not None and have is not None and have != want:
        raise RunStoreError(f"{path} holds the outputs of model {str(have)[:12]}..., this one is {str(want)[:12]}... "
                            f"{hint}")
    return arr


def ensure_features_array(store: RunStore, dim: int):
    """Open ``features.zarr`` (N, dim) float16, creating it atomically if absent (:func:`ensure_output_array`)."""
    return ensure_output_array(store, FEATURES.name, (dim,))


def _extra_attrs(predictor: Predictor, name: str) -> dict[str, Any]:
    m = predictor.meta
    attrs: dict[str, Any] = {MODEL_ATTR: m["weights_sha256"], "model_id": m["model_id"], "input_size": m["input_size"]}
    if name == HEATMAPS:
        attrs.update(kind="class activation map: CAM_c = sum_k w_ck A_k over the last block's maps A",
                     attributes=list(m["attributes"]),
                     bias=[float(b) for b in predictor.model.head.bias.detach().cpu().tolist()])
    else:
        attrs.update(kind="global average pool of one block's activations", layer=layer_of(name))
    return attrs


def read_batches(images, start: int, stop: int, batch_size: int, *, workers: int = 2) -> Iterator[np.ndarray]:
    """Yield rows ``start:stop`` of an (N, H, W) Zarr array as batches of ``batch_size`` rows (last may be short).

    Reads whole chunk-aligned blocks (each chunk is decompressed once even when a batch is smaller
    than a chunk), ``workers`` blocks at a time in threads, and re-cuts them into equal batches (so a
    compiled model sees one shape).
    """
    chunk = int(getattr(images, "chunks", (batch_size,))[0]) or batch_size
    rows = chunk * max(1, -(-batch_size // chunk))
    edges = list(range(start - start % chunk, stop, rows))
    bounds = [(max(a, start), min(a + rows, stop)) for a in edges]
    carry: list[np.ndarray] = []
    have = 0
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(images.__getitem__, slice(a, b)) for a, b in bounds[:workers + 1]]
        nxt = len(futures)
        while futures:
            block = np.asarray(futures.pop(0).result())
            if nxt < len(bounds):
                a, b = bounds[nxt]
                futures.append(pool.submit(images.__getitem__, slice(a, b)))
                nxt += 1
            carry.append(block)
            have += len(block)
            while have >= batch_size:
                joined = np.concatenate(carry) if len(carry) > 1 else carry[0]
                yield joined[:batch_size]
                rest = joined[batch_size:]
                carry, have = ([rest] if len(rest) else []), len(rest)
    if have:
        yield np.concatenate(carry) if len(carry) > 1 else carry[0]


def infer_partition(run_path: str | os.PathLike, part: int, predictor: Predictor, *, read_workers: int = 2) -> int:
    """Predict partition ``part`` of a run; write its features rows, then its predictions part. Return rows.

    Parameters
    ----------
    run_path : path
        Run store with ``images``.
    part : int
        Partition number (0 .. n_partitions - 1).
    predictor : Predictor
        Loaded model (checked against the run: attributes and stored frame size).
    read_workers : int
        Threads reading and decompressing Zarr chunks ahead of the model.
    """
    store = RunStore.open(run_path, require=[IMAGES])
    predictor.check_run(store)
    cols = getattr(predictor, "output_columns", None)  # model outputs giving the run's attributes (attribute map)
    start, stop = store.partition_bounds(part)
    images = store.images.open()
    if images.shape[0] != store.n_samples:
        raise RunStoreError(f"{store.images.path} has {images.shape[0]} rows, but the manifest says "
                            f"n_samples={store.n_samples}.")
    feats_arr = ensure_features_array(store, predictor.feature_dim)
    extra = tuple(getattr(predictor, "extra_outputs", ()))
    extra_arrs = [ensure_output_array(store, name, predictor.extra_shapes[name], attrs=_extra_attrs(predictor, name))
                  for name in extra]
    batches = read_batches(images, start, stop, predictor.batch_size, workers=read_workers)
    feats = np.empty((stop - start, predictor.feature_dim), np.float16)
    probs = np.empty((stop - start, len(store.vocabulary)), np.float32)
    extra_rows = [np.empty((stop - start, *predictor.extra_shapes[name]), np.float16) for name in extra]
    row = 0
    for f, p, *rest in predictor.predict_iter(batches):
        feats[row:row + len(f)] = f
        probs[row:row + len(p)] = p if cols is None else p[:, cols]
        for buf, r in zip(extra_rows, rest):
            buf[row:row + len(r)] = r
        row += len(f)
    if row != stop - start:
        raise RuntimeError(f"partition {part}: predicted {row} rows, expected {stop - start}.")
    bad = ~np.isfinite(probs).all(axis=1)
    if bad.any():
        raise FloatingPointError(f"partition {part}: {int(bad.sum())} images got non-finite probabilities "
                                 f"(first sample_id {start + int(np.flatnonzero(bad)[0])}).")
    for name, buf in zip(extra, extra_rows):
        bad = ~np.isfinite(buf.reshape(len(buf), -1)).all(axis=1)
        if bad.any():
            raise FloatingPointError(f"partition {part}: {int(bad.sum())} images got non-finite {name} in float16 "
                                     f"(first sample_id {start + int(np.flatnonzero(bad)[0])}).")
    # Zarr rows first (features, then the extra arrays), the predictions part (the finished marker) last
    feats_arr[start:stop] = feats
    for arr, buf in zip(extra_arrs, extra_rows):
        arr[start:stop] = buf
    df = pd.DataFrame(probs, columns=store.vocabulary.prob_columns())
    df.insert(0, "sample_id", np.arange(start, stop, dtype=np.int64))
    store.predictions.write_partition(part, df, metadata=prediction_metadata(predictor))
    return stop - start


def _finished_parts(store: RunStore) -> dict[int, tuple[str, tuple[str, ...]]]:
    """``{partition: (weights_sha256, extra output names)}`` of the finished predictions parts."""
    out: dict[int, tuple[str, tuple[str, ...]]] = {}
    for p in sorted(store.predictions.finished()):
        meta = pq.read_schema(store.predictions.partition_path(p)).metadata or {}
        info = json.loads(meta.get(b"xsgpu", b"{}"))
        out[p] = (info.get("weights_sha256", "?"), tuple(sorted(info.get("outputs") or {})))
    return out


def finished_models(store: RunStore) -> dict[int, tuple[str, tuple[str, ...]]]:
    """``{partition: (weights_sha256, extra output names)}`` of a run's finished predictions parts."""
    return _finished_parts(store)


def _finished_model_ids(store: RunStore, parts: dict[int, tuple[str, tuple[str, ...]]] | None = None
                        ) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for p, (sha, _) in (_finished_parts(store) if parts is None else parts).items():
        out.setdefault(sha, set()).add(p)
    return out


def infer_run(
    run_path: str | os.PathLike,
    *,
    model: str | os.PathLike | Predictor,
    device: str = "auto",
    batch_size: int = 256,
    compile: bool = False,
    num_threads: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    heatmaps: bool | None = None,
    layers: Sequence[str] | None = None,
    attribute_map: dict[str, str] | str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Predict every pending partition of a run (resumable); return a summary.

    Parameters
    ----------
    run_path : path
        Run store with ``images``.
    model : path or Predictor
        Checkpoint directory, or an already loaded predictor.
    device : {"auto", "cpu", "gpu"}
    batch_size : int
    compile : bool
        ``torch.compile`` on CUDA.
    num_threads : int, optional
        CPU threads (default all cores).
    overwrite : bool
        Replace the predictions/features already there (another model's, or this one's). The new
        outputs are written into ``RUN/.staging/infer/`` and swapped in only when every partition is
        finished, so a kill or an error part-way leaves the old outputs intact, and a rerun resumes the
        staged partitions (:mod:`xsgpu.io.staging`). Without it a run holding another model's
        predictions is refused (mixing two models' outputs in one table would be silent corruption).
    progress : bool
    heatmaps : bool, optional
        Also write ``heatmaps.zarr``, the class activation map of every attribute (N x C x h x w
        float16), for a model ending in global average pooling + linear; other models get none and
        the reason is logged (:meth:`Predictor.heatmap_support`). ``None`` (default): on, except that
        a resume (without ``overwrite``) keeps what its finished partitions have.
    layers : sequence of str, optional
        Blocks (``"layer1"``, ``"layer2"``, ``"layer3"``) whose globally pooled activations are also
        written, as ``features_<layer>.zarr`` (N x K float16). ``None`` (default): none, or on a
        resume the finished partitions' layers. A predictor passed as ``model`` is set up for these
        outputs (:meth:`Predictor.set_outputs`).
    attribute_map : dict or path, optional
        Model output name -> run attribute name (or a file of them, :func:`xsgpu.io.vocabulary.read_attribute_map`),
        for a model whose attributes are not the run's (``store.vocabulary``) in the run's order. Without
        it such a model is refused, naming both lists (:meth:`Predictor.check_run`).

    Returns
    -------
    dict
        n_images (predicted now), n_partitions_done, n_partitions_skipped, seconds, images_per_s, model_id,
        device, outputs (the extra arrays written).

    Raises
    ------
    StoreLocked
        If another process is running ``infer`` on this run (``RUN/locks/infer.lock``, :mod:`xsgpu.io.locks`).
    RunStoreError
        If finished partitions hold another model's outputs, or other extra outputs than asked (a resume
        must ask for the same ``heatmaps``/``layers``), and ``overwrite`` is not set.
    """
    store = RunStore.open(run_path, require=[IMAGES])
    predictor = model if isinstance(model, Predictor) else Predictor.from_checkpoint(
        model, device=device, batch_size=batch_size, compile=compile, num_threads=num_threads)
    if attribute_map is not None:
        from xsgpu.io.vocabulary import read_attribute_map

        predictor.set_attribute_map(attribute_map if isinstance(attribute_map, dict)
                                    else read_attribute_map(attribute_map))
    predictor.check_run(store)
    with stage_lock(store.path, "infer"):
        return _infer_locked(store, predictor, overwrite=overwrite, progress=progress, heatmaps=heatmaps,
                             layers=layers)


def _resolve_outputs(finished: dict[int, tuple[str, tuple[str, ...]]], sha: str, *, heatmaps: bool | None,
                     layers: Sequence[str] | None, overwrite: bool) -> tuple[bool, tuple[str, ...]]:
    """The extra outputs to write: as asked; what is not asked follows this model's finished partitions on a resume."""
    ours = {outs for s, outs in finished.values() if s == sha}
    have = next(iter(ours)) if len(ours) == 1 and not overwrite else None
    if heatmaps is None:
        heatmaps = True if have is None else HEATMAPS in have
    if layers is None:
        layers = () if have is None else tuple(layer_of(n) for n in have if layer_of(n) is not None)
    return heatmaps, tuple(layers)


@dataclass
class InferPlan:
    """What one infer writes (:func:`plan_infer`): the partitions, where (the run or its staging area), how.

    Attributes
    ----------
    target : RunStore
        The run, or the staging area of an ``overwrite`` (:mod:`xsgpu.io.staging`).
    pending : list of int
        Partitions still to predict into ``target``.
    skipped : int
        Partitions already predicted.
    heatmaps, layers
        The extra outputs asked, resolved against a resume (:meth:`Predictor.set_outputs` was called).
    staging : Staging or None
    """

    target: RunStore
    pending: list[int]
    skipped: int
    heatmaps: bool
    layers: tuple[str, ...]
    staging: Staging | None = None


def plan_infer(store: RunStore, predictor: Predictor, *, overwrite: bool = False, heatmaps: bool | None = None,
               layers: Sequence[str] | None = None) -> InferPlan:
    """Check a resume against ``predictor`` and set it up; return what to predict (call under the stage lock).

    Refuses (:class:`RunStoreError`) finished partitions of another model, or with other extra outputs
    than asked, unless ``overwrite`` (then the new outputs go to a staging area first).
    """
    recover(store)
    sha = predictor.meta["weights_sha256"]
    finished = _finished_parts(store)
    heatmaps, layers = _resolve_outputs(finished, sha, heatmaps=heatmaps, layers=layers, overwrite=overwrite)
    predictor.set_outputs(heatmaps=heatmaps, layers=layers)
    others = {k: v for k, v in _finished_model_ids(store, finished).items() if k != sha}
    if others and not overwrite:
        k, parts = next(iter(others.items()))
        raise RunStoreError(
            f"{store.predictions.path} holds partitions {sorted(parts)[:5]} from another model "
            f"(weights_sha256 {k[:12]}...), this one is {sha[:12]}... Hint: pass --overwrite to replace them.")
    wanted = tuple(sorted(predictor.extra_outputs))
    differ = sorted(p for p, (_, outs) in finished.items() if outs != wanted)
    staging = None
    target = store
    if differ and not overwrite:
        have = finished[differ[0]][1]
        if len(finished) < store.n_partitions:
            raise RunStoreError(
                f"{store.predictions.path}: partitions {differ[:5]} were predicted with the extra outputs "
                f"{list(have) or 'none'}, this call asks for {list(wanted) or 'none'}; a resume must ask for the same. "
                "Hint: rerun with the same --heatmaps/--layers flags, or pass --overwrite to redo every partition.")
        log.info("%s: every partition is predicted already, with the extra outputs %s (not %s); pass --overwrite "
                 "to write them", store.path, list(have) or "none", list(wanted) or "none")
    if overwrite and (others or store.features.path.exists() or store.predictions.path.exists()):
        # the old outputs stay in place until the new ones are complete (xsgpu.io.staging)
        staging = Staging.begin(store, [PREDICTIONS, FEATURES, *predictor.extra_outputs], key="infer",
                                token=f"{sha}:{','.join(wanted)}")
        target = staging.store
        log.info("overwrite: writing the new predictions and features of %s into %s first", store.path, staging.path)
    pending = target.predictions.pending()
    skipped = store.n_partitions - len(pending)
    if skipped:
        log.info("%s: %d of %d partitions already predicted; skipping them", target.path, skipped, store.n_partitions)
    return InferPlan(target=target, pending=pending, skipped=skipped, heatmaps=heatmaps, layers=tuple(layers),
                     staging=staging)


def finish_infer(store: RunStore, predictor: Predictor, plan: InferPlan, *, n_images: int,
                 seconds: float) -> dict[str, Any]:
    """Swap a staged overwrite in, record the stage ``done`` and return the summary of :func:`infer_run`."""
    if plan.staging is not None:
        plan.staging.commit()
        for name in extra_arrays(store):  # another model's (or run's) extra arrays: no longer its outputs
            if name not in predictor.extra_outputs:
                log.info("overwrite: removing %s (not written by this infer)", store.artifact(name).path)
                shutil.rmtree(store.artifact(name).path, ignore_errors=True)
    summary = {"model_id": predictor.meta["model_id"], "n_images": n_images, "n_partitions_done": len(plan.pending),
               "n_partitions_skipped": plan.skipped, "seconds": seconds,
               "images_per_s": n_images / seconds if seconds > 0 else 0.0,
               "device": predictor.device, "outputs": list(predictor.extra_outputs)}
    store.set_stage("infer", "done", **{k: v for k, v in summary.items() if k != "seconds"})
    return summary


def _infer_locked(store: RunStore, predictor: Predictor, *, overwrite: bool, progress: bool,
                  heatmaps: bool | None = None, layers: Sequence[str] | None = None) -> dict[str, Any]:
    from tqdm.auto import tqdm

    plan = plan_infer(store, predictor, overwrite=overwrite, heatmaps=heatmaps, layers=layers)
    store.set_stage("infer", "running", model_id=predictor.meta["model_id"])
    t0 = time.perf_counter()
    n = 0
    total = sum(store.partition_bounds(p)[1] - store.partition_bounds(p)[0] for p in plan.pending)
    try:
        with tqdm(total=total, desc="infer", unit="img", disable=not progress) as bar:
            for p in plan.pending:
                k = infer_partition(plan.target.path, p, predictor)
                n += k
                bar.update(k)
        seconds = time.perf_counter() - t0
        return finish_infer(store, predictor, plan, n_images=n, seconds=seconds)
    except BaseException:
        store.set_stage("infer", "failed", model_id=predictor.meta["model_id"])
        raise
