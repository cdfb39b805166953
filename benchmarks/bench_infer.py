"""Inference throughput: end-to-end (images.zarr -> predictions + features) vs the bare model forward.

Prints one JSON object per line (DESIGN.md "Tests and benchmarks"):

* ``infer_end_to_end``: images/s of :func:`xsgpu.model.infer_run` on a fresh run store (Zarr reads in
  background threads, resize + standardise on the device, forward, features/predictions written);
  ``baseline`` = the bare forward below, measured in the same run; ``ratio`` = end-to-end / bare
  (goal >= 0.8: the data path hides behind the model).
* ``infer_bare_forward``: images/s of the model alone on standardised tensors already on the device,
  same batch size, same autocast/channels_last as the predictor (ratio 1 by definition).
* ``infer_heatmaps_cost``: seconds of :func:`~xsgpu.model.infer_run` writing ``heatmaps.zarr`` (the
  class activation maps, :mod:`xsgpu.explain.cam`) besides predictions and features; ``baseline`` = the
  same without heatmaps (``--no-heatmaps``), measured in the same run on fresh copies of the run store,
  alternated ``--repeats`` times (best of each); ``ratio`` = with / without (goal <= 1.15);
  ``bytes_per_image`` = C * h * w * 2 of the stored maps.

* ``infer_heatmaps_forward``: the same comparison for the model alone (standardised input already on
  the device, outputs brought to the host): the forward pass returning the maps too vs the plain one,
  alternated ``--repeats`` times, best of each; ``ratio`` = with / without. Less noisy than the end-to-end
  figure on a shared machine.

``infer_end_to_end`` is measured without heatmaps, as the bare forward is.

The frames are random log-scaled values (throughput does not depend on the picture); the model is
randomly initialised (weights do not change the cost).

Examples
--------
::

    python benchmarks/bench_infer.py --quick                          # CPU: resnet18, 64 px, ~1 min
    python benchmarks/bench_infer.py --arch resnet50 --size 224 --image-size 256 --device gpu --n 32768 \\
        --batch-size 1024
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_run(path: Path, *, n: int, image_size: int, partition_size: int, seed: int = 0):
    """A run store with ``images`` only: (n, S, S) float16 log-scaled frames with a little structure."""
    from xsgpu.io.runstore import RunStore

    rng = np.random.default_rng(seed)
    store = RunStore.create(path, n_samples=n, partition_size=partition_size, params={"bench": "infer"})
    arr = store.images.create((n, image_size, image_size), np.float16)
    yy, xx = np.mgrid[0:image_size, 0:image_size]
    rad = np.hypot(yy - image_size / 2, xx - image_size / 2)
    base = (200 + 80 * np.cos(rad / 6)).astype(np.float32)
    block = max(arr.chunks[0], 1)
    for a in range(0, n, block):
        b = min(a + block, n)
        noise = rng.normal(0, 8, size=(b - a, image_size, image_size)).astype(np.float32)
        arr[a:b] = (base[None] + noise).astype(np.float16)
    return store


def bare_forward(predictor, *, n: int, repeats: int = 2) -> float:
    """Images/s of the model alone on standardised input already on the device (best of ``repeats``)."""
    import torch

    bs = predictor.batch_size
    x = torch.randn(bs, 1, predictor.input_size, predictor.input_size, device=predictor.device)
    if predictor.cuda:
        x = x.contiguous(memory_format=torch.channels_last)
    n_batches = max(1, n // bs)
    best = 0.0
    with torch.no_grad():
        for _ in range(repeats):
            if predictor.cuda:
                torch.cuda.synchronize()
            t = time.perf_counter()
            for _ in range(n_batches):
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=predictor.cuda):
                    f, p = predictor._forward(x)
                f.float().cpu(), p.float().cpu()  # the predictor also brings outputs back to the host
            if predictor.cuda:
                torch.cuda.synchronize()
            best = max(best, n_batches * bs / (time.perf_counter() - t))
    return best


def forward_cost(predictor, *, n: int, repeats: int) -> tuple[float, float]:
    """Seconds per image of the bare forward without and with the class activation maps (best of ``repeats``)."""
    import torch

    from xsgpu.explain.cam import ExplainedForward

    bs = predictor.batch_size
    x = torch.randn(bs, 1, predictor.input_size, predictor.input_size, device=predictor.device)
    plain, with_maps = predictor.model, ExplainedForward(predictor.model, heatmaps=True)
    n_batches = max(1, n // bs)
    best = {False: float("inf"), True: float("inf")}
    with torch.no_grad():
        for rep in range(max(1, repeats)):
            for maps in ((False, True) if rep % 2 == 0 else (True, False)):
                fwd = with_maps if maps else plain
                if predictor.cuda:
                    torch.cuda.synchronize()
                t = time.perf_counter()
                for _ in range(n_batches):
                    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=predictor.cuda):
                        out = fwd(x)
                    [o.float().cpu() for o in out]
                if predictor.cuda:
                    torch.cuda.synchronize()
                best[maps] = min(best[maps], (time.perf_counter() - t) / (n_batches * bs))
    return best[False], best[True]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small run (<1 min on 2 CPU cores)")
    ap.add_argument("--arch", default=None, choices=["resnet18", "resnet34", "resnet50"])
    ap.add_argument("--size", type=int, default=None, help="model input size")
    ap.add_argument("--image-size", type=int, default=None, help="stored frame size in images.zarr")
    ap.add_argument("--n", type=int, default=None, help="images in the run")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--partition-size", type=int, default=None)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "gpu"])
    ap.add_argument("--compile", action="store_true", help="torch.compile (CUDA)")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default all cores)")
    ap.add_argument("--repeats", type=int, default=2, help="alternated passes with and without heatmaps")
    args = ap.parse_args(argv)

    import torch

    from xsgpu.backend import torch_device
    from xsgpu.model import Predictor, build_resnet, infer_run, save_checkpoint
    from xsgpu.model.checkpoint import default_preprocessing

    dev = torch_device(args.device)
    gpu = dev == "cuda"
    arch = args.arch or ("resnet50" if gpu else "resnet18")
    size = args.size or (224 if gpu else 64)
    image_size = args.image_size or (256 if gpu else 2 * size)
    n = args.n or ((8192 if args.quick else 32768) if gpu else (256 if args.quick else 2048))
    bs = args.batch_size or (512 if gpu else 64)
    part = args.partition_size or (4096 if gpu else max(bs, n // 4))

    with tempfile.TemporaryDirectory(prefix="xsgpu-bench-infer-") as tmp:
        tmp = Path(tmp)
        torch.manual_seed(0)
        save_checkpoint(tmp / "model", build_resnet(arch), input_size=size,
                        preprocessing=default_preprocessing((image_size, image_size)))
        store = make_run(tmp / "run", n=n, image_size=image_size, partition_size=part)
        pred = Predictor.from_checkpoint(tmp / "model", device=dev, batch_size=bs, compile=args.compile,
                                         num_threads=args.threads)
        pred.predict(store.images.open()[:bs])  # warm-up (and compile)
        bare = bare_forward(pred, n=min(n, 4 * bs) if not gpu else n)
        summary = infer_run(store.path, model=pred, progress=False, heatmaps=False)
        e2e = summary["images_per_s"]
        secs = {False: [], True: []}
        for rep in range(max(1, args.repeats)):
            for with_maps in ((False, True) if rep % 2 == 0 else (True, False)):
                copy = tmp / f"run-{rep}-{int(with_maps)}"
                shutil.copytree(store.path, copy, ignore=shutil.ignore_patterns("predictions.parquet", "*.zarr"))
                os.symlink(store.images.path, copy / store.images.path.name)  # same frames, not timed
                secs[with_maps].append(infer_run(copy, model=pred, progress=False, heatmaps=with_maps)["seconds"])
                shutil.rmtree(copy)
        with_s, without_s = min(secs[True]), min(secs[False])
        f_without, f_with = forward_cost(pred, n=min(n, 4 * bs) if not gpu else n, repeats=2 * max(1, args.repeats))
        c, h, w = pred.extra_shapes.get("heatmaps", (0, 0, 0)) if pred.set_outputs(heatmaps=True) else (0, 0, 0)
        params = {"arch": arch, "size": size, "image_size": image_size, "batch_size": bs, "partition_size": part,
                  "compile": args.compile, "threads": torch.get_num_threads() if not gpu else None,
                  "torch": torch.__version__, "cpu_count": os.cpu_count(),
                  "gpu": torch.cuda.get_device_name() if gpu else None}
        device = "gpu" if gpu else "cpu"
        print(json.dumps({"name": "infer_end_to_end", "value": round(e2e, 2), "unit": "images/s",
                          "baseline": round(bare, 2), "ratio": round(e2e / bare, 4), "n": n, "device": device,
                          "params": params}))
        print(json.dumps({"name": "infer_bare_forward", "value": round(bare, 2), "unit": "images/s",
                          "baseline": round(bare, 2), "ratio": 1.0, "n": n, "device": device, "params": params}))
        print(json.dumps({"name": "infer_heatmaps_cost", "value": round(with_s, 3), "unit": "s",
                          "baseline": round(without_s, 3), "ratio": round(with_s / without_s, 4), "n": n,
                          "device": device, "heatmap_shape": [c, h, w], "bytes_per_image": c * h * w * 2,
                          "seconds_with": [round(x, 3) for x in secs[True]],
                          "seconds_without": [round(x, 3) for x in secs[False]], "params": params}))
        print(json.dumps({"name": "infer_heatmaps_forward", "value": round(f_with * 1e3, 3), "unit": "ms/image",
                          "baseline": round(f_without * 1e3, 3), "ratio": round(f_with / f_without, 4), "n": n,
                          "device": device, "heatmap_shape": [c, h, w], "params": params}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
