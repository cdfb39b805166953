"""``xsgpu import-outputs RUN --predictions FILE [--features FILE]``: outputs from elsewhere, as infer writes them."""
from __future__ import annotations

import click

__all__ = ["command"]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run", type=click.Path(file_okay=False, path_type=str))
@click.option("--predictions", type=click.Path(dir_okay=False, path_type=str), required=True,
              help="CSV or Parquet: a sample_id column, or a file column (source_uri/file/path/filename) + frame; "
                   "one column per attribute of the run (the paper's 17 by default; Ring, ring, p__ring or "
                   "logit__ring).")
@click.option("--kind", type=click.Choice(["probabilities", "logits"]), default="probabilities", show_default=True,
              help="What the attribute columns hold; logits get the sigmoid.")
@click.option("--features", type=click.Path(path_type=str), default=None,
              help="FEA as .npy, .zarr or .h5 (N x D); rows in sample-id order, or see --features-order.")
@click.option("--features-dataset", default=None, help="Array/dataset name inside a Zarr group or HDF5 file.")
@click.option("--features-order", type=click.Choice(["sample_id", "predictions"]), default="sample_id",
              show_default=True, help="Row order of the features (ignored when the file holds a sample_id array).")
@click.option("--model-id", default=None, help="Name stored as the predictions' model_id (default imported-<hash>).")
@click.option("--overwrite", is_flag=True, help="Replace predictions/features already in RUN.")
def command(run: str, predictions: str, kind: str, features: str | None, features_dataset: str | None,
            features_order: str, model_id: str | None, overwrite: bool) -> None:
    """Import predictions (and features) computed outside xsgpu into RUN.

    Writes RUN/predictions.parquet/ and RUN/features.zarr exactly as `xsgpu infer` does, so embed,
    evaluate and serve work unchanged. Every sample needs exactly one row; NaN/inf, probabilities
    outside [0, 1], unknown or repeated keys are refused with the rows named, before anything is written.

    \b
    Examples:
      xsgpu import-outputs runs/beamline --predictions keras/preds.csv --features keras/fea.npy
      xsgpu import-outputs runs/beamline --predictions out.parquet --kind logits \\
          --features out.h5 --features-dataset fea --model-id keras-v3 --overwrite
    """
    from xsgpu.io.import_outputs import import_outputs

    s = import_outputs(run, predictions=predictions, features=features, kind=kind, features_dataset=features_dataset,
                       features_order=features_order, model_id=model_id, overwrite=overwrite)
    fea = f" and {s['feature_dim']}-D features" if s["feature_dim"] else " (no features: embed needs --features)"
    click.echo(f"imported predictions for {s['n_samples']} samples{fea} as {s['model_id']}")
    click.echo(f"wrote {run.rstrip('/')}/predictions.parquet" + (" and features.zarr" if s["feature_dim"] else ""))
