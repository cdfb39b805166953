"""``xsgpu model inspect MODEL``: what a model file holds and what its spec must still say."""
from __future__ import annotations

import json

import click

__all__ = ["command"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def command() -> None:
    """Work with models: xsgpu checkpoints and models trained elsewhere (ONNX, TorchScript, state dicts)."""


@command.command("inspect")
@click.argument("model", type=click.Path(exists=True, path_type=str))
@click.option("--spec", "spec", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Check this spec against the model (default: MODEL_STEM.spec.toml/.json beside it, if any).")
@click.option("--probe-size", type=click.IntRange(min=8), default=224, show_default=True,
              help="Input side used to run a TorchScript model once to see its outputs (the spec's size if given).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def inspect(model: str, spec: str | None, probe_size: int, as_json: bool) -> None:
    """Print MODEL's format, inputs and outputs with shapes, the tensors or layers that could give FEA,
    what the file tells about the spec (input size and channels, architecture, number of outputs) and
    the spec keys only you can give. With a spec (--spec, or found beside MODEL), also load the model
    through it and say whether they fit.

    \b
    Examples:
      xsgpu model inspect exported/r18.onnx
      xsgpu model inspect exported/r50.safetensors --spec exported/r50.spec.toml
      xsgpu model inspect exported/r18_ts.pt --probe-size 256 --json
    """
    from xsgpu.model.foreign import format_report, inspect_model

    report = inspect_model(model, spec=spec, probe_size=probe_size)
    click.echo(json.dumps(report, default=str) if as_json else format_report(report))
