"""Sample-and-place maps (embed_run(fit_sample=N)): the sample, the placement, the quality, Dask."""
from __future__ import annotations

import numpy as np
import pytest

from xsgpu.embed import embed_run
from xsgpu.embed.quality import trustworthiness
from xsgpu.embed.sample_place import place_rest, prediction_strata, stratified_sample
from xsgpu.io.runstore import RunStore

FAST = {"n_iter": 150, "early_exaggeration_iter": 50}


def test_stratified_sample_is_proportional_keeps_rare_strata_and_is_seeded():
    rng = np.random.default_rng(0)
    strata = rng.choice(5, size=10_000, p=[0.6, 0.3, 0.0985, 0.0010, 0.0005])
    idx = stratified_sample(strata, 1000, random_state=3)
    assert len(idx) == 1000 and np.all(np.diff(idx) > 0)
    counts = np.bincount(strata[idx], minlength=5)
    full = np.bincount(strata, minlength=5)
    assert counts[3] >= 1 and counts[4] >= 1  # a random draw of 1,000 would often miss them
    assert np.all(np.abs(counts - full * 0.1) <= 1.5)
    assert np.array_equal(idx, stratified_sample(strata, 1000, random_state=3))
    assert not np.array_equal(idx, stratified_sample(strata, 1000, random_state=4))
    assert np.array_equal(stratified_sample(strata[:50], 100), np.arange(50))


def test_stratified_sample_with_more_strata_than_room():
    strata = np.arange(100)
    idx = stratified_sample(strata, 10, random_state=0)
    assert len(idx) == 10 and len(np.unique(strata[idx])) == 10


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_stratified_sample_bad_size(bad):
    with pytest.raises(ValueError, match="'size' parameter of stratified_sample must be a positive int"):
        stratified_sample(np.zeros(10, np.int64), bad)


def test_prediction_strata_groups_equal_predicted_vectors():
    prd = np.array([[0.9, 0.1], [0.8, 0.4], [0.1, 0.9], [0.2, 0.2]])
    s = prediction_strata(prd)
    assert s[0] == s[1] and len({s[0], s[2], s[3]}) == 3


def _blobs(n, seed=0, d=10):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 8, (6, d))
    c = rng.integers(0, 6, n)
    return (centres[c] + rng.normal(size=(n, d))).astype(np.float32), c


def test_place_rest_keeps_the_sample_and_places_the_others_near_their_cluster():
    from xsgpu.embed.tsne_cpu import OpenTSNE

    X, c = _blobs(1200)
    sample = stratified_sample(c, 300, random_state=0)
    est = OpenTSNE(perplexity=20, random_state=0, **FAST).fit(X[sample])
    xy = place_rest(X, sample, est.embedding_, fitted=est.tsne_embedding_, n_iter=100, batch_rows=250)
    assert xy.shape == (1200, 2) and np.isfinite(xy).all()
    assert np.array_equal(xy[sample], est.embedding_)
    rest = np.setdiff1d(np.arange(1200), sample)
    centre = {k: est.embedding_[c[sample] == k].mean(axis=0) for k in range(6)}
    nearest = np.array([min(range(6), key=lambda k: np.linalg.norm(xy[i] - centre[k])) for i in rest])
    assert (nearest == c[rest]).mean() > 0.95


def test_place_rest_through_a_map_fn_equals_its_own_rebuild():
    """A map_fn (as Dask's) sees the shared arrays once per call and batches in order."""
    from xsgpu.embed.tsne_cpu import OpenTSNE

    X, c = _blobs(600, seed=1)
    sample = stratified_sample(c, 200, random_state=0)
    est = OpenTSNE(perplexity=15, random_state=0, **FAST).fit(X[sample])
    calls = []

    def serial_map(func, shared, batches):
        calls.append(len(batches))
        return [func(*shared, b) for b in batches]

    xy = place_rest(X, sample, est.embedding_, perplexity=15, n_iter=100, batch_rows=150, map_fn=serial_map)
    assert calls == [3] and np.isfinite(xy).all() and np.array_equal(xy[sample], est.embedding_)
    tw = trustworthiness(X, xy, n_neighbors=10)
    assert tw > 0.9


def test_embed_run_fit_sample_writes_every_row_and_records_it(make_run):
    store, cluster = make_run(n=900)
    df = embed_run(store.path, method="tsne", device="cpu", progress=False, n_jobs=1, fit_sample=300,
                   perplexity=20, projector_params=FAST, place_iter=100)
    assert len(df) == 900 and np.isfinite(df.drop(columns="sample_id").to_numpy()).all()
    meta = RunStore.open(store.path).read_metadata("embedding")
    assert meta["fit_sample"] == 300
    for space in ("fea", "prd"):
        info = meta["spaces"][space]
        assert info["fit_sample"] == 300 and info["placed"] == 600 and info["n_inputs"] == 900
        assert info["trustworthiness_k10"] > 0.85


def test_embed_run_fit_sample_is_ignored_where_it_does_not_apply(make_run, caplog):
    store, _ = make_run(n=120)
    with caplog.at_level("INFO", logger="xsgpu.embed.run"):
        embed_run(store.path, method="pca", device="cpu", progress=False, fit_sample=50)
    assert "fit_sample=50 ignored" in caplog.text
    with pytest.raises(ValueError, match="'fit_sample' parameter of embed_run must be an int >= 25"):
        embed_run(store.path, method="tsne", device="cpu", progress=False, fit_sample=3)


@pytest.mark.slow
def test_embed_run_places_batches_on_a_real_dask_cluster(make_run):
    from distributed import Client, LocalCluster

    from workflows.placement import dask_map_fn

    store, _ = make_run(n=700)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        df = embed_run(store.path, method="tsne", device="cpu", progress=False, n_jobs=1, fit_sample=250,
                       perplexity=20, projector_params=FAST, place_iter=80, map_fn=dask_map_fn(client))
    meta = RunStore.open(store.path).read_metadata("embedding")
    assert len(df) == 700 and meta["spaces"]["fea"]["placement"] == "openTSNE transform on Dask workers"
    assert meta["spaces"]["fea"]["trustworthiness_k10"] > 0.85
