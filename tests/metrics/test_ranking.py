from __future__ import annotations

import logging

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from xsgpu.metrics import average_precision, mean_average_precision

from .conftest import make_multilabel


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("quantize", [None, 20, 3])
def test_ap_equals_sklearn_with_ties(seed, quantize):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 400))
    y, p = make_multilabel(rng, n, quantize=quantize, prevalence=float(rng.uniform(0.05, 0.6)))
    ours = average_precision(y, p)
    for j in range(17):
        if y[:, j].any():
            assert ours[j] == pytest.approx(average_precision_score(y[:, j], p[:, j]), abs=1e-6)
        else:
            assert np.isnan(ours[j])


def test_ap_1d_and_all_tied():
    y = np.array([1, 0, 1, 0, 0])
    s = np.full(5, 0.3)
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s)) == pytest.approx(0.4)
    s = np.array([0.9, 0.8, 0.8, 0.1, 0.1])
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)


def test_ap_accepts_any_finite_scores(rng):
    y = rng.random(100) < 0.3
    s = rng.normal(size=100) * 10
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-9)


def test_map_skips_attributes_without_positives(multilabel):
    y, p = multilabel
    y = y.copy()
    y[:, 0] = False
    ap = average_precision(y, p)
    assert np.isnan(ap[0])
    assert mean_average_precision(y, p) == pytest.approx(np.mean(ap[1:]))


def test_map_no_positives_is_nan_with_warning(caplog):
    y = np.zeros((4, 17), bool)
    p = np.zeros((4, 17), np.float32)
    with caplog.at_level(logging.WARNING):
        assert np.isnan(mean_average_precision(y, p))
    assert "mAP is undefined" in caplog.text


def test_ap_errors():
    with pytest.raises(ValueError, match=r"'y_true' and 'y_score' parameters of average_precision must have the "
                                         r"same shape.*length mismatch"):
        average_precision(np.array([1, 0]), np.array([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match=r"'y_score' parameter of average_precision must not contain NaN"):
        average_precision(np.array([1, 0]), np.array([0.1, np.nan]))
    with pytest.raises(ValueError, match=r"'y_score' parameter of average_precision must hold finite scores"):
        average_precision(np.array([1, 0]), np.array([0.1, np.inf]))
    with pytest.raises(ValueError, match=r"has no rows"):
        average_precision(np.zeros(0, bool), np.zeros(0))
    with pytest.raises(ValueError, match=r"1-D \(n,\) or 2-D"):
        average_precision(np.zeros((2, 2, 2), bool), np.zeros((2, 2, 2)))
