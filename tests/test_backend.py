import numpy as np
import pytest

from xsgpu.backend import GPUUnavailable, get_backend, gpu_status, namespace_of, resolve_device, to_host


def test_cpu_backend():
    b = get_backend("cpu")
    assert b.xp is np and b.xdf.__name__ == "pandas" and b.torch_device == "cpu"


def test_bad_device_message():
    with pytest.raises(ValueError, match="'device' parameter must be 'auto', 'cpu' or 'gpu'. Got 'tpu'"):
        resolve_device("tpu")


def test_explicit_gpu_without_gpu_raises_with_reason():
    ok, reason = gpu_status()
    if ok:
        pytest.skip("a GPU is present")
    with pytest.raises(GPUUnavailable, match="device='gpu' was requested but"):
        resolve_device("gpu")
    assert resolve_device("auto") == "cpu"


def test_namespace_and_host():
    a = np.ones(3)
    assert namespace_of(a, None) is np
    assert to_host(a) is a


@pytest.mark.gpu
def test_cupy_namespace():
    cp = pytest.importorskip("cupy")
    x = cp.ones(3)
    assert namespace_of(x) is cp
    assert isinstance(to_host(x), np.ndarray)
    with pytest.raises(TypeError, match="mix NumPy and CuPy"):
        namespace_of(x, np.ones(3))


# -- one policy: XSGPU_DEVICE, torch follows the same GPU test, one fallback --------------------------

import ast
import subprocess
import sys
from pathlib import Path

from xsgpu import backend
from xsgpu.backend import UnsupportedOnGPU, gpu_fallback, torch_device

REPO = Path(__file__).resolve().parents[1]


def _pretend_gpu(monkeypatch, ok: bool, reason: str = "pretend") -> None:
    monkeypatch.setattr(backend, "gpu_status", lambda: (ok, reason))


def test_xsgpu_device_env_overrides_auto(monkeypatch):
    _pretend_gpu(monkeypatch, True)
    monkeypatch.delenv("XSGPU_DEVICE", raising=False)
    assert resolve_device("auto") == "gpu"
    monkeypatch.setenv("XSGPU_DEVICE", "cpu")
    assert resolve_device("auto") == "cpu"
    assert resolve_device("gpu") == "gpu"  # an explicit argument beats the environment
    monkeypatch.setenv("XSGPU_DEVICE", "tpu")
    with pytest.raises(ValueError, match="XSGPU_DEVICE environment variable must be"):
        resolve_device("auto")


def test_xsgpu_device_gpu_without_gpu_raises(monkeypatch):
    _pretend_gpu(monkeypatch, False, "no CUDA device is visible")
    monkeypatch.setenv("XSGPU_DEVICE", "gpu")
    with pytest.raises(GPUUnavailable, match="no CUDA device is visible"):
        resolve_device("auto")


def test_torch_auto_follows_the_one_gpu_test(monkeypatch, caplog):
    """torch sees CUDA but CuPy is missing: 'auto' runs torch on the CPU too, and says why."""
    import torch

    monkeypatch.delenv("XSGPU_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    _pretend_gpu(monkeypatch, False, "cupy is not importable")
    with caplog.at_level("WARNING", logger="xsgpu.backend"):
        assert torch_device("auto") == "cpu"
    assert "cupy is not importable" in caplog.text
    assert torch_device("gpu") == "cuda"  # explicit: torch alone is enough
    _pretend_gpu(monkeypatch, True)
    assert torch_device("auto") == "cuda"
    monkeypatch.setenv("XSGPU_DEVICE", "cpu")
    assert torch_device("auto") == "cpu"


def test_gpu_fallback_policy(monkeypatch, caplog):
    monkeypatch.delenv("XSGPU_DEVICE", raising=False)

    def cannot():
        raise UnsupportedOnGPU("cuML lacks this")

    _pretend_gpu(monkeypatch, True)
    with caplog.at_level("WARNING", logger="xsgpu.backend"):
        assert gpu_fallback("auto", "thing", cannot) == ("cpu", "cuML lacks this")
    assert "thing: falling back to CPU: cuML lacks this" in caplog.text
    with pytest.raises(UnsupportedOnGPU):
        gpu_fallback("gpu", "thing", cannot)
    assert gpu_fallback("auto", "thing", lambda: None) == ("gpu", None)
    assert gpu_fallback("cpu", "thing", cannot) == ("cpu", None)


def test_import_gpu_names_module_and_remedy():
    with pytest.raises(GPUUnavailable, match=r"no_such_gpu_lib is not importable .*Hint: install the \[gpu\] extra"):
        backend.import_gpu("no_such_gpu_lib")


def _python_files():
    for pkg in ("xsgpu", "panel_app", "workflows"):
        yield from sorted((REPO / pkg).rglob("*.py"))


def test_gpu_libraries_are_imported_only_in_backend():
    gpu_libs = {"cupy", "cudf", "cuml", "dask_cudf"}
    offenders = []
    for path in _python_files():
        if path == REPO / "xsgpu" / "backend.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(REPO)}:{node.lineno} {n}" for n in names
                          if n.split(".")[0] in gpu_libs]
    assert not offenders, "import GPU libraries through xsgpu.backend.import_gpu: " + ", ".join(offenders)


def test_no_defensive_import_of_the_projects_own_modules():
    own = ("xsgpu", "panel_app", "workflows")
    offenders = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Try):
                continue
            catches = {ast.unparse(h.type) for h in node.handlers if h.type is not None}
            if not catches & {"ImportError", "ModuleNotFoundError"}:
                continue
            for stmt in node.body:
                mods = ([a.name for a in stmt.names] if isinstance(stmt, ast.Import)
                        else [stmt.module or ""] if isinstance(stmt, ast.ImportFrom) else [])
                offenders += [f"{path.relative_to(REPO)}:{stmt.lineno}" for m in mods if m.split(".")[0] in own]
    assert not offenders, "the project's own imports must not be guarded: " + ", ".join(offenders)


def test_embed_modules_import_in_any_order():
    """The NotFittedError cycle is untied: each embed module imports on its own, one class for all."""
    code = ("import importlib, sys\n"
            "for m in ['tsne_cpu', 'pca', 'umap', 'reference', '_base', 'projectors']:\n"
            "    importlib.import_module('xsgpu.embed.' + m)\n"
            "from xsgpu.embed import NotFittedError, pca, projectors\n"
            "assert projectors.NotFittedError is NotFittedError is pca.NotFittedError\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
