"""Benchmark the embed stage: three spaces for N images, and openTSNE vs scikit-learn's TSNE.

Data: a temporary run store with N images whose labels come from 40 label prototypes drawn with the
domain frequencies (2% bit flips), FEA (N x 2048 float16) = prototype centre + noise, and PRD =
sigmoid of the labels' logits + noise (seeded). Printed JSON lines
({"name", "value", "unit", "baseline", "ratio", "n", "device", "params"}):

* ``embed.run_seconds``  wall time of ``embed_run(method="tsne")`` over ACT + FEA + PRD (FEA through
  streaming PCA to 50 dims). Baseline: ``embed_run(method="pca")`` on the same run (same I/O, the
  cheapest map); ratio = baseline / value. params: per-space seconds and trustworthiness, the 600-s
  budget of the issue and whether it was met, process CPU seconds.
* ``embed.tsne_seconds_vs_sklearn``  openTSNE (as the FEA projector runs it) vs
  ``sklearn.manifold.TSNE`` (Barnes-Hut, same perplexity 30, same 750 iterations, PCA init) on the same
  ``--compare-n`` points of 50-d PCA-reduced FEA; ratio = sklearn / openTSNE (higher is better; goal >= 2).
* ``embed.tsne_trustworthiness_vs_sklearn``  trustworthiness (k = 10, 5k sample) of the two maps;
  ratio = openTSNE / sklearn (goal >= 1).
* ``embed.peak_rss`` (with ``--memory-n N``)  peak RSS (GiB) of a child process that runs only
  ``embed_run(method="tsne")`` on an N-image run (psutil, every 0.2 s). The optimisation is cut to
  ``--memory-iters`` iterations: memory is allocated by the kNN graph, the affinities and the gradient
  buffers before the first iteration, so the peak does not depend on the iteration count, while the
  wall time would (hours for 1M points on 2 cores). Baseline: the 16 GiB budget; ratio = 16 / value.

* ``embed.sample_place_seconds`` (with ``--fit-sample M``)  wall time of
  ``embed_run(method="tsne", fit_sample=M)`` (fit each space on a stratified sample of M images, place
  the rest with openTSNE's transform) in a child process; baseline: the full fit on the same run
  (``--skip-full`` leaves it out, e.g. at 1M where it takes hours); ratio = baseline / value.
  params: per-space fit / place seconds, peak RSS (GiB) of the child, and the 30-min / 8 GB goals.
* ``embed.sample_place_trustworthiness_<space>``  trustworthiness (k = 10) of the sample-and-place map
  on a ``--eval-n`` point subset (default 5,000); baseline: the full fit's on the same subset size;
  ratio = value / baseline.

Usage::

    python benchmarks/bench_embed.py --quick                 # ~1 minute (idle 2 cores): 800 images, 500-point comparison
    nice python benchmarks/bench_embed.py --n 100000          # the issue's figure (many minutes on 2 cores)
    python benchmarks/bench_embed.py --skip-run --skip-compare --memory-n 1000000   # 1M-point peak memory
    python benchmarks/bench_embed.py --n 100000 --skip-compare --device gpu
    python benchmarks/bench_embed.py --n 100000 --skip-compare --fit-sample 20000            # vs the full fit
    python benchmarks/bench_embed.py --n 1000000 --skip-compare --skip-run --fit-sample 100000 --skip-full --eval-n 50000

Timings on a shared, busy 2-core machine are pessimistic; the CPU seconds in params are less sensitive.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BUDGET_S = 600.0


def emit(name, value, unit, *, baseline=None, ratio=None, n=None, device="cpu", params=None):
    print(json.dumps({"name": name, "value": value, "unit": unit, "baseline": baseline, "ratio": ratio, "n": n,
                      "device": device, "params": params or {}}), flush=True)


def make_bench_run(path: Path, n: int, *, dim: int = 2048, seed: int = 0, partition_size: int = 8192):
    """Write a structured synthetic run (samples, features.zarr, predictions) of ``n`` images."""
    import pandas as pd

    from xsgpu.attributes import DOMAIN_FREQUENCIES, N_ATTRIBUTES, SLUGS, label_columns, prob_columns
    from xsgpu.io.runstore import RunStore
    from xsgpu.io.schema import fill_samples

    base = np.random.default_rng(1000 + seed)
    freq = np.array([DOMAIN_FREQUENCIES.get(s, 0.1) for s in SLUGS])
    protos = base.random((40, N_ATTRIBUTES)) < freq
    centres = base.normal(0, 3.0, (40, dim)).astype(np.float32)
    weights = base.dirichlet(np.ones(40))
    store = RunStore.create(path, n_samples=n, partition_size=partition_size, params={"bench": "embed"})
    feats = store.features.create((n, dim), np.float16)
    for p in range(store.n_partitions):
        a, b = store.partition_bounds(p)
        rng = np.random.default_rng([seed, p])
        k = rng.choice(40, size=b - a, p=weights)
        y = protos[k] ^ (rng.random((b - a, N_ATTRIBUTES)) < 0.02)
        f = centres[k] + rng.normal(0, 1.0, (b - a, dim)).astype(np.float32)
        feats[a:b] = f.astype(np.float16)
        logits = 3.0 * (2 * y - 1.0) + rng.normal(0, 1.5, y.shape)
        ids = pd.DataFrame({"sample_id": np.arange(a, b, dtype=np.int64)})
        s = ids.copy()
        for j, c in enumerate(label_columns()):
            s[c] = y[:, j]
        store.samples.write_partition(p, fill_samples(s))
        pr = ids.copy()
        for j, c in enumerate(prob_columns()):
            pr[c] = (1 / (1 + np.exp(-logits[:, j]))).astype(np.float32)
        store.predictions.write_partition(p, pr)
    return store


def bench_embed_run(store, *, device: str, quick: bool, n_jobs: int) -> None:
    from xsgpu.embed import embed_run

    n = store.n_samples
    c0, t0 = time.process_time(), time.perf_counter()
    embed_run(store.path, method="pca", device=device, progress=False, quality=False, n_jobs=n_jobs)
    t_pca = time.perf_counter() - t0
    c1, t1 = time.process_time(), time.perf_counter()
    embed_run(store.path, method="tsne", device=device, progress=not quick, quality=True, n_jobs=n_jobs)
    t_tsne = time.perf_counter() - t1
    cpu_tsne = time.process_time() - c1
    meta = store.embedding.metadata()
    spaces = {s: {k: m.get(k) for k in ("backend", "seconds", "n_inputs", "input_dims", "trustworthiness_k10",
                                        "fallback_reason") if m.get(k) is not None}
              for s, m in meta["spaces"].items()}
    backends = {m.get("backend") for m in meta["spaces"].values()}
    emit("embed.run_seconds", round(t_tsne, 2), "s", baseline=round(t_pca, 2), ratio=round(t_pca / t_tsne, 4), n=n,
         device="gpu" if "gpu" in backends else "cpu",
         params={"method": "tsne", "baseline": "embed_run(method='pca') on the same run", "spaces": spaces,
                 "budget_s": BUDGET_S, "within_budget": t_tsne <= BUDGET_S, "process_cpu_s": round(cpu_tsne, 1),
                 "baseline_process_cpu_s": round(c1 - c0, 1), "fea_dims": 2048})


def bench_compare(store, *, n_compare: int, n_jobs: int, seed: int) -> None:
    from sklearn.manifold import TSNE as SkTSNE

    from xsgpu.embed import make_projector, trustworthiness
    from xsgpu.embed.pca import StreamingPCA

    arr = store.features.open()
    m = min(n_compare, arr.shape[0])
    X = np.asarray(arr[:m], dtype=np.float32)
    X = StreamingPCA(50).fit([X]).transform(X)

    c0, t0 = time.process_time(), time.perf_counter()
    y_ot = make_projector("tsne", device="cpu", perplexity=30, random_state=seed, n_jobs=n_jobs).fit_transform(X)
    t_ot, cpu_ot = time.perf_counter() - t0, time.process_time() - c0

    c0, t0 = time.process_time(), time.perf_counter()
    y_sk = SkTSNE(n_components=2, perplexity=30, max_iter=750, init="pca", learning_rate="auto",
                  random_state=seed, n_jobs=n_jobs).fit_transform(X)
    t_sk, cpu_sk = time.perf_counter() - t0, time.process_time() - c0

    tw_ot = trustworthiness(X, y_ot, n_neighbors=10, sample=5000, random_state=seed)
    tw_sk = trustworthiness(X, y_sk, n_neighbors=10, sample=5000, random_state=seed)
    common = {"input_dims": 50, "perplexity": 30, "iterations": 750, "n_jobs": n_jobs,
              "baseline": "sklearn.manifold.TSNE(method='barnes_hut')"}
    emit("embed.tsne_seconds_vs_sklearn", round(t_ot, 2), "s", baseline=round(t_sk, 2), ratio=round(t_sk / t_ot, 3),
         n=m, params={**common, "process_cpu_s": round(cpu_ot, 1), "baseline_process_cpu_s": round(cpu_sk, 1),
                      "cpu_ratio": round(cpu_sk / cpu_ot, 3)})
    emit("embed.tsne_trustworthiness_vs_sklearn", round(tw_ot, 4), "trustworthiness@10", baseline=round(tw_sk, 4),
         ratio=round(tw_ot / tw_sk, 4), n=m, params={**common, "sample": min(5000, m)})


_MEMORY_CHILD = """
import json, sys, time
from xsgpu.embed import embed_run
t0 = time.perf_counter()
iters = int(sys.argv[2])
embed_run(sys.argv[1], method="tsne", device="cpu", progress=False, n_jobs=-1,
          projector_params={"n_iter": iters, "early_exaggeration_iter": iters})
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""


def bench_memory(store, *, iters: int) -> None:
    """Peak RSS of a child process running only embed_run (t-SNE of the three spaces) on ``store``."""
    from _child import run_child_peak_rss

    peak, result = run_child_peak_rss(_MEMORY_CHILD, [str(store.path), str(iters)], period_s=0.2)
    secs = result["seconds"]
    gib = peak / 2**30
    meta = store.embedding.metadata()
    emit("embed.peak_rss", round(gib, 3), "GiB", baseline=16.0, ratio=round(16.0 / gib, 2), n=store.n_samples,
         params={"what": "peak RSS of a process running only embed_run(method='tsne'), 3 spaces", "iterations": iters,
                 "fea_dims": int(store.features.open().shape[1]), "seconds": round(secs, 1),
                 "space_seconds": {s: m.get("seconds") for s, m in meta["spaces"].items()},
                 "baseline": "the 16 GiB host-memory budget"})


_SAMPLE_CHILD = """
import json, sys, time
from xsgpu.embed import embed_run
from xsgpu.io.runstore import RunStore
t0 = time.perf_counter()
fit_sample = int(sys.argv[2]) or None
embed_run(sys.argv[1], method="tsne", device="cpu", progress=False, n_jobs=int(sys.argv[4]),
          fit_sample=fit_sample, quality=True, quality_sample=int(sys.argv[3]))
meta = RunStore.open(sys.argv[1]).read_metadata("embedding")
print(json.dumps({"seconds": time.perf_counter() - t0, "spaces": meta["spaces"]}))
"""


def _run_tsne_child(store, *, fit_sample: int, eval_n: int, n_jobs: int) -> tuple[float, dict]:
    from _child import run_child_peak_rss

    peak, result = run_child_peak_rss(_SAMPLE_CHILD, [str(store.path), str(fit_sample), str(eval_n), str(n_jobs)],
                                      period_s=0.5)
    return peak / 2**30, result


def bench_sample_place(store, *, fit_sample: int, eval_n: int, n_jobs: int, full: bool) -> None:
    """Sample-and-place t-SNE vs the full fit on the same run (child processes, peak RSS sampled)."""
    n = store.n_samples
    keys = ("seconds", "fit_seconds", "place_seconds", "fit_sample", "placed", "trustworthiness_k10", "n_inputs")
    base_s = base = None
    if full:
        _, base = _run_tsne_child(store, fit_sample=0, eval_n=eval_n, n_jobs=n_jobs)
        base_s = round(base["seconds"], 1)
    gib, res = _run_tsne_child(store, fit_sample=fit_sample, eval_n=eval_n, n_jobs=n_jobs)
    secs = round(res["seconds"], 1)
    spaces = {s: {k: m.get(k) for k in keys if m.get(k) is not None} for s, m in res["spaces"].items()}
    emit("embed.sample_place_seconds", secs, "s", baseline=base_s,
         ratio=round(base_s / secs, 3) if base_s else None, n=n,
         params={"fit_sample": fit_sample, "spaces": spaces, "peak_rss_gib": round(gib, 2),
                 "fea_dims": int(store.features.open().shape[1]),
                 "goal": "1M images, three spaces, <= 1800 s and <= 8 GB on 2 cores", "n_jobs": n_jobs,
                 "baseline": "embed_run(method='tsne') fitting every point" if full else None})
    for space in ("fea", "prd"):
        tw = res["spaces"][space].get("trustworthiness_k10")
        btw = base["spaces"][space].get("trustworthiness_k10") if base else None
        emit(f"embed.sample_place_trustworthiness_{space}", tw, "trustworthiness@10", baseline=btw,
             ratio=round(tw / btw, 4) if (tw and btw) else None, n=n,
             params={"fit_sample": fit_sample, "eval_n": min(eval_n, n),
                     "baseline": "the full fit's trustworthiness on the same subset size" if full else None})


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="800 images, 500-point comparison (~1 minute on 2 idle cores)")
    ap.add_argument("--n", type=int, default=100_000, help="images in the embed_run benchmark")
    ap.add_argument("--compare-n", type=int, default=20_000, help="points in the openTSNE vs sklearn comparison")
    ap.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto")
    ap.add_argument("--n-jobs", type=int, default=-1,
                    help="openTSNE/sklearn threads (-1: all cores; on a heavily shared machine 1 is faster)")
    ap.add_argument("--skip-compare", action="store_true")
    ap.add_argument("--skip-run", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=None, help="where to write the temporary run (default: /tmp)")
    ap.add_argument("--memory-n", type=int, default=0, help="also measure embed's peak RSS on a run of this size")
    ap.add_argument("--memory-iters", type=int, default=10, help="t-SNE iterations in the memory run")
    ap.add_argument("--fit-sample", type=int, default=0,
                    help="also benchmark sample-and-place maps fitted on this many images (0: no)")
    ap.add_argument("--skip-full", action="store_true", help="with --fit-sample: no full-fit baseline")
    ap.add_argument("--eval-n", type=int, default=5000, help="trustworthiness subset of --fit-sample")
    ap.add_argument("--dim", type=int, default=2048,
                    help="FEA dimensions of the --fit-sample run (2048: ResNet-50; 512: ResNet-18, the demo model)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    n = 800 if args.quick else args.n
    n_compare = 500 if args.quick else args.compare_n
    tmp = Path(tempfile.mkdtemp(prefix="bench_embed_", dir=args.workdir))
    try:
        store = None
        if not args.skip_run:
            store = make_bench_run(tmp / "run", n, seed=args.seed)
            bench_embed_run(store, device=args.device, quick=args.quick, n_jobs=args.n_jobs)
        if not args.skip_compare:
            if store is None or store.n_samples < n_compare:
                store = make_bench_run(tmp / "cmp", n_compare, seed=args.seed)
            bench_compare(store, n_compare=n_compare, n_jobs=args.n_jobs, seed=args.seed)
        if args.fit_sample:
            sp_n = 1200 if args.quick else args.n
            sp_store = store if store is not None and store.n_samples == sp_n and args.dim == 2048 else make_bench_run(
                tmp / "sample", sp_n, dim=args.dim, seed=args.seed, partition_size=65536)
            bench_sample_place(sp_store, fit_sample=300 if args.quick else args.fit_sample, eval_n=args.eval_n,
                               n_jobs=args.n_jobs, full=not args.skip_full)
        if args.memory_n:
            bench_memory(make_bench_run(tmp / "mem", args.memory_n, seed=args.seed, partition_size=65536),
                         iters=args.memory_iters)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
