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

Errors: any :class:`xsgpu.errors.XsgpuError` a command raises, an ``OSError`` of the environment
(permission denied, read-only file system, disk full, quota) and a ``ValueError``/``FileNotFoundError``/
``MemoryError``/``ImportError`` raised by xsgpu's own checks become one line on stderr
(``Error: <message>``) and exit status 2; ``-vv`` adds the traceback to the log. Any other exception
is a bug and keeps its traceback.
"""
from __future__ import annotations

import errno
import importlib
import logging
import os
from pathlib import Path
from types import TracebackType

import click

from xsgpu.errors import XsgpuError

__all__ = ["main", "COMMANDS", "CommandFailed", "describe_failure"]

log = logging.getLogger(__name__)

#: errno values that describe the environment (rights, space), not a bug: reported in one line
ENVIRONMENT_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT})
#: built-in types that xsgpu's own checks raise for bad input (one line when raised by our code)
_OWN_CHECK_TYPES = (ValueError, FileNotFoundError, MemoryError, ImportError)
_OWN_PACKAGES = tuple(str(Path(__file__).resolve().parents[1] / name) + os.sep
                      for name in ("xsgpu", "workflows", "panel_app"))


class CommandFailed(click.ClickException):
    """An expected failure of a subcommand: printed as ``Error: <message>``, exit status 2."""

    exit_code = 2


def _raised_by_us(tb: TracebackType | None) -> bool:
    """Whether the innermost frame of a traceback lies in xsgpu's own packages."""
    last = None
    while tb is not None:
        last, tb = tb, tb.tb_next
    return last is not None and os.path.realpath(last.tb_frame.f_code.co_filename).startswith(_OWN_PACKAGES)


def describe_failure(exc: BaseException) -> str | None:
    """The one-line message for an expected failure, or ``None`` for an unexpected one (a bug).

    Parameters
    ----------
    exc : BaseException
        What a subcommand raised.

    Returns
    -------
    str or None
        The message to print after ``Error:``; ``None`` means: let the traceback show.
    """
    if isinstance(exc, XsgpuError):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS:
        where = f"{exc.filename}: " if exc.filename else ""
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            hint = "Hint: free disk space (or raise the quota) and rerun; finished partitions are kept."
        else:
            hint = ("Hint: the run directory (or --out) must be writable by you: check its permissions, "
                    "or choose another directory.")
        return f"{where}{exc.strerror or exc}. {hint}"
    if isinstance(exc, _OWN_CHECK_TYPES) and _raised_by_us(exc.__traceback__):
        return str(exc)
    return None

#: subcommand name -> module defining ``command``
COMMANDS: dict[str, str] = {
    "synth": "workflows.commands.synth",
    "ingest": "workflows.commands.ingest",
    "train": "workflows.commands.train",
    "infer": "workflows.commands.infer",
    "embed": "workflows.commands.embed",
    "evaluate": "workflows.commands.evaluate",
    "app-cache": "workflows.commands.app_cache",
    "pipeline": "workflows.commands.pipeline",
    "serve": "workflows.commands.serve",
    "demo": "workflows.commands.demo",
    "export-labels": "workflows.commands.export_labels",
    "model": "workflows.commands.model",
    "import-outputs": "workflows.commands.import_outputs",
    "explain": "workflows.commands.explain",
}


class _LazyGroup(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except Exception as exc:
            message = describe_failure(exc)
            if message is None:
                raise
            log.debug("%s failed", ctx.invoked_subcommand, exc_info=True)
            raise CommandFailed(message) from exc

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

    An expected failure (a bad input, an incomplete or locked run, a read-only
    directory) prints one "Error: ..." line and exits with status 2; -vv also
    logs its traceback.
    """
    level = logging.WARNING - 10 * min(verbose, 2) if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


if __name__ == "__main__":  # pragma: no cover
    main()
