"""AP from a precomputed order (the app's cached probability order): the same numbers as sorting."""
from __future__ import annotations

import numpy as np
import pytest

from xsgpu.attributes import Vocabulary
from xsgpu.metrics import (
    SelectionScorer, attribute_metrics, average_precision, descending_order, mean_ap, mean_average_precision,
    restrict_order, selection_metrics,
)

from .conftest import make_multilabel


@pytest.mark.parametrize("quantize", [None, 3])  # 3 levels: nearly every score is tied
def test_ap_with_the_order_equals_ap_with_a_sort(quantize):
    rng = np.random.default_rng(5)
    y, p = make_multilabel(rng, 800, quantize=quantize, prevalence=0.3)
    order = descending_order(p)
    assert order.dtype == np.int32 and order.shape == p.shape
    assert np.all(np.diff(np.take_along_axis(p, order, axis=0), axis=0) <= 0)  # decreasing per column
    np.testing.assert_allclose(average_precision(y, p, order=order), average_precision(y, p), atol=1e-12)


def test_the_order_of_a_subset_is_gathered_from_the_order_of_all_rows():
    rng = np.random.default_rng(6)
    y, p = make_multilabel(rng, 1000, quantize=20, prevalence=0.25)
    order = descending_order(p)
    rows = np.flatnonzero(rng.random(1000) < 0.4)
    sub = restrict_order(order, rows)
    assert sub.shape == (len(rows), 17)
    np.testing.assert_allclose(average_precision(y[rows], p[rows], order=sub), average_precision(y[rows], p[rows]),
                               atol=1e-12)
    mask = np.zeros(1000, bool)
    mask[rows] = True
    np.testing.assert_array_equal(restrict_order(order, mask), sub)      # a mask gives the same order
    shuffled = rng.permutation(rows)                                      # rows in any order: positions follow it
    np.testing.assert_allclose(average_precision(y[shuffled], p[shuffled], order=restrict_order(order, shuffled)),
                               average_precision(y[rows], p[rows]), atol=1e-12)
    assert restrict_order(order, np.arange(1000)) is order                # every row: the order itself
    assert restrict_order(order, rows[:10]) is None                       # a small subset: sort it instead
    assert restrict_order(order, np.concatenate([rows, rows[:1]])) is None  # a repeated row: no single order


def test_the_order_must_have_the_shape_of_the_labels():
    y = np.zeros((4, 2), bool)
    y[0] = True
    with pytest.raises(ValueError, match="'order' parameter of average_precision"):
        average_precision(y, np.ones((4, 2)), order=np.zeros((3, 2), np.int32))


def test_metrics_with_the_order_equal_metrics_without():
    rng = np.random.default_rng(7)
    y, p = make_multilabel(rng, 1200, quantize=50, prevalence=0.3)
    order = descending_order(p)
    plain = attribute_metrics(y, p)
    fast = attribute_metrics(y, p, ap_order=order)
    np.testing.assert_allclose(fast["ap"].to_numpy(), plain["ap"].to_numpy(), atol=1e-12)
    assert mean_ap(fast["ap"].to_numpy()) == pytest.approx(mean_average_precision(y, p), abs=1e-12)
    for rows in (np.flatnonzero(rng.random(1200) < 0.3),   # gathered first (at most half the rows)
                 np.flatnonzero(rng.random(1200) < 0.8),   # scored as all minus the rest
                 np.arange(1200)):
        want = selection_metrics(y, p, rows, ap=True)
        got = selection_metrics(y, p, rows, ap=True, ap_order=order)
        np.testing.assert_allclose(got.per_attribute["ap"], want.per_attribute["ap"], atol=1e-12)
        assert got.overall["map"] == pytest.approx(want.overall["map"], abs=1e-12)
        scored = SelectionScorer(y, p, ap_order=order)(rows, ap=True)
        assert scored.overall["map"] == pytest.approx(want.overall["map"], abs=1e-12)


def test_metrics_with_the_order_for_another_vocabulary():
    vocab = Vocabulary.from_names(["Ring", "Spot", "Streak"])
    rng = np.random.default_rng(8)
    y = rng.random((500, 3)) < 0.3
    p = np.round(np.clip(y * 0.5 + rng.random((500, 3)) * 0.5, 0, 1), 2).astype(np.float32)
    rows = np.flatnonzero(rng.random(500) < 0.6)
    want = selection_metrics(y, p, rows, ap=True, vocabulary=vocab)
    got = selection_metrics(y, p, rows, ap=True, vocabulary=vocab, ap_order=descending_order(p))
    np.testing.assert_allclose(got.per_attribute["ap"], want.per_attribute["ap"], atol=1e-12)
    with pytest.raises(ValueError, match="'ap_order' parameter of SelectionScorer"):
        SelectionScorer(y, p, vocabulary=vocab, ap_order=np.zeros((3, 3), np.int32))
