"""Per-stage locks on a run store: one writer per stage at a time.

Two ``xsgpu infer`` runs with different models on one run would otherwise both succeed and leave a
mix of their predictions. :func:`stage_lock` takes an exclusive, non-blocking ``fcntl.flock`` on
``RUN/locks/<stage>.lock`` for the duration of a stage; a second process asking for the same lock gets
:class:`~xsgpu.errors.StoreLocked` at once, naming the holder's pid, host and start time. The kernel
drops the lock when its holder exits, however it exits (kill -9 included), so a stale lock file never
blocks a rerun; the file itself stays and is rewritten by the next holder.

Examples
--------
>>> import tempfile
>>> from xsgpu.io.locks import stage_lock
>>> run = tempfile.mkdtemp()
>>> with stage_lock(run, "infer"):
...     pass
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import logging
import os
import re
import socket
from pathlib import Path
from typing import Iterator

from xsgpu.errors import StoreLocked

__all__ = ["stage_lock", "lock_path", "LOCKS_DIR"]

log = logging.getLogger(__name__)

#: directory of the lock files inside a run
LOCKS_DIR = "locks"
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


def lock_path(run_path: str | os.PathLike, stage: str) -> Path:
    """Path of the lock file of ``stage`` in the run directory ``run_path``."""
    if not _NAME_RE.match(stage):
        raise ValueError(f"The 'stage' parameter of stage_lock must match {_NAME_RE.pattern}. Got {stage!r} instead.")
    return Path(run_path) / LOCKS_DIR / f"{stage}.lock"


def _holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096).decode() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another process (pid unknown)"
    return f"pid {info.get('pid', '?')} on {info.get('host', '?')} (since {info.get('since', '?')})"


@contextlib.contextmanager
def stage_lock(run_path: str | os.PathLike, stage: str) -> Iterator[Path]:
    """Hold the exclusive lock of ``stage`` on a run for the duration of the block.

    Parameters
    ----------
    run_path : path
        The run directory.
    stage : str
        Stage name (``"infer"``, ``"corrections-compact"``, ...); one lock file per name.

    Yields
    ------
    Path
        The lock file, which records the holder (pid, host, start time) while the block runs.

    Raises
    ------
    StoreLocked
        If another process holds the lock; the message names it and the remedy.
    """
    import fcntl

    path = lock_path(run_path, stage)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise StoreLocked(
                f"{Path(run_path)}: stage {stage!r} is already running here, held by {_holder(fd)} "
                f"(lock file {path}). Hint: wait for it to finish, or stop that process; the lock is released "
                "when it exits.") from None
        since = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": since}).encode(), 0)
        log.debug("locked %s", path)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
