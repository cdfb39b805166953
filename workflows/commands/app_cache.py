"""``xsgpu app-cache RUN``: write the arrays ``xsgpu serve`` memory-maps at start (RUN/app_cache/)."""
from __future__ import annotations

from pathlib import Path

import click

__all__ = ["command"]


@click.command(name="app-cache")
@click.argument("run", type=click.Path(file_okay=False, path_type=Path))
def command(run: Path) -> None:
    """Write the app's start-up arrays of RUN (after `xsgpu embed`; the pipeline and `xsgpu embed` do it).

    Labels, probabilities and coordinates as memory-mappable arrays, each space's spatial index (points
    sorted by x) and the per-attribute probability order, each with a key of its sources' file sizes and
    mtimes. `xsgpu serve` then parses and sorts nothing at start (at 10M images: seconds instead of
    minutes). What is already up to date is kept; a rerun stage (or a copy that changed the files' mtimes)
    makes its arrays stale, and they are rebuilt.

    \b
    Example:
      xsgpu app-cache runs/demo
    """
    from xsgpu.stages import AppCacheParams, get_stage, run_stage

    report = run_stage(get_stage("app_cache"), run, AppCacheParams())
    if report.status == "skipped":
        click.echo(f"The app cache of {run} is up to date.")
    else:
        click.echo(f"Wrote the app cache of {run} in {report.seconds:.1f} s.")
