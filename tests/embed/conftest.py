"""Tiny run stores with structure: labels from a few prototypes, FEA and PRD derived from them + noise."""
from __future__ import annotations

import sys
import types

import numpy as np
import pandas as pd
import pytest

from xsgpu.attributes import N_ATTRIBUTES, label_columns, prob_columns
from xsgpu.io.runstore import RunStore
from xsgpu.io.schema import SAMPLES, fill_samples


def structured_data(n: int, *, seed: int = 0, n_proto: int = 6, dim: int = 96, flip: float = 0.03):
    """Return labels (n, 17) bool, features (n, dim) float32, probs (n, 17) float32, cluster (n,) int.

    A fixed (seed-independent) set of prototypes and projection keeps two calls with different seeds
    on the same maps, as two beamline days would be.
    """
    base = np.random.default_rng(999)
    protos = base.random((n_proto, N_ATTRIBUTES)) < 0.25
    protos[:, 1] = np.arange(n_proto) % 2 == 0  # every image has a beamstop or beam-off style label
    centres = base.normal(0, 4.0, (n_proto, dim))
    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, n_proto, n)
    labels = protos[cluster] ^ (rng.random((n, N_ATTRIBUTES)) < flip)
    features = centres[cluster] + rng.normal(0, 1.0, (n, dim))
    logits = 4.0 * (2 * protos[cluster] - 1.0) + rng.normal(0, 1.0, (n, N_ATTRIBUTES))
    probs = 1 / (1 + np.exp(-logits))
    return labels, features.astype(np.float32), probs.astype(np.float32), cluster


def write_run(path, n: int, *, seed: int = 0, partition_size: int = 200, dim: int = 96,
              predictions: bool = True, features: bool = True):
    labels, feats, probs, cluster = structured_data(n, seed=seed, dim=dim)
    store = RunStore.create(path, n_samples=n, partition_size=partition_size)
    for p in range(store.n_partitions):
        a, b = store.partition_bounds(p)
        df = pd.DataFrame({"sample_id": np.arange(a, b, dtype=np.int64)})
        for j, c in enumerate(label_columns()):
            df[c] = labels[a:b, j]
        store.write_partition(SAMPLES, p, fill_samples(df))
    if features:
        arr = store.features.create((n, dim), np.float16)
        arr[:] = feats.astype(np.float16)
    if predictions:
        for p in range(store.n_partitions):
            a, b = store.partition_bounds(p)
            df = pd.DataFrame({"sample_id": np.arange(a, b, dtype=np.int64)})
            for j, c in enumerate(prob_columns()):
                df[c] = probs[a:b, j]
            store.predictions.write_partition(p, df)
    return store, cluster


@pytest.fixture
def make_run(tmp_path):
    def _make(name="run", n=400, **kw):
        return write_run(tmp_path / name, n, **kw)
    return _make


# ---------------------------------------------------------------- a fake cuML to test the dispatcher
class _FakeTSNE:
    """Stands in for cuml.manifold.TSNE: a scaled PCA, so the dispatcher logic runs without a GPU."""

    def __init__(self, **kw):
        self.kw = kw

    def fit_transform(self, X):
        from sklearn.decomposition import PCA

        return PCA(2).fit_transform(np.asarray(X)) * 10


@pytest.fixture
def fake_gpu(monkeypatch):
    from xsgpu import backend as backend_mod

    cuml = types.ModuleType("cuml")
    manifold = types.ModuleType("cuml.manifold")
    manifold.TSNE = _FakeTSNE
    cuml.manifold = manifold
    monkeypatch.setitem(sys.modules, "cuml", cuml)
    monkeypatch.setitem(sys.modules, "cuml.manifold", manifold)
    monkeypatch.setattr(backend_mod, "gpu_status", lambda: (True, "a fake GPU for tests"))
    monkeypatch.delenv("XSGPU_DEVICE", raising=False)
    # the fake GPU serves cuML only: embed_run's array work (PCA input reduction) stays on NumPy
    from xsgpu.embed import run as run_mod

    monkeypatch.setattr(run_mod, "get_backend", lambda device="auto": backend_mod.Backend("cpu"))
