import logging

import numpy as np
import pytest

from xsgpu.backend import GPUUnavailable, UnsupportedOnGPU
from xsgpu.embed import CAPABILITIES, NotFittedError, capability, make_projector
from xsgpu.embed import projectors as projectors_mod
from xsgpu.embed.tsne_gpu import CumlTSNE


def test_capability_table_covers_every_method_and_backend():
    for method in ("tsne", "pca", "umap"):
        for backend in ("cpu", "gpu"):
            assert (method, backend) in CAPABILITIES
    assert capability("tsne", "gpu").n_components == (2,) and not capability("tsne", "gpu").transform
    assert capability("tsne", "cpu").transform


def test_unknown_method_and_device_are_named():
    with pytest.raises(ValueError, match=r"The 'method' parameter of make_projector must be one of \['tsne', 'pca', 'umap'\]. Got 'mds' instead"):
        make_projector("mds")
    with pytest.raises(ValueError, match=r"The 'device' parameter of make_projector must be 'auto', 'cpu' or 'gpu'. Got 'tpu'"):
        make_projector("tsne", device="tpu")


def test_three_components_on_gpu_is_unsupported_before_any_gpu_check():
    proj = make_projector("tsne", device="gpu", n_components=3)
    with pytest.raises(UnsupportedOnGPU, match=r"cuml.TSNE supports n_components in \[2\]; got n_components=3"):
        proj.fit(np.zeros((20, 4)))


def test_three_components_on_cpu_tsne_is_a_value_error():
    with pytest.raises(ValueError, match="openTSNE supports n_components in \\[1, 2\\]; got n_components=3"):
        make_projector("tsne", device="cpu", n_components=3).fit(np.zeros((20, 4)))


def test_gpu_request_without_gpu_names_the_reason(monkeypatch):
    monkeypatch.setattr(projectors_mod, "resolve_device",
                        lambda d: (_ for _ in ()).throw(GPUUnavailable("device='gpu' was requested but no CUDA device")))
    with pytest.raises(GPUUnavailable, match="no CUDA device"):
        make_projector("pca", device="gpu").fit(np.ones((10, 3)))


def test_cuml_tsne_cannot_transform():
    with pytest.raises(UnsupportedOnGPU, match="cannot place new points"):
        CumlTSNE().transform(np.zeros((3, 4)))


def test_transform_before_fit():
    with pytest.raises(NotFittedError, match="not fitted yet"):
        make_projector("pca", device="cpu").transform(np.zeros((3, 4)))


def test_nan_input_is_named(rng):
    X = rng.normal(size=(30, 4))
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"must be finite; rows \[3\] hold NaN or inf"):
        make_projector("pca", device="cpu").fit(X)


def test_pca_is_randomized_and_deterministic(rng):
    X = rng.normal(size=(200, 30))
    a = make_projector("pca", device="cpu", random_state=0)
    ya = a.fit_transform(X)
    assert a.estimator_.model_.svd_solver == "randomized"
    assert ya.dtype == np.float32 and ya.shape == (200, 2)
    assert np.array_equal(ya, make_projector("pca", device="cpu", random_state=0).fit_transform(X))
    assert np.allclose(a.transform(X[:5]), ya[:5], atol=1e-5)


def _clusters(rng, n=150):
    centres = rng.normal(0, 6, (3, 8))
    c = rng.integers(0, 3, n)
    return centres[c] + rng.normal(size=(n, 8)), c


def test_auto_uses_gpu_then_falls_back_for_transform(fake_gpu, rng, caplog):
    X, c = _clusters(rng)
    proj = make_projector("tsne", device="auto", perplexity=10)
    y = proj.fit_transform(X)
    assert proj.backend_ == "gpu" and y.shape == (150, 2) and proj.fallback_reason_ is None
    with caplog.at_level(logging.WARNING, logger="xsgpu.embed.projectors"):
        placed = proj.transform(X[:3] + 0.01)
    assert "falling back to CPU for transform" in caplog.text
    assert placed.shape == (3, 2) and np.isfinite(placed).all()


def test_explicit_gpu_transform_raises(fake_gpu, rng):
    X, _ = _clusters(rng)
    proj = make_projector("tsne", device="gpu", perplexity=10)
    proj.fit(X)
    with pytest.raises(UnsupportedOnGPU, match="cuml.TSNE cannot place new points"):
        proj.transform(X[:3])


def test_auto_falls_back_to_cpu_for_what_cuml_cannot_do(fake_gpu, rng, caplog):
    X, _ = _clusters(rng, n=60)
    proj = make_projector("tsne", device="auto", n_components=1, perplexity=5, n_iter=50,
                          early_exaggeration_iter=25)
    with caplog.at_level(logging.WARNING, logger="xsgpu.embed.projectors"):
        y = proj.fit_transform(X)
    assert proj.backend_ == "cpu" and y.shape == (60, 1)
    assert "falling back to CPU" in caplog.text and "n_components=1" in proj.fallback_reason_


@pytest.mark.slow
def test_umap_projector_fits_and_transforms(rng):
    pytest.importorskip("umap")
    X, _ = _clusters(rng, n=120)
    proj = make_projector("umap", device="cpu", random_state=0, n_neighbors=10)
    y = proj.fit_transform(X)
    assert y.shape == (120, 2) and np.isfinite(y).all()
    assert proj.transform(X[:4]).shape == (4, 2)


@pytest.mark.gpu
def test_cuml_tsne_on_a_real_gpu(rng):
    pytest.importorskip("cuml")
    X, _ = _clusters(rng, n=500)
    proj = make_projector("tsne", device="gpu", perplexity=20)
    y = proj.fit_transform(X)
    assert proj.backend_ == "gpu" and y.shape == (500, 2) and np.isfinite(y).all()
