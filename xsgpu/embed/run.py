"""``embed_run``: the embed stage over a run store (ACT, FEA, PRD -> embedding.parquet).

Reads
  * ACT: ``samples`` labels (N, k) bool (the run's k attributes) (:meth:`RunStore.labels`), deduplicated (:mod:`xsgpu.embed.act`);
  * FEA: ``features.zarr`` (N, D) float16, reduced to ``pca_dims`` by :class:`~xsgpu.embed.pca.StreamingPCA`
    in row blocks (never loaded whole);
  * the layers ``xsgpu infer --layers`` kept (``features_<layer>.zarr``), each reduced like FEA into one
    more space ``fea_<layer>`` (columns ``fea_<layer>_x/_y``; not placed onto a reference run's maps);
  * PRD: ``predictions`` ``p__<slug>`` x 17 float32.

Writes
  * ``embedding.parquet``: sample_id, act_x, act_y, fea_x, fea_y, prd_x, prd_y (float32); metadata
    ``method``, ``params`` per space, and per-space details (backend, library, seconds, trustworthiness);
    the latest embed's table, the one the app shows first;
  * ``embeddings/<method>.parquet``: the same table once per method embedded, so ``xsgpu embed RUN
    --method pca`` after a t-SNE run keeps both and the app's method control switches between them;
  * ``fea_reduced.npy``: the PCA-reduced FEA the t-SNE saw, (N, k) float32 (the app's neighbour
    search and ``xsgpu evaluate``'s suspicious-label audit reuse it instead of rereading features.zarr);
  * ``embedding_reference/<space>.npz``: plain arrays that let a later run be placed onto these maps
    (``embed_run(NEW, reference=THIS)``; see :mod:`xsgpu.embed.reference`).
  * ``layer_overlaps.parquet``, only when the run keeps layers: the k-NN overlap (k = 10, up to 5000
    seeded images) between consecutive layers and with PRD (:func:`xsgpu.explain.layers.layer_overlaps`).
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any

import numpy as np
import pandas as pd

from xsgpu import __version__
from xsgpu.backend import get_backend, resolve_device, to_host
from xsgpu.embed._base import check_random_state
from xsgpu.embed.act import dedupe_labels, spread_duplicates
from xsgpu.embed.pca import StreamingPCA
from xsgpu.embed.projectors import METHODS, capability, make_projector
from xsgpu.embed.quality import sample_indices, trustworthiness
from xsgpu.embed.reference import REFERENCE_DIR, SpaceReference
from xsgpu.embed.sample_place import MapFn, place_rest, prediction_strata, stratified_sample
from xsgpu.io.runstore import RunStore, RunStoreError
from xsgpu.io.schema import EMBEDDING_BY_METHOD, LAYER_OVERLAPS, Artifact

__all__ = ["embed_run", "SPACES", "EMBEDDING_COLUMNS", "load_inputs", "method_table", "stored_methods",
           "embedding_is_current"]

log = logging.getLogger(__name__)

SPACES: tuple[str, ...] = ("act", "fea", "prd")
EMBEDDING_COLUMNS: list[str] = ["sample_id"] + [f"{s}_{a}" for s in SPACES for a in ("x", "y")]
#: fewest distinct inputs each method can lay out (fewer: a fixed circle layout, logged)
_MIN_POINTS = {"tsne": 5, "umap": 4, "pca": 2}


def method_table(method: str) -> Artifact:
    """Run-store table of the embedding of ``method`` (``RUN/embeddings/<method>.parquet``)."""
    if method not in METHODS:
        raise ValueError(f"The 'method' parameter of method_table must be one of {list(METHODS)}. Got {method!r} instead.")
    return EMBEDDING_BY_METHOD.named(method=method)


def stored_methods(store: RunStore) -> list[str]:
    """Embedding methods a run holds a table for (``embeddings/<method>.parquet``), in METHODS order."""
    return [m for m in METHODS if store.table_path(method_table(m)).is_file()]


def _predictions_key(store: RunStore) -> str | None:
    """What identifies the predictions an embedding was made from (the model's weights hash)."""
    meta = store.predictions.metadata() if store.predictions.exists() else {}
    return meta.get("weights_sha256") or meta.get("model_id")


def embedding_is_current(run_path: Any, *, method: str = "tsne", random_state: int | None = 0,
                         fit_sample: int | None = None, pca_dims: int = 50,
                         perplexity: float = 30.0) -> tuple[bool, str]:
    """Whether the run holds a ``method`` embedding made with these parameters from today's predictions.

    Compared: seed, fit sample, the predictions' model, the FEA reduction's ``pca_dims`` and, for
    t-SNE, the perplexity. A table written before these were recorded counts as changed.

    Returns
    -------
    current : bool
    reason : str
        Why not (or ``"up to date"``), for the run log.
    """
    store = RunStore.open(run_path)
    table = method_table(method)
    if not store.table_path(table).is_file():
        return False, f"no {method} embedding yet"
    meta = store.read_metadata(table)
    wanted = {"random_state": random_state, "fit_sample": fit_sample, "predictions": _predictions_key(store),
              "pca_dims": int(pca_dims)}
    if method == "tsne":
        wanted["perplexity"] = float(perplexity)
    have = {k: meta.get(k) for k in wanted}
    changed = [k for k in wanted if wanted[k] != have[k]]
    if changed:
        return False, "changed since the last embed: " + ", ".join(f"{k} {have[k]!r} -> {wanted[k]!r}" for k in changed)
    return True, "up to date"


def _open_inputs(run_path: Any) -> RunStore:
    store = RunStore.open(run_path)
    status = store.stage_status()
    missing = []
    if not store.samples.exists():
        missing.append("samples.parquet (labels, from `xsgpu synth` or `xsgpu ingest`)")
    if not store.predictions.exists():
        missing.append("predictions.parquet (PRD, from `xsgpu infer RUN --model MODEL`)")
    if not store.features.exists():
        missing.append("features.zarr (FEA, from `xsgpu infer RUN --model MODEL`)")
    if missing:
        raise RunStoreError(f"{store.path}: embed needs " + "; ".join(missing) + f", which the run lacks "
                            f"(stage status: {status}). Hint: run the earlier stages first.")
    return store


def _read_prd(store: RunStore) -> np.ndarray:
    cols = store.vocabulary.prob_columns()
    df = store.predictions.read()
    absent = [c for c in ["sample_id"] + cols if c not in df.columns]
    if absent:
        raise RunStoreError(f"{store.predictions.path}: missing columns {absent[:4]}"
                            f"{' ...' if len(absent) > 4 else ''}. Hint: rerun `xsgpu infer`.")
    ids = df["sample_id"].to_numpy()
    if len(ids) != store.n_samples or not np.array_equal(ids, np.arange(store.n_samples)):
        raise RunStoreError(f"{store.predictions.path}: holds {len(ids)} rows, expected sample_id "
                            f"0..{store.n_samples - 1}. Hint: finish `xsgpu infer` on this run.")
    prd = df[cols].to_numpy(np.float32)
    bad = np.flatnonzero(~np.isfinite(prd).all(axis=1))
    if bad.size:
        raise RunStoreError(f"{store.predictions.path}: sample_id {ids[bad[:5]].tolist()} hold NaN/inf "
                            f"probabilities ({bad.size} rows). Hint: rerun `xsgpu infer` for their partitions.")
    return prd


def _feature_blocks(store: RunStore, arr: Any, *, batch_rows: int, xp: Any, path: Any = None):
    for start in range(0, arr.shape[0], batch_rows):
        block = np.asarray(arr[start:start + batch_rows], dtype=np.float32)
        bad = np.flatnonzero(~np.isfinite(block).all(axis=1))
        if bad.size:
            raise RunStoreError(f"{path or store.features.path}: rows {(start + bad[:5]).tolist()} hold NaN/inf "
                                f"({bad.size} in rows {start}..{start + len(block) - 1}). Hint: rerun `xsgpu infer`.")
        yield xp.asarray(block)


def load_inputs(store: RunStore, *, pca_dims: int = 50, pca: StreamingPCA | None = None,
                device: str = "auto", batch_rows: int = 8192) -> tuple[dict[str, np.ndarray], StreamingPCA | None]:
    """Read ACT (N, 17) bool, FEA reduced to (N, k) float32 and PRD (N, 17) float32 from a run.

    FEA is reduced by ``pca`` when given (a reference run's basis), else by a new
    :class:`StreamingPCA` with ``pca_dims`` components fitted here (none when D <= ``pca_dims``).
    """
    act = store.labels()
    if act.shape[0] != store.n_samples:
        raise RunStoreError(f"{store.samples.path}: {act.shape[0]} rows, manifest says {store.n_samples}.")
    prd = _read_prd(store)
    arr = store.features.open()
    if arr.ndim != 2 or arr.shape[0] != store.n_samples:
        raise RunStoreError(f"{store.features.path}: shape {arr.shape}, expected ({store.n_samples}, D).")
    xp = get_backend(device).xp
    if pca is None and arr.shape[1] > pca_dims:
        pca = StreamingPCA(n_components=min(pca_dims, store.n_samples)).fit(
            _feature_blocks(store, arr, batch_rows=batch_rows, xp=xp))
        log.info("FEA %s -> %d dims by PCA (explained variance %.3f)", arr.shape, pca.n_components,
                 float(pca.explained_variance_ratio_.sum()))
    if pca is not None and pca.components_.shape[1] != arr.shape[1]:
        raise RunStoreError(f"{store.features.path}: D = {arr.shape[1]}, but the reference PCA basis "
                            f"expects {pca.components_.shape[1]} (different model?). Hint: embed against a run "
                            "inferred with the same model.")
    parts = [to_host(pca.transform(b)) if pca is not None else to_host(b)
             for b in _feature_blocks(store, arr, batch_rows=batch_rows, xp=xp)]
    fea = np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
    return {"act": act, "fea": fea, "prd": prd}, pca


def _method_params(method: str, *, perplexity: float, random_state: int | None, n_jobs: int,
                   progress: bool) -> dict[str, Any]:
    if method == "tsne":
        return {"n_components": 2, "perplexity": perplexity, "random_state": random_state, "n_jobs": n_jobs,
                "progress": progress}
    return {"n_components": 2, "random_state": random_state}


def _circle(n: int) -> np.ndarray:
    angle = 2 * np.pi * np.arange(n) / max(n, 1)
    return np.stack([np.cos(angle), np.sin(angle)], axis=1) * (10.0 if n > 1 else 0.0)


def _fit_space(space: str, X: np.ndarray, *, method: str, device: str, params: dict) -> tuple[np.ndarray, dict, Any]:
    """Project one space; returns coordinates (n, 2) float32, details, the fitted projector (or None)."""
    t0 = time.perf_counter()
    if X.shape[0] < _MIN_POINTS[method]:
        log.warning("%s: only %d distinct inputs; %s needs %d, placing them on a circle", space, X.shape[0],
                    method, _MIN_POINTS[method])
        return _circle(X.shape[0]).astype(np.float32), {"backend": "none", "library": "circle layout",
                                                          "seconds": 0.0}, None
    proj = make_projector(method, device=device, **params)
    xy = proj.fit_transform(X)
    details = {"backend": proj.backend_, "library": capability(method, proj.backend_).library,
               "seconds": round(time.perf_counter() - t0, 3)}
    if proj.fallback_reason_:
        details["fallback_reason"] = proj.fallback_reason_
    return np.asarray(xy, dtype=np.float32), details, proj


def _fit_and_place(space: str, X: np.ndarray, sample: np.ndarray, *, method: str, device: str, params: dict,
                   map_fn: MapFn | None, place_iter: int, progress: bool) -> tuple[np.ndarray, dict, Any]:
    """Fit the map on the rows ``sample`` of ``X``, then place the other rows on it (t-SNE on CPU)."""
    xy_sample, details, proj = _fit_space(space, X[sample], method=method, device=device, params=params)
    t0 = time.perf_counter()
    fitted = getattr(getattr(proj, "estimator_", None), "tsne_embedding_", None) if map_fn is None else None
    xy = place_rest(X, sample, xy_sample, fitted=fitted, perplexity=params.get("perplexity", 30.0),
                    random_state=params.get("random_state"), n_jobs=params.get("n_jobs", 1),
                    n_iter=place_iter, map_fn=map_fn, progress=progress)
    details.update(fit_sample=int(sample.size), placed=int(X.shape[0] - sample.size),
                   fit_seconds=details["seconds"], place_seconds=round(time.perf_counter() - t0, 3),
                   placement="openTSNE transform" + (" on Dask workers" if map_fn is not None else ""))
    details["seconds"] = round(details["fit_seconds"] + details["place_seconds"], 3)
    return xy, details, proj


def _quality(X: np.ndarray, xy: np.ndarray, *, sample: int, random_state: int | None) -> float | None:
    if X.shape[0] < 25:
        return None
    return round(trustworthiness(X, xy, n_neighbors=10, sample=sample, random_state=random_state), 4)


def _reference_arrays(space: str, X: np.ndarray, xy: np.ndarray, proj: Any, *, max_reference: int,
                      random_state: int | None) -> tuple[np.ndarray, np.ndarray, dict, np.ndarray]:
    idx = sample_indices(X.shape[0], max_reference, random_state=random_state)
    arrays = {}
    if proj is not None and proj.method == "pca":
        arrays["map_components"] = np.asarray(proj.estimator_.components_, np.float64)
        arrays["map_mean"] = np.asarray(proj.estimator_.mean_, np.float64)
    return X[idx], xy[idx], arrays, idx


def embed_run(run_path: str | os.PathLike, *, method: str = "tsne", device: str = "auto",
              random_state: int | None = 0, progress: bool = True, pca_dims: int = 50,
              perplexity: float = 30.0, reference: str | os.PathLike | None = None, n_jobs: int = -1,
              quality: bool = True, quality_sample: int = 5000, max_reference: int = 50_000,
              batch_rows: int = 8192, projector_params: dict[str, Any] | None = None,
              fit_sample: int | None = None, map_fn: MapFn | None = None,
              place_iter: int = 250) -> pd.DataFrame:
    """Embed ACT, FEA and PRD of a run in 2-D and write ``embedding.parquet``.

    Parameters
    ----------
    run_path : path
        A run store with samples, predictions and features.
    method : {"tsne", "pca", "umap"}
    device : {"auto", "cpu", "gpu"}
        See :func:`xsgpu.embed.make_projector` (cuML t-SNE on GPU; CPU fallback logged for "auto").
    random_state : int or None
        Seed of every projection and of the ACT jitter; the same seed gives the same table on CPU.
    progress : bool
        tqdm bars over spaces and t-SNE iterations.
    pca_dims : int
        FEA is reduced to this many dimensions (exact streaming PCA) before projection.
    perplexity : float
        t-SNE perplexity (lowered automatically for tiny inputs).
    reference : path, optional
        Place this run's images onto the maps of an earlier run (its ``embedding_reference``) instead
        of fitting new maps: coordinates are in the reference run's frame. Only ``tsne`` and ``pca``
        maps can be references.
    n_jobs : int
        openTSNE threads (-1: all cores).
    quality : bool
        Compute trustworthiness (k = 10) per space on ``quality_sample`` points into the metadata.
    max_reference : int
        Most points per space kept as the reference for later placement (seeded subsample).
    batch_rows : int
        Rows of features.zarr read at a time.
    projector_params : dict, optional
        Extra implementation parameters for every space (e.g. ``{"n_iter": 300}`` for openTSNE).
    fit_sample : int, optional
        t-SNE on CPU only: fit each space on a stratified sample of this many images (strata: the
        predicted label vectors) and place every other image on that map with openTSNE's transform
        (:mod:`xsgpu.embed.sample_place`). ``None``: fit all points. On a GPU (cuML) every point is
        fitted whatever this says (logged).
    map_fn : callable, optional
        How placement batches run (:data:`~xsgpu.embed.sample_place.MapFn`); e.g.
        ``workflows.placement.dask_map_fn(client)``. Default: in this process.
    place_iter : int
        Optimisation steps per placed image.

    Returns
    -------
    pandas.DataFrame
        :data:`EMBEDDING_COLUMNS`, N rows ordered by sample_id.

    Raises
    ------
    RunStoreError
        If the run lacks samples, predictions or features, or they are inconsistent; the message names
        the file and the stage to run.
    """
    if method not in METHODS:
        raise ValueError(f"The 'method' parameter of embed_run must be one of {list(METHODS)}. Got {method!r} instead.")
    random_state = check_random_state(random_state, owner="embed_run")
    if not isinstance(pca_dims, (int, np.integer)) or pca_dims < 2:
        raise ValueError(f"The 'pca_dims' parameter of embed_run must be an int >= 2. Got {pca_dims!r} instead.")
    if fit_sample is not None and (not isinstance(fit_sample, (int, np.integer)) or isinstance(fit_sample, bool)
                                   or fit_sample < 25):
        raise ValueError(f"The 'fit_sample' parameter of embed_run must be an int >= 25 or None. "
                         f"Got {fit_sample!r} instead.")
    store = _open_inputs(run_path)
    if fit_sample is not None and (method != "tsne" or reference is not None):
        log.info("fit_sample=%d ignored: only new t-SNE maps are fitted on a sample (method %s%s)", fit_sample,
                 method, ", reference run" if reference is not None else "")
        fit_sample = None
    if fit_sample is not None and resolve_device(device) == "gpu":
        log.info("fit_sample=%d ignored: on the GPU cuML t-SNE fits every point", fit_sample)
        fit_sample = None
    refs: dict[str, SpaceReference] = {}
    if reference is not None:
        ref_store = RunStore.open(reference)
        refs = {s: SpaceReference.load(ref_store.path, s) for s in SPACES}
        ref_method = refs["prd"].method
        if ref_method != method:
            raise ValueError(f"The 'method' parameter of embed_run is {method!r}, but the reference run "
                             f"{ref_store.path} holds {ref_method!r} maps. Hint: pass method={ref_method!r}.")
    t_start = time.perf_counter()
    store.set_stage("embed", "running", method=method, reference=str(reference) if reference else None)
    try:
        ref_pca = None
        if refs and "pca_components" in refs["fea"].arrays:
            ref_pca = StreamingPCA.from_arrays(refs["fea"].arrays["pca_components"], refs["fea"].arrays["pca_mean"])
        inputs, pca = load_inputs(store, pca_dims=pca_dims, pca=ref_pca, device=device, batch_rows=batch_rows)
        store.fea_reduced.save(inputs["fea"])
        layer_spaces: list[str] = []  # one more space per layer `xsgpu infer --layers` kept (xsgpu.explain.layers)
        if not refs:
            from xsgpu.explain.layers import load_layer_inputs

            layers_in = load_layer_inputs(store, pca_dims=pca_dims, device=device, batch_rows=batch_rows)
            inputs.update(layers_in)
            layer_spaces = list(layers_in)
        n_jobs_eff = (os.cpu_count() or 1) if n_jobs == -1 else int(n_jobs)
        params = _method_params(method, perplexity=perplexity, random_state=random_state, n_jobs=n_jobs_eff,
                                progress=progress)
        params.update(projector_params or {})
        from tqdm.auto import tqdm

        out = {"sample_id": np.arange(store.n_samples, dtype=np.int64)}
        image_sample = None
        if fit_sample is not None and store.n_samples > fit_sample:
            image_sample = stratified_sample(prediction_strata(inputs["prd"]), fit_sample,
                                             random_state=random_state)
        space_meta: dict[str, dict] = {}
        space_refs: dict[str, SpaceReference] = {}
        for space in tqdm(SPACES + tuple(layer_spaces), desc="embed", disable=not progress):
            X = inputs[space]
            if space == "act":
                unique, inverse, counts = dedupe_labels(X)
                X_fit = unique.astype(np.float32)
            else:
                X_fit = X
            if refs:
                t0 = time.perf_counter()
                ref = refs[space]
                if space == "act":
                    xy_fit = _place_act(ref, X_fit, n_jobs=n_jobs_eff)
                else:
                    xy_fit = ref.place(X_fit, n_jobs=n_jobs_eff)
                details = {"backend": "cpu", "library": "openTSNE transform" if method == "tsne" else "linear",
                           "seconds": round(time.perf_counter() - t0, 3), "reference": str(ref_store.path)}
                proj = None
            else:
                sample = image_sample if space != "act" else (
                    stratified_sample(np.zeros(len(X_fit), np.int64), fit_sample, random_state=random_state)
                    if fit_sample is not None and len(X_fit) > fit_sample else None)
                if sample is None:
                    xy_fit, details, proj = _fit_space(space, X_fit, method=method, device=device, params=params)
                else:
                    xy_fit, details, proj = _fit_and_place(space, X_fit, sample, method=method, device=device,
                                                           params=params, map_fn=map_fn, place_iter=place_iter,
                                                           progress=progress)
            if space == "act":
                xy = spread_duplicates(xy_fit, inverse, counts, random_state=random_state)
                details.update(n_unique=int(len(unique)), dedupe="unique vectors embedded; copies on sunflower discs")
            else:
                xy = xy_fit
            if not np.isfinite(xy).all():
                raise FloatingPointError(f"{space}: the {method} projection produced NaN/inf coordinates.")
            if quality:
                details["trustworthiness_k10"] = _quality(X_fit, xy_fit, sample=quality_sample, random_state=random_state)
            details.update(n_inputs=int(X_fit.shape[0]), input_dims=int(X_fit.shape[1]))
            if space == "fea" and pca is not None:
                details["pca_dims"] = int(pca.n_components)
                evr = getattr(pca, "explained_variance_ratio_", None)  # absent for a reference basis
                if evr is not None:
                    details["pca_explained_variance"] = round(float(np.sum(to_host(evr))), 4)
            space_meta[space] = {"params": {k: v for k, v in params.items() if k != "progress"}, **details}
            out[f"{space}_x"] = xy[:, 0].astype(np.float32)
            out[f"{space}_y"] = xy[:, 1].astype(np.float32)
            log.info("embed %s: %s", space, details)
            if not refs and method in ("tsne", "pca") and space in SPACES:
                inp, crd, arrays, kept = _reference_arrays(space, X_fit, xy_fit, proj, max_reference=max_reference,
                                                           random_state=random_state)
                if space == "act":
                    arrays["counts"] = counts[kept]
                if space == "fea" and pca is not None:
                    arrays["pca_components"] = to_host(pca.components_)
                    arrays["pca_mean"] = to_host(pca.mean_)
                space_refs[space] = SpaceReference(
                    space=space, method=method, inputs=inp, coords=crd, arrays=arrays,
                    params={"perplexity": perplexity, "neighbors": "auto", "random_state": random_state,
                            "run": str(store.path)})
            # drop this space's fitted projector (openTSNE keeps its kNN index and affinities, GBs at 1M
            # points) and inputs before the next space is fitted; the reference keeps what it needs
            proj = X_fit = X = xy_fit = None
            inputs[space] = None
        df = pd.DataFrame(out)[EMBEDDING_COLUMNS + [f"{s}_{a}" for s in layer_spaces for a in ("x", "y")]]
        meta = {"method": method, "params": {s: m["params"] for s, m in space_meta.items()}, "spaces": space_meta,
                "random_state": random_state, "fit_sample": fit_sample, "predictions": _predictions_key(store),
                "pca_dims": int(pca_dims), "perplexity": float(perplexity), "reference": str(ref_store.path) if refs else None,
                "xsgpu": __version__, "seconds": round(time.perf_counter() - t_start, 3)}
        for ref in space_refs.values():
            ref.save(store.path)
        if not refs and method == "umap" and (store.path / REFERENCE_DIR).exists():
            log.info("umap maps are not stored as references; %s keeps an older reference", store.path / REFERENCE_DIR)
        store.write_table(method_table(method), df, metadata=meta)   # kept when another method runs later
        _write_layer_overlaps(store, random_state=random_state)
        store.embedding.write(df, metadata=meta)
    except BaseException as exc:
        store.set_stage("embed", "failed", error=f"{exc.__class__.__name__}: {exc}")
        raise
    store.set_stage("embed", "done", method=method, seconds=meta["seconds"],
                    trustworthiness={s: m.get("trustworthiness_k10") for s, m in space_meta.items()})
    return df


def _write_layer_overlaps(store: RunStore, *, random_state: int | None) -> None:
    """``layer_overlaps.parquet`` (k = 10 on up to 5000 images) when the run keeps layers; else nothing."""
    from xsgpu.explain.layers import kept_layers, layer_overlaps

    if not kept_layers(store):
        return
    t0 = time.perf_counter()
    k, sample = 10, 5000
    df = layer_overlaps(store.path, k=k, sample=sample, random_state=random_state)
    store.write_table(LAYER_OVERLAPS, df, metadata={"k": int(df["k"].iloc[0]), "sample": sample,
                                                    "random_state": random_state,
                                                    "predictions": _predictions_key(store)})
    log.info("layer k-NN overlaps on %d images in %.2f s", int(df["n"].iloc[0]), time.perf_counter() - t0)


def _place_act(ref: SpaceReference, unique: np.ndarray, *, n_jobs: int) -> np.ndarray:
    """Coordinates of new unique label vectors: the reference's point if the vector is known, else placed."""
    known = {row.astype(bool).tobytes(): i for i, row in enumerate(ref.inputs)}
    xy = np.empty((unique.shape[0], 2), np.float32)
    new = []
    for j, row in enumerate(unique):
        i = known.get(row.astype(bool).tobytes())
        if i is None:
            new.append(j)
        else:
            xy[j] = ref.coords[i]
    if new:
        log.info("act: %d of %d label vectors are new to the reference map; placing them", len(new), len(unique))
        xy[new] = ref.place(unique[new], n_jobs=n_jobs)
    return xy
