"""Serving: id-only image routes, the error page for an incomplete run, auth, origins, the CLI."""
from __future__ import annotations

import concurrent.futures
import io
import shutil
import urllib.error
import urllib.request

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from panel_app.data import load_run_data
from panel_app.server import _check_origins, image_png, make_server
from xsgpu.io.runstore import RunStore

from .conftest import start_server, stop_server


def _get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, r.headers.get("Content-Type"), r.read(), r.geturl()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type"), exc.read(), url


def test_image_png_serves_stored_pixels_by_id_only(app_run):
    data = load_run_data(app_run)
    png = image_png(data, 12, kind="thumb")
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))),
                                  np.asarray(RunStore.open(app_run).open_array("thumbs")[12]))
    img = Image.open(io.BytesIO(image_png(data, 12, kind="image")))
    assert img.size == (32, 32) and img.mode == "L"
    for bad in (-1, 1500, "../../manifest.json"):
        with pytest.raises(ValueError, match="The 'sample_id' parameter must be an integer in 0..1499"):
            image_png(data, bad, kind="thumb")
    with pytest.raises(ValueError, match="'kind' parameter of image_png"):
        image_png(data, 1, kind="raw")


def test_error_page_names_the_missing_stage(app_run, tmp_path):
    from panel_app.app import build_app

    copy = tmp_path / "run"
    shutil.copytree(app_run, copy)
    shutil.rmtree(copy / "predictions.parquet")
    page = build_app(copy)
    assert "cannot show this run yet" in page.object
    assert "predictions.parquet is missing" in page.object and "xsgpu infer RUN --model MODEL" in page.object
    missing = build_app(tmp_path / "nowhere")
    assert "does not exist" in missing.object and "xsgpu synth" in missing.object


def test_build_app_places_every_component(app_run):
    from panel_app.app import build_app

    layout = build_app(app_run, flower_threshold=100, cutoff=0.4)
    state = layout.xsgpu_state
    assert state.flower_threshold == 100 and state.cutoff == 0.4 and state.data.n == 1500
    with pytest.raises(ValueError, match=r"Unknown setting\(s\) \['flowers'\]"):
        build_app(app_run, flowers=3)


def test_origins_and_auth_arguments_are_checked(app_run):
    assert _check_origins("127.0.0.1", 5006, None) == ["127.0.0.1:5006", "localhost:5006"]
    assert _check_origins("10.0.0.5", 80, ["beamline.example.org:80"]) == ["beamline.example.org:80"]
    assert _check_origins("::1", 5006, None) == ["127.0.0.1:5006", "[::1]:5006", "localhost:5006"]
    assert _check_origins("10.0.0.5", 80, None) == ["10.0.0.5:80"]
    with pytest.raises(ValueError, match="needs an explicit --allow-websocket-origin"):
        _check_origins("0.0.0.0", 5006, None)
    with pytest.raises(ValueError, match="no scheme, no path"):
        _check_origins("0.0.0.0", 5006, ["https://x.org"])
    with pytest.raises(ValueError, match="auth='basic' needs 'basic_auth'"):
        make_server(app_run, auth="basic", warm=False)
    with pytest.raises(ValueError, match="auth='oauth' needs 'oauth_provider'"):
        make_server(app_run, auth="oauth", oauth_provider="github", warm=False)
    with pytest.raises(ValueError, match="Credentials were given but 'auth' is None"):
        make_server(app_run, basic_auth="pw", warm=False)
    with pytest.raises(ValueError, match="The 'auth' parameter must be 'basic', 'oauth' or None"):
        make_server(app_run, auth="ldap", warm=False)
    with pytest.raises(ValueError, match="'flower_threshold' parameter must be >= 0"):
        make_server(app_run, flower_threshold=-1, warm=False)


def test_cli_help_and_bad_address(app_run):
    from workflows.cli import main

    res = CliRunner().invoke(main, ["serve", "--help"])
    assert res.exit_code == 0 and "xsgpu serve runs/demo --port 8080" in res.output
    res = CliRunner().invoke(main, ["serve", str(app_run), "--address", "0.0.0.0", "--no-warm"])
    assert res.exit_code != 0 and "--allow-websocket-origin" in res.output
    res = CliRunner().invoke(main, ["serve", str(app_run), "--address", "10.0.0.5", "--no-warm"])
    assert res.exit_code != 0 and "without a login" in res.output and "--allow-unauthenticated" in res.output


def test_cli_refuses_a_password_on_the_command_line(app_run, tmp_path):
    from workflows.cli import main

    res = CliRunner().invoke(main, ["serve", str(app_run), "--auth", "basic", "--basic-auth", "s3cret", "--no-warm"])
    assert res.exit_code != 0 and "visible to every user in `ps`" in res.output and "XSGPU_BASIC_AUTH" in res.output
    empty = tmp_path / "pw"
    empty.write_text("\n")
    res = CliRunner().invoke(main, ["serve", str(app_run), "--auth", "basic", "--basic-auth", str(empty), "--no-warm"])
    assert res.exit_code != 0 and "is empty" in res.output


def test_read_basic_auth_from_files_and_environment(tmp_path, caplog):
    import json
    import logging

    from panel_app.guard import read_basic_auth

    pw = tmp_path / "pw"
    pw.write_text("s3cret pw\nignored\n")
    pw.chmod(0o600)
    assert read_basic_auth(str(pw), from_command_line=True) == "s3cret pw"
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"alice": "a", "bob": "b"}))
    users.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="panel_app.guard"):
        assert read_basic_auth(str(users), from_command_line=True) == str(users)
    assert "readable by other users" in caplog.text
    assert read_basic_auth("from-env", from_command_line=False) == "from-env"
    users.write_text("{}")
    with pytest.raises(ValueError, match=r"must hold a JSON object \{user: password\}"):
        read_basic_auth(str(users), from_command_line=True)
    with pytest.raises(ValueError, match="visible to every user in `ps`"):
        read_basic_auth("s3cret", from_command_line=True)


@pytest.mark.slow  # starts (and warms) a server: shared with the browser tests when they run together
def test_served_routes(served_app):
    url, run_path = served_app
    status, ctype, body, _ = _get(url + "xsgpu/thumb/3.png")
    assert status == 200 and ctype == "image/png"
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(body))),
                                  np.asarray(RunStore.open(run_path).open_array("thumbs")[3]))
    assert _get(url + "xsgpu/image/3.png")[0] == 200
    assert _get(url + "xsgpu/thumb/1500.png")[0] == 404  # out of range
    for bad in ("xsgpu/thumb/..%2F..%2Fmanifest.json", "xsgpu/thumb/-1.png", "xsgpu/thumb/1.5.png",
                "xsgpu/thumb/%2Fetc%2Fpasswd"):
        status, _, body, _ = _get(url + bad)
        assert status == 404 and b"n_samples" not in body and b"root:" not in body
    status, ctype, body, _ = _get(url)
    assert status == 200 and b"xsgpu" in body


@pytest.mark.slow
def test_basic_auth_guards_app_and_images(app_run, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("s3cret-pw\n")
    pw.chmod(0o600)
    proc, url = start_server(app_run, "--auth", "basic", "--basic-auth", str(pw), "--no-warm")
    try:
        status, _, body, final = _get(url)
        assert "login" in final or b"login" in body.lower()
        status, ctype, body, final = _get(url + "xsgpu/thumb/3.png")
        assert ctype != "image/png" and not body.startswith(b"\x89PNG")
    finally:
        stop_server(proc)


@pytest.mark.slow
def test_missing_run_serves_a_page_not_a_traceback(tmp_path):
    proc, url = start_server(tmp_path / "no-such-run", "--no-warm")
    try:
        from bokeh.client import pull_session

        status, _, body, _ = _get(url)
        assert status == 200 and b"Traceback" not in body
        def page_texts() -> str:  # the page's document, as the browser receives it
            session = pull_session(url=url)
            try:
                return " ".join(str(getattr(m, "text", "")) for m in session.document.models)
            finally:
                session.close()

        # in a thread of its own: Playwright's sync API may hold a running event loop in this one
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            texts = pool.submit(page_texts).result(timeout=120)
        assert "cannot show this run yet" in texts and "does not exist" in texts and "Traceback" not in texts
        assert _get(url + "xsgpu/thumb/0.png")[0] == 404
    finally:
        stop_server(proc)


def test_a_session_builds_without_importing_torch(app_run):
    """A page's build imports no torch (the detail view only asks whether the run records a model): importing
    torch and captum inside the first session was 3.3 s of its first paint at 1M images."""
    import subprocess
    import sys

    code = ("import sys\nfrom panel_app.app import build_app\n"
            f"build_app({str(app_run)!r})\n"
            "print(sorted(m for m in ('torch', 'captum', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout[-500:]
