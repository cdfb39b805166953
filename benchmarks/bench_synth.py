"""Throughput of the synthetic generator (images/s at 256 x 256), one JSON object per line.

Usage::

    python benchmarks/bench_synth.py [--quick] [--device cpu|gpu] [--n N] [--size 256] [--workers 2]

Figures (``ratio = value / baseline``, higher is better):

* ``synth_generate_parallel``: ``generate_images`` in ``--workers`` warm worker processes (one numba
  thread each); baseline = the same generator in ONE process with one thread, measured in this run.
* ``synth_generate_cpu_seconds``: images per CPU-second of that single-thread run (a figure that a busy,
  shared machine does not distort much); baseline = the wall-clock figure.
* ``synth_stage``: the whole stage (``synthesize_run``: generate + log_scale + thumbnails + Zarr/Parquet
  writes) with ``--workers`` processes; baseline = single-process generation.
* with ``--device gpu``: ``synth_generate_gpu`` (CuPy, one process, after warm-up, synchronised) and
  ``synth_generate_parallel`` with ``--workers`` host processes feeding the one GPU (parameters are
  drawn on the host, ~0.5 ms per image, so several feeders are needed); baseline = the single-thread
  CPU figure. Example on a 16-core GPU node: ``--device gpu --workers 12``.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor


BLOCK = 256


def _generate(args) -> tuple[int, float, float]:
    n, size, seed, start, device = args
    import numba

    numba.set_num_threads(1)
    from xsgpu.synth import generate_images

    xp = None
    if device == "gpu":
        import cupy as xp  # noqa: F811 - device chosen by the caller through --device
    t0, c0 = time.perf_counter(), time.process_time()
    done = 0
    for s in range(start, start + n, BLOCK):
        k = min(BLOCK, start + n - s)
        b = generate_images(k, size=size, seed=seed, start=s, xp=xp)
        if xp is not None:
            xp.cuda.Stream.null.synchronize()
        done += k
        del b
    return done, time.perf_counter() - t0, time.process_time() - c0


def emit(name, value, unit, baseline, n, device, **params):
    print(json.dumps({"name": name, "value": round(value, 2), "unit": unit, "baseline": round(baseline, 2),
                      "ratio": round(value / baseline, 3) if baseline else None, "n": n, "device": device,
                      "params": params}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small n (under a minute)")
    ap.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    ap.add_argument("--n", type=int, default=None, help="images per measurement")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    n = args.n or (256 if args.quick else 2048)
    size, seed, w = args.size, args.seed, args.workers

    # warm-up (numba compile, tables) then the single-process, single-thread baseline
    _generate((16, size, seed, 10**6, "cpu"))
    done, wall, cpu = _generate((n, size, seed, 0, "cpu"))
    base = done / wall
    emit("synth_generate_cpu_seconds", done / cpu, "images/cpu-s", base, done, "cpu", size=size)

    dev = args.device
    if dev == "gpu":
        _generate((BLOCK, size, seed, 10**6, "gpu"))
        m = n * 4
        done_g, wall_g, _ = _generate((m, size, seed, 0, "gpu"))
        emit("synth_generate_gpu", done_g / wall_g, "images/s", base, done_g, "gpu", size=size, workers=1)
        n = n * 4  # the parallel GPU figure below: several host processes feeding one GPU

    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=w, mp_context=ctx) as pool:
        list(pool.map(_generate, [(8, size, seed, 10**6 + i * BLOCK, dev) for i in range(w)]))  # warm
        per = -(-n // w // BLOCK) * BLOCK
        t0 = time.perf_counter()
        res = list(pool.map(_generate, [(per, size, seed, i * per, dev) for i in range(w)]))
        wall_p = time.perf_counter() - t0
    done_p = sum(r[0] for r in res)
    emit("synth_generate_parallel", done_p / wall_p, "images/s", base, done_p, dev, size=size, workers=w)
    if dev == "gpu":
        return

    from xsgpu.synth import synthesize_run

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        synthesize_run(f"{tmp}/run", n=n, size=size, seed=seed, partition_size=max(BLOCK, n // w // BLOCK * BLOCK),
                       progress=False, workers=w)
        wall_s = time.perf_counter() - t0
    emit("synth_stage", n / wall_s, "images/s", base, n, "cpu", size=size, workers=w,
         note="includes worker start-up (spawn + imports)")



if __name__ == "__main__":
    main()
