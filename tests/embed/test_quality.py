"""The blocked trustworthiness equals scikit-learn's on tie-free data, whatever the block size."""
import numpy as np
import pytest
from sklearn.manifold import trustworthiness as sklearn_trustworthiness

from xsgpu.embed.quality import trustworthiness


@pytest.mark.parametrize("block", [1, 37, 512])
def test_blocked_trustworthiness_equals_sklearn(block):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 8))
    Y = X[:, :2] + 0.4 * rng.normal(size=(400, 2))
    ours = trustworthiness(X, Y, n_neighbors=10, sample=None, block=block)
    assert ours == pytest.approx(sklearn_trustworthiness(X, Y, n_neighbors=10), abs=1e-12)


def test_trustworthiness_separates_good_and_bad_maps():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(600, 6))
    good = trustworthiness(X, X[:, :2] * 3 + 0.01 * rng.normal(size=(600, 2)), sample=None)
    bad = trustworthiness(X, rng.normal(size=(600, 2)), sample=None)
    assert good > 0.65 > 0.55 > bad


def test_trustworthiness_on_a_subsample_and_metric():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(900, 5))
    Y = X[:, :2]
    idx = np.sort(np.random.default_rng(0).choice(900, size=300, replace=False))
    expected = sklearn_trustworthiness(X[idx], Y[idx], n_neighbors=10, metric="manhattan")
    assert trustworthiness(X, Y, sample=300, random_state=0, metric="manhattan") == pytest.approx(expected, abs=1e-12)
