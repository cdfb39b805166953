"""A per-run log file, ``RUN/logs/pipeline-<UTC time>.log``, with greppable event lines.

Every pipeline invocation writes its own file, so a resumed run leaves the history of each attempt.
Besides ordinary log records (of ``xsgpu`` and ``workflows``), the pipeline writes *event* lines::

    2026-11-26T04:01:02Z EVENT partition_done stage=infer part=3 rows=32 seconds=0.81 worker=tcp://...

which :func:`read_events` parses back (the resume tests count partition writes this way).

Examples
--------
>>> import logging, tempfile
>>> from workflows.runlog import RunLog, read_events
>>> with RunLog(tempfile.mkdtemp(), name="demo") as rl:
...     rl.event("partition_done", stage="synth", part=0, rows=16)
>>> [(e["event"], e["stage"], e["part"]) for e in read_events(rl.path)]
[('partition_done', 'synth', '0')]
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
import re
import shlex
from pathlib import Path
from typing import Any, Iterable

__all__ = ["RunLog", "read_events", "list_logs"]

log = logging.getLogger(__name__)

_EVENT_RE = re.compile(r"^(?P<time>\S+) EVENT (?P<event>\S+)(?P<rest>.*)$")
_LOGGERS = ("xsgpu", "workflows")


class _UTCFormatter(logging.Formatter):
    converter = staticmethod(lambda *a: _dt.datetime.now(_dt.timezone.utc).timetuple())


class RunLog:
    """Context manager: open ``RUN/logs/<name>-<time>.log`` and route ``xsgpu``/``workflows`` logs there.

    Parameters
    ----------
    run_path : path
        The run directory; ``logs/`` is created in it.
    name : str
        File name prefix (``"pipeline"``).
    level : int
        Level of records written to the file (events are always written).
    """

    def __init__(self, run_path: str | os.PathLike, *, name: str = "pipeline", level: int = logging.INFO):
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        self.path = Path(run_path) / "logs" / f"{name}-{stamp}.log"
        self.level = level
        self._handler: logging.FileHandler | None = None
        self._old_levels: dict[str, int] = {}

    def __enter__(self) -> "RunLog":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(self.path, encoding="utf-8")
        handler.setLevel(self.level)
        handler.setFormatter(_UTCFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s",
                                           datefmt="%Y-%m-%dT%H:%M:%SZ"))
        for name in _LOGGERS:
            lg = logging.getLogger(name)
            self._old_levels[name] = lg.level
            if lg.getEffectiveLevel() > self.level:
                lg.setLevel(self.level)
            lg.addHandler(handler)
        self._handler = handler
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._handler is None:
            return
        for name in _LOGGERS:
            lg = logging.getLogger(name)
            lg.removeHandler(self._handler)
            lg.setLevel(self._old_levels.get(name, logging.NOTSET))
        self._handler.close()
        self._handler = None

    def event(self, event: str, **fields: Any) -> None:
        """Append one event line (flushed at once, so it survives a SIGKILL right after)."""
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", event):
            raise ValueError(f"The 'event' parameter of RunLog.event must be a word ([A-Za-z0-9_.-]+). "
                             f"Got {event!r} instead.")
        now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        parts = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in fields.items())
        line = f"{now} EVENT {event} {parts}".rstrip() + "\n"
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())


def read_events(paths: str | os.PathLike | Iterable[str | os.PathLike], *, event: str | None = None) -> list[dict]:
    """Parse the event lines of one or more log files.

    Returns
    -------
    list of dict
        One dict per event line: ``time``, ``event``, ``file`` and the line's ``key=value`` fields
        (values are strings).
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[dict] = []
    for p in paths:
        for line in Path(p).read_text(encoding="utf-8").splitlines():
            m = _EVENT_RE.match(line)
            if not m or (event is not None and m["event"] != event):
                continue
            rec: dict[str, Any] = {"time": m["time"], "event": m["event"], "file": str(p)}
            for tok in shlex.split(m["rest"]):
                k, _, v = tok.partition("=")
                rec[k] = v
            out.append(rec)
    return out


def list_logs(run_path: str | os.PathLike, *, name: str = "pipeline") -> list[Path]:
    """The run's log files of ``name``, oldest first."""
    d = Path(run_path) / "logs"
    return sorted(d.glob(f"{name}-*.log")) if d.is_dir() else []
