"""The ``xsgpu`` console script: one click group, one lazily imported module per subcommand.

Examples
--------
::

    xsgpu synth --n 2000 --size 256 --seed 0 --out runs/demo
    xsgpu train runs/demo --arch resnet18 --size 64 --epochs 3 --out models/r18
    xsgpu infer runs/demo --model models/r18
    xsgpu embed runs/demo
    xsgpu evaluate runs/demo
    xsgpu serve runs/demo
"""
from __future__ import annotations

import importlib
import logging

import click

__all__ = ["main", "COMMANDS"]

#: subcommand name -> module defining ``command``
COMMANDS: dict[str, str] = {
    "synth": "workflows.commands.synth",
    "ingest": "workflows.commands.ingest",
    "train": "workflows.commands.train",
    "infer": "workflows.commands.infer",
    "embed": "workflows.commands.embed",
    "evaluate": "workflows.commands.evaluate",
    "pipeline": "workflows.commands.pipeline",
    "serve": "workflows.commands.serve",
    "demo": "workflows.commands.demo",
    "export-labels": "workflows.commands.export_labels",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if self._load(name) is not None]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return self._load(name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        module = COMMANDS.get(name)
        if module is None:
            return None
        try:
            return importlib.import_module(module).command
        except ModuleNotFoundError as exc:
            if exc.name == module:  # subcommand not built yet
                return None
            raise


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.version_option(package_name="xsgpu")
def main(verbose: int) -> None:
    """xsgpu: study a multi-attribute ResNet over millions of x-ray scattering images.

    \b
    A run store (one directory) flows through the stages:
      xsgpu synth --n 2000 --size 256 --seed 0 --out runs/demo   # or: xsgpu ingest DATA/ --out runs/demo
      xsgpu train runs/demo --arch resnet18 --size 64 --epochs 3 --out models/r18
      xsgpu infer runs/demo --model models/r18
      xsgpu embed runs/demo
      xsgpu evaluate runs/demo
      xsgpu serve runs/demo                                      # http://127.0.0.1:5006
    or all at once on a Dask cluster:
      xsgpu pipeline --synth 100000 --out runs/big --cluster local
    """
    level = logging.WARNING - 10 * min(verbose, 2) if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


if __name__ == "__main__":  # pragma: no cover
    main()
