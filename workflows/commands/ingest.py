"""``xsgpu ingest PATHS... --out RUN``: detector files -> run store (a thin wrapper over xsgpu.io.ingest)."""
from __future__ import annotations

from pathlib import Path

import click

__all__ = ["command"]


@click.command(name="ingest")
@click.argument("paths", nargs=-1, required=True)
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run directory to create (or to resume an interrupted ingest in).")
@click.option("--labels", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="CSV or Parquet label file: a file key column, optional frame, the run's attributes as 0/1.")
@click.option("--vocabulary", "vocabulary", default="default", show_default=True, metavar="default|from-labels|FILE",
              help="The run's attributes: 'default' (the paper's 17; the label file must give all of them), "
                   "'from-labels' (every 0/1 or y__* column of --labels, in the file's order) or a FILE "
                   "(one name per line, or a JSON list of names or of {name, slug, colour}).")
@click.option("--size", type=click.IntRange(8, 4096), default=256, show_default=True,
              help="Side of the stored square images (images.zarr is float16 N x size x size).")
@click.option("--partition-size", type=click.IntRange(min=1), default=None,
              help="Samples per partition (unit of atomic writes and resume) [default: settings, 4096].")
@click.option("--h5-dataset", default=None,
              help="HDF5 dataset path (or MATLAB variable / .npz key) holding the frames, for every input "
                   "file [default: auto-detected per file].")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Threads scanning files and processes writing partitions in parallel.")
@click.option("--max-frame-pixels", type=click.IntRange(min=1), default=None,
              help="Largest frame (H x W pixels) a file's header may declare; larger ones are error rows, "
                   "refused before any read [default: settings, 67108864 = 8192 x 8192].")
@click.option("--max-frames-per-file", type=click.IntRange(min=1), default=None,
              help="Most frames one file may declare [default: settings, 100000].")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress bars.")
def command(paths: tuple[str, ...], out: Path, labels: Path | None, size: int, partition_size: int | None,
            h5_dataset: str | None, workers: int, max_frame_pixels: int | None, max_frames_per_file: int | None,
            progress: bool, vocabulary: str) -> None:
    """Ingest detector images (files, directories, globs) into the run store OUT.

    Reads TIFF (Pilatus), HDF5/NeXus (Eiger, bitshuffle-LZ4), EDF, CBF and the other fabio formats,
    .npy/.npz, MATLAB .mat (v5 and v7.3) and PNG/JPEG pictures (stored with quantitative=False).
    Multi-frame files give one sample per frame. Gaps (-1), bad pixels (-2) and NaN are masked.
    run_id is the name of each file's parent directory; the train/val/test split is by run.
    Unreadable inputs become rows of OUT/errors.parquet and the ingest goes on, as do files whose
    header declares frames above --max-frame-pixels or more than --max-frames-per-file frames
    (checked before any read). Rerunning the same command after an interruption resumes it.

    \b
    Examples:
      xsgpu ingest /data/saxs --out runs/beamtime                 # a directory, recursively
      xsgpu ingest '/data/2026-*/*.cbf' --labels labels.csv --out runs/labelled
      xsgpu ingest /data/bl12 --labels bl12.csv --vocabulary from-labels --out runs/bl12   # its own attributes
      xsgpu ingest /data/eiger/scan7_master.h5 --out runs/eiger      # frames of its data_0000NN files
      xsgpu ingest scans/*.nxs --h5-dataset entry/instrument/detector/data --size 224 --out runs/nexus
      xsgpu ingest synthetic/*.mat --labels 17tags.csv --partition-size 1024 --workers 8 --out runs/synthetic
    """
    from xsgpu.config import load_settings
    from xsgpu.io.runstore import RunStore
    from xsgpu.io.vocabulary import vocabulary_option
    from xsgpu.stages import IngestParams, get_stage, process_map, run_stage

    settings = load_settings(overrides={"partition_size": partition_size, "max_frame_pixels": max_frame_pixels,
                                        "max_frames_per_file": max_frames_per_file})
    vocab = vocabulary_option(vocabulary)
    params = IngestParams(paths=tuple(paths), labels=None if labels is None else str(labels), size=size,
                          partition_size=settings.partition_size, h5_dataset=h5_dataset,
                          max_frame_pixels=settings.max_frame_pixels, max_frames_per_file=settings.max_frames_per_file,
                          vocabulary=vocab, scan_workers=workers)
    run_stage(get_stage("ingest"), out, params, map_fn=process_map(workers), progress=progress, skip_done=False)
    store = RunStore.open(out)
    info = store.reload().manifest["stages"]["ingest"]
    click.echo(f"Ingested {info['n_samples']} samples ({info['n_valid']} readable, {info['n_labelled']} labelled) "
               f"from {info['n_files']} files into {store.path}; {info['n_error_rows']} error rows"
               + (f" in {store.errors.path}" if info["n_error_rows"] else "") + ".")
