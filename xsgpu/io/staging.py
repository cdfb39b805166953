"""Replace artifacts of a run without losing the old ones first: write beside them, then swap.

``xsgpu infer --overwrite`` used to delete the old predictions and features before writing new ones,
so a kill or a permission error part-way left a run with 1 of 10 partitions. With a
:class:`Staging` area the new outputs are written into ``RUN/.staging/<key>/``, a view of the run
(its manifest copied, its other artifacts linked) that the stage functions write into as if it were
the run. Only when every partition is finished does :meth:`Staging.commit` swap them in:

1. write ``COMMIT`` (the list of artifacts) into the staging directory, atomically;
2. move the old artifacts aside, the *finished marker* first (the first name, e.g. ``predictions``,
   whose parts say "this partition is done"), then move the new ones in, the marker last;
3. delete the staging directory with the old artifacts.

Every state a kill can leave is consistent: before ``COMMIT`` the old outputs are untouched (and a
rerun with the same writer token resumes the staging area's finished partitions); after it the run
holds either the old marker, no marker, or the new outputs, never old and new mixed, and
:func:`recover` (called by the next run of the stage) finishes the swap.

Examples
--------
>>> import pandas as pd, tempfile
>>> from xsgpu.io.runstore import RunStore
>>> store = RunStore.create(tempfile.mkdtemp() + "/run", n_samples=2, partition_size=2)
>>> from xsgpu.io.schema import METRICS
>>> def metrics(v):
...     return pd.DataFrame({"scope": ["model"], "attribute": [""], "metric": ["map"], "value": [v]})
>>> store.metrics.write(metrics(0.1))
>>> staging = Staging.begin(store, [METRICS], key="evaluate", token="v2")
>>> staging.store.metrics.write(metrics(0.2))
>>> store.metrics.read()["value"].tolist()  # the old table stays until the commit
[0.1]
>>> staging.commit()
>>> store.metrics.read()["value"].tolist()
[0.2]
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Sequence

from xsgpu.io.atomic import write_json_atomic
from xsgpu.io import schema
from xsgpu.io.runstore import RunStore

__all__ = ["Staging", "recover", "STAGING_DIR"]

log = logging.getLogger(__name__)

#: directory of the staging areas inside a run
STAGING_DIR = ".staging"
_INFO = "STAGING.json"
_COMMIT = "COMMIT"
_OLD = "old"
_NOT_LINKED = {"manifest.json", STAGING_DIR, "locks"}


def _entry(name: "str | schema.Artifact") -> str:
    """File or directory name of artifact ``name`` inside a run (from the store schema)."""
    return schema.lookup(name).entry


class Staging:
    """A staging area ``RUN/.staging/<key>/`` for new versions of some artifacts of a run.

    Use :meth:`begin` to create (or resume) one, write through :attr:`store`, then :meth:`commit`.

    Parameters
    ----------
    run : RunStore
        The run whose artifacts are replaced.
    names : sequence of str or Artifact
        The artifacts replaced, the finished marker first (e.g. ``["predictions", "features"]``).
    key : str
        Name of the staging area (one per stage).
    """

    def __init__(self, run: RunStore, names: Sequence[str], *, key: str):
        self.run = run
        self.names = [schema.lookup(n).name for n in names]
        self.key = key
        self.path = run.path / STAGING_DIR / key

    @classmethod
    def begin(cls, run: RunStore, names: Sequence[str], *, key: str, token: str) -> "Staging":
        """Create the staging area, or resume the one left by a writer with the same ``token``.

        Parameters
        ----------
        token : str
            Identifies what is written (e.g. the model's weights hash): a staging area left by another
            token is discarded, one with the same token keeps its finished partitions.
        """
        staging = cls(run, names, key=key)
        info_path = staging.path / _INFO
        if staging.path.exists():
            try:
                info = json.loads(info_path.read_text())
            except (OSError, ValueError):
                info = {}
            if info.get("token") == token and info.get("names") == staging.names:
                log.info("resuming the staging area %s", staging.path)
                staging._link()
                return staging
            log.info("discarding the staging area %s (left by another writer)", staging.path)
            shutil.rmtree(staging.path)
        staging.path.mkdir(parents=True)
        shutil.copy2(run.manifest_path, staging.path / "manifest.json")
        staging._link()
        write_json_atomic(info_path, {"token": token, "names": staging.names})
        return staging

    def _link(self) -> None:
        """Link every other artifact of the run into the staging area (relative links)."""
        own = {_entry(n) for n in self.names}
        for entry in os.listdir(self.run.path):
            if entry in own or entry in _NOT_LINKED or entry.startswith("."):
                continue
            link = self.path / entry
            if not os.path.lexists(link):
                os.symlink(os.path.join("..", "..", entry), link)

    @property
    def store(self) -> RunStore:
        """The staging area as a run store (write the new artifacts through it)."""
        return RunStore.open(self.path)

    def commit(self) -> None:
        """Swap the staged artifacts into the run (see the module docstring) and delete the staging area."""
        write_json_atomic(self.path / _COMMIT, {"names": self.names})
        _swap(self.run.path, self.path, self.names)

    def discard(self) -> None:
        """Delete the staging area and what was written into it; the run is left as it was."""
        shutil.rmtree(self.path, ignore_errors=True)
        try:
            self.path.parent.rmdir()
        except OSError:
            pass


def _swap(run_path: Path, staging_path: Path, names: Sequence[str]) -> None:
    old = staging_path / _OLD
    old.mkdir(exist_ok=True)
    for name in names:  # the finished marker leaves first
        target, staged = run_path / _entry(name), staging_path / _entry(name)
        if os.path.lexists(staged) and os.path.lexists(target) and not os.path.lexists(old / _entry(name)):
            os.rename(target, old / _entry(name))
    for name in reversed(names):  # ... and comes back last
        target, staged = run_path / _entry(name), staging_path / _entry(name)
        if os.path.lexists(staged):
            if os.path.lexists(target):  # an old copy left by an interrupted swap
                shutil.rmtree(target) if target.is_dir() and not target.is_symlink() else target.unlink()
            os.rename(staged, target)
    shutil.rmtree(staging_path)
    try:
        staging_path.parent.rmdir()  # RUN/.staging, when no other stage stages anything
    except OSError:
        pass
    log.info("swapped %s into %s", ", ".join(names), run_path)


def recover(run: RunStore) -> list[str]:
    """Finish the swaps of staging areas that were committed but interrupted; return their keys.

    Staging areas without ``COMMIT`` are left alone (a later :meth:`Staging.begin` resumes or discards them).
    """
    root = run.path / STAGING_DIR
    done = []
    if not root.is_dir():
        return done
    for key in sorted(os.listdir(root)):
        commit = root / key / _COMMIT
        if commit.is_file():
            names = json.loads(commit.read_text())["names"]
            log.warning("%s: finishing the interrupted swap of %s", run.path, ", ".join(names))
            _swap(run.path, root / key, names)
            done.append(key)
    return done
