"""A small, seeded run store for the panel tests (APP-B), built directly with RunStore.

Imported by tests/app/test_panels*.py through :func:`load` (this file is not a conftest plugin, so it is
loaded by path). Labels have structure (4 prototypes + flips), probabilities are noisy labels, features a
random projection of the labels plus noise, the embedding a 2-D layout by prototype.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from xsgpu.attributes import label_columns, prob_columns
from xsgpu.io.runstore import RunStore
from xsgpu.io.schema import SAMPLES, fill_samples


def make_panel_run(path: Path, *, n: int = 120, partition_size: int = 40, size: int = 32, d: int = 48,
                   seed: int = 7, stages: bool = True) -> RunStore:
    """Write a complete run store (samples, images, thumbs, predictions, features, embedding).

    ``stages`` also writes what the embed and evaluate stages add: ``fea_reduced.npy`` (the features as
    float32) and ``suspicious.parquet``.
    """
    rng = np.random.default_rng(seed)
    protos = rng.random((4, 17)) < 0.3
    proto = rng.integers(0, 4, n)
    y = protos[proto] ^ (rng.random((n, 17)) < 0.05)
    prob = np.clip(np.where(y, 0.75, 0.2) + rng.normal(0, 0.2, (n, 17)), 0, 1).astype(np.float32)
    feats = (y.astype(np.float32) @ rng.normal(size=(17, d)) + rng.normal(0, 0.3, (n, d))).astype(np.float16)
    centres = np.array([[0, 0], [5, 0], [0, 5], [5, 5]], dtype=np.float32)
    coords = np.concatenate([centres[proto] + rng.normal(0, 0.7, (n, 2)) for _ in range(3)], axis=1)
    store = RunStore.create(path, n_samples=n, partition_size=partition_size)
    images = store.images.create((n, size, size), np.float16)
    thumbs = store.thumbs.create((n, 64, 64), np.uint8)
    features = store.features.create((n, d), np.float16)
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - size / 2, xx - size / 2)
    for p in range(store.n_partitions):
        a, b = store.partition_bounds(p)
        ids = np.arange(a, b, dtype=np.int64)
        imgs = np.stack([np.exp(-((r - 4 - (i % 7)) ** 2) / 4) * 10 + rng.random((size, size)) for i in ids])
        images[a:b] = imgs.astype(np.float16)
        thumbs[a:b] = rng.integers(0, 255, (b - a, 64, 64), dtype=np.uint8)
        features[a:b] = feats[a:b]
        df = pd.DataFrame({"sample_id": ids, "source_uri": [f"/data/run{i // 30}/img{i:04d}.tif" for i in ids],
                           "frame": np.zeros(b - a, np.int32), "run_id": [f"run{i // 30}" for i in ids],
                           "split": [("train", "val", "test", "test")[i // 30] for i in ids],
                           "is_synthetic": False, "labelled": True, "quantitative": True})
        for j, c in enumerate(label_columns()):
            df[c] = y[a:b, j]
        store.write_partition(SAMPLES, p, fill_samples(df))
        pr = pd.DataFrame({"sample_id": ids})
        for j, c in enumerate(prob_columns()):
            pr[c] = prob[a:b, j]
        store.predictions.write_partition(p, pr)
    emb = pd.DataFrame({"sample_id": np.arange(n, dtype=np.int64)})
    for j, c in enumerate(["act_x", "act_y", "fea_x", "fea_y", "prd_x", "prd_y"]):
        emb[c] = coords[:, j].astype(np.float32)
    store.embedding.write(emb, metadata={"method": "tsne"})
    if stages:
        from xsgpu.metrics.evaluate import write_suspicious

        store.fea_reduced.save(feats.astype(np.float32))                # what `xsgpu embed` writes
        write_suspicious(store, np.arange(n, dtype=np.int64), y, prob)  # what `xsgpu evaluate` writes
    return store
