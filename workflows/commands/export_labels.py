"""``xsgpu export-labels RUN [--out FILE]``: write the run's labels with the app's corrections applied."""
from __future__ import annotations

from pathlib import Path

import click
from xsgpu.io.schema import SAMPLES

__all__ = ["command"]


@click.command(name="export-labels")
@click.argument("run", type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Output file, .csv or .parquet [default: RUN/labels_corrected.csv].")
@click.option("--include-unlabelled", is_flag=True, default=False,
              help="Also write samples that were never labelled (and have no correction).")
@click.option("--compact", is_flag=True, default=False,
              help="First merge the correction files into one (faster reads once there are thousands).")
def command(run: Path, out: Path | None, include_unlabelled: bool, compact: bool) -> None:
    """Export the corrected label file of RUN.

    Reads samples.parquet (ACT) and corrections.parquet (the label fixes recorded in the app; the latest
    one per sample and attribute wins) and writes one row per sample: source_uri, frame, sample_id and the
    run's attributes (its vocabulary; the paper's 17 by default) by display name as 0/1 -- the format
    `xsgpu ingest --labels` reads (with `--vocabulary from-labels` for a run of other attributes).

    \b
    Examples:
      xsgpu export-labels runs/demo                          # -> runs/demo/labels_corrected.csv
      xsgpu export-labels runs/demo --out labels.parquet
      xsgpu export-labels runs/demo --compact                # also merge corrections.parquet parts
      xsgpu ingest /data/saxs --labels labels.csv --out runs/relabelled
    """
    from xsgpu.io.corrections import compact_corrections, export_labels, read_corrections
    from xsgpu.io.runstore import RunStore

    store = RunStore.open(run, require=[SAMPLES])
    target = out if out is not None else store.path / "labels_corrected.csv"
    if compact:
        merged = compact_corrections(store)
        click.echo(f"Merged {merged} correction files" if merged else "Nothing to merge")
    n_corr = len(read_corrections(store))
    table = export_labels(store, target, include_unlabelled=include_unlabelled)
    click.echo(f"Wrote {len(table)} labelled samples ({n_corr} corrections applied) to {target}")
