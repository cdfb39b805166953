"""The train stage: a multi-attribute ResNet from a run's labelled images (wraps :func:`xsgpu.model.train_model`)."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xsgpu.io.schema import IMAGES, SAMPLES
from xsgpu.stages.base import PartitionContext, Plan, Stage

__all__ = ["TrainStage", "TrainParams", "checkpoint_exists"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainParams:
    """Parameters of :func:`xsgpu.model.train_model`; ``out`` the checkpoint directory.

    ``resume=None`` continues after the last complete epoch checkpoint in ``out`` when it was made with
    this architecture and input size (an interrupted attempt), and starts afresh otherwise.
    """

    out: str = ""
    arch: str = "resnet50"
    size: int = 224
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    pos_weight: str = "sqrt"
    device: str = "auto"
    resume: bool | None = None
    max_images: int | None = None
    seed: int = 0
    num_threads: int | None = None
    time_budget_s: float | None = None


def checkpoint_exists(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a finished model checkpoint.

    xsgpu.model writes ``model.json`` last (after the weights), and only at the end of training (epoch
    checkpoints live under ``OUT/epochs/``), so its presence means complete.
    """
    p = Path(path)
    return (p / "model.json").is_file() and (p / "model.safetensors").is_file()


def _meta(path: str | os.PathLike) -> dict[str, Any]:
    from xsgpu.model import read_checkpoint_meta

    return read_checkpoint_meta(path)


class TrainStage(Stage):
    """Train on the run's train split (validated on val, tested on test); write a checkpoint outside the run."""

    name = "train"
    inputs = (SAMPLES, IMAGES)
    outputs = ()
    outputs_elsewhere = "a model checkpoint directory (`out`)"
    Params = TrainParams
    partitioned = False

    def is_done(self, run_path: str | os.PathLike, params: TrainParams) -> tuple[bool, str]:
        if not checkpoint_exists(params.out):
            return False, f"no checkpoint at {params.out}"
        meta = _meta(params.out)
        training = meta.get("training") or {}
        have = {"arch": meta.get("arch"), "size": meta.get("input_size"), "epochs": training.get("epochs"),
                "seed": training.get("seed"), "run": training.get("run_path")}
        want = {"arch": params.arch, "size": params.size, "epochs": params.epochs, "seed": params.seed,
                "run": str(Path(run_path).resolve())}
        changed = [f"{k} {have[k]!r} -> {want[k]!r}" for k in want if have[k] is not None and have[k] != want[k]]
        if changed:
            return False, f"the checkpoint at {params.out} was trained otherwise: " + ", ".join(changed)
        return True, f"checkpoint exists at {params.out}"

    def plan(self, run_path: str | os.PathLike, params: TrainParams, *, progress: bool = False) -> Plan:
        if not params.out:
            raise ValueError("The 'out' parameter of the train stage must name the checkpoint directory. "
                             "Got '' instead.")
        return Plan(parts=[0], params=params)

    def run_partition(self, run_path: str | os.PathLike, part: int, params: TrainParams,
                      ctx: PartitionContext | None = None) -> dict:
        from xsgpu.model.train import latest_epoch_checkpoint, train_model

        ctx = ctx or PartitionContext()
        resume = params.resume
        if resume is None:
            last = latest_epoch_checkpoint(params.out)
            resume = last is not None and (_meta(last).get("arch"), _meta(last).get("input_size")) == (
                params.arch, params.size)
            if resume:
                log.info("resuming training from %s", last)
        report = train_model(run_path, arch=params.arch, size=params.size, epochs=params.epochs, out=params.out,
                             batch_size=params.batch_size, lr=params.lr, weight_decay=params.weight_decay,
                             pos_weight=params.pos_weight, device=params.device, resume=resume,
                             max_images=params.max_images, seed=params.seed, num_threads=params.num_threads,
                             time_budget_s=params.time_budget_s, progress=ctx.progress)
        return {"rows": int(report["n_train"]) * int(report["epochs_run"]), **report}
