from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import mutual_info_score

from xsgpu.metrics import attribute_study


def _entropy_bits(*cols):
    _, counts = np.unique(np.stack(cols, axis=1), axis=0, return_counts=True)
    q = counts / counts.sum()
    return float(-(q * np.log2(q)).sum())


@pytest.fixture
def labels(rng):
    base = rng.random((500, 17)) < 0.3
    base[:, 1] = base[:, 0] ^ (rng.random(500) < 0.1)  # attribute 1 ~ attribute 0
    base[:, 16] = True                                   # constant column
    return base


def test_mutual_information_matches_sklearn(labels):
    m = attribute_study(labels, measure="mutual_information")
    assert m.shape == (17, 17)
    for i, j in [(0, 1), (0, 0), (3, 7), (5, 16)]:
        ref = mutual_info_score(labels[:, i], labels[:, j]) / np.log(2)
        assert m[i, j] == pytest.approx(ref, abs=1e-9)
    np.testing.assert_allclose(m, m.T, atol=1e-12)
    assert m[0, 1] > 0.3 > m[0, 5]


def test_conditional_entropy_orientation(labels):
    h = attribute_study(labels, measure="conditional_entropy")
    for i, j in [(0, 1), (1, 0), (2, 9), (16, 3)]:
        ref = _entropy_bits(labels[:, i], labels[:, j]) - _entropy_bits(labels[:, i])  # H(col j | col i)
        assert h[i, j] == pytest.approx(ref, abs=1e-9)
    np.testing.assert_allclose(np.diag(h), 0, atol=1e-12)


def test_correlation_matches_numpy_and_constant_is_nan(labels, rng):
    c = attribute_study(labels, measure="correlation")
    ref = np.corrcoef(labels[:, :16].T.astype(float))
    np.testing.assert_allclose(c[:16, :16], ref, atol=1e-9)
    assert np.isnan(c[16]).all() and np.isnan(c[:, 16]).all()
    probs = rng.random((500, 17)).astype(np.float32)
    cp = attribute_study(probs, measure="correlation")
    np.testing.assert_allclose(cp, np.corrcoef(probs.T.astype(float)), atol=1e-6)


def test_cross_matrix_true_vs_predicted(labels, rng):
    probs = np.where(labels, 0.8, 0.2).astype(np.float32)
    probs[:, 2] = rng.random(500)                       # predictions of attribute 2 are noise
    m = attribute_study(labels, measure="mutual_information", other=probs)
    pred = probs > 0.5
    assert m[4, 4] == pytest.approx(mutual_info_score(labels[:, 4], pred[:, 4]) / np.log(2), abs=1e-9)
    assert m[0, 1] == pytest.approx(mutual_info_score(labels[:, 0], pred[:, 1]) / np.log(2), abs=1e-9)
    assert m[2, 2] < 0.05 < m[3, 3]
    h = attribute_study(labels, measure="conditional_entropy", other=probs)
    ref = _entropy_bits(labels[:, 3], pred[:, 5]) - _entropy_bits(labels[:, 3])
    assert h[3, 5] == pytest.approx(ref, abs=1e-9)                # rows: true attribute


def test_errors(labels):
    with pytest.raises(ValueError, match=r"'measure' parameter of attribute_study must be one of"):
        attribute_study(labels, measure="kendall")
    with pytest.raises(ValueError, match=r"same number of rows.*length mismatch"):
        attribute_study(labels, other=labels[:10])
    with pytest.raises(ValueError, match=r"'other' parameter of attribute_study must have 17 columns"):
        attribute_study(labels, other=labels[:, :4])
    bad = labels.astype(np.float32)
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"'y' parameter of attribute_study must not contain NaN"):
        attribute_study(bad)
