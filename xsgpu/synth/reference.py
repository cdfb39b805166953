"""cms-dev, the reference set made by the original generator: where it is, its label file, its statistics.

``../shared/data/cms-dev`` (600 images in 30 runs of 20, written by the original CFN generator as
MATLAB ``.mat``, int32 TIFF and HDF5 stacks, with a ``labels.csv``) is what our generator is compared
with (docs/synth.md, "Transfer to the original generator's images"). Its ``labels.csv`` carries three
columns beside the file key, the frame and the 17 attributes (``run``, ``tags``, ``all_zero``):
``xsgpu ingest --labels`` keeps ``run`` and ``tags`` as metadata but refuses ``all_zero`` (0/1 values,
a likely misspelled attribute), and its keys are relative to the set's folder;
:func:`write_ingest_labels` writes a copy that ingest accepts from any folder.

Examples
--------
>>> from xsgpu.synth.reference import CMSDEV_COUNTS, CMSDEV_N
>>> CMSDEV_N, CMSDEV_COUNTS["ring"]
(600, 235)
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from xsgpu.attributes import NAMES, SLUGS

__all__ = ["CMSDEV_N", "CMSDEV_COUNTS", "CMSDEV_RUNS", "find_cmsdev", "run_directories", "write_ingest_labels"]

log = logging.getLogger(__name__)

CMSDEV_N = 600
CMSDEV_RUNS = 30
#: images carrying each attribute in cms-dev (its README, "Label statistics")
CMSDEV_COUNTS: dict[str, int] = {
    "bcc": 22, "beam_off": 220, "circular_beamstop": 100, "diffuse_high_q": 51, "diffuse_low_q": 70,
    "fcc": 17, "halo": 109, "high_background": 56, "higher_orders": 222, "linear_beamstop": 180,
    "many_rings": 138, "polycrystalline": 37, "ring": 235, "strong_scattering": 247,
    "structure_factor": 208, "weak_scattering": 58, "wedge_beamstop": 100,
}
_EXTRA_COLUMNS = ("run", "tags", "all_zero")


def find_cmsdev(path: str | os.PathLike | None = None) -> Path | None:
    """Locate the cms-dev folder: ``path``, else ``$XSGPU_CMSDEV``, else ``shared/data/cms-dev`` beside the checkout.

    Returns None when no candidate holds a ``labels.csv``.
    """
    candidates = [path] if path is not None else [os.environ.get("XSGPU_CMSDEV"),
                                                   Path(__file__).resolve().parents[3] / "shared/data/cms-dev"]
    for c in candidates:
        if c and (Path(c) / "labels.csv").is_file():
            return Path(c).resolve()
    return None


def run_directories(root: str | os.PathLike) -> list[Path]:
    """The run folders (``<run_id>_dev``) of cms-dev, sorted; the README, label file and contact sheet are left out."""
    dirs = sorted(p for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith("."))
    if not dirs:
        raise FileNotFoundError(f"{root} holds no run folders; expected the cms-dev layout <run_id>_dev/.")
    return dirs


def write_ingest_labels(root: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write cms-dev's labels as a file ``xsgpu ingest --labels`` accepts.

    Keeps the key (made absolute), ``frame`` and the 17 attributes; drops ``run``, ``tags`` and
    ``all_zero``.

    Parameters
    ----------
    root : path
        The cms-dev folder.
    out : path
        The CSV to write.

    Returns
    -------
    Path
        ``out``.
    """
    root = Path(root).resolve()
    table = pd.read_csv(root / "labels.csv")
    missing = [n for n in NAMES if n not in table.columns]
    if missing:
        raise ValueError(f"{root / 'labels.csv'} lacks the attribute columns {missing}.")
    table = table.drop(columns=[c for c in _EXTRA_COLUMNS if c in table.columns])
    table["file"] = [str(root / f) for f in table["file"]]
    out = Path(out)
    table[["file", "frame", *NAMES]].to_csv(out, index=False)
    log.info("Wrote %d cms-dev label rows (%d attributes) to %s", len(table), len(SLUGS), out)
    return out
