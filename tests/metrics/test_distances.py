from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cityblock, cosine, euclidean

from xsgpu.metrics import error_distance


@pytest.mark.parametrize("metric, ref", [("cosine", cosine), ("euclidean", euclidean), ("manhattan", cityblock)])
def test_matches_scipy(multilabel, metric, ref):
    y, p = multilabel
    y = y.copy()
    y[:, 0] = True  # no all-zero rows: scipy's cosine is defined everywhere
    d = error_distance(y, p, metric=metric)
    assert d.shape == (len(y),) and d.dtype == np.float32
    expected = [ref(y[i].astype(float), p[i].astype(float)) for i in range(len(y))]
    np.testing.assert_allclose(d, expected, atol=1e-5)


def test_cosine_zero_vector_convention():
    y = np.zeros((3, 17), bool)
    p = np.zeros((3, 17), np.float32)
    p[1, 2] = 0.7             # nothing labelled, something predicted -> 1
    y[2, 5] = True            # labelled, nothing predicted -> 1
    assert error_distance(y, p, metric="cosine").tolist() == [0.0, 1.0, 1.0]


def test_perfect_prediction_is_zero(multilabel):
    y, _ = multilabel
    for metric in ("cosine", "euclidean", "manhattan"):
        assert np.allclose(error_distance(y, y.astype(np.float32), metric=metric), 0, atol=1e-6)


def test_errors(multilabel):
    y, p = multilabel
    with pytest.raises(ValueError, match=r"'metric' parameter of error_distance must be one of 'cosine'"):
        error_distance(y, p, metric="hamming")
    with pytest.raises(ValueError, match=r"length mismatch"):
        error_distance(y[:3], p)
