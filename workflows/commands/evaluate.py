"""``xsgpu evaluate RUN``: per-attribute metrics and the mAP of a run's predictions (writes metrics.parquet)."""
from __future__ import annotations

from pathlib import Path

import click

__all__ = ["command"]


def _cutoff(ctx: click.Context, param: click.Parameter, value: str):
    """A float, or comma-separated floats (one per attribute of the run, in its order; checked in the command)."""
    parts = [v for v in value.split(",") if v.strip()]
    try:
        nums = [float(v) for v in parts]
    except ValueError:
        raise click.BadParameter(f"must be a float in [0, 1] or one comma-separated float per attribute; "
                                 f"got {value!r}.") from None
    return nums[0] if len(nums) == 1 else nums


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run", type=click.Path(file_okay=False, path_type=str))
@click.option("--cutoff", default="0.5", show_default=True, callback=_cutoff,
              help="Predicted means p > CUTOFF. One float, or one comma-separated float per attribute of the run "
                   "(17 for the paper's vocabulary), in the run's order.")
@click.option("--suspicious/--no-suspicious", default=True, show_default=True,
              help="Also audit every labelled image's labels (model + FEA neighbours) into RUN/suspicious.parquet; "
                   "needs fea_reduced.npy from `xsgpu embed`.")
@click.option("--suspicious-top", type=click.IntRange(1), default=10_000, show_default=True,
              help="Most suspicious (image, attribute) pairs kept.")
def command(run: str, cutoff, suspicious: bool, suspicious_top: int) -> None:
    """Evaluate the predictions of RUN against its labels.

    Only labelled samples count (the output says how many of the run's images); a run without labels
    is recorded as n = 0. Writes RUN/metrics.parquet (long format: scope, attribute, metric,
    value) and prints a per-attribute table (AP, precision, recall, F1, support), the mAP, and the mAP
    of each split (train/val/test; the model was fitted on train, so test is the honest figure).
    Ratios with a zero denominator are 0; AP is NaN for an attribute without positives (left out of
    the mAP).

    If the run has been embedded (RUN/fea_reduced.npy), every labelled image's labels are also audited
    against the model and the image's 10 nearest FEA neighbours, and the most suspicious (image,
    attribute) pairs go to RUN/suspicious.parquet, which `xsgpu serve` lists (approximate neighbours
    above 50k images: 21 s for 100k and 298 s for 1M images on 2 cores).

    \b
    Examples:
      xsgpu evaluate runs/demo
      xsgpu evaluate runs/demo --cutoff 0.4
      python -c "import pandas as pd; print(pd.read_parquet('runs/demo/metrics.parquet'))"
    """
    from xsgpu.io.runstore import RunStore
    from xsgpu.metrics.evaluate import metrics_table, split_table
    from xsgpu.stages import EvaluateParams, get_stage, run_stage

    store = RunStore.open(run)  # a missing run is reported before the lock is taken
    if isinstance(cutoff, list) and len(cutoff) != len(store.vocabulary):
        raise click.BadParameter(f"must be one float or {len(store.vocabulary)} comma-separated floats (one per "
                                 f"attribute of {run}: {', '.join(store.vocabulary.names[:5])}...); got "
                                 f"{len(cutoff)} values.", param_hint="'--cutoff'")
    params = EvaluateParams(cutoff=cutoff, suspicious=suspicious, suspicious_top=suspicious_top)
    run_stage(get_stage("evaluate"), run, params, progress=False, skip_done=False)  # one evaluate per run at a time
    long = RunStore.open(run).metrics.read()
    meta = RunStore.open(run).metrics.metadata()
    n_all = int(meta.get("n_samples", 0))
    per, model = metrics_table(long, store.vocabulary)
    if int(model["n"]) == 0:
        click.echo(f"no labelled samples among the {n_all} images of {run}: nothing to evaluate (metrics.parquet "
                   "records n = 0). Label some images (ingest --labels) to get metrics; `xsgpu serve` shows the "
                   "predictions without ground truth.")
        return
    table = per[["ap", "precision", "recall", "f1", "support"]].copy()
    table["support"] = table["support"].astype(int)
    table.columns.name = None
    click.echo(table.to_string(float_format=lambda v: f"{v:.3f}", na_rep="n/a"))
    rest = n_all - int(model["n"])
    left = f" of {n_all} ({rest} unlabelled or unreadable, not evaluated)" if rest > 0 else ""
    click.echo(f"\nmAP {model['map']:.4f} over {int(model['n'])} labelled samples{left} "
               f"(micro F1 {model['f1_micro']:.4f}, macro F1 {model['f1_macro']:.4f}, "
               f"subset accuracy {model['subset_accuracy']:.4f})")
    for split, row in split_table(long).iterrows():
        click.echo(f"  {split:>5}: mAP {row['map']:.4f} over {int(row['n'])} labelled samples "
                   f"(micro F1 {row['f1_micro']:.4f})")
    wrote = [f"{run.rstrip('/')}/metrics.parquet"]
    if suspicious and (Path(run) / "suspicious.parquet").is_file():
        wrote.append(f"{run.rstrip('/')}/suspicious.parquet")
    click.echo("wrote " + ", ".join(wrote))
