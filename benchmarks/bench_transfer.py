"""Transfer: a model trained on our synthetic images, scored on the original generator's images (cms-dev).

Usage::

    python benchmarks/bench_transfer.py [--quick] [--out DIR] [--cmsdev PATH] [--mix default|pre-issue14]
        [--mix-set NAME=VALUE,...] [--tag NAME] [--pos-weight sqrt|balanced|none] [--augment KEY=VALUE,...]

Trains the CPU profile of ``make demo`` (``workflows/commands/demo.py``: 3,000 images at 128 px,
100 per run, seed 0; ResNet-18 at 64 px, 6 epochs within a 360 s budget, batch 64, lr 1e-3, one torch
thread) on our images, ingests cms-dev with ``xsgpu ingest`` and its label file (at the same stored
size), and prints one JSON object per line ({"name", "value", "unit", "baseline", "ratio", "n",
"device", "params"}):

* ``transfer_map_ours_val``: mAP on our validation runs; baseline = the prevalence mAP of those runs.
* ``transfer_map_cmsdev``: mAP on the 600 cms-dev images; baseline = the prevalence mAP there.
* ``transfer_ratio``: cms-dev mAP (value) against our validation mAP (baseline); ratio = their ratio,
  the figure the issue asks to bring to >= 0.9.
* ``transfer_ap/<slug>``, one per attribute: AP on cms-dev (value) against AP on our validation runs
  (baseline); ``params.prevalence_cmsdev`` is that attribute's chance AP on cms-dev.

``--quick`` (under a minute of training: 600 images, 1 epoch) only checks that the script runs.
``--figure PNG`` trains nothing: it prints image statistics of cms-dev and of 600 of our images (20 per
run) per mix as JSON lines (``image_stat/<stat>/<mix>``: value = our median, baseline = cms-dev's) and
writes a comparison sheet (docs/synth_vs_cmsdev.png: cms-dev above, our default mix below).
The work directory keeps the synthetic run, the model and the ingested cms-dev, and a rerun reuses
them (delete it to measure again). ``--tag NAME`` trains into ``OUT/model-NAME`` instead of
``OUT/model``, so that training choices (``--pos-weight``, ``--augment`` as in
:meth:`xsgpu.model.transforms.Augmentation.parse`, ``--epochs``, ``--input-size``) are measured one at a
time on the same synthetic run. ``params`` carries the load average (1, 5, 15 min) at the start and
the end of the run (``load_start``, ``load_end``): the 2 cores are shared.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("bench_transfer")

#: the pre-issue-14 generator's run and image mix, kept for before/after figures
PRE_ISSUE14 = "pre-issue14"


def _num(x):
    x = float(x)
    return round(x, 4) if np.isfinite(x) else None


def emit(name, value, unit, baseline, n, device, **params):
    ratio = float(value) / float(baseline) if baseline and np.isfinite(baseline) and np.isfinite(value) else None
    print(json.dumps({"name": name, "value": _num(value), "unit": unit,
                      "baseline": _num(baseline), "ratio": None if ratio is None else round(ratio, 4),
                      "n": int(n), "device": device, "params": params}), flush=True)


def _predict(model_dir: Path, frames: np.ndarray) -> np.ndarray:
    from xsgpu.model.predictor import Predictor

    pred = Predictor.from_checkpoint(model_dir, device="cpu", batch_size=128, num_threads=1)
    return pred.predict(frames)[1]


def _read_cmsdev(root: Path) -> tuple[np.ndarray, list[str]]:
    import h5py
    import pandas as pd
    import scipy.io
    import tifffile

    table = pd.read_csv(root / "labels.csv")
    frames, stacks = [], {}
    for f, k in zip(table["file"], table["frame"]):
        p = str(root / f)
        if p.endswith(".mat"):
            frames.append(scipy.io.loadmat(p)["detector_image"])
        elif p.endswith(".tif"):
            frames.append(tifffile.imread(p))
        else:
            if p not in stacks:
                with h5py.File(p, "r") as fh:
                    stacks[p] = fh["entry/data/data"][:]
            frames.append(stacks[p][k])
    return np.stack(frames).astype(np.float32), list(table["tags"])


def _image_stats(counts: np.ndarray) -> dict[str, np.ndarray]:
    f = counts.reshape(len(counts), -1)
    return {"max": f.max(1), "mean": f.mean(1), "frac_zero": (f == 0).mean(1), "frac_gt10": (f > 10).mean(1),
            "frac_gt1000": (f > 1000).mean(1), "p99": np.percentile(f, 99, axis=1)}


def _override_mix(mix, text: str):
    """``mix`` with the scalar fields of ``'name=value,...'`` replaced (an unknown name is an error)."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(mix)}
    changes = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        name, _, value = item.partition("=")
        if name not in names or not value:
            raise SystemExit(f"--mix-set: {item!r} is not NAME=VALUE with NAME a field of xsgpu.synth.Mix "
                             f"({', '.join(sorted(names))}).")
        try:
            changes[name] = float(value)
        except ValueError:
            changes[name] = value
    return dataclasses.replace(mix, **changes)


def figure(root: Path, out: Path, seed: int) -> None:
    """Print image statistics (cms-dev vs our mixes) and write the comparison sheet ``out``."""
    from PIL import Image, ImageDraw

    from xsgpu.attributes import NAMES
    from xsgpu.preprocess import log_scale
    from xsgpu.synth import DEFAULT_MIX, generate_images
    from xsgpu.synth.mix import PRE_ISSUE14_MIX

    sys.path.insert(0, str(Path(__file__).parent))
    from make_contact_sheet import colourise

    cms, tags = _read_cmsdev(root)
    ref = _image_stats(cms)
    ours = {}
    for name, mix in (("default", DEFAULT_MIX), (PRE_ISSUE14, PRE_ISSUE14_MIX)):
        b = generate_images(600, size=256, seed=seed, images_per_run=20, mix=mix)
        ours[name] = b
        st = _image_stats(b.counts)
        for k in ref:
            emit(f"image_stat/{k}/{name}", np.median(st[k]), "median", np.median(ref[k]), 600, "cpu",
                 q25=_num(np.percentile(st[k], 25)), q75=_num(np.percentile(st[k], 75)),
                 cms_q25=_num(np.percentile(ref[k], 25)), cms_q75=_num(np.percentile(ref[k], 75)))
    pick_cms = list(range(3, 600, 100)) + [43, 323]
    b = ours["default"]
    pick_ours = list(range(3, 600, 100)) + [63, 123]
    tile, pad, head = 192, 4, 26
    sheet = Image.new("RGB", (len(pick_cms) * (tile + pad), 2 * (tile + head) + 20), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((4, 2), "top: cms-dev (original generator); bottom: our default mix; log counts", fill="black")
    for row, (frames, idx) in enumerate(((cms, pick_cms), (b.counts, pick_ours))):
        for c, i in enumerate(idx):
            img = Image.fromarray(colourise(log_scale(frames[i][None])[0])).resize((tile, tile))
            x, y = c * (tile + pad), 20 + row * (tile + head)
            sheet.paste(img, (x, y + head))
            if row == 0:
                text = ", ".join(t.rsplit(".", 1)[1].split(":")[0] for t in tags[i].split(";")[2:4])
            else:
                text = ", ".join(NAMES[j] for j in np.nonzero(b.labels[i])[0][:3])
            draw.text((x, y + 2), text[:34], fill="black")
            draw.text((x, y + 13), text[34:68], fill="black")
    sheet.convert("P", palette=Image.ADAPTIVE, colors=128).save(out, optimize=True)
    log.info("wrote %s", out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/bench_transfer", help="work directory (reused by a rerun)")
    p.add_argument("--cmsdev", default=None, help="cms-dev folder (default: $XSGPU_CMSDEV or ../shared/data/cms-dev)")
    p.add_argument("--n", type=int, default=3000)
    p.add_argument("--size", type=int, default=128, help="stored image size (ours and cms-dev)")
    p.add_argument("--input-size", type=int, default=64)
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--train-budget", type=float, default=360.0)
    p.add_argument("--images-per-run", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-seed", type=int, default=None, help="training seed (default: --seed); a second "
                   "training seed on the same images measures run-to-run noise")
    p.add_argument("--workers", type=int, default=2, help="synth processes")
    p.add_argument("--threads", type=int, default=1, help="torch threads for training")
    p.add_argument("--mix", default="default", choices=["default", PRE_ISSUE14])
    p.add_argument("--mix-set", default="", help="Mix fields over --mix for a generator A/B row, e.g. "
                   "'diffuse_tree=ours,p_window_scatter=0' (numbers are parsed, other values kept as text)")
    p.add_argument("--render", default="detector", choices=["detector", "direct"],
                   help="synthetic frames rendered at 256 px and shrunk like ingested ones, or at --size")
    p.add_argument("--tag", default="", help="train into OUT/model-TAG (one training choice per tag)")
    p.add_argument("--pos-weight", default="sqrt", choices=["sqrt", "balanced", "none"])
    p.add_argument("--normalisation", default="two-view", choices=["image", "fixed", "image+level", "two-view"],
                   help="the per-image and the fixed-scale image as two input views (train_model's default), "
                   "per-image standardisation, one fixed affine map of the log values, or the first plus the "
                   "image's mean level")
    p.add_argument("--pixel-factor", type=int, default=1, help="space-to-depth factor of the model input "
                   "(frames at input size x factor, folded into factor^2 channels)")
    p.add_argument("--augment", default="", help="augmentation options over the defaults (no flips since issue 14's "
                   "4th session), e.g. 'shift=4,poisson=0.5' or 'flips=1'")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--model", default=None, help="score this checkpoint (e.g. OUT/model/epochs/epoch-0001) "
                   "instead of training")
    p.add_argument("--figure", default=None, help="write the comparison sheet here and print image statistics")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if a.quick:
        a.n, a.epochs, a.train_budget = 600, 1, 60.0

    from xsgpu.attributes import SLUGS, label_columns
    from xsgpu.io import RunStore
    from xsgpu.io.ingest import ingest_paths
    from xsgpu.metrics.ranking import average_precision
    from xsgpu.model.scoring import mean_ap, prevalence_map
    from xsgpu.model.train import train_model
    from xsgpu.model.transforms import Augmentation
    from xsgpu.synth import DEFAULT_MIX, synthesize_run
    from xsgpu.synth.mix import PRE_ISSUE14_MIX
    from xsgpu.synth.reference import find_cmsdev, run_directories, write_ingest_labels

    root = find_cmsdev(a.cmsdev)
    if root is None:
        log.error("cms-dev not found (give --cmsdev or set XSGPU_CMSDEV)")
        return 2
    if a.figure:
        figure(root, Path(a.figure), a.seed)
        return 0
    load_start = [round(v, 2) for v in os.getloadavg()]
    augmentation = Augmentation.parse(a.augment)
    mix = _override_mix(DEFAULT_MIX if a.mix == "default" else PRE_ISSUE14_MIX, a.mix_set)
    work = Path(a.out)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    store = synthesize_run(work / "synth", n=a.n, size=a.size, seed=a.seed, partition_size=512,
                           images_per_run=a.images_per_run, mix=mix, workers=a.workers, progress=False,
                           render=a.render)
    t_synth = time.perf_counter() - t0
    model_dir = Path(a.model) if a.model else work / ("model-" + a.tag if a.tag else "model")
    if a.model and not (model_dir / "model.json").is_file():
        log.error("--model %s holds no checkpoint (model.json)", model_dir)
        return 2
    t0 = time.perf_counter()
    if not (model_dir / "model.json").is_file():
        info = train_model(store.path, arch=a.arch, size=a.input_size, epochs=a.epochs, out=model_dir,
                           device="cpu", num_threads=a.threads, time_budget_s=a.train_budget,
                           seed=a.seed if a.train_seed is None else a.train_seed,
                           pos_weight=a.pos_weight, augmentation=augmentation,
                           normalisation=a.normalisation, pixel_factor=a.pixel_factor, progress=False)
        log.info("trained: %d epochs, val mAP %.3f", info["epochs_run"], info["val_map"])
    t_train = time.perf_counter() - t0
    cms_dir = work / f"cmsdev-{a.size}"
    if not (cms_dir / "manifest.json").is_file() or RunStore.open(cms_dir).stage_status().get("ingest") != "done":
        labels = write_ingest_labels(root, work / "cmsdev_labels17.csv")
        ingest_paths(run_directories(root), cms_dir, labels=labels, size=a.size, partition_size=600, progress=False)
    cms = RunStore.open(cms_dir)

    samples = store.samples.read()
    val = samples.index[samples["split"] == "val"].to_numpy()
    train_prev = samples.loc[samples["split"] == "train", label_columns()].to_numpy().mean(0)
    images = store.images.open()
    y_val = samples.loc[val, label_columns()].to_numpy()
    p_val = _predict(model_dir, np.asarray(images[int(val.min()):int(val.max()) + 1])[val - val.min()])
    cs = cms.samples.read()
    y_cms = cs[label_columns()].to_numpy()
    p_cms = _predict(model_dir, np.asarray(cms.images.open()[:]))

    params = {"n_synth": a.n, "size": a.size, "input_size": a.input_size, "arch": a.arch, "epochs": a.epochs,
              "train_budget_s": a.train_budget, "images_per_run": a.images_per_run, "seed": a.seed,
              "train_seed": a.train_seed, "mix": a.mix, "mix_set": a.mix_set, "render": a.render,
              "synth_s": round(t_synth, 1), "train_s": round(t_train, 1), "model": str(model_dir),
              "pos_weight": a.pos_weight, "augment": a.augment,
              "normalisation": a.normalisation, "pixel_factor": a.pixel_factor, "load_start": load_start,
              "load_end": [round(v, 2) for v in os.getloadavg()]}
    map_val, map_cms = mean_ap(y_val, p_val), mean_ap(y_cms, p_cms)
    emit("transfer_map_ours_val", map_val, "mAP", prevalence_map(y_val, train_prev), len(val), "cpu", **params)
    emit("transfer_map_cmsdev", map_cms, "mAP", prevalence_map(y_cms, train_prev), len(cs), "cpu", **params)
    emit("transfer_ratio", map_cms, "mAP", map_val, len(cs), "cpu", **params)
    ap_val = np.asarray(average_precision(y_val, p_val))
    ap_cms = np.asarray(average_precision(y_cms, p_cms))
    for j, slug in enumerate(SLUGS):
        emit(f"transfer_ap/{slug}", ap_cms[j], "AP", ap_val[j], int(y_cms[:, j].sum()), "cpu",
             prevalence_cmsdev=round(float(y_cms[:, j].mean()), 4), positives_val=int(y_val[:, j].sum()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
