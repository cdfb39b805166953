"""GPU embed benchmark (RAPIDS cuML): 1M points per space through ``make_projector(device="gpu")``.

Ready to run on a node with cuml-cu13 + cupy-cuda13x (``pip install 'xsgpu[gpu]'``); NOT run in CI
and not run on the project's lent GPU machines (they have CuPy but no RAPIDS). Goal of the issue:
1M points per space in <= 60 s.

What it does (all data made on the GPU, seeded):
  * FEA: N x 2048 float16 cluster-structured features -> exact streaming PCA to 50 dims on the GPU
    (:class:`xsgpu.embed.pca.StreamingPCA` with CuPy batches) -> cuML t-SNE;
  * PRD: N x 17 probabilities (sigmoid of prototype logits + noise) -> cuML t-SNE;
  * ACT: N x 17 labels -> dedupe -> cuML t-SNE of the unique vectors (or the circle layout) -> spread.
Prints JSON lines {"name", "value", "unit", "baseline", "ratio", "n", "device", "params"}:
  * ``embed.gpu_tsne_seconds.<space>``: wall seconds of the projection (PCA included for FEA);
    baseline: openTSNE on ``--cpu-n`` points of the same space on this node's CPUs, scaled
    linearly to N (a lower bound of the CPU time: t-SNE grows at least linearly); ratio = baseline / value.
  * ``embed.gpu_trustworthiness.<space>``: trustworthiness (k = 10) on a 5k sample; baseline: openTSNE's
    on the CPU subsample; ratio = value / baseline.

Usage::

    python benchmarks/gpu_embed.py                      # 1M per space on the GPU
    python benchmarks/gpu_embed.py --n 200000 --cpu-n 20000
    python benchmarks/gpu_embed.py --device cpu --n 3000 --cpu-n 1000    # smoke test of the script on a CPU box
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def emit(name, value, unit, *, baseline=None, ratio=None, n=None, device="gpu", params=None):
    print(json.dumps({"name": name, "value": value, "unit": unit, "baseline": baseline, "ratio": ratio, "n": n,
                      "device": device, "params": params or {}}), flush=True)


def make_data(n: int, xp, *, dim: int = 2048, seed: int = 0, block: int = 65536):
    """Return labels bool (n, 17), probs float32 (n, 17) and a generator of FEA blocks (b, dim) float32."""
    from xsgpu.attributes import DOMAIN_FREQUENCIES, N_ATTRIBUTES, SLUGS

    base = np.random.default_rng(1000 + seed)
    freq = np.array([DOMAIN_FREQUENCIES.get(s, 0.1) for s in SLUGS])
    protos = base.random((40, N_ATTRIBUTES)) < freq
    centres = base.normal(0, 3.0, (40, dim)).astype(np.float32)
    rng = xp.random.default_rng(seed) if hasattr(xp.random, "default_rng") else xp.random.RandomState(seed)
    k = xp.asarray(np.random.default_rng(seed).integers(0, 40, n))
    protos_x, centres_x = xp.asarray(protos), xp.asarray(centres)
    labels = protos_x[k] ^ (rng.random((n, N_ATTRIBUTES)) < 0.02)
    logits = 3.0 * (2 * labels - 1.0) + 1.5 * rng.standard_normal((n, N_ATTRIBUTES))
    probs = (1 / (1 + xp.exp(-logits))).astype(xp.float32)

    def feature_blocks():
        for a in range(0, n, block):
            b = min(n, a + block)
            f = centres_x[k[a:b]] + rng.standard_normal((b - a, dim), dtype=xp.float32)
            yield f.astype(xp.float16).astype(xp.float32)

    return labels, probs, feature_blocks


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--cpu-n", type=int, default=50_000, help="points per space for the openTSNE baseline")
    ap.add_argument("--device", choices=["gpu", "cpu"], default="gpu")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from xsgpu.backend import get_backend, to_host
    from xsgpu.embed import dedupe_labels, make_projector, spread_duplicates, trustworthiness
    from xsgpu.embed.pca import StreamingPCA

    xp = get_backend(args.device).xp
    t0 = time.perf_counter()
    labels, probs, feature_blocks = make_data(args.n, xp, seed=args.seed)
    pca = StreamingPCA(50).fit(feature_blocks())
    fea = xp.concatenate([pca.transform(b) for b in feature_blocks()])
    if args.device == "gpu":
        xp.cuda.Device().synchronize()
    t_fea_prep = time.perf_counter() - t0

    unique, inverse, counts = dedupe_labels(to_host(labels))
    spaces = {"act": xp.asarray(unique.astype(np.float32)), "fea": fea, "prd": probs}
    cpu_idx = np.sort(np.random.default_rng(args.seed).choice(args.n, size=min(args.cpu_n, args.n), replace=False))
    for space, X in spaces.items():
        t = time.perf_counter()
        proj = make_projector("tsne", device=args.device, perplexity=30, random_state=args.seed)
        y = proj.fit_transform(X)
        if space == "act":
            y = spread_duplicates(y, inverse, counts, random_state=args.seed)
        secs = time.perf_counter() - t + (t_fea_prep if space == "fea" else 0.0)
        Xh = np.asarray(to_host(X), np.float32)
        # ACT is judged on the unique vectors (the copies sit on discs around them)
        tw = trustworthiness(Xh, proj.embedding_ if space == "act" else y, n_neighbors=10, sample=5000,
                             random_state=args.seed)
        # CPU baseline on a subsample (ACT: the unique vectors are few; run them all)
        sub = Xh if space == "act" else Xh[cpu_idx]
        tc = time.perf_counter()
        y_cpu = make_projector("tsne", device="cpu", perplexity=30, random_state=args.seed, n_jobs=-1).fit_transform(sub)
        t_cpu = time.perf_counter() - tc
        scale = 1.0 if space == "act" else args.n / len(sub)
        tw_cpu = trustworthiness(sub, y_cpu, n_neighbors=10, sample=5000, random_state=args.seed)
        n_space = len(Xh) if space == "act" else args.n
        emit(f"embed.gpu_tsne_seconds.{space}", round(secs, 2), "s", baseline=round(t_cpu * scale, 2),
             ratio=round(t_cpu * scale / secs, 3), n=n_space, device=proj.backend_,
             params={"backend": proj.backend_, "fallback_reason": proj.fallback_reason_, "cpu_n": len(sub),
                     "cpu_seconds_measured": round(t_cpu, 2), "baseline": "openTSNE subsample x N/cpu_n",
                     "includes_fea_pca_s": round(t_fea_prep, 2) if space == "fea" else 0.0,
                     "goal_s": 60, "met": secs <= 60})
        emit(f"embed.gpu_trustworthiness.{space}", round(tw, 4), "trustworthiness@10", baseline=round(tw_cpu, 4),
             ratio=round(tw / tw_cpu, 4), n=n_space, device=proj.backend_, params={"sample": 5000})


if __name__ == "__main__":
    main()
