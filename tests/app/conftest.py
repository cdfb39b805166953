"""Fixtures of the app tests: a small seeded run store with structure, and a served app.

* ``app_run``: a complete run store (samples, images, thumbs, predictions, features, embedding, and what
  embed and evaluate add: fea_reduced, suspicious) built with :class:`RunStore` directly; labels from 6
  prototypes with flips, probabilities = noisy labels, features = a random projection, embeddings =
  clusters per prototype (different layouts per space). :func:`make_app_run` takes any vocabulary
  (``app_run_5`` / ``app_run_40``: runs of 5 and 40 attributes).
* ``app_state``: a fresh :class:`AppState` over it (fresh copy of the run: corrections never leak).
* ``served_app``: ``xsgpu serve`` in a subprocess on a free localhost port; yields ``(url, run_path)``.
  APP-B's browser tests reuse it.
* ``browser_type_launch_args``: pytest-playwright launches Debian's chromium with the flags that work here.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xsgpu.attributes import DEFAULT_VOCABULARY, Vocabulary
from xsgpu.io.runstore import RunStore
from xsgpu.io.schema import SAMPLES, fill_samples

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]
#: The flower threshold of the served test app (small, so a few zoom steps reach flowers).
SERVED_THRESHOLD = 150

# rows of a Tabulator (by the CSS class of its Panel host) as objects {column title: cell text}
JS_TABLE_ROWS = """
(cls) => {
  function q(root) {
    for (const e of root.querySelectorAll('*')) {
      if (e.classList.contains(cls)) return e;
      if (e.shadowRoot) { const r = q(e.shadowRoot); if (r) return r; }
    }
    return null;
  }
  const host = q(document);
  if (!host) return null;
  const root = host.shadowRoot || host;
  return [...root.querySelectorAll('.tabulator-row')].map((r) => Object.fromEntries(
      [...r.querySelectorAll('.tabulator-cell')].map((c) => [c.getAttribute('tabulator-field'), c.textContent.trim()])));
}
"""


#: the vocabularies of the 5- and 40-attribute test runs (of the 5, only Ring is one of the paper's 17)
VOCAB_5 = Vocabulary.from_names(["Ring", "Spot", "Streak", "Ice ring", "Detector gap"])
VOCAB_40 = Vocabulary.from_names([f"Feature {i:02d}" for i in range(40)])


def make_app_run(path: Path, *, n: int = 1500, partition_size: int = 500, size: int = 32, d: int = 32,
                 seed: int = 3, vocabulary: Vocabulary | None = None, stages: bool = True) -> RunStore:
    """Write a complete, structured run store of ``n`` samples to ``path`` and return it.

    ``vocabulary`` (default the paper's 17) sets the attributes; ``stages`` also writes what the embed
    and evaluate stages add (``fea_reduced.npy``: the features as float32, ``suspicious.parquet``).
    """
    vocab = DEFAULT_VOCABULARY if vocabulary is None else vocabulary
    k = len(vocab)
    rng = np.random.default_rng(seed)
    n_proto = 6
    protos = rng.random((n_proto, k)) < 0.3
    proto = rng.integers(0, n_proto, n)
    y = protos[proto] ^ (rng.random((n, k)) < 0.04)
    prob = np.clip(np.where(y, 0.78, 0.18) + rng.normal(0, 0.18, (n, k)), 0, 1).astype(np.float32)
    feats = (y.astype(np.float32) @ rng.normal(size=(k, d)) + rng.normal(0, 0.3, (n, d))).astype(np.float16)
    coords = []
    for s in range(3):  # one layout per space: prototype clusters on a circle, rotated per space
        ang = 2 * np.pi * (np.arange(n_proto) + 0.5 * s) / n_proto
        centres = np.stack([np.cos(ang), np.sin(ang)], axis=1) * 20
        coords.append(centres[proto] + rng.normal(0, 2.0, (n, 2)))
    coords = np.concatenate(coords, axis=1).astype(np.float32)
    store = RunStore.create(path, n_samples=n, partition_size=partition_size, vocabulary=vocab)
    images = store.images.create((n, size, size), np.float16)
    thumbs = store.thumbs.create((n, 64, 64), np.uint8)
    features = store.features.create((n, d), np.float16)
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - size / 2, xx - size / 2)
    t64 = np.hypot(*(np.mgrid[:64, :64] - 32))
    for p in range(store.n_partitions):
        a, b = store.partition_bounds(p)
        ids = np.arange(a, b, dtype=np.int64)
        images[a:b] = np.stack([np.exp(-((r - 3 - (i % 9)) ** 2) / 3) * 8 + rng.random((size, size))
                                for i in ids]).astype(np.float16)
        thumbs[a:b] = np.stack([(255 * np.exp(-((t64 - 6 - 2 * (i % 9)) ** 2) / 8)).astype(np.uint8) for i in ids])
        features[a:b] = feats[a:b]
        df = pd.DataFrame({"sample_id": ids, "source_uri": [f"/data/run{i // 250}/img{i:05d}.tif" for i in ids],
                           "frame": np.zeros(b - a, np.int32), "run_id": [f"run{i // 250}" for i in ids],
                           "split": np.where(ids % 5 == 0, "test", "train"), "is_synthetic": True,
                           "labelled": True, "quantitative": True})
        for j, c in enumerate(vocab.label_columns()):
            df[c] = y[a:b, j]
        store.write_partition(SAMPLES, p, fill_samples(df, vocabulary=vocab))
        pr = pd.DataFrame({"sample_id": ids})
        for j, c in enumerate(vocab.prob_columns()):
            pr[c] = prob[a:b, j]
        store.predictions.write_partition(p, pr)
    emb = pd.DataFrame({"sample_id": np.arange(n, dtype=np.int64)})
    for j, c in enumerate(["act_x", "act_y", "fea_x", "fea_y", "prd_x", "prd_y"]):
        emb[c] = coords[:, j]
    store.embedding.write(emb, metadata={"method": "tsne"})
    if stages:
        from xsgpu.metrics.evaluate import write_suspicious

        store.fea_reduced.save(feats.astype(np.float32))                       # what `xsgpu embed` writes
        write_suspicious(store, np.arange(n, dtype=np.int64), y, prob, top=2000)  # what `xsgpu evaluate` writes
    return store


@pytest.fixture(scope="session")
def app_run(tmp_path_factory) -> Path:
    """Path of a complete, read-only test run (1,500 samples). Tests that write must copy it."""
    return make_app_run(tmp_path_factory.mktemp("app") / "run").path


@pytest.fixture(scope="session")
def app_run_5(tmp_path_factory) -> Path:
    """Path of a complete, read-only test run of 5 attributes (:data:`VOCAB_5`, 600 samples)."""
    return make_app_run(tmp_path_factory.mktemp("app5") / "run", n=600, partition_size=300, vocabulary=VOCAB_5).path


@pytest.fixture(scope="session")
def app_run_40(tmp_path_factory) -> Path:
    """Path of a complete, read-only test run of 40 attributes (:data:`VOCAB_40`, 600 samples)."""
    return make_app_run(tmp_path_factory.mktemp("app40") / "run", n=600, partition_size=300, vocabulary=VOCAB_40).path


@pytest.fixture
def app_state(app_run, tmp_path):
    """A fresh session (:class:`AppState`) over a fresh copy of the test run."""
    from panel_app.data import load_run_data
    from panel_app.state import AppState

    copy = tmp_path / "run"
    shutil.copytree(app_run, copy)
    return AppState(data=load_run_data(copy, use_cache=False))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, *, timeout: float = 300.0, proc: subprocess.Popen | None = None) -> None:
    """Wait until ``url`` answers (any HTTP status), or fail with the server's output."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {_server_log(proc)}")
        try:
            urllib.request.urlopen(url, timeout=5)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout} s; server log: {_server_log(proc)}")


def _server_log(proc: subprocess.Popen | None) -> str:
    log = getattr(proc, "xsgpu_log", None)
    if log is None:
        return ""
    log.flush()
    return Path(log.name).read_text()[-4000:]


def start_server(run_path: Path, *extra: str, port: int | None = None):
    """Start ``xsgpu serve RUN`` in a subprocess on a free port; returns ``(proc, url)`` once it answers.

    The server's output goes to a temporary file (a pipe nobody reads would fill up and block it).
    """
    import tempfile

    port = port or free_port()
    cmd = [sys.executable, "-m", "workflows.cli", "serve", str(run_path), "--port", str(port),
           "--flower-threshold", str(SERVED_THRESHOLD), *extra]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "NUMBA_NUM_THREADS": "2", "OMP_NUM_THREADS": "1"}
    log = tempfile.NamedTemporaryFile("w+", prefix="xsgpu-serve-", suffix=".log", delete=False)
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    proc.xsgpu_log = log
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_http(url + "xsgpu/thumb/0.png", proc=proc)  # answers once the run is loaded and warm
    except Exception:
        stop_server(proc)
        raise
    return proc, url


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    log = getattr(proc, "xsgpu_log", None)
    if log is not None:
        log.close()
        Path(log.name).unlink(missing_ok=True)


@pytest.fixture(scope="session")
def served_app(tmp_path_factory):
    """``xsgpu serve`` on a free localhost port over a fresh test run; yields ``(url, run_path)``.

    The run is a private copy (browser tests may record corrections). Flower threshold:
    :data:`SERVED_THRESHOLD`.
    """
    run_path = make_app_run(tmp_path_factory.mktemp("served") / "run").path
    proc, url = start_server(run_path)
    try:
        yield url, run_path
    finally:
        stop_server(proc)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """pytest-playwright: Debian's chromium with flags that work in this sandbox (never `playwright install`)."""
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}
