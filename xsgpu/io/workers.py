"""Worker processes that die with their parent: a parent-death watchdog for process pools.

``ProcessPoolExecutor`` workers block on a queue whose write end they hold themselves, so when the
parent is killed (``SIGKILL``, OOM killer) they never see end-of-file and keep running, or waiting,
for minutes. :func:`watch_parent`, passed as the pool's ``initializer``, starts a daemon thread in each
worker that polls the parent's pid and ends the worker (``os._exit``) once the parent is gone: an
unfinished partition is simply redone by the next run (partitions are atomic).

Examples
--------
>>> import os
>>> from concurrent.futures import ProcessPoolExecutor
>>> from xsgpu.io.workers import watch_parent
>>> pool = ProcessPoolExecutor(max_workers=2, initializer=watch_parent, initargs=(os.getpid(),))  # doctest: +SKIP
"""
from __future__ import annotations

import logging
import os
import threading
import time

__all__ = ["watch_parent", "POLL_SECONDS"]

log = logging.getLogger(__name__)

#: how often a worker checks that its parent is alive
POLL_SECONDS = 0.2


def _parent_gone(parent_pid: int) -> bool:
    return os.getppid() != parent_pid


def _watch(parent_pid: int, interval: float) -> None:
    while True:
        if _parent_gone(parent_pid):
            log.error("Worker %d: the parent process %d is gone; exiting.", os.getpid(), parent_pid)
            os._exit(1)
        time.sleep(interval)


def watch_parent(parent_pid: int, interval: float = POLL_SECONDS) -> None:
    """Pool initializer: exit this worker process soon after ``parent_pid`` stops being its parent.

    Parameters
    ----------
    parent_pid : int
        The pid of the process that created the pool (``os.getpid()`` there).
    interval : float
        Seconds between checks.
    """
    if _parent_gone(parent_pid):
        os._exit(1)
    threading.Thread(target=_watch, args=(parent_pid, interval), name="xsgpu-parent-watchdog",
                     daemon=True).start()
