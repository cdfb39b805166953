"""Fixtures for the model tests: tiny run stores with easy, learnable synthetic patterns.

Each run (experiment) of ``per_run`` images shares its beamstop (circular, linear, wedge or the beam off
the detector, as in real runs); each image may carry a thin ring, a broad halo and a high background.
The labels follow the drawing exactly, so a small ResNet learns them within a few epochs.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xsgpu.attributes import attribute_index, label_columns
from xsgpu.io.runstore import RunStore
from xsgpu.preprocess import log_scale
from xsgpu.io.schema import SAMPLES, fill_samples


def draw_images(n: int, size: int, rng: np.random.Generator, *, per_run: int = 10):
    """Counts (n, size, size) float32, labels (n, 17) bool and run ids (n,) for an easy synthetic set."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    labels = np.zeros((n, 17), bool)
    counts = np.empty((n, size, size), np.float32)
    runs = np.arange(n) // per_run
    stops = {}
    for i in range(n):
        r = runs[i]
        if r not in stops:
            stops[r] = rng.choice(["circular_beamstop", "linear_beamstop", "wedge_beamstop", "beam_off"])
        kind = stops[r]
        c = size / 2 + (size * 0.7 if kind == "beam_off" else 0.0)
        rad = np.hypot(yy - c, xx - c)
        img = 20.0 + 200.0 * np.exp(-rad / (size / 8))
        if rng.random() < 0.45:
            q0 = rng.uniform(0.2, 0.4) * size
            img += 300.0 * np.exp(-((rad - q0) ** 2) / (2 * (0.02 * size) ** 2))
            labels[i, attribute_index("ring")] = True
        if rng.random() < 0.3:
            q0 = rng.uniform(0.25, 0.35) * size
            img += 60.0 * np.exp(-((rad - q0) ** 2) / (2 * (0.12 * size) ** 2))
            labels[i, attribute_index("halo")] = True
        if rng.random() < 0.25:
            img += 800.0
            labels[i, attribute_index("high_background")] = True
        trans = np.ones((size, size), np.float32)
        if kind == "circular_beamstop":
            trans[rad < size * 0.08] = 0.01
        elif kind == "linear_beamstop":
            trans[(np.abs(xx - c) < size * 0.05) & (yy > c)] = 0.01
        elif kind == "wedge_beamstop":
            ang = np.degrees(np.arctan2(xx - c, -(yy - c)))
            trans[(np.abs(ang - 135) < 15) & (rad > 2)] = 0.01
        labels[i, attribute_index(kind)] = True
        counts[i] = rng.poisson(img * trans).astype(np.float32)
    return counts, labels, runs


def random_resnet18(seed: int = 0):
    """A random resnet18 (17 outputs) with non-trivial batch-norm statistics, in eval mode's weights."""
    import torch

    from xsgpu.model import build_resnet

    torch.manual_seed(seed)
    net = build_resnet("resnet18")
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return net


def save_random_resnet18(path: Path, *, seed: int = 0, input_size: int = 32) -> Path:
    """Save a seeded random resnet18 (17 outputs) as an xsgpu checkpoint at ``path``; returns ``path``."""
    import torch

    from xsgpu.model import build_resnet, save_checkpoint

    torch.manual_seed(seed)
    save_checkpoint(path, build_resnet("resnet18"), input_size=input_size)
    return path


def make_easy_run(path: Path, *, n: int = 120, size: int = 32, partition_size: int = 40, seed: int = 0,
                  per_run: int = 10, with_split: bool = True) -> RunStore:
    """Write a complete run store (samples + images) with :func:`draw_images` data."""
    rng = np.random.default_rng(seed)
    counts, labels, runs = draw_images(n, size, rng, per_run=per_run)
    n_runs = runs.max() + 1
    split_of_run = np.array(["train"] * n_runs, dtype=object)
    order = rng.permutation(n_runs)
    n_val = max(1, round(0.2 * n_runs))
    n_test = max(1, round(0.15 * n_runs)) if n_runs >= 4 else 0
    split_of_run[order[:n_val]] = "val"
    split_of_run[order[n_val:n_val + n_test]] = "test"
    store = RunStore.create(path, n_samples=n, partition_size=partition_size, params={"fixture": "easy", "seed": seed})
    images = store.images.create((n, size, size), np.float16)
    for p in range(store.n_partitions):
        a, b = store.partition_bounds(p)
        images[a:b] = log_scale(counts[a:b]).astype(np.float16)
        df = pd.DataFrame({"sample_id": np.arange(a, b, dtype=np.int64),
                           "source_uri": [f"easy://{i}" for i in range(a, b)],
                           "frame": np.zeros(b - a, np.int32),
                           "run_id": [f"run{r:04d}" for r in runs[a:b]],
                           "is_synthetic": True})
        if with_split:
            df["split"] = split_of_run[runs[a:b]].astype(str)
        for j, col in enumerate(label_columns()):
            df[col] = labels[a:b, j]
        store.write_partition(SAMPLES, p, fill_samples(df))
    return store


@pytest.fixture(scope="session")
def easy_run(tmp_path_factory) -> RunStore:
    """A 240-image, 32 px run with 24 experiments (split by experiment)."""
    return make_easy_run(tmp_path_factory.mktemp("easy") / "run", n=240, size=32, partition_size=80, seed=1)


@pytest.fixture(scope="session")
def trained_model(easy_run, tmp_path_factory) -> tuple[Path, dict]:
    """A resnet18 trained for a few epochs on :func:`easy_run` (shared by the inference tests)."""
    from xsgpu.model import train_model

    out = tmp_path_factory.mktemp("models") / "r18"
    report = train_model(easy_run.path, arch="resnet18", size=32, epochs=3, out=out, batch_size=32, lr=3e-3,
                         device="cpu", progress=False, seed=0, num_threads=1)
    return out, report
