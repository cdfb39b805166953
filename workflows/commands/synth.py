"""``xsgpu synth``: write a synthetic run store (images, thumbnails, 17 labels)."""
from __future__ import annotations

import click

__all__ = ["command"]


@click.command("synth", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--n", "n", type=click.IntRange(min=1), required=True, help="Number of images.")
@click.option("--size", type=click.IntRange(8, 4096), default=256, show_default=True, help="Image size H = W.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Dataset seed.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Run store directory.")
@click.option("--partition-size", type=click.IntRange(min=1), default=4096, show_default=True,
              help="Images per partition (unit of resume and of parallel work).")
@click.option("--images-per-run", type=click.IntRange(min=1), default=200, show_default=True,
              help="Images per experimental run (shared geometry, beamstop, split).")
@click.option("--device", type=click.Choice(["auto", "cpu", "gpu"]), default="cpu", show_default=True,
              help="Array backend of the pixel work (gpu needs CuPy).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Parallel worker processes (CPU).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
def command(n, size, seed, out, partition_size, images_per_run, device, workers, progress):
    """Generate N synthetic SAXS images with their 17 labels into the run store OUT.

    A rerun with the same arguments resumes: finished partitions are skipped.

    \b
    Examples:
      xsgpu synth --n 2000 --size 256 --seed 0 --out runs/demo
      xsgpu synth --n 100000 --size 256 --out runs/big --partition-size 4096 --workers 2
      xsgpu synth --n 20000 --size 64 --seed 7 --out runs/small --no-progress
      xsgpu synth --n 1000000 --out runs/huge --device gpu
    """
    from xsgpu.io.runstore import RunStore
    from xsgpu.stages import SynthParams, get_stage, process_map, run_stage

    params = SynthParams(n=n, size=size, seed=seed, partition_size=partition_size, images_per_run=images_per_run,
                         device=device)
    run_stage(get_stage("synth"), out, params, map_fn=process_map(workers), progress=progress, skip_done=False)
    store = RunStore.open(out)
    info = store.manifest["stages"]["synth"]
    click.echo(f"synth: {store.n_samples} images ({info.get('generated', 0)} generated now, "
               f"{info.get('images_per_s') or '-'} img/s) in {store.path}")
