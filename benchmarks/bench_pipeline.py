"""Benchmark the whole pipeline on N synthetic images: per-stage throughput and peak memory per worker.

For each N (``--n 10000,100000``) the pipeline runs synth -> infer -> (embed) -> evaluate on one local
Dask cluster with an untrained model (the memory shape and the throughput do not depend on the weights).
While it runs, a sampler thread reads every worker's RSS (``client.run`` + psutil) and the client's own
RSS every ``--sample-s`` seconds. Printed JSON lines ({"name", "value", "unit", "baseline", "ratio", "n",
"device", "params"}):

* ``pipeline.<stage>_rate``  rows/s of the stage; baseline: the same work without Dask and the run store,
  measured in this process (synth: ``generate_images``; infer: the bare model forward on ready tensors,
  with as many torch threads as the cluster has worker threads); ratio = value / baseline.
* ``pipeline.worker_peak_rss``  MiB, the largest worker RSS during the run; baseline: the largest idle
  worker RSS before the run; ratio = baseline / value (higher is better).
* ``pipeline.worker_peak_rss_growth``  peak at the largest N / peak at the smallest N (1.0 = flat);
  ratio = 1 / value.
* ``pipeline.embed_peak_rss``  MiB added to the client process while embedding, and
  ``pipeline.embed_rss_per_point``; ``pipeline.embed_1m_estimate`` extrapolates linearly to 1M points
  (an estimate from the measured scaling, not a measurement).
* ``pipeline.cost_1m_<stage>``  hours for 1M images at the measured rate on this machine.

Usage::

    python benchmarks/bench_pipeline.py --quick                    # N=256,512 at 32 px
    nice python benchmarks/bench_pipeline.py --n 10000,100000 --skip-embed --embed-n 10000

Start it from a shell: the script holds the ``if __name__ == "__main__"`` guard a process-based
LocalCluster needs. Figures on a shared 2-core machine are pessimistic.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def emit(name, value, unit, *, baseline=None, ratio=None, n=None, device="cpu", params=None):
    if ratio is None and value is not None and baseline:
        ratio = value / baseline
    print(json.dumps({"name": name, "value": value, "unit": unit, "baseline": baseline, "ratio": ratio, "n": n,
                      "device": device, "params": params or {}}), flush=True)


def _rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


class MemorySampler:
    """Sample worker RSS (via ``client.run``) and this process's RSS in a background thread."""

    def __init__(self, client, *, every: float = 0.5):
        self.client, self.every = client, every
        self.worker_peak: dict[str, float] = {}
        self.client_peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.every)

    def sample(self):
        try:
            rss = self.client.run(_rss_mib)
        except Exception:  # noqa: BLE001 - a worker restarting mid-sample; try again next tick
            rss = {}
        for w, v in rss.items():
            self.worker_peak[w] = max(self.worker_peak.get(w, 0.0), v)
        self.client_peak = max(self.client_peak, _rss_mib())

    def __enter__(self):
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.sample()


def bare_synth_rate(n, size, seed=0):
    from xsgpu.synth import generate_images

    generate_images(8, size=size, seed=seed)
    t0 = time.perf_counter()
    generate_images(n, size=size, seed=seed)
    return n / (time.perf_counter() - t0)


def bare_forward_rate(arch, size, threads, batch=64, repeat=3):
    import torch

    from xsgpu.model import build_resnet

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = build_resnet(arch).eval()
        x = torch.randn(batch, 1, size, size)
        with torch.inference_mode():
            model(x)
            best = float("inf")
            for _ in range(repeat):
                t0 = time.perf_counter()
                model(x)
                best = min(best, time.perf_counter() - t0)
    finally:
        torch.set_num_threads(old)
    return batch / best


def make_untrained_checkpoint(path, arch, input_size):
    from xsgpu.model import build_resnet, save_checkpoint

    import torch

    torch.manual_seed(0)
    save_checkpoint(path, build_resnet(arch), input_size=input_size)
    return path


def run_one(client, n, args, model, workdir):
    """One pipeline run on the (fresh) cluster of ``client``; return (result, idle peak MiB, run peak MiB)."""
    from workflows.pipeline import run_pipeline

    out = Path(workdir) / f"run-{n}"
    shutil.rmtree(out, ignore_errors=True)
    with MemorySampler(client, every=args.sample_s) as idle:
        pass
    idle_peak = max(idle.worker_peak.values())
    with MemorySampler(client, every=args.sample_s) as mem:
        res = run_pipeline(out, synth=n, size=args.size, seed=0, model=model, embed=False, evaluate=True,
                           partition_size=args.partition_size, batch_size=args.batch_size, device=args.device,
                           client=client, single_stage_on="client", progress=args.progress)
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)
    return res, idle_peak, max(mem.worker_peak.values())


_EMBED_CHILD = """
import sys, time, json
from xsgpu.embed import embed_run
t0 = time.perf_counter()
embed_run(sys.argv[1], method="tsne", device=sys.argv[2], random_state=0, progress=False)
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""


def embed_memory(n, args, model, workdir, client):
    """Peak RSS of a fresh process that runs only ``embed_run`` on an n-image run (3 t-SNE maps).

    The run (synth + infer) is made first on the cluster; the embed runs in a child process sampled
    with psutil every 0.1 s, so the figure holds nothing but the embed stage (plus imports).
    """
    from _child import run_child_peak_rss
    from workflows.pipeline import run_pipeline

    out = Path(workdir) / f"embed-{n}"
    shutil.rmtree(out, ignore_errors=True)
    run_pipeline(out, synth=n, size=args.size, model=model, embed=False, evaluate=False,
                 partition_size=args.partition_size, device=args.device, client=client,
                 single_stage_on="client", progress=False)
    peak_bytes, result = run_child_peak_rss(_EMBED_CHILD, [str(out), args.device], period_s=0.1)
    peak, secs = peak_bytes / 2**20, result["seconds"]
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)
    return peak, secs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="N=256,512 at 32 px, small partitions (~1 min unloaded)")
    ap.add_argument("--n", default="10000,100000", help="comma-separated image counts")
    ap.add_argument("--size", type=int, default=64, help="stored image size = model input size (px)")
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--partition-size", type=int, default=4096)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--n-workers", type=int, default=2)
    ap.add_argument("--device", default="cpu", choices=["cpu", "gpu", "auto"])
    ap.add_argument("--skip-embed", action="store_true", help="no embed-memory figure")
    ap.add_argument("--embed-n", default="2000,8000", help="point counts of the embed-memory figure")
    ap.add_argument("--sample-s", type=float, default=0.5, help="memory sampling period (s)")
    ap.add_argument("--workdir", help="where runs go (default: a temporary directory)")
    ap.add_argument("--keep", action="store_true", help="keep the runs")
    ap.add_argument("--progress", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.size, args.partition_size, args.embed_n = "256,512", 32, 128, "256,512"
    ns = sorted(int(x) for x in args.n.split(","))
    import torch

    torch.set_num_threads(args.n_workers)
    from workflows.cluster import client_session, close_client, make_client

    device = "gpu" if args.device == "gpu" else "cpu"
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="xsgpu-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    model = make_untrained_checkpoint(workdir / "model", args.arch, args.size)
    params = {"size": args.size, "arch": args.arch, "partition_size": args.partition_size,
              "n_workers": args.n_workers, "threads_per_worker": 1, "model": "untrained"}
    synth_base = bare_synth_rate(min(256, ns[0]), args.size)
    fwd_base = bare_forward_rate(args.arch, args.size, threads=args.n_workers, batch=args.batch_size)
    peaks = {}
    kind = "local-cuda" if args.device == "gpu" else "local"
    cluster_kw = {"n_workers": args.n_workers, "threads_per_worker": 1, "dashboard_address": None}
    for n in ns:
        # a fresh cluster per N: each peak belongs to that N only
        with client_session(kind, **cluster_kw) as client:
            res, idle, peak = run_one(client, n, args, model, workdir)
        peaks[n] = peak
        st = res.stages
        emit("pipeline.synth_rate", st["synth"].rows_per_second, "img/s", baseline=synth_base, n=n,
             device=device, params={**params, "baseline": "generate_images in one process, no store"})
        emit("pipeline.infer_rate", st["infer"].rows_per_second, "img/s", baseline=fwd_base, n=n, device=device,
             params={**params, "baseline": f"bare forward, {args.n_workers} torch threads, ready tensors"})
        emit("pipeline.evaluate_rate", st["evaluate"].rows_per_second, "rows/s", n=n, device=device,
             params=params)
        emit("pipeline.worker_peak_rss", peak, "MiB", baseline=idle, ratio=idle / peak, n=n, device=device,
             params={**params, "baseline": "idle worker RSS before the run"})
        for stage in ("synth", "infer", "evaluate"):
            emit(f"pipeline.cost_1m_{stage}", 1e6 / st[stage].rows_per_second / 3600, "hours", n=n,
                 device=device, params={**params, "from": f"measured {stage} rate at n={n}"})
    if len(ns) > 1:
        growth = peaks[ns[-1]] / peaks[ns[0]]
        emit("pipeline.worker_peak_rss_growth", growth, "x", baseline=1.0, ratio=1.0 / growth, n=ns[-1],
             device=device, params={**params, "from_n": ns[0], "to_n": ns[-1]})
    if not args.skip_embed:
        client = make_client(kind, **cluster_kw)
        en = sorted(int(x) for x in args.embed_n.split(","))
        peaks_e = {}
        for n in en:
            mib, secs = embed_memory(n, args, model, workdir, client)
            peaks_e[n] = mib
            emit("pipeline.embed_peak_rss", mib, "MiB", n=n, device=device,
                 params={**params, "what": "peak RSS of a process running only embed_run (3 t-SNE maps)"})
            emit("pipeline.embed_rate", n / secs, "points/s", n=n, device=device,
                 params={**params, "what": "3 maps (ACT, FEA, PRD) incl. PCA and trustworthiness"})
        if len(en) > 1:
            slope = (peaks_e[en[-1]] - peaks_e[en[0]]) / (en[-1] - en[0])  # MiB per point
            fixed = peaks_e[en[0]] - slope * en[0]
            est = None if slope <= 0 else (fixed + slope * 1e6) / 1024
            emit("pipeline.embed_rss_per_point", slope * 2**20, "bytes/point", n=en[-1], device=device,
                 params={**params, "from": f"peak RSS slope between n={en[0]} and n={en[-1]}"})
            emit("pipeline.embed_1m_estimate", est, "GiB", baseline=16.0,
                 ratio=None if est is None else 16.0 / est, n=1_000_000, device=device,
                 params={**params, "estimate": "linear extrapolation of measured peak RSS (fixed + slope x N); "
                         "baseline = the 16 GiB budget", "resolved": slope > 0})
        close_client(client)
    if not args.workdir and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
