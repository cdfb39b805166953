"""Benchmark ``xsgpu import-outputs``: rows/s importing predictions (and features) computed elsewhere.

Data: a run store of N samples (samples table only: one single-frame file per sample in 100 run
directories), a predictions file of N rows x 17 probabilities and, optionally, an (N, D) float32
``.npy`` features file, both in shuffled row order. Printed JSON lines ({"name", "value", "unit",
"baseline", "ratio", "n", "device", "params"}):

* ``import_outputs.rows_per_s.<key>``  ``import_outputs`` end to end (read, match keys, validate, write
  every predictions partition and the features), ``key`` = ``sample_id`` (Parquet keyed by sample id)
  or ``file`` (CSV keyed by relative path + frame: the label-file matching rules). Baseline: the bare
  I/O of the same data (``pd.read_parquet`` of the file + ``RunStore.write_partition`` of every
  partition, no checks); ratio = value / baseline (higher is better; 1 = the checks are free).

Usage::

    python benchmarks/bench_import_outputs.py --quick            # 100k rows, < 1 minute
    python benchmarks/bench_import_outputs.py --n 1000000 --features-dim 16
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def emit(name, value, unit, *, baseline=None, ratio=None, n=None, device="cpu", params=None):
    print(json.dumps({"name": name, "value": value, "unit": unit, "baseline": baseline, "ratio": ratio, "n": n,
                      "device": device, "params": params or {}}), flush=True)


def make_run(root: Path, n: int, partition_size: int):
    from xsgpu.attributes import label_columns
    from xsgpu.io.runstore import RunStore
    from xsgpu.io.schema import fill_samples

    store = RunStore.create(root / "run", n_samples=n, partition_size=partition_size, params={})
    rel = np.array([f"run{i % 100:03d}/img_{i:07d}.tif" for i in range(n)], dtype=object)
    uris = np.array([str(root / "data" / r) for r in rel], dtype=object)
    for p in range(store.n_partitions):
        a, b = store.partition_bounds(p)
        df = pd.DataFrame({"sample_id": np.arange(a, b, dtype=np.int64), "source_uri": uris[a:b],
                           "frame": np.zeros(b - a, np.int32), "labelled": False})
        for c in label_columns():
            df[c] = False
        store.samples.write_partition(p, fill_samples(df))
    return store, rel


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--features-dim", type=int, default=0, help="D of a features file to import too (0: none)")
    ap.add_argument("--partition-size", type=int, default=65_536)
    ap.add_argument("--quick", action="store_true", help="100k rows")
    args = ap.parse_args(argv)
    n = 100_000 if args.quick else args.n

    from xsgpu.attributes import NAMES, prob_columns
    from xsgpu.io.import_outputs import import_outputs
    from xsgpu.io.runstore import RunStore

    root = Path(tempfile.mkdtemp(prefix="bench_import_"))
    try:
        store, rel = make_run(root, n, args.partition_size)
        rng = np.random.default_rng(0)
        order = rng.permutation(n)
        probs = rng.random((n, 17), dtype=np.float32)
        by_id = pd.DataFrame({"sample_id": order, **{c: probs[order, j] for j, c in enumerate(prob_columns())}})
        by_id.to_parquet(root / "by_id.parquet")
        by_file = pd.DataFrame({"file": rel[order], "frame": 0, **{NAMES[j]: probs[order, j] for j in range(17)}})
        by_file.to_csv(root / "by_file.csv", index=False, float_format="%.7g")
        feats = None
        if args.features_dim:
            feats = root / "fea.npy"
            np.save(feats, rng.standard_normal((n, args.features_dim), dtype=np.float32))

        t0 = time.perf_counter()
        df = pd.read_parquet(root / "by_id.parquet").sort_values("sample_id")
        bare = RunStore.create(root / "bare", n_samples=n, partition_size=args.partition_size, params={})
        for p in range(bare.n_partitions):
            a, b = bare.partition_bounds(p)
            bare.predictions.write_partition(p, df.iloc[a:b].reset_index(drop=True))
        base_s = time.perf_counter() - t0
        baseline = n / base_s

        for key, path in (("sample_id", root / "by_id.parquet"), ("file", root / "by_file.csv")):
            t0 = time.perf_counter()
            import_outputs(store.path, predictions=path, features=feats,
                           features_order="predictions" if feats else "sample_id", overwrite=True)
            s = time.perf_counter() - t0
            emit(f"import_outputs.rows_per_s.{key}", round(n / s, 1), "rows/s", baseline=round(baseline, 1),
                 ratio=round((n / s) / baseline, 3), n=n,
                 params={"seconds": round(s, 2), "baseline_seconds": round(base_s, 2),
                         "features_dim": args.features_dim, "partition_size": args.partition_size})
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
