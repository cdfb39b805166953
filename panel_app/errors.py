"""What a browser may learn when something fails: the problem and the remedy, never a traceback or a path.

A run store that cannot be loaded (a truncated Parquet part, a stray file in ``corrections.parquet/``,
a missing artifact) and an exception in a session callback both end here:

* :func:`describe_failure` turns an exception into ``(problem, remedy)`` sentences for the page. Paths
  inside the run are written relative to it (``RUN/predictions.parquet/part-00001.parquet``); any
  other absolute path becomes ``<path>``. The remedy names the stage that rewrites the artifact.
* :func:`log_failure` writes the full traceback to the server log under a short incident id, which
  the page shows so that an operator can find the log record.
* :func:`make_session_exception_handler` gives Panel's ``config.exception_handler`` for served sessions: it
  logs the traceback and shows at most a scrubbed one-line notification, so that Bokeh never sends
  ``repr(exception)`` (with its absolute paths) over the websocket.
"""
from __future__ import annotations

import logging
import os
import re
import secrets
from pathlib import Path, PurePosixPath
from typing import Callable

__all__ = ["describe_failure", "log_failure", "make_session_exception_handler", "scrub_paths"]

log = logging.getLogger(__name__)

#: An absolute POSIX path (``/a/b``), a home-relative one (``~/a``) or a Windows one (``C:\\a``).
_ABS_PATH = re.compile(r"(?<![\w.:/<])(?:~|[A-Za-z]:\\|/)[^\s'\"`<>()\[\]{},;]*")
#: ``part-00001.parquet`` and friends: the partitions that a stage rerun rewrites.
_PART = re.compile(r"part-\d+\.parquet$")


def _run_prefixes(run_path: str | os.PathLike | None) -> list[str]:
    if run_path is None:
        return []
    given = os.fspath(run_path).rstrip("/") or "/"
    out = {given, os.path.abspath(given)}
    try:
        out.add(str(Path(given).resolve()))
    except OSError:  # pragma: no cover - resolve() failing on a broken mount
        pass
    return sorted((p for p in out if p not in ("", "/", ".")), key=len, reverse=True)


def scrub_paths(text: str, run_path: str | os.PathLike | None = None) -> str:
    """Replace the run's path by ``RUN`` and every other absolute path by ``<path>``.

    Parameters
    ----------
    text : str
        A message that may name files of the server.
    run_path : path, optional
        The run store, as given to the server (absolute or relative).

    Returns
    -------
    str
        The message with no absolute path left in it.

    Examples
    --------
    >>> scrub_paths("cannot open '/data/runs/r1/predictions.parquet/part-00001.parquet'", "/data/runs/r1")
    "cannot open 'RUN/predictions.parquet/part-00001.parquet'"
    >>> scrub_paths("see /etc/xsgpu.toml")
    'see <path>'
    """
    out = str(text)
    for prefix in _run_prefixes(run_path):
        out = re.sub(re.escape(prefix) + r"(?=$|[/\\\s'\"`:;,)\]])", "RUN", out)
    return _ABS_PATH.sub("<path>", out)


def _run_relative(exc: BaseException, run_path: str | os.PathLike | None) -> PurePosixPath | None:
    """The file inside the run that ``exc`` names (``predictions.parquet/part-00001.parquet``), if any."""
    names = [getattr(exc, "filename", None)] + re.findall(r"['\"]([^'\"]+)['\"]", str(exc))
    names += re.findall(r"(/[^\s'\"`<>()]+)", str(exc))
    for prefix in _run_prefixes(run_path):
        for name in names:
            if isinstance(name, (str, os.PathLike)):
                name = os.fspath(name)
                if name.startswith(prefix + "/"):
                    return PurePosixPath(name[len(prefix) + 1:])
    return None


def _remedy_for(rel: PurePosixPath | None, exc: BaseException) -> str:
    from panel_app.data import REQUIRED_ARTIFACTS

    if isinstance(exc, PermissionError):
        where = f"RUN/{rel}" if rel is not None else "the run store"
        return (f"The account that runs the server may not read or write {where}: fix the permissions (for "
                "example chmod g+rw, or run the server as the run's owner), then reload this page.")
    if rel is None:
        return ("Rerun the stage that wrote the damaged artifact (the server log names the file and holds "
                "the details), then reload this page.")
    top = rel.parts[0]
    artifact = top.split(".")[0]
    if artifact == "corrections":
        return ("Only the app writes files into RUN/corrections.parquet/. Move any file that it did not "
                f"write (here: RUN/{rel}) out of that folder, then reload this page.")
    cmd = REQUIRED_ARTIFACTS.get(artifact)
    if cmd is None:
        return f"Restore or remove RUN/{rel}, then reload this page. The server log holds the details."
    if _PART.search(rel.name):
        return (f"The partition file is damaged (truncated, or not written by xsgpu). Delete RUN/{rel} and "
                f"run `{cmd}` again (finished partitions are kept; only the missing one is rewritten), "
                "then reload this page.")
    return f"Rewrite it with `{cmd}` (add --overwrite where the stage asks for it), then reload this page."


def describe_failure(exc: BaseException, run_path: str | os.PathLike | None = None) -> tuple[str, str]:
    """The problem and the remedy, for a page, of an exception raised while loading or showing a run.

    Parameters
    ----------
    exc : BaseException
        What was raised.
    run_path : path, optional
        The run store being served; paths inside it are shown relative to it (``RUN/...``).

    Returns
    -------
    (str, str)
        ``problem`` (what failed, which file of the run) and ``remedy`` (what to run or move); neither
        holds a traceback or an absolute path.
    """
    from xsgpu.errors import StoreError

    rel = _run_relative(exc, run_path)
    detail = scrub_paths(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, run_path)
    if isinstance(exc, StoreError):
        problem = detail.split(" Hint:", 1)[0] if rel is not None else detail  # the remedy below says more
    elif rel is not None:
        problem = f"RUN/{rel} cannot be read: {detail}"
    else:
        problem = f"The run could not be loaded ({type(exc).__name__}: {detail})."
    if rel is None and isinstance(exc, StoreError) and "Hint:" in str(exc):
        remedy = scrub_paths(str(exc).split("Hint:", 1)[1].strip(), run_path) + " Then reload this page."
    else:  # a file of the run: name the stage that rewrites it
        remedy = _remedy_for(rel, exc)
    return problem, remedy


def log_failure(exc: BaseException, *, what: str, run_path: str | os.PathLike | None = None) -> str:
    """Log ``exc`` with its traceback under a new incident id; returns the id (shown on the page)."""
    incident = secrets.token_hex(4)
    log.error("[incident %s] %s (run %s): %s", incident, what, run_path, exc, exc_info=exc)
    return incident


def make_session_exception_handler(run_path: str | os.PathLike | None) -> Callable[[BaseException], None]:
    """Panel ``config.exception_handler`` for the sessions of one served run.

    The handler logs the exception in full under an incident id and shows the browser at most a
    scrubbed one-line notification (when the page has a notification area). Without it Panel re-raises
    and Bokeh sends ``repr(exc)``, absolute paths included, to the browser over the websocket.
    """
    def handler(exc: BaseException) -> None:
        import panel as pn

        incident = log_failure(exc, what="a session callback failed", run_path=run_path)
        notifications = getattr(pn.state, "notifications", None)
        if notifications is None:
            return
        problem, _ = describe_failure(exc, run_path)
        try:
            notifications.error(f"{problem} (incident {incident}; details in the server log)", duration=0)
        except Exception:  # noqa: BLE001 - a broken notification area must not hide the logged failure
            log.debug("could not show a notification for incident %s", incident, exc_info=True)

    return handler
