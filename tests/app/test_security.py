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


def test_session_callback_error_is_notified_without_paths(tmp_path, monkeypatch):
    import panel as pn

    shown = []

    class FakeArea:
        def error(self, message, duration):
            shown.append((message, duration))

    monkeypatch.setattr(type(pn.state), "notifications", property(lambda self: FakeArea()))
    make_session_exception_handler(tmp_path)(PermissionError(13, "Permission denied", str(tmp_path / "x.parquet")))
    ((message, duration),) = shown
    assert "incident" in message and "server log" in message and str(tmp_path) not in message
    assert duration == 0  # stays until closed
    problem, remedy = describe_failure(PermissionError(13, "Permission denied", str(tmp_path / "samples.parquet")),
                                       tmp_path)
    assert "RUN/samples.parquet" in problem and "fix the permissions" in remedy and str(tmp_path) not in remedy


def test_session_scoped_handler_catches_widget_callback_errors(tmp_path, caplog):
    """The server installs the handler per session (Panel scopes config to the document): through
    Panel's own event path, a failing callback is logged in that session and re-raised outside it."""
    import panel as pn
    from bokeh.document import Document
    from bokeh.events import ButtonClick
    from panel.io.state import set_curdoc

    doc = Document()
    with set_curdoc(doc):
        pn.config.exception_handler = make_session_exception_handler(tmp_path)
    button = pn.widgets.Button()
    button.on_click(lambda event: open(tmp_path / "missing" / "x.parquet"))
    model = button.get_root(doc)
    with caplog.at_level(logging.ERROR, logger="panel_app.errors"), set_curdoc(doc):
        button._comm_event(doc, ButtonClick(model))  # what a click runs; Panel's default re-raises
    assert "session callback failed" in caplog.text
    with pytest.raises(FileNotFoundError):  # other documents (and tests) keep Panel's default
        button._comm_event(doc=Document(), event=ButtonClick(model))


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


# ---------------------------------------------------------------------------------------- login, hosts
class FakeClock:
    """Seconds that advance only when the test says so (no waiting, no timing assertions)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_login_throttle_locks_out_after_failures_and_doubles():
    from panel_app.guard import LoginThrottle

    clock = FakeClock()
    t = LoginThrottle(max_failures=3, base_delay_s=1, max_delay_s=8, forget_s=60, clock=clock)
    assert [t.failure("a") for _ in range(3)] == [0, 0, 1]  # the 3rd failure starts a 1 s lock-out
    assert t.retry_after("a") == 1 and t.retry_after("b") == 0  # per client
    clock.now += 1
    assert t.retry_after("a") == 0
    assert [t.failure("a") for _ in range(4)] == [2, 4, 8, 8]  # doubling, capped
    t.success("a")
    assert t.retry_after("a") == 0 and t.failure("a") == 0
    clock.now += 61  # an old failure is forgotten
    assert t.failure("a") == 0
    small = LoginThrottle(max_clients=2, clock=clock)
    for c in "xyz":
        small.failure(c)
    assert len(small._clients) == 2 and "x" not in small._clients
    with pytest.raises(ValueError, match="'max_failures' parameter of LoginThrottle must be >= 1"):
        LoginThrottle(max_failures=0)


@pytest.fixture
def inprocess_basic_auth_server(app_run):
    """``make_server`` with basic auth and a fake-clock throttle, run in a thread; yields ``(url, clock)``."""
    import asyncio
    import threading

    from panel_app.guard import LoginThrottle
    from panel_app.server import make_server

    from .conftest import free_port

    clock, port, ready, box = FakeClock(), free_port(), threading.Event(), {}

    def run() -> None:
        asyncio.set_event_loop(asyncio.new_event_loop())
        try:
            server = make_server(app_run, port=port, auth="basic", basic_auth="right-pw", warm=False,
                                 login_throttle=LoginThrottle(clock=clock))
            server.start()
            box["server"] = server
        finally:
            ready.set()
        server.io_loop.start()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(120) and "server" in box, "the in-process server did not start"
    try:
        yield f"http://127.0.0.1:{port}/", clock
    finally:
        server = box["server"]
        server.io_loop.add_callback(server.stop)
        server.io_loop.add_callback(server.io_loop.stop)
        thread.join(30)


def _post_login(url: str, password: str, *, host: str | None = None) -> tuple[int, dict]:
    import urllib.parse

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):  # keep the 302 itself: it tells success from failure
            return None

    req = urllib.request.Request(url + "login", data=urllib.parse.urlencode(
        {"username": "alice", "password": password}).encode())
    if host:
        req.add_header("Host", host)
    try:
        with urllib.request.build_opener(NoRedirect).open(req, timeout=60) as r:
            return r.status, dict(r.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)


def test_served_login_is_throttled_per_client(inprocess_basic_auth_server):
    url, clock = inprocess_basic_auth_server
    answers = [_post_login(url, f"guess-{i}") for i in range(50)]
    statuses = [s for s, _ in answers]
    # 5 passwords checked (302 back to the form with ?error=), then 429 without checking: before the
    # throttle, all 50 were checked (205 in 0.4 s)
    assert statuses[:5] == [302] * 5 and all("error=" in h["Location"] for _, h in answers[:5])
    assert statuses[5:] == [429] * 45 and answers[5][1]["Retry-After"] == "1"
    assert _post_login(url, "right-pw")[0] == 429  # not even the right password while locked out
    clock.now += 1
    status, headers = _post_login(url, "guess-51")
    assert status == 302 and "error=" in headers["Location"]
    assert _post_login(url, "right-pw")[0] == 429 and _post_login(url, "right-pw")[1]["Retry-After"] == "2"
    clock.now += 2
    status, headers = _post_login(url, "right-pw")
    assert status == 302 and "error=" not in headers["Location"] and "Set-Cookie" in headers


def test_served_host_header_must_name_an_allowed_host(inprocess_basic_auth_server):
    url, _ = inprocess_basic_auth_server
    for host in ("evil.example.org", "evil.example.org:5006", "127.0.0.2", "localhost.evil.org"):
        assert _post_login(url, "x", host=host)[0] == 400
        assert _get_with_host(url, host)[0] == 400
    assert _get_with_host(url, "localhost")[0] in (200, 302)
    assert _get_with_host(url, url.split("/")[2])[0] in (200, 302)


def _get_with_host(url: str, host: str) -> tuple[int, str]:
    req = urllib.request.Request(url + "login", headers={"Host": host})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def test_public_address_without_login_is_refused_unless_explicit(app_run, caplog):
    from panel_app.server import is_loopback, make_server

    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("10.0.0.5") and not is_loopback("0.0.0.0") and not is_loopback("beamline.org")
    with pytest.raises(ValueError, match="without a login lets anyone on the network"):
        make_server(app_run, address="10.0.0.5", warm=False)
    with pytest.raises(ValueError, match="without a login"):
        make_server(app_run, address="0.0.0.0", allow_websocket_origin=["beamline.example.org:5006"], warm=False)
    # the explicit flag is accepted, with a warning in the log (port 0; the server is never started)
    with caplog.at_level(logging.WARNING, logger="panel_app.server"):
        server = make_server(app_run, address="0.0.0.0", port=0, allow_websocket_origin=["beamline.example.org:5006"],
                             allow_unauthenticated=True, warm=False)
        server.unlisten()
    assert "WITHOUT a login (--allow-unauthenticated)" in caplog.text


# ---------------------------------------------------------------------------------------- offline
def test_resources_are_pinned_to_the_server(monkeypatch, caplog):
    from bokeh.settings import settings

    from panel_app.offline import LOGIN_TEMPLATE, LOGOUT_TEMPLATE, pin_server_resources

    monkeypatch.setenv("BOKEH_RESOURCES", "cdn")
    try:
        settings.resources.unset_value()
        assert settings.resources(default="server") == "cdn"
        with caplog.at_level(logging.WARNING, logger="panel_app.offline"):
            pin_server_resources()
        assert settings.resources(default="server") == "server" and "BOKEH_RESOURCES=cdn ignored" in caplog.text
    finally:
        settings.resources.unset_value()
    page = LOGIN_TEMPLATE.render(login_endpoint="/login", errormessage="<script>x</script>", PANEL_CDN="https://cdn/")
    assert "http" not in page and "&lt;script&gt;" in page and 'action="./login"' in page
    assert "http" not in LOGOUT_TEMPLATE.render(PANEL_CDN="https://cdn/", LOGIN_ENDPOINT="/login")
