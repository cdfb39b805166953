"""Shared fixtures and marker handling.

* ``gpu`` tests are skipped unless torch sees CUDA (CI never runs them).
* ``browser`` tests need Debian's chromium at /usr/bin/chromium; without it they are skipped locally
  but FAIL under CI (CI=true), because .ci/run installs it.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    has_cuda = _cuda_available()
    has_chromium = os.path.exists(CHROMIUM)
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))
        if "browser" in item.keywords and not has_chromium and not os.environ.get("CI"):
            item.add_marker(pytest.mark.skip(reason="needs /usr/bin/chromium (apt-get install chromium)"))


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator, fresh per test."""
    return np.random.default_rng(12345)


@pytest.fixture
def stage_lock_holder():
    """``start(run, stage)``: a child process that holds ``RUN/locks/<stage>.lock`` (killed at teardown).

    Returns the child's ``Popen`` once it holds the lock; kill it earlier to free the lock.
    """
    children: list[subprocess.Popen] = []

    def start(run, stage: str) -> subprocess.Popen:
        child = subprocess.Popen(
            [sys.executable, "-c", "import time; from xsgpu.io.locks import stage_lock\n"
             f"with stage_lock({str(run)!r}, {stage!r}):\n    print('locked', flush=True); time.sleep(120)"],
            stdout=subprocess.PIPE, text=True)
        children.append(child)
        assert child.stdout.readline().strip() == "locked"
        return child

    yield start
    for child in children:
        child.kill()
        child.wait()
