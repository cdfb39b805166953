"""Training loop: multi-label BCE with logits, split by run, AdamW + one-cycle schedule, resumable.

Recipe (docs/model_card.md has the reasons):

* loss: ``BCEWithLogitsLoss(pos_weight=w)``, ``w_j = clip(sqrt(neg_j / pos_j), 1, 10)`` on the train
  split (``pos_weight="sqrt"``; ``"balanced"`` drops the square root, ``"none"`` uses 1): rare
  attributes (BCC, FCC, Polycrystalline) weigh more without wrecking the 0.5 cut-off of the app;
* the head's bias starts at each attribute's log-odds on the train split;
* AdamW (weight decay 0.05 on weights, none on norms/biases), learning rate warmed up linearly over the
  first 10 % of steps from lr/25 to lr, then cosine-annealed to lr/1000 (one-cycle);
* augmentations that keep every label valid (:func:`xsgpu.model.transforms.augment`);
* on CUDA: bf16 autocast, channels_last, frames cached in GPU memory when they fit;
* one checkpoint per epoch under ``OUT/epochs/epoch-XXXX`` (weights + optimizer in safetensors,
  schedule and RNG seeds in JSON); ``resume=True`` continues after the last complete one. ``OUT`` itself
  receives the epoch with the best validation mAP.

Examples
--------
::

    from xsgpu.model import train_model
    report = train_model("runs/demo", arch="resnet18", size=64, epochs=3, out="models/r18")
    report["val_map"], report["val_prevalence_map"]
"""
from __future__ import annotations

import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from xsgpu.attributes import VocabularyError
from xsgpu.backend import torch_device
from xsgpu.io.runstore import RunStore
from xsgpu.model.checkpoint import (
    META_FILE, CheckpointError, CheckpointMismatch, check_compatible, checkpoint_vocabulary, default_preprocessing,
    input_layout, load_checkpoint, load_optimizer_file, load_optimizer_state, read_checkpoint_meta, save_checkpoint,
)
from xsgpu.model.data import TrainingData, load_training_data
from xsgpu.model.resnet import XSResNet, build_resnet, check_arch
from xsgpu.model.scoring import mean_ap, prevalence_map
from xsgpu.model.transforms import (DEFAULT_AUGMENTATION, DEFAULT_NORMALISATION, Augmentation, augment,
                                    check_pixel_factor, input_channels, to_channels)
from xsgpu.io.schema import IMAGES, SAMPLES

__all__ = ["train_model", "lr_at", "compute_pos_weight", "evaluate", "latest_epoch_checkpoint"]

log = logging.getLogger(__name__)

PosWeight = Literal["sqrt", "balanced", "none"]


def lr_at(step: int, total: int, *, lr: float, warmup: float = 0.1) -> float:
    """One-cycle learning rate at ``step`` of ``total``: linear warm-up lr/25 -> lr, cosine down to lr/1000.

    >>> round(lr_at(0, 100, lr=1.0), 3), lr_at(10, 100, lr=1.0), round(lr_at(100, 100, lr=1.0), 4)
    (0.04, 1.0, 0.001)
    """
    n_warm = max(1, int(round(warmup * total)))
    if step < n_warm:
        return lr / 25 + (lr - lr / 25) * step / n_warm
    t = min(1.0, (step - n_warm) / max(1, total - n_warm))
    low = lr / 1000
    return low + 0.5 * (lr - low) * (1 + math.cos(math.pi * t))


def compute_pos_weight(labels: np.ndarray, mode: PosWeight = "sqrt", *, cap: float = 10.0) -> np.ndarray:
    """Per-attribute ``pos_weight`` (k,) from train labels (n, k); attributes without positives get 1.

    >>> compute_pos_weight(np.array([[1, 1], [0, 1], [0, 1], [0, 0], [0, 1]], bool)).round(2).tolist()
    [2.0, 1.0]
    """
    if mode not in ("sqrt", "balanced", "none"):
        raise ValueError(f"The 'pos_weight' parameter must be 'sqrt', 'balanced' or 'none'. Got {mode!r} instead.")
    labels = np.asarray(labels, dtype=bool)
    pos = labels.sum(0).astype(np.float64)
    neg = len(labels) - pos
    ratio = np.where(pos > 0, neg / np.maximum(pos, 1), 1.0)
    if mode == "none":
        return np.ones(labels.shape[1])
    w = np.sqrt(ratio) if mode == "sqrt" else ratio
    return np.clip(w, 1.0, cap)


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


@torch.no_grad()
def evaluate(
    model: XSResNet,
    frames: torch.Tensor,
    labels: np.ndarray,
    *,
    batch_size: int,
    device: str,
    pos_weight: torch.Tensor | None = None,
    normalisation: str = "image",
    pixel_factor: int = 1,
) -> dict[str, float]:
    """Loss and mAP of ``model`` on preloaded frames (n, f S, f S) with labels (n, k), no augmentation."""
    model.eval()
    probs, losses = [], []
    y_all = torch.from_numpy(labels.astype(np.float32))
    crit = nn.BCEWithLogitsLoss(pos_weight=pos_weight.to(device) if pos_weight is not None else None, reduction="sum")
    cuda = device.startswith("cuda")
    for a in range(0, len(frames), batch_size):
        x = to_channels(frames[a:a + batch_size].to(device, non_blocking=True).float(), normalisation, pixel_factor)
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            _, logits = model.forward_logits(x)
        logits = logits.float()
        y = y_all[a:a + batch_size].to(device)
        losses.append(float(crit(logits, y)))
        probs.append(torch.sigmoid(logits).cpu().numpy())
    p = np.concatenate(probs) if probs else np.zeros((0, labels.shape[1]), np.float32)
    return {"loss": sum(losses) / max(1, labels.size), "map": mean_ap(labels, p)}


def latest_epoch_checkpoint(out: str | os.PathLike) -> Path | None:
    """The newest complete epoch checkpoint under ``OUT/epochs`` (``model.json`` present), or None."""
    d = Path(out) / "epochs"
    if not d.is_dir():
        return None
    done = sorted(p for p in d.glob("epoch-*") if (p / META_FILE).is_file())
    return done[-1] if done else None


def _check_int(name: str, value: Any, low: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
        raise ValueError(f"The '{name}' parameter of train_model must be an int >= {low}. Got {value!r} instead.")


def train_model(
    run_path: str | os.PathLike,
    *,
    arch: str = "resnet50",
    size: int = 224,
    epochs: int = 10,
    out: str | os.PathLike,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 0.05,
    pos_weight: PosWeight = "sqrt",
    device: str = "auto",
    resume: bool = False,
    max_images: int | None = None,
    seed: int = 0,
    num_workers: int = 2,
    num_threads: int | None = None,
    time_budget_s: float | None = None,
    keep_epochs: int = 2,
    max_cache_bytes: int = 8 * 2**30,
    augmentation: Augmentation = DEFAULT_AUGMENTATION,
    normalisation: str = DEFAULT_NORMALISATION,
    pixel_factor: int = 1,
    progress: bool = True,
) -> dict[str, Any]:
    """Train a multi-attribute ResNet on a run store; write checkpoints to ``out``; return a report.

    The head has one output per attribute of the run's vocabulary (``store.vocabulary``), which every
    checkpoint records (``model.json`` ``attributes`` and ``vocabulary``).

    Parameters
    ----------
    run_path : path
        Run store with ``samples`` (with ``split`` by run) and ``images``.
    arch : {"resnet18", "resnet34", "resnet50"}
    size : int
        Model input size S (frames are resized from the run's size).
    epochs : int
        Total epochs of the schedule (also when resuming).
    out : path
        Checkpoint directory: ``out/`` gets the best epoch, ``out/epochs/epoch-XXXX`` every epoch.
    batch_size, lr, weight_decay : training hyper-parameters (AdamW, one-cycle schedule).
    pos_weight : {"sqrt", "balanced", "none"}
        See :func:`compute_pos_weight`.
    device : {"auto", "cpu", "gpu"}
    resume : bool
        Continue after the last complete epoch checkpoint in ``out`` (same arch, size, attributes).
    max_images : int, optional
        Use at most this many images (the same fraction of each split).
    seed : int
        Seeds initialisation, shuffling and augmentation (a resumed run continues the same streams).
    num_workers : int
        Threads reading Zarr while preloading.
    num_threads : int, optional
        ``torch.set_num_threads`` on CPU (None leaves torch's default).
    time_budget_s : float, optional
        Stop after the epoch that would make the next one overrun this wall-clock budget.
    keep_epochs : int
        Epoch checkpoints kept besides the best one (older ones are deleted).
    max_cache_bytes : int
        Refuse to preload more than this many bytes of frames (float16 at f S x f S, f = pixel_factor).
    augmentation : Augmentation
        What :func:`xsgpu.model.transforms.augment` applies to training batches.
    normalisation : {"two-view", "image", "fixed", "image+level"}
        The per-image standardised and the fixed-scale image as two input views (the default,
        :data:`xsgpu.model.transforms.DEFAULT_NORMALISATION`), per-image standardisation alone, one fixed
        affine map, or the first plus the image's level (:func:`xsgpu.model.transforms.normalise`); recorded
        in the checkpoint's ``preprocessing`` and applied by the predictor.
    pixel_factor : int
        Frames are resized to ``size * pixel_factor`` and folded into ``pixel_factor ** 2`` channels per view
        (space-to-depth, :func:`xsgpu.model.transforms.to_channels`): the network stays S x S but sees f S x f S
        pixels. Recorded in ``preprocessing`` like ``normalisation``.
    progress : bool
        tqdm bars (loss per step, val mAP per epoch).

    Returns
    -------
    dict
        model path and id, arch, size, device, epochs_run, best_epoch, val_map, val_prevalence_map,
        test_map, test_prevalence_map (NaN without a test split), n_train/n_val/n_test, seconds, history.
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    check_arch(arch)
    _check_int("size", size, 32)
    _check_int("epochs", epochs, 1)
    _check_int("batch_size", batch_size, 2)
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"The 'lr' parameter of train_model must be a positive float. Got {lr!r} instead.")
    compute_pos_weight(np.zeros((1, 1), bool), pos_weight)  # validates the option early
    input_channels(normalisation, check_pixel_factor(pixel_factor, "train_model"), "train_model")  # validates early
    dev = torch_device(device)
    cuda = dev == "cuda"
    if num_threads is not None and not cuda:
        torch.set_num_threads(int(num_threads))
    out = Path(out)
    store = RunStore.open(run_path, require=[SAMPLES, IMAGES])
    vocab = store.vocabulary

    start_epoch, step, history, best = 0, 0, [], {"epoch": -1, "map": -math.inf}
    resume_from = latest_epoch_checkpoint(out) if resume else None
    if resume and resume_from is None:
        log.warning("resume=True but %s has no complete epoch checkpoint; starting from scratch", out)
    if resume_from is not None:
        meta = read_checkpoint_meta(resume_from)
        try:
            vocab.require_same(checkpoint_vocabulary(meta, where=str(resume_from / META_FILE)),
                               mine=f"the run {store.path}", theirs=f"the checkpoint {resume_from}")
        except VocabularyError as exc:
            raise CheckpointMismatch(f"Cannot resume: {exc}") from None
        check_compatible(meta, input_size=size, arch=arch, source="this training request", checkpoint=str(resume_from))
        layout = input_layout(meta, str(resume_from / META_FILE))[:2]
        if layout != (normalisation, pixel_factor):
            raise CheckpointMismatch(f"Cannot resume: {resume_from} was trained with normalisation {layout[0]!r} and "
                                     f"pixel_factor {layout[1]}, this request asks for {normalisation!r} and "
                                     f"{pixel_factor}. Hint: pass the checkpoint's values or train into a new --out.")
        if meta.get("training", {}).get("run_path") not in (None, str(store.path.resolve())):
            log.warning("resuming %s, which was trained on %s, with run %s", resume_from,
                        meta["training"]["run_path"], store.path)

    data: TrainingData = load_training_data(store, size * pixel_factor, max_images=max_images, num_workers=num_workers,
                                            max_bytes=max_cache_bytes, progress=progress)
    n_train = len(data.ids["train"])
    y_train = data.labels["train"]
    prevalence = y_train.mean(0)
    pw = torch.tensor(compute_pos_weight(y_train, pos_weight), dtype=torch.float32)
    frames = data.frames
    if cuda:
        free, _total = torch.cuda.mem_get_info()
        if sum(f.numel() * 2 for f in frames.values()) < 0.4 * free:
            frames = {k: v.to(dev) for k, v in frames.items()}
        else:
            frames = {k: v.pin_memory() for k, v in frames.items()}

    torch.manual_seed(seed)
    model = build_resnet(arch, n_outputs=len(vocab), in_channels=input_channels(normalisation, pixel_factor))
    with torch.no_grad():
        p = np.clip(prevalence, 1e-3, 1 - 1e-3)
        model.head.bias.copy_(torch.from_numpy(np.log(p / (1 - p))).float())
    model = model.to(dev)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(_param_groups(model, weight_decay), lr=lr)
    steps_per_epoch = n_train // batch_size if n_train >= batch_size else 1
    total_steps = steps_per_epoch * epochs
    if resume_from is not None:
        loaded, meta = load_checkpoint(resume_from, device=dev)
        model.load_state_dict(loaded.state_dict())
        # moments go to the parameters' device; AdamW keeps its (non-capturable) step counters on the CPU
        load_optimizer_state(optimizer, {k: (v if k.endswith(".step") else v.to(dev))
                                         for k, v in load_optimizer_file(resume_from, meta).items()},
                             meta["resume"]["optimizer"])
        state = meta["resume"]
        start_epoch, step, history = int(state["epoch"]) + 1, int(state["step"]), list(state.get("history", []))
        best = dict(state.get("best", best))
        if int(state.get("steps_per_epoch", steps_per_epoch)) != steps_per_epoch:
            raise CheckpointError(f"{resume_from} was trained with {state['steps_per_epoch']} steps per epoch, this "
                                  f"request gives {steps_per_epoch}; resume with the same run, --max-images and --batch-size.")
        log.info("resuming from %s (epoch %d done, step %d)", resume_from, start_epoch, step)
    crit = nn.BCEWithLogitsLoss(pos_weight=pw.to(dev))
    y_train_t = torch.from_numpy(y_train.astype(np.float32))
    training = {
        "run_path": str(store.path.resolve()), "run_name": store.path.name, "epochs": epochs, "batch_size": batch_size,
        "lr": lr, "weight_decay": weight_decay, "pos_weight": pos_weight, "pos_weight_values": pw.tolist(),
        "schedule": "one-cycle: linear warm-up 10% lr/25->lr, cosine to lr/1000", "optimizer": "AdamW",
        "augmentation": augmentation.to_dict(), "seed": seed, "device": dev,
        "n_train": n_train, "n_val": len(data.ids["val"]), "n_test": len(data.ids["test"]),
        "max_images": max_images, "train_prevalence": prevalence.tolist(),
    }
    preprocessing = default_preprocessing(data.source_size, normalisation, pixel_factor)
    epoch_times: list[float] = []
    stopped_early = False
    val_base = prevalence_map(data.labels["val"], prevalence)

    epochs_bar = tqdm(total=epochs, initial=start_epoch, desc="training", unit="epoch", disable=not progress)
    if history:
        epochs_bar.set_postfix(val_mAP=f"{history[-1]['val_map']:.4f}", baseline=f"{val_base:.4f}")
    for epoch in range(start_epoch, epochs):
        te = time.perf_counter()
        model.train()
        order = np.random.default_rng([seed, epoch]).permutation(n_train)
        gen = torch.Generator(device=dev)
        gen.manual_seed(seed * 100_003 + epoch)
        running, seen = 0.0, 0
        bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{epochs}", unit="step", disable=not progress,
                   leave=False)
        for b in range(steps_per_epoch):
            idx = torch.from_numpy(order[b * batch_size:(b + 1) * batch_size])
            xb = frames["train"][idx.to(frames["train"].device)].to(dev, non_blocking=True).float()
            yb = y_train_t[idx].to(dev, non_blocking=True)
            x = augment(xb, size, generator=gen, options=augmentation, normalisation=normalisation,
                        pixel_factor=pixel_factor)
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            for g in optimizer.param_groups:
                g["lr"] = lr_at(step, total_steps, lr=lr)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                _, logits = model.forward_logits(x)
            loss = crit(logits.float(), yb)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"training loss became {float(loss)} at epoch {epoch + 1}, step {b}; "
                                         f"lower --lr (now {lr}).")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            running += float(loss.detach()) * len(idx)
            seen += len(idx)
            bar.update(1)
            bar.set_postfix(loss=f"{running / seen:.4f}")
        bar.close()
        val = evaluate(model, frames["val"], data.labels["val"], batch_size=batch_size * 2, device=dev,
                       pos_weight=pw, normalisation=normalisation, pixel_factor=pixel_factor)
        seconds = time.perf_counter() - te
        epoch_times.append(seconds)
        rec = {"epoch": epoch, "train_loss": running / max(seen, 1), "val_loss": val["loss"], "val_map": val["map"],
               "seconds": seconds, "lr_end": lr_at(step, total_steps, lr=lr)}
        history.append(rec)
        if val["map"] > best["map"]:
            best = {"epoch": epoch, "map": val["map"]}
        msg = (f"epoch {epoch + 1}/{epochs}: train loss {rec['train_loss']:.4f}, val loss {val['loss']:.4f}, "
               f"val mAP {val['map']:.4f} (prevalence baseline {val_base:.4f}), {seconds:.1f} s")
        log.info(msg)
        if progress:
            tqdm.write(msg)
            epochs_bar.update(1)
            epochs_bar.set_postfix(val_mAP=f"{val['map']:.4f}", baseline=f"{val_base:.4f}", loss=f"{rec['train_loss']:.4f}")
        ep_dir = out / "epochs" / f"epoch-{epoch:04d}"
        save_checkpoint(ep_dir, model, input_size=size, preprocessing=preprocessing, training=training,
                        vocabulary=vocab,
                        metrics={"val_map": val["map"], "val_loss": val["loss"], "val_prevalence_map": val_base,
                                 "epoch": epoch},
                        optimizer=optimizer,
                        resume={"epoch": epoch, "step": step, "steps_per_epoch": steps_per_epoch,
                                "total_steps": total_steps, "history": history, "best": best})
        _prune(out, keep=keep_epochs, best_epoch=best["epoch"])
        if time_budget_s is not None and epoch + 1 < epochs:
            elapsed = time.perf_counter() - t0
            if elapsed + max(epoch_times) > time_budget_s:
                log.warning("stopping after epoch %d: %.0f s used of the %.0f s budget", epoch + 1, elapsed, time_budget_s)
                stopped_early = True
                break

    epochs_bar.close()
    if best["epoch"] < 0:
        raise CheckpointError(f"{out}: no epoch was trained (already at epoch {start_epoch} of {epochs}?). "
                              "Hint: raise --epochs to continue a finished run.")
    best_dir = out / "epochs" / f"epoch-{best['epoch']:04d}"
    final, _meta = load_checkpoint(best_dir, device=dev)
    test = {"map": float("nan"), "loss": float("nan")}
    test_base = float("nan")
    if len(data.ids["test"]):
        test = evaluate(final, frames["test"], data.labels["test"], batch_size=batch_size * 2, device=dev,
                        pos_weight=pw, normalisation=normalisation, pixel_factor=pixel_factor)
        test_base = prevalence_map(data.labels["test"], prevalence)
    metrics = {"val_map": best["map"], "val_prevalence_map": val_base, "best_epoch": best["epoch"],
               "test_map": test["map"], "test_prevalence_map": test_base, "history": history}
    save_checkpoint(out, final, input_size=size, preprocessing=preprocessing, vocabulary=vocab,
                    training={**training, "epochs_run": len(history), "stopped_early": stopped_early}, metrics=metrics)
    meta = read_checkpoint_meta(out)
    report = {
        "model": str(out), "model_id": meta["model_id"], "arch": arch, "size": size, "device": dev,
        "epochs_run": len(history), "best_epoch": best["epoch"], "val_map": best["map"],
        "val_prevalence_map": val_base, "test_map": test["map"], "test_prevalence_map": test_base,
        "n_train": n_train, "n_val": len(data.ids["val"]), "n_test": len(data.ids["test"]),
        "seconds": time.perf_counter() - t0, "stopped_early": stopped_early, "history": history,
    }
    return report


def _prune(out: Path, *, keep: int, best_epoch: int) -> None:
    done = sorted(p for p in (out / "epochs").glob("epoch-*") if (p / META_FILE).is_file())
    for p in done[:-keep] if keep > 0 else done[:-1]:
        if p.name != f"epoch-{best_epoch:04d}":
            shutil.rmtree(p, ignore_errors=True)
