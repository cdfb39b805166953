"""What the server promises a hostile or unlucky user (docs/security.md, "The server" section).

Damaged run stores give a page with the problem and the remedy, never a traceback or a local path.
"""
from __future__ import annotations

import concurrent.futures
import logging
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from panel_app.errors import describe_failure, make_session_exception_handler, scrub_paths

from .conftest import _server_log, start_server, stop_server


def _damage(run: Path, how: str) -> Path:
    """Break a copy of the test run as a user's disk would: a truncated part, or a stray file."""
    if how == "truncated-part":
        f = run / "predictions.parquet" / "part-00001.parquet"
        f.write_bytes(f.read_bytes()[:300])
    elif how == "stray-correction":
        (run / "corrections.parquet").mkdir(exist_ok=True)
        (run / "corrections.parquet" / "notes.parquet").write_text("my notes, not a Parquet file")
    else:  # pragma: no cover - test helper misuse
        raise ValueError(how)
    return run


def _leaks(text: str, run: Path) -> list[str]:
    """Traceback markers and local paths of the run found in ``text``."""
    found = [m for m in ("Traceback", 'File "', "site-packages") if m in text]
    found += [p for p in {str(run), str(run.resolve()), str(run.parent)} if p in text]
    return found


@pytest.fixture(params=["truncated-part", "stray-correction"])
def damaged_run(request, app_run, tmp_path) -> tuple[Path, str]:
    run = tmp_path / "damaged"
    shutil.copytree(app_run, run)
    return _damage(run, request.param), request.param


REMEDY = {"truncated-part": ("RUN/predictions.parquet/part-00001.parquet", "xsgpu infer RUN"),
          "stray-correction": ("RUN/corrections.parquet/notes.parquet", "Move any file")}


def test_scrub_paths_leaves_no_absolute_path():
    assert scrub_paths("cannot open '/data/r1/predictions.parquet/part-00001.parquet'", "/data/r1") == \
        "cannot open 'RUN/predictions.parquet/part-00001.parquet'"
    assert scrub_paths("see /etc/xsgpu.toml and C:\\runs\\x and ~/secret", None) == "see <path> and <path> and <path>"
    assert scrub_paths("/data/r10/x", "/data/r1") == "<path>"  # a sibling run is not this run
    assert scrub_paths("ratio 1/2 at http://x.org/a", None) == "ratio 1/2 at http://x.org/a"


def test_damaged_run_page_names_problem_and_remedy_without_paths(damaged_run, caplog):
    from panel_app.app import build_app

    run, how = damaged_run
    with caplog.at_level(logging.ERROR, logger="panel_app.errors"):
        page = build_app(run)
    html = page.object
    assert "cannot show this run yet" in html
    where, remedy = REMEDY[how]
    assert where in html and remedy in html
    assert _leaks(html, run) == []
    # the details (the traceback and the real path) are in the server log, under the incident id shown
    (rec,) = [r for r in caplog.records if r.exc_info]
    incident = rec.getMessage().split("]")[0].removeprefix("[incident ")
    assert f"incident <code>{incident}</code>" in html and str(run) in rec.getMessage()


def test_describe_failure_of_store_errors_keeps_the_hint(tmp_path):
    from xsgpu.io.runstore import RunStore, RunStoreError

    with pytest.raises(RunStoreError) as info:
        RunStore.open(tmp_path / "nowhere")
    problem, remedy = describe_failure(info.value, tmp_path / "nowhere")
    assert str(tmp_path) not in problem + remedy and "RUN" in problem
    assert "xsgpu synth" in remedy and remedy.endswith("reload this page.")


def test_session_callback_errors_are_logged_not_sent(tmp_path, caplog):
    handler = make_session_exception_handler(tmp_path)
    exc = OSError(f"[Errno 13] Permission denied: '{tmp_path}/corrections.parquet/x.parquet'")
    with caplog.at_level(logging.ERROR, logger="panel_app.errors"):
        handler(exc)  # Panel's default handler re-raises, and Bokeh sends repr(exc) over the websocket
    (rec,) = caplog.records
    assert rec.exc_info[1] is exc and "session callback failed" in rec.getMessage()


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def _session_texts(url: str) -> str:
    """Every string property of the session's Bokeh models, as the websocket delivers them."""
    import panel  # noqa: F401 - registers Panel's model types for the client-side document
    from bokeh.client import pull_session

    def pull() -> str:
        session = pull_session(url=url)
        try:
            return " ".join(str(v) for m in session.document.models for v in m.properties_with_values().values()
                            if isinstance(v, str))
        finally:
            session.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # Playwright may hold an event loop in this one
        return pool.submit(pull).result(timeout=180)


@pytest.mark.slow
def test_served_damaged_run_shows_remedy_not_traceback(app_run, tmp_path):
    run = _damage(shutil.copytree(app_run, tmp_path / "served-damaged"), "truncated-part")
    proc, url = start_server(run)  # with warm-up: a failed warm-up must not stop the server
    try:
        status, body = _get(url)
        assert status == 200 and _leaks(body, run) == []
        texts = _session_texts(url)
        assert "cannot show this run yet" in texts and "xsgpu infer RUN" in texts
        assert _leaks(texts, run) == []
        status, body = _get(url + "xsgpu/thumb/0.png")
        assert status == 503 and _leaks(body, run) == []
        log_text = _server_log(proc)
        assert "Traceback" in log_text and str(run) in log_text  # the details went to the server log
    finally:
        stop_server(proc)
