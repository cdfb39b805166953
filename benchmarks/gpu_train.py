"""GPU training profile in one call: synthesise a run on the GPU, train ResNet-50 within a time budget.

The quality target of the GPU profile (issue: ResNet-50, >= 100k images, 224 px input, test mAP >=
0.77) in one resumable command. Run it from the repository root on a CUDA machine::

    python benchmarks/gpu_train.py                       # 100k images at 256 px, ResNet-50 at 224, 600 s of training
    python benchmarks/gpu_train.py --n 20000 --budget-s 180     # a shorter smoke run
    python benchmarks/gpu_train.py --out /scratch/xs    # same again: finished partitions and epochs are kept

Steps: (1) check the imports it needs and say which are missing; (2) ``synthesize_run`` on the GPU
(skips finished partitions); (3) a 20-step probe of the training speed picks the number of epochs that
fits the budget (unless ``--epochs``); (4) ``train_model`` with bf16 + channels_last, a checkpoint per
epoch and ``resume=True`` (a rerun continues after the last epoch); (5) one JSON object per line:
``gpu_train_test_map`` (baseline = the prevalence mAP), ``gpu_train_images_per_s`` and
``gpu_synth_images_per_s``. Paste the figures into docs/model_card.md ("GPU profile").
"""
from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NEEDED = ["numpy", "pandas", "pyarrow", "zarr", "torch", "torchvision", "safetensors", "tqdm", "sklearn"]


def check_imports() -> list[str]:
    """Names of the modules in NEEDED that do not import."""
    missing = []
    for name in NEEDED:
        try:
            importlib.import_module(name)
        except Exception as exc:  # ImportError or a broken binary
            missing.append(f"{name} ({exc.__class__.__name__}: {exc})")
    return missing


def probe_train_speed(arch: str, size: int, batch_size: int, *, steps: int = 20) -> float:
    """Training images/s of ``arch`` at ``size`` on random data (bf16 autocast, channels_last, AdamW)."""
    import torch

    from xsgpu.model import build_resnet
    from xsgpu.model.transforms import augment

    model = build_resnet(arch).cuda().to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    crit = torch.nn.BCEWithLogitsLoss()
    x0 = torch.rand(batch_size, size, size, device="cuda") * 300
    y = (torch.rand(batch_size, 17, device="cuda") < 0.3).float()

    def step():
        x = augment(x0, size).contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            _, logits = model.forward_logits(x)
        loss = crit(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return steps * batch_size / (time.perf_counter() - t)


def emit(name: str, value: float, unit: str, baseline: float, n: int, params: dict) -> None:
    ratio = value / baseline if baseline and math.isfinite(baseline) and baseline > 0 else None
    print(json.dumps({"name": name, "value": value, "unit": unit, "baseline": baseline, "ratio": ratio, "n": n,
                      "device": "gpu", "params": params}, default=float), flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/gpu_profile", help="working directory (run + model)")
    ap.add_argument("--n", type=int, default=100_000, help="images to synthesise")
    ap.add_argument("--image-size", type=int, default=256, help="stored frame size")
    ap.add_argument("--size", type=int, default=224, help="model input size")
    ap.add_argument("--arch", default="resnet50", choices=["resnet18", "resnet34", "resnet50"])
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--epochs", type=int, default=None, help="default: as many as fit --budget-s (probe)")
    ap.add_argument("--budget-s", type=float, default=600.0, help="wall-clock budget of the training step")
    ap.add_argument("--images-per-run", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--progress", action="store_true")
    args = ap.parse_args(argv)

    missing = check_imports()
    if missing:
        print(json.dumps({"name": "gpu_train_error", "error": "missing modules", "missing": missing,
                          "hint": "pip install the listed packages (carry wheels: pip download zarr numcodecs "
                                  "safetensors tqdm -d wheels/, then pip install --no-index wheels/*)"}))
        return 2
    import torch

    if not torch.cuda.is_available():
        print(json.dumps({"name": "gpu_train_error", "error": "torch sees no CUDA device",
                          "hint": "run this on a GPU machine; CPU training: xsgpu train --device cpu"}))
        return 2
    from xsgpu.model import train_model
    from xsgpu.synth import synthesize_run

    out = Path(args.out)
    params = {k: v for k, v in vars(args).items() if k != "progress"}
    params["gpu"] = torch.cuda.get_device_name()
    params["torch"] = torch.__version__

    t = time.perf_counter()
    try:
        store = synthesize_run(out / "run", n=args.n, size=args.image_size, seed=args.seed, partition_size=4096,
                               device="gpu", progress=args.progress, images_per_run=args.images_per_run)
        synth_device = "gpu"
    except Exception as exc:  # e.g. CuPy missing: say so, generate on the CPU cores instead
        print(json.dumps({"name": "gpu_synth_warning", "error": f"{exc.__class__.__name__}: {exc}",
                          "action": "generating on CPU with all cores"}), flush=True)
        store = synthesize_run(out / "run", n=args.n, size=args.image_size, seed=args.seed, partition_size=4096,
                               device="cpu", progress=args.progress, images_per_run=args.images_per_run,
                               workers=os.cpu_count() or 1)
        synth_device = "cpu"
    synth_s = time.perf_counter() - t
    emit("gpu_synth_images_per_s", args.n / synth_s, "images/s", float("nan"), args.n,
         {**params, "seconds": synth_s, "synth_device": synth_device, "note": "includes skipped partitions on rerun"})

    n_train_est = 0.8 * args.n
    if args.epochs is None:
        ips = probe_train_speed(args.arch, args.size, args.batch_size)
        load_s = args.n * args.image_size ** 2 * 2 / 1.5e9  # ~1.5 GB/s Zarr read + resize on 16 cores
        per_epoch = n_train_est / ips + 0.1 * args.n / (3 * ips)  # train + val forward
        epochs = max(1, int((args.budget_s - load_s - 30) * 0.9 / per_epoch))
        print(json.dumps({"name": "gpu_train_plan", "probe_images_per_s": ips, "epoch_s_est": per_epoch,
                          "load_s_est": load_s, "epochs": epochs}), flush=True)
    else:
        epochs = args.epochs
    t = time.perf_counter()
    report = train_model(store.path, arch=args.arch, size=args.size, epochs=epochs, out=out / "model",
                         batch_size=args.batch_size, lr=args.lr, device="gpu", resume=True, seed=args.seed,
                         num_workers=min(16, os.cpu_count() or 1), time_budget_s=args.budget_s,
                         max_cache_bytes=48 * 2**30, progress=args.progress)
    train_s = time.perf_counter() - t
    hist = report["history"]
    p = {**params, "epochs": epochs, "epochs_run": report["epochs_run"], "best_epoch": report["best_epoch"],
         "val_map": report["val_map"], "val_prevalence_map": report["val_prevalence_map"],
         "stopped_early": report["stopped_early"], "train_seconds": train_s, "model": report["model"],
         "model_id": report["model_id"], "n_train": report["n_train"], "n_val": report["n_val"],
         "n_test": report["n_test"], "history": hist}
    emit("gpu_train_test_map", report["test_map"], "mAP", report["test_prevalence_map"], report["n_test"], p)
    if hist:
        ips = report["n_train"] / min(h["seconds"] for h in hist)
        emit("gpu_train_images_per_s", ips, "images/s", float("nan"), report["n_train"],
             {"arch": args.arch, "size": args.size, "batch_size": args.batch_size, "gpu": params["gpu"]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
