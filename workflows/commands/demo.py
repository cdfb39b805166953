"""``xsgpu demo``: the whole system on a laptop-sized synthetic set, then the app (``make demo``)."""
from __future__ import annotations

import time

import click

__all__ = ["command"]


_EPILOG = """\b
Examples:
  xsgpu demo --out runs/demo                 # ~3000 images, CPU profile, then http://127.0.0.1:5006
  xsgpu demo --out runs/demo --no-serve      # stop after the pipeline (CI, benchmarks)
  xsgpu demo --out runs/small --n 1000 --epochs 2 --train-budget 120
  SERVE=0 make demo                          # the same through the Makefile
\b
Rerunning resumes: the images, the model, the predictions, the embedding and the metrics that exist
are kept, so a second `xsgpu demo` goes straight to the app.
"""


@click.command("demo", epilog=_EPILOG, context_settings={"max_content_width": 110})
@click.option("--out", default="runs/demo", show_default=True, type=click.Path(file_okay=False),
              help="The run directory.")
@click.option("--n", "n_images", type=click.IntRange(min=64), default=3000, show_default=True,
              help="Synthetic images.")
@click.option("--size", type=click.IntRange(min=32), default=128, show_default=True,
              help="Stored image size, pixels.")
@click.option("--input-size", type=click.IntRange(min=32), default=64, show_default=True,
              help="Model input size (the CPU profile: ResNet-18 at 64 px).")
@click.option("--arch", default="resnet18", show_default=True, help="Architecture.")
@click.option("--epochs", type=click.IntRange(min=1), default=6, show_default=True, help="Training epochs.")
@click.option("--train-budget", type=click.FloatRange(min=10), default=360.0, show_default=True,
              help="Training stops after the epoch that would overrun this many seconds.")
@click.option("--images-per-run", type=click.IntRange(min=1), default=100, show_default=True,
              help="Synthetic images per experiment (the train/val/test split is by run).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--partition-size", type=click.IntRange(min=16), default=512, show_default=True,
              help="Images per task (small here so both workers get work).")
@click.option("--n-workers", type=click.IntRange(min=1), default=2, show_default=True,
              help="Local Dask worker processes.")
@click.option("--device", type=click.Choice(["auto", "cpu", "gpu"]), default="auto", show_default=True)
@click.option("--serve/--no-serve", default=True, show_default=True, help="Serve the app when done.")
@click.option("--port", type=click.IntRange(1, 65535), default=5006, show_default=True)
@click.option("--address", default="127.0.0.1", show_default=True, help="Interface the app listens on.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def command(out, n_images, size, input_size, arch, epochs, train_budget, images_per_run, seed, partition_size,
            n_workers, device, serve, port, address, progress):
    """Generate a synthetic set, train, infer, embed, evaluate (on a local Dask cluster), then serve the app.

    Sized for a 2-core machine without a GPU: about 10-15 minutes the first time.
    """
    from workflows.cluster import quiet_dask_logs
    from workflows.pipeline import run_pipeline

    quiet_dask_logs()
    _check_splits(n_images, images_per_run, seed)

    t0 = time.perf_counter()
    click.echo(f"xsgpu demo -> {out}: {n_images} synthetic images at {size} px; {arch} at {input_size} px, "
               f"{epochs} epochs (budget {train_budget:.0f} s); infer; t-SNE; metrics; "
               f"{n_workers} Dask workers")
    result = run_pipeline(
        out, synth=n_images, size=size, seed=seed, images_per_run=images_per_run, train=True, arch=arch,
        input_size=input_size, epochs=epochs, train_options={"time_budget_s": train_budget},
        partition_size=partition_size, device=device, cluster="local",
        cluster_options={"n_workers": n_workers, "threads_per_worker": 1, "dashboard_address": ":0"},
        progress=progress, announce=click.echo)
    for name, rep in result.stages.items():
        click.echo(f"  {name:9s} {rep.status:8s} {rep.seconds:7.1f} s  ({rep.partitions_run} partitions run, "
                   f"{rep.partitions_skipped} kept)")
    train = result.stages.get("train")
    if train is not None and train.info.get("val_map") is not None:
        click.echo(f"  model: val mAP {train.info['val_map']:.3f} after {train.info.get('epochs_run', '?')} epochs")
    click.echo(f"pipeline done in {time.perf_counter() - t0:.0f} s (log {result.log_path})")
    if not serve:
        click.echo(f"next: xsgpu serve {out}")
        return
    from panel_app.server import serve as serve_app

    click.echo(f"serving the app at http://{address}:{port} (Ctrl-C stops)")
    serve_app(out, port=port, address=address)


def _check_splits(n_images: int, images_per_run: int, seed: int) -> None:
    """Refuse, before any work, a set whose experiments leave the 'train' or 'val' split empty."""
    from xsgpu.synth.runs import make_run_spec

    n_runs = -(-n_images // images_per_run)
    splits = {make_run_spec(k, seed=seed).split for k in range(n_runs)}
    missing = [s for s in ("train", "val") if s not in splits]
    if missing:
        fit = max(1, n_images // 30)
        raise click.BadParameter(
            f"--n {n_images} with --images-per-run {images_per_run} makes {n_runs} experiments and none of them "
            f"falls in the {' or '.join(repr(m) for m in missing)} split (the split is by experiment, 80/10/10). "
            f"Hint: use --images-per-run {fit} or fewer (30 experiments or more), or raise --n.",
            param_hint="--images-per-run")
