"""Find the input files of an ingest: files, directories and globs, without loops or duplicates.

:func:`expand_inputs` turns the paths given to ``xsgpu ingest`` into an ordered list of files plus the
entries it skipped, each as an error row (so nothing is dropped silently):

* **Directories** are walked recursively without following symbolic links to directories; **globs**
  (``*``, ``?``, ``[...]``, ``**``) are matched by the same walk, so a link to ``.`` or two links to each
  other cannot repeat files or hang the expansion. A symbolic link to a directory found inside a walk
  or matched by a glob is an error row (``SymlinkedDirectoryError``): pass its target as an input to
  ingest it. A path given explicitly (a file, a directory, the literal part of a glob) is followed.
* A directory that cannot be listed is an error row (``UnreadableDirectoryError``).
* **One file is ingested once**: two paths reaching the same file (a symbolic or hard link, the same
  directory through two names) keep the first path; the others are error rows
  (``DuplicateInputError``) naming it. The same path given twice is simply listed once.
* A file name that is not valid UTF-8 (the run store, run ids and the app need text) is an error row
  (``UndecodableNameError``) whose ``source_uri`` is the name with the bad bytes escaped (``\\xe9``).
* Hidden files and directories (``.name``) are skipped, as are the ``exclude`` paths (the label file
  and the output run).

Examples
--------
>>> import os, tempfile
>>> from xsgpu.io.discovery import expand_inputs
>>> d = tempfile.mkdtemp()
>>> os.mkdir(os.path.join(d, "run1"))
>>> open(os.path.join(d, "run1", "a.tif"), "w").close()
>>> os.symlink(".", os.path.join(d, "run1", "loop"))
>>> found = expand_inputs([os.path.join(d, "**")])
>>> [os.path.basename(f) for f in found.files], [e["error_type"] for e in found.skipped]
(['a.tif'], ['SymlinkedDirectoryError'])
"""
from __future__ import annotations

import glob
import logging
import os
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Iterable

from xsgpu.errors import InputError

__all__ = ["Expansion", "expand_inputs", "display_path", "InputSkipped", "SymlinkedDirectoryError",
           "UnreadableDirectoryError", "DuplicateInputError", "UndecodableNameError"]

log = logging.getLogger(__name__)


class InputSkipped(InputError):
    """An entry found among the inputs that is not ingested; recorded as an error row."""


class SymlinkedDirectoryError(InputSkipped):
    """A symbolic link to a directory inside a walked directory or matched by a glob (not followed)."""


class UnreadableDirectoryError(InputSkipped):
    """A directory that cannot be listed (permissions, I/O error)."""


class DuplicateInputError(InputSkipped):
    """A second path to a file that is already an input (a link, or the same file by another name)."""


class UndecodableNameError(InputSkipped):
    """A path that is not valid UTF-8."""


@dataclass
class Expansion:
    """The result of :func:`expand_inputs`.

    Attributes
    ----------
    files : list of str
        Absolute paths of the input files, in a deterministic order, each file once.
    skipped : list of dict
        Error rows (``source_uri``, ``error_type``, ``message``, ``frame`` -1, ``sample_id`` -1) for the
        entries left out: symlinked or unreadable directories, duplicates, undecodable names.
    missing : list of str
        The given paths that neither exist nor match anything.
    """

    files: list[str] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def display_path(path: str) -> str:
    """``path`` as valid UTF-8 text: bytes that are not UTF-8 are shown escaped (``\\xe9``).

    Examples
    --------
    >>> display_path(os.fsdecode(b"/d/caf\\xe9.tif"))
    '/d/caf\\\\xe9.tif'
    """
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return os.fsencode(path).decode("utf-8", "backslashreplace")


def _row(path: str, exc: InputSkipped) -> dict[str, Any]:
    return {"source_uri": display_path(path), "error_type": type(exc).__name__, "message": str(exc),
            "frame": -1, "sample_id": -1}


def _hidden(name: str) -> bool:
    return name.startswith(".")


class _Collector:
    """Accumulates files and skipped entries across all input paths (dedupe by path and by file identity)."""

    def __init__(self, skip: set[str]) -> None:
        self.skip = skip
        self.out = Expansion()
        self._paths: set[str] = set()
        self._ids: dict[tuple[int, int], str] = {}
        self._reported: set[str] = set()

    def excluded(self, a: str) -> bool:
        return a in self.skip or any(a.startswith(s + os.sep) for s in self.skip)

    def skipped(self, path: str, exc: InputSkipped) -> None:
        a = os.path.abspath(path)
        if a in self._reported or self.excluded(a):
            return
        self._reported.add(a)
        log.info("%s", display_path(str(exc)))
        self.out.skipped.append(_row(a, exc))

    def symlinked_dir(self, path: str) -> None:
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        self.skipped(path, SymlinkedDirectoryError(
            f"{display_path(os.path.abspath(path))}: a symbolic link to a directory ({display_path(target)}); links "
            "inside walked directories and globs are not followed, so a loop cannot repeat or multiply files. "
            "Hint: pass the target directory itself as an input to ingest it."))

    def unreadable(self, err: OSError) -> None:
        path = err.filename or "?"
        self.skipped(path, UnreadableDirectoryError(
            f"{display_path(os.path.abspath(path))}: cannot list this directory ({err.strerror or err}); its files "
            "are not ingested. Hint: check its permissions (it needs r and x for this user)."))

    def add(self, path: str) -> None:
        a = os.path.abspath(path)
        if a in self._paths or self.excluded(a):
            return
        self._paths.add(a)
        try:
            a.encode("utf-8")
        except UnicodeEncodeError:
            self.skipped(a, UndecodableNameError(
                f"{display_path(a)}: the path is not valid UTF-8 (the bytes that are not are shown escaped); run ids, "
                "the run store and the app need text names. Hint: rename it to UTF-8, e.g. `convmv -f latin1 -t "
                "utf-8 --notest FILE`."))
            return
        try:
            st = os.stat(a)
            key = (st.st_dev, st.st_ino)
        except OSError:
            key = None  # a broken link or a vanished file: its scan gives the error row
        if key is not None:
            first = self._ids.get(key)
            if first is not None:
                self.skipped(a, DuplicateInputError(
                    f"{a}: the same file as {first} (a link, or the same file reached by another path); it is "
                    f"ingested once, as {first}."))
                return
            self._ids[key] = a
        self.out.files.append(a)

    def walk(self, directory: str) -> None:
        """Add every non-hidden file below ``directory`` (links to directories recorded, not followed)."""
        for root, dirs, files in os.walk(directory, onerror=self.unreadable):
            keep = []
            for d in sorted(dirs):
                full = os.path.join(root, d)
                if _hidden(d) or self.excluded(os.path.abspath(full)):
                    continue
                if os.path.islink(full):
                    self.symlinked_dir(full)
                    continue
                keep.append(d)
            dirs[:] = keep
            for f in sorted(files):
                if not _hidden(f):
                    self.add(os.path.join(root, f))


def _split_pattern(pattern: str) -> tuple[str, list[str]]:
    """(literal root directory, pattern components below it)."""
    parts = pattern.split(os.sep)
    k = 0
    while k < len(parts) and not glob.has_magic(parts[k]):
        k += 1
    root = os.sep.join(parts[:k])
    if pattern.startswith(os.sep) and not root:
        root = os.sep
    return (root or os.curdir), [p for p in parts[k:] if p != ""]


def _component_matches(name: str, pat: str) -> bool:
    if _hidden(name) and not _hidden(pat):
        return False
    return fnmatchcase(name, pat)


def _matches(comps: list[str], pats: list[str]) -> bool:
    """Whether the path components match the pattern components in full (``**``: zero or more)."""
    if not pats:
        return not comps
    if pats[0] == "**":
        return any(_matches(comps[i:], pats[1:]) for i in range(len(comps) + 1)
                   if all(not _hidden(c) for c in comps[:i]))
    return bool(comps) and _component_matches(comps[0], pats[0]) and _matches(comps[1:], pats[1:])


def _may_match_below(comps: list[str], pats: list[str]) -> bool:
    """Whether a path below the directory ``comps`` could still match ``pats``."""
    for i, c in enumerate(comps):
        if i >= len(pats):
            return False
        if pats[i] == "**":
            return True
        if not _component_matches(c, pats[i]):
            return False
    return len(comps) < len(pats)


def _glob(pattern: str, col: _Collector) -> bool:
    """Add the files a glob matches (a matched directory adds its whole tree). Returns whether any matched."""
    root, pats = _split_pattern(pattern)
    if not os.path.isdir(root):
        return False
    matched_any = False
    for cur, dirs, files in os.walk(root, onerror=col.unreadable):
        rel = os.path.relpath(cur, root)
        comps = [] if rel == os.curdir else rel.split(os.sep)
        keep = []
        for d in sorted(dirs):
            full = os.path.join(cur, d)
            sub = comps + [d]
            if col.excluded(os.path.abspath(full)):
                continue
            if _matches(sub, pats):
                matched_any = True
                if os.path.islink(full):
                    col.symlinked_dir(full)
                else:
                    col.walk(full)
                continue
            if not _may_match_below(sub, pats):
                continue
            if os.path.islink(full):
                col.symlinked_dir(full)
                continue
            keep.append(d)
        dirs[:] = keep
        for f in sorted(files):
            if _matches(comps + [f], pats):
                matched_any = True
                col.add(os.path.join(cur, f))
    return matched_any


def expand_inputs(paths: Iterable[str | os.PathLike], *, exclude: Iterable[str | os.PathLike] = ()) -> Expansion:
    """Expand files, directories and globs into input files and skipped-entry error rows.

    Parameters
    ----------
    paths : iterable of path
        Files, directories (walked recursively) and glob patterns (``*``, ``?``, ``[...]``, ``**``).
    exclude : iterable of path
        Files or directories to leave out (the label file, the output run).

    Returns
    -------
    Expansion
        ``files`` (absolute, ordered, each file once), ``skipped`` (error rows) and ``missing`` (given
        paths that match nothing); raising on ``missing`` is the caller's choice.
    """
    col = _Collector({os.path.abspath(os.fspath(e)) for e in exclude})
    missing = col.out.missing
    for p in (os.fspath(x) for x in paths):
        if os.path.isdir(p):
            col.walk(p)
        elif os.path.lexists(p):
            col.add(p)
        elif glob.has_magic(p):
            if not _glob(p, col):
                missing.append(p)
        else:
            missing.append(p)
    return col.out
