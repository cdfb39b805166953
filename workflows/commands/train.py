"""``xsgpu train RUN --out MODEL``: train the multi-attribute ResNet on a run store."""
from __future__ import annotations

import json

import click

__all__ = ["command"]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run", type=click.Path(file_okay=False, path_type=str))
@click.option("--arch", type=click.Choice(["resnet18", "resnet34", "resnet50"]), default="resnet50", show_default=True,
              help="torchvision architecture (one-channel stem, one output per attribute of the run, random init).")
@click.option("--size", type=click.IntRange(min=32), default=224, show_default=True, help="Model input size (pixels).")
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True,
              help="Epochs of the one-cycle schedule (the total, also with --resume).")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=str), required=True,
              help="Checkpoint directory: the best epoch in OUT, every epoch in OUT/epochs/.")
@click.option("--batch-size", type=click.IntRange(min=2), default=64, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True,
              help="Peak learning rate of AdamW.")
@click.option("--weight-decay", type=click.FloatRange(min=0), default=0.05, show_default=True)
@click.option("--pos-weight", type=click.Choice(["sqrt", "balanced", "none"]), default="sqrt", show_default=True,
              help="BCE pos_weight for rare attributes: sqrt(neg/pos) or neg/pos (capped at 10), or none.")
@click.option("--device", type=click.Choice(["auto", "cpu", "gpu"]), default="auto", show_default=True)
@click.option("--resume", is_flag=True, help="Continue after the last complete epoch checkpoint in OUT.")
@click.option("--max-images", type=click.IntRange(min=2), default=None,
              help="Use at most this many images (the same fraction of each split).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", "num_threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for torch (default: torch's choice).")
@click.option("--time-budget", "time_budget_s", type=click.FloatRange(min=1), default=None,
              help="Stop after the epoch that would overrun this many seconds.")
@click.option("--progress/--no-progress", default=True, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the training report as JSON.")
def command(run: str, arch: str, size: int, epochs: int, out: str, batch_size: int, lr: float, weight_decay: float,
            pos_weight: str, device: str, resume: bool, max_images: int | None, seed: int, num_threads: int | None,
            time_budget_s: float | None, progress: bool, as_json: bool) -> None:
    """Train a ResNet to predict the attributes of RUN's vocabulary (default the paper's 17); write a checkpoint to OUT.

    Multi-label BCE with logits (pos_weight for rare attributes), train/val/test split BY RUN (the
    `split` column of samples.parquet), AdamW with a one-cycle schedule, label-preserving
    augmentation (flips, small exposure change, noise; no crops), bf16 + channels_last on GPU.
    Each epoch prints the validation mAP next to the prevalence baseline and saves a checkpoint
    (safetensors + JSON); --resume continues after the last one.

    \b
    Examples:
      xsgpu train runs/demo --arch resnet18 --size 64 --epochs 8 --batch-size 64 --lr 2e-3 --out models/r18
      xsgpu train runs/demo --arch resnet18 --size 64 --epochs 8 --out models/r18 --resume
      xsgpu train runs/big --arch resnet50 --size 224 --epochs 20 --batch-size 256 --device gpu --out models/r50
    """
    from xsgpu.stages import TrainParams, get_stage, run_stage

    params = TrainParams(out=out, arch=arch, size=size, epochs=epochs, batch_size=batch_size, lr=lr,
                         weight_decay=weight_decay, pos_weight=pos_weight, device=device, resume=resume,
                         max_images=max_images, seed=seed, num_threads=num_threads, time_budget_s=time_budget_s)
    report = run_stage(get_stage("train"), run, params, progress=progress, skip_done=False).info
    if as_json:
        click.echo(json.dumps(report, default=float))
        return
    click.echo(f"trained {report['arch']} at {report['size']} px on {report['n_train']} images "
               f"({report['epochs_run']} epochs, {report['seconds']:.0f} s, {report['device']})")
    click.echo(f"val mAP {report['val_map']:.4f} (prevalence baseline {report['val_prevalence_map']:.4f}), "
               f"best epoch {report['best_epoch'] + 1}")
    if report["n_test"]:
        click.echo(f"test mAP {report['test_map']:.4f} (prevalence baseline {report['test_prevalence_map']:.4f})")
    click.echo(f"wrote {report['model']} ({report['model_id']})")
