"""``xsgpu pipeline``: synth | ingest -> (train) -> infer -> embed -> evaluate on a Dask cluster."""
from __future__ import annotations

import click

from workflows.cluster import CLUSTER_KINDS, JobQueueOptions

__all__ = ["command"]


_EPILOG = """\b
Examples:
  # 100k synthetic 256 px images, train ResNet-18 at 64 px, everything on this machine
  xsgpu pipeline --synth 100000 --out runs/big --train --epochs 3
\b
  # ingest detector files, infer with an existing model, 2 worker processes
  xsgpu pipeline --ingest data/beamline1 data/extra.h5 --labels labels.csv \\
      --out runs/bl1 --model models/r18 --n-workers 2
\b
  # one worker per GPU on this node (needs the [gpu] extra)
  xsgpu pipeline --synth 1000000 --out runs/1m --model models/r50 --cluster local-cuda
\b
  # SLURM: 4 GPU jobs of 16 cores (needs the [hpc] extra); see docs/workflows.md
  xsgpu pipeline --synth 1000000 --out /scratch/runs/1m --model models/r50 --cluster slurm \\
      --queue gpu --account m1234 --walltime 02:00:00 --cores 16 --memory 64GB --jobs 4 \\
      --job-extra=--gres=gpu:1 --prologue "module load cuda"
\b
  # an existing scheduler (dask scheduler --scheduler-file sched.json)
  xsgpu pipeline --out runs/big --model models/r18 --scheduler-file sched.json
\b
Rerunning the same command resumes: finished partitions, the trained model, the embedding and
the metrics are kept. Every invocation writes RUN/logs/pipeline-<time>.log.
"""


@click.command("pipeline", epilog=_EPILOG, context_settings={"max_content_width": 110})
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
@click.option("--synth", "n_synth", type=click.IntRange(min=1), help="Generate N synthetic images.")
@click.option("--ingest", is_flag=True, help="Ingest the PATHS (files or directories) instead.")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False), help="Label table for --ingest.")
@click.option("--vocabulary", default="default", show_default=True, metavar="default|from-labels|FILE",
              help="The run's attributes for --ingest, as `xsgpu ingest --vocabulary`: the paper's 17, the "
                   "label table's 0/1 columns, or a file of names (one per line, or a JSON list).")
@click.option("--h5-dataset", help="HDF5 dataset path for --ingest (default: auto-detect).")
@click.option("--size", type=click.IntRange(min=8), default=256, show_default=True,
              help="Image size of the run store (synth or ingest), pixels.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of synth and t-SNE.")
@click.option("--images-per-run", type=click.IntRange(min=1), default=200, show_default=True,
              help="Synthetic images per experimental run (the train/val/test split is by run).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="The run directory.")
@click.option("--train", is_flag=True, help="Train a model first (into --model, default RUN/model).")
@click.option("--model", type=click.Path(), help="Model checkpoint directory, or a model file from elsewhere "
              "(ONNX, TorchScript, state dict) with its spec (docs/own_model.md).")
@click.option("--spec", type=click.Path(dir_okay=False), default=None,
              help="Model spec of a model file (default: MODEL_STEM.spec.toml/.json beside it).")
@click.option("--arch", default="resnet18", show_default=True, help="Architecture for --train.")
@click.option("--input-size", "--train-size", "input_size", type=click.IntRange(min=8), default=64,
              show_default=True, help="Model input size for --train, pixels.")
@click.option("--epochs", type=click.IntRange(min=1), default=3, show_default=True, help="Epochs for --train.")
@click.option("--overwrite", is_flag=True,
              help="Replace the run's predictions and features (e.g. another model's); the old ones stay until the "
                   "new ones are complete.")
@click.option("--skip-embed", is_flag=True, help="Stop before the t-SNE embedding.")
@click.option("--skip-evaluate", is_flag=True, help="Do not compute the metrics.")
@click.option("--embed-method", default="tsne", show_default=True, help="Projector of the embed stage.")
@click.option("--embed-fit-sample", type=click.IntRange(min=25), default=None,
              help="Fit each t-SNE map on a stratified sample of this many images and place the rest on "
                   "the workers (maps of 1M+ images without a GPU; 100000 is a good start).")
@click.option("--cutoff", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Probability cutoff of the evaluation.")
@click.option("--device", type=click.Choice(["auto", "cpu", "gpu"]), default="auto", show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), help="Inference batch size.")
@click.option("--partition-size", type=click.IntRange(min=1), default=4096, show_default=True,
              help="Images per partition (= per task); 1k-10k for real runs.")
@click.option("--retries", type=click.IntRange(min=0), default=2, show_default=True,
              help="Retries of a failing partition task.")
@click.option("--cluster", type=click.Choice([k for k in CLUSTER_KINDS if k != "address"]), default="local",
              show_default=True, help="Which Dask cluster to start.")
@click.option("--scheduler-address", help="Use a running scheduler (tcp://host:8786).")
@click.option("--scheduler-file", type=click.Path(dir_okay=False), help="Use a running scheduler's file.")
@click.option("--n-workers", type=click.IntRange(min=1), help="Local worker processes (default: one per core/GPU).")
@click.option("--threads-per-worker", type=click.IntRange(min=1), help="Threads per local worker (default 1).")
@click.option("--memory-limit", default="auto", show_default=True, help="Memory limit per local worker.")
@click.option("--dashboard-address", default=":8787", show_default=True,
              help="Dashboard of a started scheduler (':0' = any free port).")
@click.option("--queue", help="SLURM partition / PBS queue.")
@click.option("--account", help="SLURM/PBS account.")
@click.option("--walltime", default="01:00:00", show_default=True, help="SLURM/PBS job wall time.")
@click.option("--cores", type=click.IntRange(min=1), default=8, show_default=True, help="Cores per SLURM/PBS job.")
@click.option("--memory", default="32GB", show_default=True, help="Memory per SLURM/PBS job.")
@click.option("--processes", type=click.IntRange(min=1), default=1, show_default=True,
              help="Dask workers per SLURM/PBS job.")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True, help="SLURM/PBS jobs to submit.")
@click.option("--job-extra", multiple=True, help="Extra #SBATCH/#PBS directive (repeatable).")
@click.option("--prologue", multiple=True, help="Shell line run before each worker (repeatable).")
@click.option("--max-frame-pixels", type=click.IntRange(min=1), default=None,
              help="Ingest: refuse frames declaring more pixels than this (checked from the header; "
                   "default: the max_frame_pixels setting).")
@click.option("--max-frames-per-file", type=click.IntRange(min=1), default=None,
              help="Ingest: refuse files declaring more frames than this (default: the setting).")
@click.option("--progress/--no-progress", default=True, show_default=True)
def command(paths, n_synth, ingest, labels, vocabulary, h5_dataset, size, seed, images_per_run, out, train, model, spec, arch,
            input_size, epochs, overwrite, skip_embed, skip_evaluate, embed_method, embed_fit_sample, cutoff, device, batch_size,
            partition_size, retries, cluster, scheduler_address, scheduler_file, n_workers, threads_per_worker,
            memory_limit, dashboard_address, queue, account, walltime, cores, memory, processes, jobs,
            job_extra, prologue, max_frame_pixels, max_frames_per_file, progress):
    """Run the whole pipeline into the run store OUT on a Dask cluster (resumable).

    Source: --synth N, or --ingest PATHS...; with neither, OUT must already hold samples.
    Model: --train (optionally --model DIR as the output) or --model DIR.
    """
    from workflows.cluster import quiet_dask_logs
    from workflows.pipeline import run_pipeline
    from xsgpu.config import load_settings
    from xsgpu.io.vocabulary import vocabulary_option

    quiet_dask_logs()

    settings = load_settings(overrides={"max_frame_pixels": max_frame_pixels,
                                        "max_frames_per_file": max_frames_per_file})
    if ingest and not paths:
        raise click.UsageError("--ingest needs one or more PATHS (files or directories).")
    if paths and not ingest:
        raise click.UsageError(f"Got PATHS {list(paths)[:3]} without --ingest; add --ingest to ingest them.")
    if n_synth is not None and ingest:
        raise click.UsageError("Pass --synth N or --ingest PATHS, not both.")
    cluster_options: dict = {"dashboard_address": dashboard_address}
    if scheduler_address or scheduler_file:
        cluster = "address"
        cluster_options = {"scheduler_address": scheduler_address, "scheduler_file": scheduler_file}
    elif cluster in ("local", "local-cuda"):
        cluster_options.update(n_workers=n_workers, threads_per_worker=threads_per_worker,
                               memory_limit=memory_limit)
    else:
        cluster_options["jobqueue"] = JobQueueOptions(
            queue=queue, account=account, walltime=walltime, cores=cores, memory=memory, processes=processes,
            jobs=jobs, job_extra_directives=tuple(job_extra), job_script_prologue=tuple(prologue))
    result = run_pipeline(
        out, synth=n_synth, size=size, seed=seed, images_per_run=images_per_run,
        ingest=list(paths) if ingest else None, labels=labels, h5_dataset=h5_dataset,
        vocabulary=vocabulary_option(vocabulary),
        train=train, model=model, spec=spec, arch=arch, input_size=input_size, epochs=epochs, overwrite=overwrite,
        max_frame_pixels=settings.max_frame_pixels, max_frames_per_file=settings.max_frames_per_file,
        embed=not skip_embed, embed_method=embed_method, embed_fit_sample=embed_fit_sample, evaluate=not skip_evaluate, cutoff=cutoff,
        partition_size=partition_size, batch_size=batch_size, device=device,
        cluster=cluster, cluster_options=cluster_options, retries=retries, progress=progress,
        announce=click.echo)
    for name, rep in result.stages.items():
        rate = f"{rep.rows_per_second:,.0f} rows/s" if rep.rows and rep.seconds else ""
        click.echo(f"{name:9s} {rep.status:8s} {rep.seconds:8.1f} s  parts run {rep.partitions_run:4d} "
                   f"skipped {rep.partitions_skipped:4d}  {rate}")
    click.echo(f"done in {result.seconds:.1f} s: {result.run_path} (log {result.log_path})")
