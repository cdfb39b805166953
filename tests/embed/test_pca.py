import numpy as np
import pytest

from xsgpu.embed.pca import StreamingPCA


def test_streaming_pca_matches_exact_pca(rng):
    from sklearn.decomposition import PCA

    X = rng.normal(size=(600, 40)) * np.linspace(5, 0.1, 40) + 3.0
    sp = StreamingPCA(n_components=5).fit(np.array_split(X, 7))
    ref = PCA(5, svd_solver="full").fit(X)
    assert np.allclose(sp.explained_variance_, ref.explained_variance_, rtol=1e-6)
    assert np.allclose(np.abs(sp.components_), np.abs(ref.components_), atol=1e-6)
    Z = sp.transform(X)
    assert Z.dtype == np.float32 and Z.shape == (600, 5)
    assert np.allclose(np.abs(Z), np.abs(ref.transform(X)), atol=1e-3)
    again = StreamingPCA.from_arrays(sp.components_, sp.mean_)
    assert np.array_equal(again.transform(X), Z)


def test_streaming_pca_errors(rng):
    sp = StreamingPCA(n_components=3)
    sp.partial_fit(rng.normal(size=(10, 4)))
    with pytest.raises(ValueError, match="batch has 5 columns; earlier batches had 4"):
        sp.partial_fit(rng.normal(size=(10, 5)))
    bad = rng.normal(size=(10, 4))
    bad[2, 2] = np.inf
    with pytest.raises(ValueError, match="must be finite"):
        StreamingPCA(2).partial_fit(bad)
    with pytest.raises(ValueError, match=r"The 'n_components' parameter of StreamingPCA must be <= min\(n_samples, n_features\) = 4"):
        StreamingPCA(9).fit([rng.normal(size=(10, 4))])


@pytest.mark.gpu
def test_streaming_pca_on_cupy(rng):
    cp = pytest.importorskip("cupy")
    X = rng.normal(size=(300, 20))
    cpu = StreamingPCA(4).fit([X])
    gpu = StreamingPCA(4).fit([cp.asarray(X)])
    assert np.allclose(np.abs(cp.asnumpy(gpu.components_)), np.abs(cpu.components_), atol=1e-6)
