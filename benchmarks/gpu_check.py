"""GPU smoke checks and figures: synth on CuPy, inference throughput, metrics on CuPy, a dask-cuda cluster.

Prints one JSON object per line: {"name", "value", "unit", "baseline", "ratio", "n", "device", "params"}.
A check whose prerequisite is missing prints a line with "skipped": "<reason>" (value null) instead, and a
check that fails prints "error": "<type: message>"; the script then goes on with the next check.

Works with only torch, CuPy, numpy, pandas, pyarrow and scikit-learn installed (no Dask, RAPIDS or panel):
run it through benchmarks/gpu_check.sh, which puts the repository on PYTHONPATH.

``--allow-cpu`` runs the same code on the CPU with tiny sizes (to test the script on a machine without
a GPU; its figures mean nothing).

Usage::

    benchmarks/gpu_check.sh                   # full sizes, needs CUDA
    benchmarks/gpu_check.sh --quick           # smaller sizes (~1 min)
    python benchmarks/gpu_check.py --allow-cpu --quick
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def emit(name, value, unit, *, baseline=None, n=None, device="gpu", params=None, **extra):
    ratio = None
    if value is not None and baseline:
        ratio = value / baseline
    rec = {"name": name, "value": value, "unit": unit, "baseline": baseline, "ratio": ratio, "n": n,
           "device": device, "params": params or {}}
    rec.update(extra)
    print(json.dumps(rec), flush=True)


def skip(name, reason, *, device="gpu"):
    emit(name, None, None, device=device, skipped=reason)


def _have(module):
    try:
        importlib.import_module(module)
        return True, ""
    except Exception as exc:  # noqa: BLE001 - reported as the skip reason
        return False, f"{module} not importable ({type(exc).__name__}: {exc})"


def _timeit(fn, *, sync, repeat=3):
    fn()
    sync()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best


def check_env(ctx):
    import torch

    info = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": sys.version.split()[0]}
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n:
        info["gpu"] = torch.cuda.get_device_name(0)
        info["memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    for mod in ("cupy", "dask", "distributed", "dask_cuda", "cuml", "cudf", "zarr", "openTSNE", "panel"):
        ok, _ = _have(mod)
        info[mod] = ok
    emit("gpu_check.env", n, "gpus", device=ctx.device, params=info)


def check_synth(ctx):
    from xsgpu.synth import generate_images

    if ctx.device == "gpu":
        ok, why = _have("cupy")
        if not ok:
            return skip("gpu_check.synth_throughput", why)
        import cupy as xp

        sync = xp.cuda.Device().synchronize
    else:
        import numpy as xp

        def sync():
            return None
    import numpy as np

    size = ctx.size
    n_gpu, n_cpu = (2048, 64) if not ctx.quick else (512, 32)
    if ctx.device == "cpu":
        n_gpu, n_cpu, size = 16, 8, 64
    t = _timeit(lambda: generate_images(n_gpu, size=size, seed=1, xp=xp, batch_size=256 if ctx.device == "gpu" else 8),
                sync=sync, repeat=2)
    t_cpu = _timeit(lambda: generate_images(n_cpu, size=size, seed=1, xp=np, batch_size=8), sync=lambda: None,
                    repeat=1)
    emit("gpu_check.synth_throughput", n_gpu / t, "img/s", baseline=n_cpu / t_cpu, n=n_gpu, device=ctx.device,
         params={"size": size, "baseline": "same generator on NumPy, this host, 1 process"})


def _bare_forward_rate(model, x, *, bf16, channels_last, sync, repeat=3):
    import torch

    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        t = _timeit(lambda: model(x), sync=sync, repeat=repeat)
    return x.shape[0] / t


def check_inference(ctx):
    import torch

    from xsgpu.model import build_resnet

    dev = "cuda" if ctx.device == "gpu" else "cpu"
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    size = ctx.size if dev == "cuda" else 64
    batch = (256 if ctx.quick else 1024) if dev == "cuda" else 16
    for arch in ctx.archs:
        model = build_resnet(arch).to(dev).eval()
        x = torch.randn(batch, 1, size, size, device=dev)
        fp32 = _bare_forward_rate(model, x, bf16=False, channels_last=False, sync=sync)
        model_cl = model.to(memory_format=torch.channels_last)
        bf16 = _bare_forward_rate(model_cl, x, bf16=dev == "cuda", channels_last=True, sync=sync)
        emit(f"gpu_check.forward_{arch}", bf16, "img/s", baseline=fp32, n=batch, device=ctx.device,
             params={"size": size, "batch": batch, "value": "bf16 autocast + channels_last",
                     "baseline": "fp32 eager"})
        del model, model_cl, x
    _check_predictor(ctx, dev, size, batch, sync)


def _check_predictor(ctx, dev, size, batch, sync):
    """The end-to-end Predictor (preprocessing + forward + host copy) vs the bare bf16 forward."""
    import tempfile

    import numpy as np
    import torch

    import xsgpu.model as xm

    if not hasattr(xm, "Predictor"):
        return skip("gpu_check.predictor_throughput", "xsgpu.model.Predictor is not available in this checkout",
                    device=ctx.device)
    ok, why = _have("safetensors")
    if not ok:
        return skip("gpu_check.predictor_throughput", f"{why}: checkpoints need it", device=ctx.device)
    arch = ctx.archs[-1]
    model = xm.build_resnet(arch)
    with tempfile.TemporaryDirectory() as tmp:
        xm.save_checkpoint(tmp, model, input_size=size)
        pred = xm.Predictor.from_checkpoint(tmp, device="gpu" if dev == "cuda" else "cpu", batch_size=batch)
        frames = np.random.default_rng(0).random((batch * (4 if dev == "cuda" else 1), size, size), dtype=np.float32)
        t = _timeit(lambda: pred.predict(frames), sync=sync, repeat=2)
    m = model.to(dev).eval().to(memory_format=torch.channels_last)
    x = torch.randn(batch, 1, size, size, device=dev)
    bare = _bare_forward_rate(m, x, bf16=dev == "cuda", channels_last=True, sync=sync)
    emit("gpu_check.predictor_throughput", len(frames) / t, "img/s", baseline=bare, n=len(frames), device=ctx.device,
         params={"arch": arch, "size": size, "batch": batch, "baseline": "bare bf16 forward, input on device"})


def check_metrics(ctx):
    import numpy as np

    from xsgpu.metrics import attribute_metrics

    n = 1_000_000 if not ctx.quick else 200_000
    if ctx.device == "cpu":
        n = 20_000
    rng = np.random.default_rng(0)
    y = rng.random((n, 17)) < 0.3
    p = np.clip(y * 0.6 + rng.random((n, 17)) * 0.5, 0, 1).astype(np.float32)
    t_cpu = _timeit(lambda: attribute_metrics(y, p), sync=lambda: None, repeat=1)
    if ctx.device == "gpu":
        ok, why = _have("cupy")
        if not ok:
            return skip("gpu_check.metrics_attribute", why)
        import cupy as cp

        yg, pg = cp.asarray(y), cp.asarray(p)
        t = _timeit(lambda: attribute_metrics(yg, pg), sync=cp.cuda.Device().synchronize)
    else:
        t = t_cpu
    emit("gpu_check.metrics_attribute", n / t, "rows/s", baseline=n / t_cpu, n=n, device=ctx.device,
         params={"baseline": "attribute_metrics on NumPy, this host"})


def _synth_count(start, n, size):
    from xsgpu.synth import generate_images

    b = generate_images(n, size=size, seed=2, start=start, device="auto")
    return int(b.labels.sum())


def check_dask_cuda(ctx):
    ok, why = _have("dask_cuda")
    if not ok:
        return skip("gpu_check.dask_cuda_synth", why, device=ctx.device)
    from dask_cuda import LocalCUDACluster
    from distributed import Client

    n_parts, per = 8, 256 if not ctx.quick else 64
    with LocalCUDACluster(dashboard_address=None) as cluster, Client(cluster) as client:
        n_workers = len(client.scheduler_info()["workers"])
        client.submit(_synth_count, 0, 8, ctx.size).result()
        t0 = time.perf_counter()
        futs = [client.submit(_synth_count, i * per, per, ctx.size, pure=False) for i in range(n_parts)]
        client.gather(futs)
        t = time.perf_counter() - t0
    emit("gpu_check.dask_cuda_synth", n_parts * per / t, "img/s", n=n_parts * per, device="gpu",
         params={"workers": n_workers, "partitions": n_parts, "size": ctx.size})


CHECKS = {"env": check_env, "synth": check_synth, "inference": check_inference, "metrics": check_metrics,
          "dask_cuda": check_dask_cuda}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes (about a minute)")
    ap.add_argument("--allow-cpu", action="store_true", help="run on the CPU when no GPU is visible (test mode)")
    ap.add_argument("--size", type=int, default=256, help="image size (default 256)")
    ap.add_argument("--archs", default="resnet18,resnet50", help="architectures for the forward figures")
    ap.add_argument("--only", default=",".join(CHECKS), help=f"comma-separated subset of {list(CHECKS)}")
    args = ap.parse_args(argv)
    try:
        import torch
    except ImportError as exc:
        skip("gpu_check", f"torch not importable ({exc})")
        return 0
    has_gpu = torch.cuda.is_available()
    if not has_gpu and not args.allow_cpu:
        skip("gpu_check", "torch sees no CUDA device (pass --allow-cpu to exercise the script on the CPU)")
        return 0
    args.device = "gpu" if has_gpu else "cpu"
    args.archs = [a for a in args.archs.split(",") if a]
    if has_gpu:
        os.environ.setdefault("XSGPU_DEVICE", "gpu")
    for name in args.only.split(","):
        fn = CHECKS.get(name)
        if fn is None:
            skip(f"gpu_check.{name}", f"unknown check; choose from {list(CHECKS)}")
            continue
        try:
            fn(args)
        except Exception as exc:  # noqa: BLE001 - one failing check must not hide the others
            emit(f"gpu_check.{name}", None, None, device=args.device, error=f"{type(exc).__name__}: {exc}",
                 trace=traceback.format_exc(limit=3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
