"""The pipeline end to end as a user runs it: ``xsgpu pipeline`` on N synthetic images with a trained model.

``xsgpu pipeline --synth N --size S --model MODEL --embed-fit-sample F --out OUT`` runs in a child process
(the real command line: a local Dask cluster, the stages synth -> infer -> embed -> evaluate). A sampler
reads the RSS of the child's whole process tree (the client and every Dask worker and its children)
every ``--sample-s`` seconds and appends it to ``OUT/bench/memory-<time>.csv``. When the command ends,
each stage's window is read from the run log's ``stage_start`` / ``stage_end`` events
(``OUT/logs/pipeline-*.log``) and the memory samples inside it give the stage's peaks. A rerun on the
same ``--out`` resumes the pipeline (finished partitions and stages are skipped) and the figures are
taken over every invocation's logs and samples, so an interrupted measurement is not lost.

Printed JSON lines ({"name", "value", "unit", "baseline", "ratio", "n", "device", "params"}):

* ``pipeline_run.<stage>_seconds``  the stage's wall time (sum over invocations); params: rows, rows/s,
  the peak RSS of the process tree (sum over processes: an upper bound, shared pages are counted once
  per process) and of its largest single process, both in GiB. For ``embed`` the baseline is the
  issue's 30-min goal (ratio = 1800 / value) and params hold the per-space fit / place seconds and
  trustworthiness from the embedding's metadata.
* ``pipeline_run.embed_peak_rss``  GiB, the largest single process while embed ran (the client, which
  fits the maps); baseline: the 8 GB goal (ratio = 8 / value).
* ``pipeline_run.map_trustworthiness_<space>`` (``--eval-n``, FEA and PRD)  trustworthiness (k = 10) of the
  stored map of all N images on a seeded ``--eval-n`` subset (inputs: ``fea_reduced.npy``, the
  predictions); baseline: the same measure on an ``--eval-n`` subset of the fitted sample's images alone
  (drawn again as embed drew it), i.e. what placing the other images costs; ratio = value / baseline;
  params also hold the placed images alone.
* ``pipeline_run.total_seconds``  sum of the stages; ``pipeline_run.projection_<M>``  hours at M images
  (``--project``, default 10M): synth, infer and evaluate scaled by their measured rows/s, embed as its
  measured fit seconds (the sample size does not grow) plus its placing and reduction seconds scaled
  linearly; a projection, not a measurement.

Usage::

    xsgpu demo --out runs/demo --no-serve          # the demo model: runs/demo/model
    nice python benchmarks/bench_pipeline_run.py --n 1000000 --size 64 --model runs/demo/model \\
        --fit-sample 100000 --out /tmp/run1m      # about 2 h on 2 idle cores
    python benchmarks/bench_pipeline_run.py --n 2000 --size 32 --model runs/demo/model --fit-sample 500 \\
        --out /tmp/run2k                             # a minute: checks the script
    python benchmarks/bench_pipeline_run.py --report-only --out /tmp/run1m --eval-n 50000   # + map quality
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

log = logging.getLogger("bench_pipeline_run")

STAGES = ("synth", "ingest", "train", "infer", "embed", "evaluate", "app_cache")
EMBED_GOAL_S = 1800.0
EMBED_GOAL_GB = 8.0


def emit(name, value, unit, *, baseline=None, ratio=None, n=None, device="cpu", params=None):
    if ratio is None and value and baseline:
        ratio = baseline / value
    print(json.dumps({"name": name, "value": value, "unit": unit, "baseline": baseline, "ratio": ratio, "n": n,
                      "device": device, "params": params or {}}), flush=True)


class TreeSampler:
    """Append ``time, tree RSS, largest process RSS, processes`` of a process tree to a CSV, every ``every`` s."""

    def __init__(self, pid: int, path: Path, *, every: float = 1.0):
        import psutil

        self.root, self.path, self.every = psutil.Process(pid), path, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> tuple[int, int, int]:
        import psutil

        total = largest = count = 0
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0, 0, 0
        for p in procs:
            try:
                rss = p.memory_info().rss
            except psutil.Error:
                continue
            total, largest, count = total + rss, max(largest, rss), count + 1
        return total, largest, count

    def _loop(self) -> None:
        with self.path.open("a", newline="") as fh:
            out = csv.writer(fh)
            while not self._stop.is_set():
                total, largest, count = self._sample()
                out.writerow([f"{time.time():.3f}", total, largest, count])
                fh.flush()
                self._stop.wait(self.every)

    def __enter__(self) -> "TreeSampler":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_pipeline_child(args) -> int:
    """Run ``xsgpu pipeline`` for ``args`` with its process tree sampled; return its exit status."""
    cmd = [sys.executable, "-m", "workflows.cli", "pipeline", "--synth", str(args.n), "--size", str(args.size),
           "--model", str(args.model), "--out", str(args.out), "--partition-size", str(args.partition_size),
           "--n-workers", str(args.n_workers), "--dashboard-address", ":0", "--seed", str(args.seed)]
    if args.fit_sample:
        cmd += ["--embed-fit-sample", str(args.fit_sample)]
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    log.info("running %s", " ".join(cmd))
    proc = subprocess.Popen(cmd, cwd=Path(__file__).resolve().parents[1])
    with TreeSampler(proc.pid, Path(args.out) / "bench" / f"memory-{stamp}.csv", every=args.sample_s):
        return proc.wait()


def _epoch(stamp: str) -> float:
    return dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc).timestamp()


def stage_windows(run: Path) -> dict[str, list[tuple[float, float, dict]]]:
    """Each stage's (start, end, end-event fields) windows over every pipeline log of ``run``."""
    from workflows.runlog import list_logs, read_events

    windows: dict[str, list[tuple[float, float, dict]]] = {}
    for path in list_logs(run):
        open_at: dict[str, float] = {}
        for ev in read_events(path):
            stage = ev.get("stage")
            if ev["event"] == "stage_start" and stage not in open_at:
                open_at[stage] = _epoch(ev["time"])
            elif ev["event"] == "stage_end" and stage in open_at:
                # the window ends 1 s later: log times are whole seconds
                windows.setdefault(stage, []).append((open_at.pop(stage), _epoch(ev["time"]) + 1.0, ev))
    return windows


def memory_samples(run: Path) -> list[tuple[float, int, int]]:
    """(time, tree RSS, largest process RSS) of every sampler CSV of ``run``."""
    rows = []
    for path in sorted((run / "bench").glob("memory-*.csv")):
        with path.open() as fh:
            rows += [(float(t), int(tot), int(big)) for t, tot, big, _ in csv.reader(fh)]
    return rows


def embed_details(run: Path) -> dict:
    """Per-space seconds, fit / place split and trustworthiness from the embedding's metadata."""
    from xsgpu.io.runstore import RunStore

    meta = RunStore(run).read_metadata("embedding")
    keep = ("seconds", "fit_seconds", "place_seconds", "fit_sample", "placed", "trustworthiness_k10")
    return {"fit_sample": meta.get("fit_sample"),
            "spaces": {s: {k: m.get(k) for k in keep if k in m} for s, m in (meta.get("spaces") or {}).items()}}


def report(run: Path, *, n: int, project: int) -> None:
    """Print the per-stage figures of ``run`` (see the module docstring)."""
    windows, samples = stage_windows(run), memory_samples(run)
    gib = 2.0 ** 30
    total, per_stage = 0.0, {}
    for stage in STAGES:
        if stage not in windows:
            continue
        seconds = sum(end - start for start, end, _ in windows[stage])
        # single stages (embed, evaluate, app_cache) log no rows: they cover the whole run
        rows = sum(int(ev.get("rows", 0) or 0) for _, _, ev in windows[stage]) or (None if stage == "train" else n)
        inside = [s for s in samples if any(start <= s[0] <= end for start, end, _ in windows[stage])]
        tree = max((s[1] for s in inside), default=0) / gib
        largest = max((s[2] for s in inside), default=0) / gib
        params = {"rows": rows, "rows_per_s": round(rows / seconds, 1) if rows else None,
                  "peak_tree_rss_gib": round(tree, 2), "peak_process_rss_gib": round(largest, 2),
                  "memory_samples": len(inside), "invocations": len(windows[stage])}
        baseline = None
        if stage == "embed":
            params.update(embed_details(run), goal_s=EMBED_GOAL_S, goal_met=seconds <= EMBED_GOAL_S)
            baseline = EMBED_GOAL_S
        emit(f"pipeline_run.{stage}_seconds", round(seconds, 1), "s", baseline=baseline, n=n, params=params)
        if stage == "embed":
            emit("pipeline_run.embed_peak_rss", round(largest, 2), "GiB", baseline=EMBED_GOAL_GB, n=n,
                 params={"goal_met": largest <= EMBED_GOAL_GB, "peak_tree_rss_gib": round(tree, 2)})
        total += seconds
        per_stage[stage] = (seconds, params)
    emit("pipeline_run.total_seconds", round(total, 1), "s", n=n,
         params={"stages": {s: round(v[0], 1) for s, v in per_stage.items()}})
    if project and per_stage:
        emit(f"pipeline_run.projection_{project}", round(project_seconds(per_stage, n, project) / 3600, 2), "h",
             n=project, params={"measured_n": n, "kind": "projection from the measured stages, not a measurement"})


def map_quality(run: Path, *, n: int, eval_n: int, seed: int = 0) -> None:
    """Print ``pipeline_run.map_trustworthiness_<space>`` for the FEA and PRD maps of ``run``.

    The fitted sample is recomputed as ``embed_run`` drew it (``stratified_sample`` of the predicted label
    vectors, with the embedding's seed and fit sample), so the placed images and the fitted ones are scored
    apart on subsets of the same size.
    """
    import numpy as np

    from xsgpu.embed.quality import trustworthiness
    from xsgpu.embed.sample_place import prediction_strata, stratified_sample
    from xsgpu.io.runstore import RunStore

    store = RunStore.open(run)
    meta = store.embedding.metadata()
    emb = store.embedding.read()
    prd = store.predictions.read(columns=store.vocabulary.prob_columns()).to_numpy(np.float32)
    fitted = np.zeros(len(prd), bool)
    if meta.get("fit_sample"):
        fitted[stratified_sample(prediction_strata(prd), int(meta["fit_sample"]),
                                 random_state=meta.get("random_state", seed))] = True
    inputs = {"fea": np.load(store.fea_reduced.path, mmap_mode="r"), "prd": prd}
    for space, X in inputs.items():
        Y = emb[[f"{space}_x", f"{space}_y"]].to_numpy(np.float32)
        t0 = time.perf_counter()
        score = {}
        for part, rows in (("all", slice(None)), ("fitted", fitted), ("placed", ~fitted)):
            X_part, Y_part = X[rows], Y[rows]  # trustworthiness casts only its subsample
            if len(X_part) > 20:
                score[part] = round(trustworthiness(X_part, Y_part, n_neighbors=10, sample=eval_n,
                                                    random_state=seed), 4)
        base = score.get("fitted")
        emit(f"pipeline_run.map_trustworthiness_{space}", score["all"], "trustworthiness@10", baseline=base,
             ratio=round(score["all"] / base, 4) if base else None, n=n,
             params={"eval_n": min(eval_n, len(X)), "placed_only": score.get("placed"),
                     "fitted_sample": int(fitted.sum()), "seconds": round(time.perf_counter() - t0, 1),
                     "baseline": "the fitted sample's images alone, the same subset size"})


def project_seconds(per_stage: dict, n: int, target: int) -> float:
    """Seconds at ``target`` images: rows/s stages scaled, embed = fit (fixed sample) + the rest scaled."""
    scale, out = target / n, 0.0
    for stage, (seconds, params) in per_stage.items():
        if stage == "embed":
            fit = sum((m.get("fit_seconds") or 0.0) for m in params.get("spaces", {}).values())
            out += fit + (seconds - fit) * scale
        elif stage == "train":
            out += seconds
        else:
            out += seconds * scale
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="synthetic images")
    ap.add_argument("--size", type=int, default=64, help="stored image size (px)")
    ap.add_argument("--model", type=Path, help="model checkpoint directory (e.g. the demo's RUN/model)")
    ap.add_argument("--fit-sample", type=int, default=100_000, help="embed --fit-sample (0: a full fit)")
    ap.add_argument("--out", type=Path, required=True, help="the run directory (kept; a rerun resumes)")
    ap.add_argument("--partition-size", type=int, default=4096)
    ap.add_argument("--n-workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sample-s", type=float, default=1.0, help="memory sampling period (s)")
    ap.add_argument("--project", type=int, default=10_000_000, help="images of the projection (0: none)")
    ap.add_argument("--eval-n", type=int, default=0,
                    help="also measure the FEA/PRD maps' trustworthiness on this many images (0: no; 50000 at 1M)")
    ap.add_argument("--report-only", action="store_true", help="print the figures of --out, run nothing")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if not args.report_only:
        if args.model is None:
            ap.error("--model is required unless --report-only (train one with: xsgpu demo --no-serve)")
        rc = run_pipeline_child(args)
        if rc != 0:
            log.error("xsgpu pipeline exited with status %d; the figures below cover the finished stages", rc)
    report(args.out, n=args.n, project=args.project)
    if args.eval_n:
        map_quality(args.out, n=args.n, eval_n=args.eval_n, seed=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
