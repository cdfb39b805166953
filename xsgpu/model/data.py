"""Training data from a run store: the split by run, and frames preloaded at the model input size.

``samples.parquet`` carries a ``split`` column (train/val/test) that the producer assigned BY RUN:
images of one experiment share beamstop and geometry, so an image-level split would leak. This module
checks that every ``run_id`` sits in exactly one split and never re-splits by image.

Frames are read from ``images.zarr`` chunk by chunk (threads: Zarr decompression releases the GIL),
resized to the model input size with :func:`xsgpu.model.transforms.resize` and kept as float16 log
frames (augmentation works on log values, standardisation comes last). At 64 px, 5,000 images take
40 MB; at 224 px, 100,000 images take 10 GB (the GPU profile keeps them in GPU memory when they fit).

Examples
--------
>>> import pandas as pd
>>> from xsgpu.model.data import split_indices
>>> s = pd.DataFrame({"sample_id": range(6), "run_id": list("aabbcc"),
...                   "split": ["train", "train", "val", "val", "test", "test"]})
>>> {k: v.tolist() for k, v in split_indices(s).items()}
{'train': [0, 1], 'val': [2, 3], 'test': [4, 5]}
"""
from __future__ import annotations

import logging
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from xsgpu.io.runstore import RunStore
from xsgpu.model.transforms import resize

__all__ = ["SPLITS", "TrainingData", "split_indices", "load_frames", "load_training_data"]

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def split_indices(samples: pd.DataFrame, *, max_images: int | None = None, where: str = "samples") -> dict[str, np.ndarray]:
    """Sample ids per split from the ``split`` column, checking that no run spans two splits.

    Parameters
    ----------
    samples : DataFrame
        Columns ``sample_id``, ``split``, and when present ``run_id`` (checked: one split per run) and
        ``labelled`` (unlabelled samples are left out) and ``valid`` (frames that failed to read are
        left out).
    max_images : int, optional
        Keep at most this many images in total, the same fraction of every split (the first ids of
        each split, so reads stay contiguous; whole-run membership is unchanged).
    where : str
        Name of the table in error messages.

    Returns
    -------
    dict
        ``{"train": ids, "val": ids, "test": ids}`` (int64 arrays, sorted; "test" may be empty).
    """
    if "split" not in samples.columns:
        raise ValueError(f"{where}: column 'split' is missing; training splits by run and needs it. "
                         "Hint: re-create the run with `xsgpu synth` or `xsgpu ingest`, which assign splits by run.")
    bad = sorted(set(samples["split"].astype(str)) - set(SPLITS))
    if bad:
        raise ValueError(f"{where}: column 'split' must hold only {', '.join(SPLITS)}. Got {bad} instead.")
    if "run_id" in samples.columns:
        per_run = samples.groupby("run_id")["split"].nunique()
        leaking = per_run[per_run > 1]
        if len(leaking):
            raise ValueError(f"{where}: runs {list(leaking.index[:5])} appear in more than one split; the split must "
                             "be by run (images of a run share beamstop and geometry). Hint: re-assign 'split' per run_id.")
    if max_images is not None and (not isinstance(max_images, (int, np.integer)) or max_images < 2):
        raise ValueError(f"The 'max_images' parameter must be an int >= 2 or None. Got {max_images!r} instead.")
    if "labelled" in samples.columns:
        n_unlabelled = int((~samples["labelled"].astype(bool)).sum())
        if n_unlabelled:
            log.info("%s: leaving out %d unlabelled samples", where, n_unlabelled)
            samples = samples[samples["labelled"].astype(bool)]
    if "valid" in samples.columns:  # ingest keeps a zero image for a frame that failed to read
        n_invalid = int((~samples["valid"].astype(bool)).sum())
        if n_invalid:
            log.info("%s: leaving out %d samples that failed to read (valid=False; see errors.parquet)",
                     where, n_invalid)
            samples = samples[samples["valid"].astype(bool)]
    frac = 1.0 if max_images is None else min(1.0, max_images / max(len(samples), 1))
    out = {}
    for name in SPLITS:
        ids = np.sort(samples.loc[samples["split"] == name, "sample_id"].to_numpy(np.int64))
        if frac < 1.0:
            ids = ids[: max(1, math.floor(len(ids) * frac))] if len(ids) else ids
        out[name] = ids
    for name in ("train", "val"):
        if len(out[name]) == 0:
            raise ValueError(f"{where}: the {name!r} split is empty; training needs images in both 'train' and 'val'. "
                             "Hint: use a run with more runs/experiments (the split is by run) or raise --max-images.")
    return out


def load_frames(
    images,
    ids: np.ndarray,
    size: int,
    *,
    num_workers: int = 2,
    max_bytes: int = 8 * 2**30,
    progress: bool = True,
    desc: str = "loading",
) -> torch.Tensor:
    """Read rows ``ids`` of an (N, H, W) array (Zarr or NumPy) resized to ``size``: float16 tensor (n, size, size).

    Reads whole chunks (rows) and keeps the requested ones, in parallel threads.

    Raises
    ------
    MemoryError
        If the result would exceed ``max_bytes``; the message gives the remedy.
    """
    from tqdm.auto import tqdm

    ids = np.asarray(ids, dtype=np.int64)
    need = len(ids) * size * size * 2
    if need > max_bytes:
        raise MemoryError(f"Preloading {len(ids)} images at {size}x{size} needs {need / 2**30:.1f} GiB, more than "
                          f"max_bytes={max_bytes / 2**30:.1f} GiB. Hint: lower --max-images or --size.")
    out = torch.empty((len(ids), size, size), dtype=torch.float16)
    if len(ids) == 0:
        return out
    chunk = int(getattr(images, "chunks", (4096,))[0]) or 4096
    blocks = np.unique(ids // chunk)
    pos = {b: np.flatnonzero(ids // chunk == b) for b in blocks}

    def work(b: int) -> int:
        rows = pos[b]
        lo, hi = int(ids[rows].min()), int(ids[rows].max()) + 1
        block = np.asarray(images[lo:hi])[ids[rows] - lo]
        out[torch.from_numpy(rows)] = resize(torch.from_numpy(np.ascontiguousarray(block)), size).to(torch.float16)
        return len(rows)

    with ThreadPoolExecutor(max_workers=max(1, num_workers)) as pool, \
            tqdm(total=len(ids), desc=desc, unit="img", disable=not progress, leave=False) as bar:
        for n in pool.map(work, blocks):
            bar.update(n)
    return out


@dataclass
class TrainingData:
    """Frames (float16 (n, S, S) log values at the input size) and labels (bool (n, n_attributes)) per split."""

    ids: dict[str, np.ndarray]
    frames: dict[str, torch.Tensor]
    labels: dict[str, np.ndarray]
    source_size: tuple[int, int]
    run_ids: dict[str, int]


def load_training_data(
    store: RunStore,
    size: int,
    *,
    max_images: int | None = None,
    num_workers: int = 2,
    max_bytes: int = 8 * 2**30,
    progress: bool = True,
) -> TrainingData:
    """Load the train/val/test splits of a run at input size ``size`` (see :func:`split_indices`)."""
    have = _columns(store)
    label_cols = store.vocabulary.label_columns()
    missing = [c for c in ["sample_id"] + label_cols if c not in have]
    if missing:
        raise ValueError(f"{store.samples.path}: label columns {missing[:4]} are missing "
                         f"({len(missing)} in all); training needs sample_id and the run's {len(label_cols)} "
                         "y__<attribute> columns.")
    cols = ["sample_id"] + label_cols
    meta_cols = [c for c in ("split", "run_id", "labelled", "valid") if c in have]
    samples = store.samples.read(columns=cols + meta_cols)
    ids = split_indices(samples, max_images=max_images, where=str(store.samples.path))
    images = store.images.open()
    if images.ndim != 3:
        raise ValueError(f"{store.images.path}: expected shape (N, H, W). Got {images.shape} instead.")
    if images.shape[0] != store.n_samples:
        raise ValueError(f"{store.images.path}: {images.shape[0]} rows, but the manifest says "
                         f"n_samples={store.n_samples}.")
    labels_all = samples[label_cols].to_numpy(bool)
    by_id = pd.Index(samples["sample_id"].to_numpy(np.int64))
    frames, labels, runs = {}, {}, {}
    per_split_bytes = max_bytes
    for name, sel in ids.items():
        frames[name] = load_frames(images, sel, size, num_workers=num_workers, max_bytes=per_split_bytes,
                                   progress=progress, desc=f"loading {name}")
        per_split_bytes -= frames[name].numel() * 2
        labels[name] = labels_all[by_id.get_indexer(sel)]
        runs[name] = int(samples.loc[samples["sample_id"].isin(sel), "run_id"].nunique()) if "run_id" in meta_cols else -1
    return TrainingData(ids=ids, frames=frames, labels=labels, source_size=tuple(images.shape[1:]), run_ids=runs)


def _columns(store: RunStore) -> list[str]:
    import pyarrow.parquet as pq

    p = store.samples.path
    files = sorted(f for f in p.iterdir() if f.suffix == ".parquet" and not f.name.startswith(".")) if p.is_dir() else [p]
    return list(pq.read_schema(files[0]).names) if files else []
