from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import davies_bouldin_score, silhouette_score

from xsgpu.backend import GPUUnavailable, gpu_status
from xsgpu.metrics import ClusterResult, cluster_selection, davies_bouldin


@pytest.fixture
def blobs(rng):
    centres = np.array([[0, 0, 0], [6, 0, 0], [0, 6, 0]], float)
    return np.concatenate([c + rng.normal(0, 0.4, (60, 3)) for c in centres]).astype(np.float32)


def test_kmeans_scores_match_sklearn(blobs):
    r = cluster_selection(blobs, method="kmeans", n_clusters=3, device="cpu")
    assert isinstance(r, ClusterResult) and r.n_clusters == 3 and r.device == "cpu"
    assert r.labels.shape == (180,) and len(np.unique(r.labels[:60])) == 1
    assert r.silhouette == pytest.approx(silhouette_score(blobs, r.labels), abs=1e-6)
    assert r.davies_bouldin == pytest.approx(davies_bouldin_score(blobs, r.labels), rel=1e-6)
    assert r.params == {"method": "kmeans", "n_clusters": 3, "random_state": 0}


def test_dbscan_noise_excluded_from_scores(blobs):
    x = np.concatenate([blobs, [[30, 30, 30], [-30, 30, -30]]]).astype(np.float32)
    r = cluster_selection(x, method="dbscan", eps=1.0, min_samples=5, device="cpu")
    assert r.n_clusters == 3 and (r.labels[-2:] == -1).all()
    keep = r.labels >= 0
    assert r.silhouette == pytest.approx(silhouette_score(x[keep], r.labels[keep]), abs=1e-6)


def test_single_cluster_scores_are_nan(blobs):
    r = cluster_selection(blobs[:60], method="dbscan", eps=5.0, device="cpu")
    assert r.n_clusters == 1 and np.isnan(r.silhouette) and np.isnan(r.davies_bouldin)


def test_sampled_silhouette_is_close(rng):
    x = np.concatenate([rng.normal(0, 1, (1500, 4)), rng.normal(4, 1, (1500, 4))]).astype(np.float32)
    r = cluster_selection(x, n_clusters=2, silhouette_sample_size=500, device="cpu")
    assert r.silhouette == pytest.approx(silhouette_score(x, r.labels), abs=0.05)


def test_davies_bouldin_function(blobs, rng):
    labels = rng.integers(0, 4, len(blobs))
    assert davies_bouldin(blobs, labels) == pytest.approx(davies_bouldin_score(blobs, labels), rel=1e-6)


def test_errors(blobs):
    with pytest.raises(ValueError, match=r"'method' parameter of cluster_selection must be one of 'kmeans'"):
        cluster_selection(blobs, method="hdbscan")
    with pytest.raises(ValueError, match=r"'n_clusters' parameter of cluster_selection must be <= the number of rows"):
        cluster_selection(blobs[:3], n_clusters=5, device="cpu")
    with pytest.raises(ValueError, match=r"'x' parameter of cluster_selection must be a 2-D array"):
        cluster_selection(blobs[0], device="cpu")
    bad = blobs.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"must not contain NaN"):
        cluster_selection(bad, device="cpu")
    with pytest.raises(ValueError, match=r"'eps' parameter of cluster_selection must be a float > 0"):
        cluster_selection(blobs, method="dbscan", eps=0)


@pytest.mark.skipif(gpu_status()[0], reason="checks the no-GPU error path")
def test_explicit_gpu_without_gpu_raises(blobs):
    with pytest.raises(GPUUnavailable, match=r"device='gpu' was requested"):
        cluster_selection(blobs, device="gpu")


@pytest.mark.gpu
def test_gpu_matches_cpu(blobs):
    pytest.importorskip("cuml")
    import cupy

    r = cluster_selection(cupy.asarray(blobs), n_clusters=3, device="gpu")
    c = cluster_selection(blobs, n_clusters=3, device="cpu")
    assert isinstance(r.labels, cupy.ndarray) and r.n_clusters == 3
    assert r.silhouette == pytest.approx(c.silhouette, abs=1e-3)
