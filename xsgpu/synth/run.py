"""The ``synth`` stage: write a synthetic run store partition by partition (resumable, idempotent).

Layout written (docs/architecture.md): ``images.zarr`` float16 (N, H, W) = ``log_scale(counts, mask)``
(with ``render="detector"``, the default, below 256 px: the 256-px frame's ``log_scale`` shrunk by
``resize_batch``, as ingest shrinks a real frame),
``thumbs.zarr`` uint8 (N, 64, 64) = ``make_thumbnails``, ``synth_tags.parquet/`` (the physical tags of
each image, for analysis), and ``samples.parquet/`` written LAST per partition, so a partition is
finished exactly when its samples part exists.

Images are generated in blocks of :data:`GEN_BLOCK` ids aligned to the partition start; each block's
random streams are keyed by its first id, so output depends on (seed, partition size, size) only --
not on the device count, the worker count or the order partitions are run in. Labels do not depend
on ``size`` either.
"""
from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd

from xsgpu.attributes import label_columns
from xsgpu.backend import get_backend, to_host
from xsgpu.io.runstore import RunStore, RunStoreError
from xsgpu.preprocess import log_scale, make_thumbnails, resize_batch
from xsgpu.synth.generate import _check_int, check_size, generate_images
from xsgpu.synth.geometry import CONCEPT_SIZE
from xsgpu.synth.mix import DEFAULT_MIX, Mix

__all__ = ["plan_synth_run", "synth_partition", "synthesize_run", "GEN_BLOCK", "GENERATOR_VERSION"]

log = logging.getLogger(__name__)

GEN_BLOCK = 256
GENERATOR_VERSION = 2  # 2: issue 14's mix (diffuse tree, windows, mesostructure) and the "detector" rendering
RENDERS = ("detector", "direct")
THUMB_SIZE = 64


def _mix_from_dict(d: dict | None) -> Mix:
    if not d:
        return DEFAULT_MIX
    d = dict(d)
    for key in ("log10_amplitude", "log10_diffuse", "log10_background", "flat_background", "lattice_q0"):
        if key in d:
            d[key] = tuple(d[key])
    return Mix(**d)


def plan_synth_run(out, *, n: int, size: int = 256, seed: int = 0, partition_size: int = 4096,
                   images_per_run: int = 200, mix: Mix = DEFAULT_MIX, render: str = "detector") -> RunStore:
    """Create (or reopen for resume) a synthetic run store and its image arrays.

    Parameters
    ----------
    out : path
        Run directory.
    n : int
        Number of images.
    size : int
        Image size H = W.
    seed : int
        Dataset seed.
    partition_size : int
        Images per partition (a multiple of the Zarr chunk rows, which are chosen automatically).
    images_per_run : int
        Images per run (shared geometry, beamstop, split).
    mix : Mix
        Generator mix (stored in the manifest).
    render : {"detector", "direct"}
        ``"detector"``: below 256 px, render the conceptual 256 x 256 detector (its pixel noise) and
        shrink the log-scaled frames to ``size`` exactly as ``xsgpu ingest`` shrinks a real 256-px frame
        (``resize_batch(log_scale(counts))``), so that stored synthetic and ingested frames have the same
        statistics (4x the pixel work at 128 px). ``"direct"``: render at ``size`` (counts per conceptual
        pixel with one pixel's noise; cheaper, but its low-count texture is that of one detector pixel).

    Raises
    ------
    RunStoreError
        If ``out`` holds a run made with other parameters.
    """
    n = _check_int("n", n, 1)
    size = check_size(size)
    seed = _check_int("seed", seed, 0)
    partition_size = _check_int("partition_size", partition_size, 1)
    images_per_run = _check_int("images_per_run", images_per_run, 1)
    if render not in RENDERS:
        raise ValueError(f"The 'render' parameter must be one of {list(RENDERS)}. Got {render!r} instead.")
    params = {"n": n, "size": size, "seed": seed, "partition_size": partition_size,
              "images_per_run": images_per_run, "gen_block": GEN_BLOCK, "generator_version": GENERATOR_VERSION,
              "mix": mix.to_dict(), "render": render}
    params = json.loads(json.dumps(params))  # the form it has in manifest.json (tuples -> lists)
    store = RunStore.create(out, n_samples=n, partition_size=partition_size, params={"synth": params})
    have = store.manifest.get("params", {}).get("synth")
    if have is None:
        raise RunStoreError(f"{store.path} holds a run that was not made by `xsgpu synth` "
                            "(no params.synth in manifest.json). Hint: write to a new --out directory.")
    diff = {k: ("<differs>", "<differs>") if k == "mix" else (have.get(k), v)
            for k, v in params.items() if have.get(k) != v}
    if diff:
        raise RunStoreError(f"{store.path} holds a synthetic run made with other parameters "
                            f"(field: (existing, requested)) {diff}. Hint: resume with the same parameters "
                            "or write to a new --out directory.")
    store.images.create((n, size, size), np.float16)
    store.thumbs.create((n, THUMB_SIZE, THUMB_SIZE), np.uint8)
    return store


def synth_partition(run_path, part: int, *, device: str = "cpu") -> int:
    """Generate partition ``part`` of a planned synthetic run and write it (images, thumbs, tags, samples).

    Idempotent: a finished partition (its samples part exists) is left as it is.

    Returns
    -------
    int
        Number of images generated by this call (0 if the partition was already finished).
    """
    store = RunStore.open(run_path)
    p = store.manifest.get("params", {}).get("synth")
    if p is None:
        raise RunStoreError(f"{store.path} is not a synthetic run (manifest.json has no params.synth). "
                            "Hint: create it with xsgpu.synth.plan_synth_run or `xsgpu synth`.")
    if part in store.samples.finished():
        log.debug("partition %d of %s already finished", part, store.path)
        return 0
    start, stop = store.partition_bounds(part)
    xp = get_backend(device).xp
    mix = _mix_from_dict(p.get("mix"))
    images = store.images.open("r+")
    thumbs = store.thumbs.open("r+")
    chunk_rows = int(images.chunks[0])
    labels, tag_frames = [], []
    buf_img, buf_th, buf_start = [], [], start
    detector = p.get("render", "direct") == "detector" and p["size"] < CONCEPT_SIZE
    for s in range(start, stop, GEN_BLOCK):
        e = min(stop, s + GEN_BLOCK)
        b = generate_images(e - s, size=CONCEPT_SIZE if detector else p["size"], seed=p["seed"], xp=xp, start=s,
                            images_per_run=p["images_per_run"], mix=mix)
        logf = log_scale(b.counts, b.mask)
        if detector:  # as ingest shrinks a 256-px frame
            logf = resize_batch(logf, p["size"])
        buf_img.append(to_host(logf.astype(xp.float16)))
        buf_th.append(to_host(make_thumbnails(logf, size=THUMB_SIZE)))
        labels.append(b.labels)
        tag_frames.append(pd.DataFrame(b.tags))
        if e == stop or (e - start) % chunk_rows == 0:  # flush whole Zarr chunks
            images[buf_start:e] = np.concatenate(buf_img)
            thumbs[buf_start:e] = np.concatenate(buf_th)
            buf_img, buf_th, buf_start = [], [], e
    tags = pd.concat(tag_frames, ignore_index=True)
    y = np.concatenate(labels)
    ids = np.arange(start, stop, dtype=np.int64)
    df = pd.DataFrame({
        "sample_id": ids,
        "source_uri": [f"synth://{p['seed']}/{i}" for i in ids],
        "frame": np.zeros(len(ids), dtype=np.int32),
        "run_id": tags["run_id"].astype(str).to_numpy(),
        "split": tags["split"].astype(str).to_numpy(),
        "is_synthetic": np.ones(len(ids), dtype=bool),
        "labelled": np.ones(len(ids), dtype=bool),
        "quantitative": np.ones(len(ids), dtype=bool),
    })
    for j, col in enumerate(label_columns()):
        df[col] = y[:, j]
    meta = {"generator_version": GENERATOR_VERSION, "seed": p["seed"], "size": p["size"]}
    store.synth_tags.write_partition(part, tags.drop(columns=["run_id", "split"]), metadata=meta)
    store.samples.write_partition(part, df, metadata=meta)
    return stop - start


def _worker(args) -> int:  # top-level for process pools
    run_path, part, device = args
    try:  # one numba thread per worker process: the pool is the parallelism
        import numba

        numba.set_num_threads(1)
    except Exception:  # pragma: no cover
        pass
    return synth_partition(run_path, part, device=device)


def synthesize_run(out, *, n: int, size: int = 256, seed: int = 0, partition_size: int = 4096,
                   device: str = "cpu", progress: bool = True, images_per_run: int = 200,
                   mix: Mix = DEFAULT_MIX, workers: int = 1, render: str = "detector") -> RunStore:
    """Plan and generate a whole synthetic run, skipping finished partitions (resume).

    Parameters
    ----------
    out, n, size, seed, partition_size, images_per_run, mix, render
        As :func:`plan_synth_run`.
    device : {"cpu", "gpu", "auto"}
        Array backend of the pixel work.
    progress : bool
        Show a tqdm bar over images.
    workers : int
        Processes generating partitions in parallel (CPU; 1 = in this process).

    Returns
    -------
    RunStore
    """
    from tqdm.auto import tqdm

    workers = _check_int("workers", workers, 1)
    dev = get_backend(device).device
    store = plan_synth_run(out, n=n, size=size, seed=seed, partition_size=partition_size,
                           images_per_run=images_per_run, mix=mix, render=render)
    pending = store.samples.pending()
    store.set_stage("synth", "running", device=dev, pending=len(pending))
    t0 = time.perf_counter()
    done = 0
    bar = tqdm(total=n, initial=n - sum(np.diff(store.partition_bounds(q))[0] for q in pending),
               unit="img", desc="synth", disable=not progress)
    try:
        if workers == 1 or len(pending) <= 1:
            for part in pending:
                k = synth_partition(store.path, part, device=dev)
                done += k
                bar.update(k)
        else:
            import multiprocessing as mp

            # spawn: fork is unsafe once numba's OpenMP threads (or CUDA) are initialised in this process
            ctx = mp.get_context("spawn")
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
                for k in pool.map(_worker, [(str(store.path), q, dev) for q in pending]):
                    done += k
                    bar.update(k)
    except BaseException as exc:
        store.set_stage("synth", "failed", error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        bar.close()
    dt = time.perf_counter() - t0
    store.set_stage("synth", "done", device=dev, generated=done, seconds=round(dt, 3),
                    images_per_s=round(done / dt, 1) if done and dt > 0 else None)
    log.info("synth: %d images in %.1f s into %s", done, dt, store.path)
    return store
