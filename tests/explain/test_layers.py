"""Kept layers (issue 12.3): embed maps them like FEA; k-NN overlap against a direct NumPy computation."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from xsgpu.explain.layers import kept_layers, knn_overlap, layer_overlaps, read_space
from xsgpu.io.runstore import RunStore


def _direct_overlap(a, b, k):
    """Brute force: full distance matrices, the k smallest off-diagonal per row (no ties in random data)."""
    def nbrs(x):
        d = ((x[:, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(-1)
        np.fill_diagonal(d, np.inf)
        return np.argsort(d, axis=1)[:, :k]
    na, nb = nbrs(a), nbrs(b)
    return np.mean([len(set(na[i]) & set(nb[i])) / k for i in range(len(a))])


def test_knn_overlap_equals_brute_force():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(150, 6))
    b = a[:, :3] + 0.3 * rng.normal(size=(150, 3))  # related, not equal
    c = rng.normal(size=(150, 4))  # unrelated
    for other in (b, c):
        assert knn_overlap(a, other, k=7) == pytest.approx(_direct_overlap(a, other, 7), abs=1e-12)
    assert 0.2 < knn_overlap(a, b, k=7) < 0.95 and knn_overlap(a, c, k=7) < 0.15
    dup = np.vstack([a, a[:1]])  # an exact duplicate: self is still excluded
    assert knn_overlap(dup, dup, k=3) == 1.0
    with pytest.raises(ValueError, match="'k' parameter"):
        knn_overlap(a, b, k=150)


def test_layer_overlaps_on_an_inferred_run(explained_run):
    store, _, _ = explained_run
    assert kept_layers(store) == ["layer1", "layer2", "layer3"]
    df = layer_overlaps(store.path, k=5, sample=40, random_state=0)
    assert list(zip(df["a"], df["b"])) == [("layer1", "layer2"), ("layer2", "layer3"), ("layer3", "fea"),
                                           ("layer1", "prd"), ("layer2", "prd"), ("layer3", "prd"), ("fea", "prd")]
    assert ((df["overlap"] >= 0) & (df["overlap"] <= 1)).all() and (df["n"] == 40).all()
    rows = np.sort(np.random.default_rng(0).choice(store.n_samples, size=40, replace=False))
    l2 = store.artifact("features_layer2").open()[:].astype(np.float32)[rows]
    l3 = store.artifact("features_layer3").open()[:].astype(np.float32)[rows]
    np.testing.assert_array_equal(read_space(store, "layer2", rows[::-1]), l2[::-1])
    assert df["overlap"][1] == pytest.approx(_direct_overlap(l2, l3, 5), abs=1e-12)


def test_embed_maps_each_kept_layer(explained_run, tmp_path):
    from xsgpu.embed import embed_run

    store, _, _ = explained_run
    run = tmp_path / "run"
    shutil.copytree(store.path, run)
    df = embed_run(run, method="pca", device="cpu", progress=False, quality=False)
    for layer in ("layer1", "layer2", "layer3"):
        xy = df[[f"fea_{layer}_x", f"fea_{layer}_y"]].to_numpy()
        assert xy.shape == (store.n_samples, 2) and np.isfinite(xy).all() and xy.std(axis=0).min() > 0
    meta = RunStore.open(run).embedding.metadata()
    assert meta["spaces"]["fea_layer1"]["input_dims"] == min(50, store.n_samples)  # 64 channels -> PCA, like FEA
    assert meta["spaces"]["fea_layer3"]["n_inputs"] == store.n_samples
    # an array of another model is not embedded
    arr = RunStore.open(run).artifact("features_layer1").open(mode="r+")
    arr.attrs["weights_sha256"] = "0" * 64
    assert kept_layers(RunStore.open(run)) == ["layer2", "layer3"]


def test_embed_writes_the_layer_overlaps_once(explained_run, tmp_path):
    """The embed stage stores layer_overlaps' own table (k = 10, its seed) for a run with kept layers."""
    import pandas as pd

    from xsgpu.embed import embed_run
    from xsgpu.io.schema import LAYER_OVERLAPS

    store, _, _ = explained_run
    run = tmp_path / "run"
    shutil.copytree(store.path, run)
    embed_run(run, method="pca", device="cpu", progress=False, quality=False, random_state=0)
    handle = RunStore.open(run).artifact(LAYER_OVERLAPS)
    got = handle.read()
    want = layer_overlaps(run, k=10, sample=5000, random_state=0)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want)
    assert got["kind"].tolist() == ["consecutive"] * 3 + ["prd"] * 4 and (got["n"] == store.n_samples).all()
    meta = handle.metadata()
    assert (meta["k"], meta["sample"], meta["random_state"]) == (10, 5000, 0)
    assert meta["predictions"] == RunStore.open(run).embedding.metadata()["predictions"]
    from xsgpu.stages import get_stage
    from xsgpu.stages.embed import EmbedParams

    params = EmbedParams(method="pca", device="cpu", quality=False, random_state=0)
    assert get_stage("embed").is_done(run, params)[0]
    handle.path.unlink()  # a run embedded before the table existed: the stage is not done
    assert get_stage("embed").is_done(run, params) == (False, "the run keeps layers but has no layer_overlaps yet")


def test_embed_writes_no_layer_overlaps_without_kept_layers(explained_run, tmp_path):
    from xsgpu.embed import embed_run
    from xsgpu.io.schema import LAYER_OVERLAPS

    store, _, _ = explained_run
    run = tmp_path / "run"
    shutil.copytree(store.path, run)
    for layer in ("layer1", "layer2", "layer3"):
        shutil.rmtree(RunStore.open(run).artifact(f"features_{layer}").path)
    assert kept_layers(RunStore.open(run)) == []
    embed_run(run, method="pca", device="cpu", progress=False, quality=False)
    assert not RunStore.open(run).artifact(LAYER_OVERLAPS).path.exists()
