"""Benchmark xsgpu.metrics: selection latency at 1M rows, AP, attribute study, suspicious-label recall.

Data: N images with domain-like labels (DOMAIN_FREQUENCIES) and probabilities correlated with them
(seeded). Printed JSON lines ({"name", "value", "unit", "baseline", "ratio", "n", "device", "params"}):

* ``metrics.selection_scorer_ms[.<sel>]``  ms per call of a prepared ``SelectionScorer`` on a selection
  (``mask50``: random half as a bool mask, the worst case; ``mask90``: 90%, scored as all rows minus the
  other 10%; ``idx10``: random 10% as indices; ``lasso1``: a contiguous
  1% block as indices). Baseline: scikit-learn's ``multilabel_confusion_matrix`` +
  ``precision_recall_fscore_support(average=None)`` on the same selected rows (slicing included).
  ratio = baseline / value (higher is better). value: the median wall time; params: the min, the median
  process CPU time (``cpu_ms``: what the call costs when the machine is not shared), the one-time
  ``SelectionScorer`` build time.
* ``metrics.selection_metrics_ms.mask50``  the one-shot pure ``selection_metrics`` (packs all rows every
  call), same baseline.
* ``metrics.average_precision_ms``  17-attribute AP; baseline: ``average_precision_score(average=None)``;
  params: max |difference| to scikit-learn.
* ``metrics.attribute_study_ms``  17 x 17 mutual information (on at most 200k rows, quick: 20k);
  baseline: 289 ``mutual_info_score`` calls;
  params: max |difference| (bits).
* ``metrics.suspicious_precision_at_100``  on a simulated model with flipped labels (n_susp images);
  baseline: the model-only ranking (no neighbours); ratio = value / baseline.

Usage::

    python benchmarks/bench_metrics.py --quick          # < 1 minute on 2 busy cores
    python benchmarks/bench_metrics.py --n 1000000 --repeats 21 --device cpu

Timings on a shared, busy 2-core machine are pessimistic; compare ratios, not absolute milliseconds.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def emit(name, value, unit, *, baseline=None, ratio=None, n=None, device="cpu", params=None):
    print(json.dumps({"name": name, "value": value, "unit": unit, "baseline": baseline, "ratio": ratio, "n": n,
                      "device": device, "params": params or {}}), flush=True)


def timed(fn, repeats: int, *, cpu: bool = False):
    """(median, min) wall time of ``fn()`` in ms over ``repeats`` calls (after one warm-up call); with
    ``cpu=True`` also the median process CPU time (less sensitive to other processes on a busy machine)."""
    fn()
    ts, cs = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
        cs.append(time.process_time() - c0)
    out = (float(np.median(ts) * 1e3), float(np.min(ts) * 1e3))
    return out + (float(np.median(cs) * 1e3),) if cpu else out


def make_data(n: int, seed: int):
    from xsgpu.attributes import DOMAIN_FREQUENCIES, SLUGS

    rng = np.random.default_rng(seed)
    freq = np.array([DOMAIN_FREQUENCIES[s] for s in SLUGS])
    y = rng.random((n, 17)) < freq
    p = np.clip(np.where(y, 0.72, 0.22) + rng.normal(0, 0.2, (n, 17)), 0, 1).astype(np.float32)
    p = (np.round(p * 1000) / 1000).astype(np.float32)  # ties, as in stored float16/rounded outputs
    return rng, y, p


def sklearn_selection(y, p, sel, cutoff=0.5):
    from sklearn.metrics import multilabel_confusion_matrix, precision_recall_fscore_support

    ys, pred = y[sel], p[sel] > cutoff
    multilabel_confusion_matrix(ys, pred)
    precision_recall_fscore_support(ys, pred, average=None, zero_division=0)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="rows for the selection benchmarks")
    ap.add_argument("--n-ap", type=int, default=None, help="rows for AP (default: n, quick: 100k)")
    ap.add_argument("--n-susp", type=int, default=20_000, help="images of the suspicious-label simulation")
    ap.add_argument("--n-susp-large", type=int, default=100_000,
                    help="images of the approximate-kNN suspicious-label run (0 or --quick: skipped)")
    ap.add_argument("--repeats", type=int, default=11)
    ap.add_argument("--quick", action="store_true", help="fewer repeats and smaller AP/study sizes (< 1 minute)")
    ap.add_argument("--device", choices=["auto", "cpu", "gpu"], default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--run", default=None,
                    help="only measure suspicious-label precision@100 on this real run (samples, predictions and "
                         "features.zarr), with --flips labels flipped in memory")
    ap.add_argument("--flips", type=int, default=None, help="labels to flip in --run (default: 1%% of the cells)")
    args = ap.parse_args(argv)
    if args.run:
        real_run_precision(args.run, n_flips=args.flips, seed=args.seed, device=args.device)
        return
    repeats = 5 if args.quick else args.repeats
    n_ap = args.n_ap or (100_000 if args.quick else args.n)

    from xsgpu.backend import resolve_device, to_host
    from xsgpu.metrics import SelectionScorer, attribute_study, average_precision, selection_metrics

    device = resolve_device(args.device)
    if device == "gpu":
        import cupy as xp
    else:
        xp = np

    def sync():
        if device == "gpu":
            xp.cuda.Stream.null.synchronize()

    rng, y, p = make_data(args.n, args.seed)
    yd, pd_ = xp.asarray(y), xp.asarray(p)
    t0 = time.perf_counter()
    scorer = SelectionScorer(yd, pd_, keep_probabilities=False)
    sync()
    build_ms = (time.perf_counter() - t0) * 1e3
    selections = {
        "mask50": rng.random(args.n) < 0.5,
        "mask90": rng.random(args.n) < 0.9,
        "idx10": np.sort(rng.choice(args.n, args.n // 10, replace=False)),
        "lasso1": np.arange(args.n // 3, args.n // 3 + args.n // 100),
    }
    baselines: dict[str, float] = {}
    for name, sel in selections.items():
        sel_d = xp.asarray(sel)
        med, best, cpu_ms = timed(lambda: (scorer(sel_d), sync()), repeats, cpu=True)
        base, base_min = timed(lambda: sklearn_selection(y, p, sel), max(1, repeats // 4))
        baselines[name] = base
        emit(f"metrics.selection_scorer_ms.{name}", med, "ms", baseline=base, ratio=base / med, n=args.n,
             device=device, params={"min_ms": best, "cpu_ms": cpu_ms, "baseline_min_ms": base_min, "selected": int(
                 sel.sum() if sel.dtype == bool else len(sel)), "build_ms": build_ms, "repeats": repeats})
    sel = selections["mask50"]
    sel_d = xp.asarray(sel)
    med, best, cpu_ms = timed(lambda: (selection_metrics(yd, pd_, sel_d), sync()), max(1, repeats // 2), cpu=True)
    base = baselines["mask50"]  # the same selection as above
    emit("metrics.selection_metrics_ms.mask50", med, "ms", baseline=base, ratio=base / med, n=args.n,
         device=device, params={"min_ms": best, "cpu_ms": cpu_ms, "selected": int(sel.sum())})

    from sklearn.metrics import average_precision_score, mutual_info_score

    ya, pa = y[:n_ap], p[:n_ap]
    ya_d, pa_d = xp.asarray(ya), xp.asarray(pa)
    ours = None

    def run_ap():
        nonlocal ours
        ours = to_host(average_precision(ya_d, pa_d))
        sync()

    med, _ = timed(run_ap, 1)
    t0 = time.perf_counter()
    ref = average_precision_score(ya, pa, average=None)
    base = (time.perf_counter() - t0) * 1e3
    emit("metrics.average_precision_ms", med, "ms", baseline=base, ratio=base / med, n=n_ap, device=device,
         params={"max_abs_diff_vs_sklearn": float(np.nanmax(np.abs(ours - ref))), "attributes": 17})

    n_mi = min(n_ap, 20_000 if args.quick else 200_000)
    ym = y[:n_mi]
    mi = None

    def run_mi():
        nonlocal mi
        mi = to_host(attribute_study(xp.asarray(ym), measure="mutual_information"))
        sync()

    med, _ = timed(run_mi, 3)
    t0 = time.perf_counter()
    ref = np.array([[mutual_info_score(ym[:, i], ym[:, j]) for j in range(17)] for i in range(17)]) / np.log(2)
    base = (time.perf_counter() - t0) * 1e3
    emit("metrics.attribute_study_ms", med, "ms", baseline=base, ratio=base / med, n=n_mi, device=device,
         params={"measure": "mutual_information", "max_abs_diff_bits": float(np.abs(mi - ref).max())})

    p100, p100_model, params = suspicious_precision(args.n_susp, args.seed, device, neighbors="exact")
    emit("metrics.suspicious_precision_at_100", p100, "fraction", baseline=p100_model,
         ratio=p100 / p100_model if p100_model else None, n=args.n_susp, device=device, params=params)
    if device == "cpu":  # approximate (Annoy) against exact kNN: same data, speed-up at precision@100
        p_ap, _, params_ap = suspicious_precision(args.n_susp, args.seed, device, neighbors="approx")
        emit("metrics.suspicious_approx_seconds", params_ap["seconds"], "s", baseline=params["seconds"],
             ratio=params["seconds"] / params_ap["seconds"], n=args.n_susp, device=device,
             params={**params_ap, "precision_at_100_approx": p_ap, "precision_at_100_exact": p100})
        n_large = 0 if args.quick else args.n_susp_large
        if n_large:
            p_l, p_l_model, params_l = suspicious_precision(n_large, args.seed, device, neighbors="approx")
            emit("metrics.suspicious_precision_at_100.approx_large", p_l, "fraction", baseline=p_l_model,
                 ratio=p_l / p_l_model if p_l_model else None, n=n_large, device=device, params=params_l)


def suspicious_precision(n: int, seed: int, device: str, n_flips: int | None = None, neighbors: str = "auto"):
    """precision@100 of suspicious_labels on a simulated model (features and probabilities from the
    clean labels plus noise; ACT = clean labels with ``n_flips`` flipped cells)."""
    from xsgpu.attributes import DOMAIN_FREQUENCIES, SLUGS
    from xsgpu.metrics import suspicious_labels

    rng = np.random.default_rng(seed + 1)
    freq = np.array([DOMAIN_FREQUENCIES[s] for s in SLUGS])
    clean = rng.random((n, 17)) < freq
    feats = (clean.astype(np.float32) @ rng.normal(size=(17, 32)) + rng.normal(0, 0.5, (n, 32))).astype(np.float32)
    probs = (1 / (1 + np.exp(-(np.where(clean, 2.0, -2.0) + rng.normal(0, 1.5, (n, 17)))))).astype(np.float32)
    n_flips = n_flips or max(200, n // 100)
    act = clean.copy()
    flat = rng.choice(n * 17, n_flips, replace=False)
    r, c = np.divmod(flat, 17)
    act[r, c] = ~act[r, c]
    flipped = set(zip(r.tolist(), c.tolist()))

    def precision(df):
        top = df.head(100)
        return sum((int(s), SLUGS.index(a)) in flipped for s, a in zip(top["sample_id"], top["attribute"])) / 100

    t0 = time.perf_counter()
    full = suspicious_labels(act, probs, feats, k=10, top=100, device=device, neighbors=neighbors)
    secs = time.perf_counter() - t0
    model_only = suspicious_labels(act, probs, None, top=100)
    return precision(full), precision(model_only), {"n_flips": n_flips, "k": 10, "feature_dim": 32,
                                                    "seconds": secs, "weight": 0.5, "neighbors": neighbors}


def real_run_precision(run: str, *, n_flips: int | None, seed: int, device: str) -> None:
    """precision@100 of suspicious_labels on a real run: flip ``n_flips`` ACT cells of labelled samples in
    memory (the store is not changed), then rank with FEA (PCA to 50 dimensions) and with PRD as the
    neighbour space; baseline: the model-only ranking."""
    from sklearn.decomposition import PCA

    from xsgpu.attributes import SLUGS
    from xsgpu.backend import resolve_device
    from xsgpu.io.runstore import RunStore
    from xsgpu.metrics import load_evaluation_arrays, mean_average_precision, suspicious_labels

    store = RunStore.open(run, require=["samples", "predictions", "features"])
    ids, y, p = load_evaluation_arrays(store)
    feats = np.asarray(store.features.open()[:], dtype=np.float32)[ids]
    rng = np.random.default_rng(seed)
    n_flips = n_flips or max(20, y.size // 100)
    flat = rng.choice(y.size, n_flips, replace=False)
    r, c = np.divmod(flat, 17)
    act = y.copy()
    act[r, c] = ~act[r, c]
    flipped = set(zip(ids[r].tolist(), c.tolist()))

    def precision(df):
        top = df.head(100)
        return sum((int(s), SLUGS.index(a)) in flipped for s, a in zip(top["sample_id"], top["attribute"])) / len(top)

    base = precision(suspicious_labels(act, p, None, top=100, sample_ids=ids))
    fea = PCA(n_components=min(50, feats.shape[1], len(ids)), random_state=seed).fit_transform(feats)
    common = {"n_flips": n_flips, "k": 10, "map_clean": mean_average_precision(y, p),
              "model_id": store.predictions.metadata().get("model_id"), "run": str(run)}
    for space, f in (("fea_pca50", fea), ("prd", p)):
        t0 = time.perf_counter()
        val = precision(suspicious_labels(act, p, f, k=10, top=100, sample_ids=ids, device=device))
        emit(f"metrics.suspicious_precision_at_100.real.{space}", val, "fraction", baseline=base,
             ratio=val / base if base else None, n=len(ids), device=resolve_device(device),
             params={**common, "seconds": time.perf_counter() - t0})


if __name__ == "__main__":
    main()
