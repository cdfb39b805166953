"""``xsgpu serve RUN --device cpu|gpu``: parsed, passed through to the sessions, and refused clearly without a GPU.

The GPU paths themselves are compared with the CPU's in ``test_gpu_paths.py``.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from panel_app.device import check_app_device
from xsgpu.backend import GPUUnavailable, gpu_status

from . import fake_gpu

REPO = Path(__file__).resolve().parents[2]
no_gpu = pytest.mark.skipif(gpu_status()[0], reason="checks the error without a GPU")
#: what the refusal says: the request, the missing piece, the remedy
REFUSAL = r"--device gpu was requested but .*cupy.*pip install '\.\[gpu\]'.*--device cpu"


@pytest.fixture
def fake(monkeypatch):
    """The NumPy stand-ins for CuPy and cuDF (tests/app/fake_gpu.py) for one test."""
    fake_gpu.install(monkeypatch)
    yield
    gpu_status.cache_clear()


def test_check_app_device_takes_cpu_or_gpu_only():
    assert check_app_device("cpu") == "cpu"
    for bad in ("auto", "cuda", ""):
        with pytest.raises(ValueError, match=rf"The 'device' parameter of the app must be 'cpu' or 'gpu'. Got {bad!r}"):
            check_app_device(bad)


@no_gpu
def test_gpu_without_cuda_names_what_is_missing_and_the_remedy():
    with pytest.raises(GPUUnavailable, match=REFUSAL):
        check_app_device("gpu")


def test_gpu_without_cudf_names_cudf(fake, monkeypatch):
    monkeypatch.setitem(sys.modules, "cudf", None)   # CuPy and a device there, cuDF not importable
    with pytest.raises(GPUUnavailable, match=r"the GPU rasters need cuDF: cudf is not importable.*cudf-cu13"):
        check_app_device("gpu")


def _captured_make_server(monkeypatch) -> dict:
    """Replace make_server by a recorder whose server starts and stops at once; returns the recorded kwargs."""
    import panel_app.server

    seen: dict = {}

    class _Server:
        port = 5006
        io_loop = type("Loop", (), {"start": staticmethod(lambda: None)})

        def start(self) -> None:
            pass

    def record(run, **kwargs):
        seen.update(kwargs, run=run)
        return _Server()

    monkeypatch.setattr(panel_app.server, "make_server", record)
    return seen


def test_serve_parses_the_device_and_passes_it_to_the_server(app_run, monkeypatch):
    from workflows.cli import main

    res = CliRunner().invoke(main, ["serve", "--help"])
    assert res.exit_code == 0 and "--device [cpu|gpu]" in res.output and "xsgpu serve runs/big --device gpu" in res.output
    seen = _captured_make_server(monkeypatch)
    res = CliRunner().invoke(main, ["serve", str(app_run), "--no-warm"])
    assert res.exit_code == 0, res.output
    assert seen["device"] == "cpu" and "(device cpu;" in res.output
    res = CliRunner().invoke(main, ["serve", str(app_run), "--no-warm", "--device", "gpu"])
    assert res.exit_code == 0 and seen["device"] == "gpu" and "(device gpu;" in res.output
    res = CliRunner().invoke(main, ["serve", str(app_run), "--device", "tpu"])
    assert res.exit_code == 2 and "Invalid value for '--device'" in res.output


@no_gpu
def test_serve_with_gpu_but_without_one_fails_before_serving(app_run):
    from panel_app.server import make_server
    from workflows.cli import main

    res = CliRunner().invoke(main, ["serve", str(app_run), "--device", "gpu", "--no-warm", "--port", "0"])
    assert res.exit_code == 2 and res.output.startswith("Error: --device gpu was requested but")
    assert "pip install '.[gpu]'" in res.output and "xsgpu serving" not in res.output
    with pytest.raises(GPUUnavailable, match=REFUSAL):
        make_server(app_run, device="gpu", warm=False)


def test_the_device_reaches_every_session(app_run, fake):
    from panel_app.app import build_app
    from panel_app.data import load_run_data
    from panel_app.server import warm_up
    from panel_app.views.index_gpu import GPUSpatialIndex

    assert build_app(app_run).xsgpu_state.device == "cpu"
    out = warm_up(app_run, panels="none", device="gpu")
    assert out["device_s"] >= 0
    data = load_run_data(app_run)
    moved = {k[2] for k, v in data._cache.items() if k[:2] == ("device", "index") and isinstance(v, GPUSpatialIndex)}
    assert moved == {"ACT", "FEA", "PRD"}   # once per process, at start
    state = build_app(app_run, device="gpu").xsgpu_state
    assert state.device == "gpu" and state.data is data
    with pytest.raises(ValueError, match=r"'device' parameter of the app must be 'cpu' or 'gpu'"):
        build_app(app_run, device="auto")


@no_gpu
def test_bench_app_gpu_without_one_says_why():
    res = subprocess.run([sys.executable, "benchmarks/bench_app.py", "--device", "gpu", "--quick"], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 1 and res.stdout == ""
    assert "bench_app.py: --device gpu was requested but" in res.stderr and "pip install '.[gpu]'" in res.stderr
    res = subprocess.run([sys.executable, "benchmarks/bench_app.py", "--device", "gpu", "--ready"], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "in-memory callbacks only" in res.stderr
