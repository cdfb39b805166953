"""Throughput of ``xsgpu ingest`` on detector files (frames/s), one JSON object per line.

Usage::

    python benchmarks/bench_ingest.py [--quick] [--n-tiff 400] [--n-eiger 400] [--size 256] [--workers 2]

The script writes its own inputs in a temporary directory: ``--n-tiff`` Pilatus 300K-shaped
(619 x 487) int32 TIFFs with module gaps (-1) and a bad pixel (-2), and one Eiger-shaped
(514 x 1030) uint32 HDF5 file with ``--n-eiger`` bitshuffle-LZ4 frames and a pixel mask. The
frames hold Poisson counts of a ring pattern, so compression and the log scale see realistic data.

Figures (``ratio = value / baseline``, higher is better):

* ``ingest_tiff`` / ``ingest_eiger``: frames/s of :func:`xsgpu.io.ingest.ingest_paths` (scan, read,
  mask, log scale, resize to ``--size``, thumbnails, atomic Zarr/Parquet writes) with ``--workers``
  processes; baseline = reading the same frames with :func:`xsgpu.io.read_any` alone, in one process
  (the reader's cost, measured in this run). A ratio near 1 means ingest costs little beyond reading.
* ``ingest_peak_rss``: peak RSS of this process and its finished children (MiB); baseline = the RSS
  before the first ingest.

Example (2-core machine): ``python benchmarks/bench_ingest.py --quick``.
"""
from __future__ import annotations

import argparse
import json
import logging
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("bench_ingest")

PILATUS_SHAPE = (619, 487)
EIGER_SHAPE = (514, 1030)


def emit(name: str, value: float, unit: str, baseline: float, n: int, **params) -> None:
    """Print one JSON line (the format every benchmark of this repository prints)."""
    print(json.dumps({"name": name, "value": round(value, 2), "unit": unit, "baseline": round(baseline, 2),
                      "ratio": round(value / baseline, 3) if baseline else None, "n": n, "device": "cpu",
                      "params": params}), flush=True)


def ring_counts(rng: np.random.Generator, n: int, shape: tuple[int, int]) -> np.ndarray:
    """``n`` frames of Poisson counts: a q^-3 background plus one ring at a random radius."""
    h, w = shape
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    r = np.hypot(yy - h * 0.45, xx - w * 0.52) + 1.0
    out = np.empty((n, h, w), dtype=np.int32)
    for i in range(n):
        r0 = rng.uniform(0.1, 0.4) * min(h, w)
        lam = 2e5 / r ** 1.5 + 200.0 * np.exp(-((r - r0) / 3.0) ** 2) + 1.0
        out[i] = rng.poisson(lam).astype(np.int32)
    return out


def write_pilatus(directory: Path, n: int, rng: np.random.Generator) -> list[Path]:
    """Pilatus 300K-shaped int32 TIFFs: horizontal module gaps of -1, one bad pixel of -2."""
    import tifffile

    frames = ring_counts(rng, n, PILATUS_SHAPE)
    frames[:, 195:212, :] = -1
    frames[:, 407:424, :] = -1
    frames[:, 10, 20] = -2
    paths = []
    for i, f in enumerate(frames):
        p = directory / f"pilatus_{i:05d}.tif"
        tifffile.imwrite(p, f, description="# Detector: PILATUS 300K\r\n", metadata=None)
        paths.append(p)
    return paths


def write_eiger(directory: Path, n: int, rng: np.random.Generator) -> Path:
    """One Eiger-shaped HDF5 file with ``n`` bitshuffle-LZ4 uint32 frames and a pixel mask."""
    import h5py
    import hdf5plugin

    path = directory / "eiger_master.h5"
    h, w = EIGER_SHAPE
    pmask = np.zeros((h, w), dtype=np.uint32)
    pmask[:, 513:517] = 1
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("entry/data/data", shape=(n, h, w), dtype=np.uint32, chunks=(1, h, w),
                              **hdf5plugin.Bitshuffle(cname="lz4"))
        for start in range(0, n, 50):
            k = min(50, n - start)
            ds[start:start + k] = ring_counts(rng, k, EIGER_SHAPE).astype(np.uint32)
        f.create_dataset("entry/instrument/detector/detectorSpecific/pixel_mask", data=pmask)
    return path


def read_only_rate(paths: list[Path]) -> tuple[float, int]:
    """Frames/s of reading ``paths`` with ``read_any`` (no preprocessing, no writes), one process."""
    from xsgpu.io import read_any

    t0 = time.perf_counter()
    n = 0
    for p in paths:
        for frame in read_any(p):
            n += int(frame.data.size > 0)
    return n / (time.perf_counter() - t0), n


def ingest_rate(paths: list[Path], out: Path, *, size: int, workers: int, partition_size: int) -> tuple[float, int]:
    """Frames/s of ``ingest_paths`` over ``paths`` into a new run ``out``."""
    from xsgpu.io.ingest import ingest_paths

    t0 = time.perf_counter()
    store = ingest_paths([str(p) for p in paths], out, size=size, n_workers=workers,
                         partition_size=partition_size, progress=False)
    secs = time.perf_counter() - t0
    n_err = len(store.read_errors()) if store.errors.path.exists() else 0
    if n_err:
        raise RuntimeError(f"{out}: {n_err} inputs failed to ingest; see {store.errors.path}")
    return store.n_samples / secs, store.n_samples


def peak_rss_mib() -> float:
    """Peak RSS of this process and of its waited-for children, MiB (Linux reports KiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-tiff", type=int, default=400, help="Pilatus TIFF files to write and ingest")
    ap.add_argument("--n-eiger", type=int, default=400, help="frames of the Eiger HDF5 file")
    ap.add_argument("--size", type=int, default=256, help="side of the stored images")
    ap.add_argument("--workers", type=int, default=2, help="ingest processes")
    ap.add_argument("--partition-size", type=int, default=64)
    ap.add_argument("--quick", action="store_true", help="100 TIFFs and 100 Eiger frames (about a minute)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.quick:
        args.n_tiff, args.n_eiger = min(args.n_tiff, 100), min(args.n_eiger, 100)
    logging.basicConfig(level=logging.WARNING)
    rng = np.random.default_rng(args.seed)
    rss0 = peak_rss_mib()
    with tempfile.TemporaryDirectory(prefix="xsgpu-bench-ingest-") as tmp:
        root = Path(tmp)
        (root / "tiff").mkdir()
        cases = {"ingest_tiff": (write_pilatus(root / "tiff", args.n_tiff, rng), PILATUS_SHAPE),
                 "ingest_eiger": ([write_eiger(root, args.n_eiger, rng)], EIGER_SHAPE)}
        for name, (paths, shape) in cases.items():
            base, n_read = read_only_rate(paths)
            rate, n = ingest_rate(paths, root / f"run_{name}", size=args.size, workers=args.workers,
                                  partition_size=args.partition_size)
            if n != n_read:
                raise RuntimeError(f"{name}: ingest stored {n} frames but {n_read} were read")
            emit(name, rate, "frames/s", base, n, workers=args.workers, size=args.size, frame_shape=list(shape),
                 files=len(paths), baseline_is="read_any alone, 1 process")
    emit("ingest_peak_rss", peak_rss_mib(), "MiB", rss0, args.n_tiff + args.n_eiger, workers=args.workers)


if __name__ == "__main__":
    main()
