from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, multilabel_confusion_matrix, precision_recall_fscore_support

from xsgpu.attributes import SLUGS
from xsgpu.metrics import (
    PER_ATTRIBUTE_COLUMNS, SelectionScorer, attribute_metrics, confusion_counts, encode_rows, predict_labels,
    ratios, selection_metrics,
)

from .conftest import make_multilabel


def _sk_counts(y, pred):
    mcm = multilabel_confusion_matrix(y, pred)  # [[tn, fp], [fn, tp]] per label
    return {"tn": mcm[:, 0, 0], "fp": mcm[:, 0, 1], "fn": mcm[:, 1, 0], "tp": mcm[:, 1, 1]}


def test_counts_match_sklearn(multilabel):
    y, p = multilabel
    c = confusion_counts(y, p)
    sk = _sk_counts(y, p > 0.5)
    for key in ("tp", "fp", "fn", "tn"):
        np.testing.assert_array_equal(c[key], sk[key])
        assert c[key].shape == (17,) and c[key].dtype == np.int64


def test_prediction_rule_is_strictly_greater():
    y = np.zeros((2, 17), bool)
    p = np.full((2, 17), 0.5, np.float32)
    assert not predict_labels(p).any()
    assert confusion_counts(y, p)["fp"].sum() == 0
    p[0, 3] = np.nextafter(np.float32(0.5), np.float32(1))
    assert confusion_counts(y, p)["fp"][3] == 1


def test_per_attribute_cutoff(multilabel):
    y, p = multilabel
    cut = np.linspace(0.1, 0.9, 17)
    c = confusion_counts(y, p, cutoff=cut)
    sk = _sk_counts(y, p > cut[None, :])
    np.testing.assert_array_equal(c["tp"], sk["tp"])
    np.testing.assert_array_equal(c["tn"], sk["tn"])


def test_attribute_metrics_frame_matches_sklearn(multilabel):
    y, p = multilabel
    df = attribute_metrics(y, p)
    assert list(df.columns) == PER_ATTRIBUTE_COLUMNS
    assert list(df.index) == list(SLUGS) and df.index.name == "attribute"
    prec, rec, f1, sup = precision_recall_fscore_support(y, p > 0.5, average=None, zero_division=0)
    np.testing.assert_allclose(df["precision"], prec)
    np.testing.assert_allclose(df["recall"], rec)
    np.testing.assert_allclose(df["f1"], f1)
    np.testing.assert_array_equal(df["support"], sup)
    acc = [accuracy_score(y[:, j], p[:, j] > 0.5) for j in range(17)]
    np.testing.assert_allclose(df["accuracy"], acc)


def test_zero_division_is_zero():
    y = np.zeros((5, 17), bool)
    y[:, 1] = True                        # attribute 1 present everywhere, never predicted
    p = np.zeros((5, 17), np.float32)
    p[:, 2] = 0.9                         # attribute 2 predicted, never present
    r = ratios(*(confusion_counts(y, p)[k] for k in ("tp", "fp", "fn", "tn")))
    assert r["precision"][1] == 0 and r["recall"][1] == 0 and r["f1"][1] == 0
    assert r["precision"][2] == 0 and r["recall"][2] == 0
    assert r["precision"][0] == 0 and r["f1"][0] == 0 and r["accuracy"][0] == 1  # absent and not predicted
    df = attribute_metrics(y, p)
    assert np.isnan(df.loc[SLUGS[0], "ap"]) and df.loc[SLUGS[1], "ap"] == pytest.approx(1.0)


@pytest.mark.parametrize("kind", ["mask", "index_small", "index_large"])
def test_selection_equals_subset(rng, kind):
    y, p = make_multilabel(rng, 400)
    if kind == "mask":
        sel = rng.random(400) < 0.5
    elif kind == "index_small":
        sel = rng.choice(400, 40, replace=False)
    else:
        sel = rng.choice(400, 300, replace=False)
    m = selection_metrics(y, p, sel, ap=True)
    ys, ps = y[sel], p[sel]
    full = attribute_metrics(ys, ps)
    np.testing.assert_allclose(m.per_attribute.to_numpy(float), full.to_numpy(float), equal_nan=True)
    pred = ps > 0.5
    for avg in ("micro", "macro", "samples"):
        pr, rc, f1, _ = precision_recall_fscore_support(ys, pred, average=avg, zero_division=0)
        assert m.overall[f"precision_{avg}"] == pytest.approx(pr, abs=1e-12)
        assert m.overall[f"recall_{avg}"] == pytest.approx(rc, abs=1e-12)
        assert m.overall[f"f1_{avg}"] == pytest.approx(f1, abs=1e-12)
    assert m.overall["subset_accuracy"] == pytest.approx(accuracy_score(ys, pred))
    assert m.overall["accuracy"] == pytest.approx((ys == pred).mean())
    assert m.overall["n"] == len(ys)
    assert m.overall["map"] == pytest.approx(np.nanmean(full["ap"]))


def test_samples_average_with_empty_rows():
    # rows with no true and no predicted label: sklearn (zero_division=0) scores them 0
    y = np.zeros((4, 17), bool)
    p = np.zeros((4, 17), np.float32)
    y[0, 0] = True; p[0, 0] = 0.9
    y[1, 1] = True
    p[2, 2] = 0.9
    m = selection_metrics(y, p, np.ones(4, bool))
    for avg in ("samples", "micro", "macro"):
        pr, rc, f1, _ = precision_recall_fscore_support(y, p > 0.5, average=avg, zero_division=0)
        assert (m.overall[f"precision_{avg}"], m.overall[f"recall_{avg}"], m.overall[f"f1_{avg}"]) == \
            pytest.approx((pr, rc, f1))


def test_duplicate_indices_count_twice(multilabel):
    y, p = multilabel
    m = selection_metrics(y, p, np.array([0, 0, 1]))
    assert m.overall["n"] == 3
    ref = attribute_metrics(y[[0, 0, 1]], p[[0, 0, 1]])
    np.testing.assert_array_equal(m.per_attribute["tp"], ref["tp"])


def test_scorer_reuses_codes(multilabel):
    y, p = multilabel
    scorer = SelectionScorer(y, p, cutoff=0.3)
    sel = np.arange(0, 300, 3)
    a = scorer(sel)
    b = selection_metrics(y, p, sel, cutoff=0.3)
    assert a.per_attribute.equals(b.per_attribute)
    assert a.overall == pytest.approx(b.overall, nan_ok=True)
    whole = scorer()
    np.testing.assert_array_equal(whole.per_attribute["tp"], confusion_counts(y, p, cutoff=0.3)["tp"])
    assert np.isnan(whole.overall["map"])  # AP only on request
    with pytest.raises(ValueError, match="keep_probabilities=True"):
        SelectionScorer(y, p, keep_probabilities=False)(sel, ap=True)


def test_encode_rows_bits():
    b = np.zeros((3, 17), bool)
    b[1, 0] = True
    b[2, 16] = True
    b[2, 8] = True
    assert encode_rows(b).tolist() == [0, 1, (1 << 16) | (1 << 8)]


# ---------------------------------------------------------------- error paths
def test_length_mismatch(multilabel):
    y, p = multilabel
    with pytest.raises(ValueError, match=r"'y_true' and 'y_prob' parameters of confusion_counts must have the same "
                                         r"shape.*length mismatch"):
        confusion_counts(y, p[:-1])


def test_nan_probabilities(multilabel):
    y, p = multilabel
    p = p.copy()
    p[3, 4] = np.nan
    with pytest.raises(ValueError, match=r"'y_prob' parameter of selection_metrics must not contain NaN. Got 1 NaN"):
        selection_metrics(y, p, np.arange(5))


def test_probabilities_outside_unit_interval(multilabel):
    y, p = multilabel
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]. Got values in \[0.1.*, 2.0.*\].*sigmoid"):
        attribute_metrics(y, p * 2 + 0.1)


def test_wrong_shapes(multilabel):
    y, p = multilabel
    with pytest.raises(ValueError, match=r"'y_true' parameter of confusion_counts must have 17 columns"):
        confusion_counts(y[:, :5], p[:, :5])
    with pytest.raises(ValueError, match=r"'y_prob' parameter of attribute_metrics must be a 2-D array"):
        attribute_metrics(y, p[:, 0])


def test_non_binary_labels(multilabel):
    y, p = multilabel
    y = y.astype(int)
    y[0, 0] = 2
    with pytest.raises(ValueError, match=r"must hold only 0/1 \(or bool\) labels. Got the value 2"):
        confusion_counts(y, p)


def test_integer_labels_accepted(multilabel):
    y, p = multilabel
    assert confusion_counts(y.astype(np.int8), p)["tp"].tolist() == confusion_counts(y, p)["tp"].tolist()


@pytest.mark.parametrize("sel", [np.zeros(300, bool), np.array([], dtype=np.int64)])
def test_empty_selection(multilabel, sel):
    y, p = multilabel
    with pytest.raises(ValueError, match=r"'selection' parameter of selection_metrics selects no rows"):
        selection_metrics(y, p, sel)


def test_bad_selections(multilabel):
    y, p = multilabel
    with pytest.raises(ValueError, match=r"bool mask of length 10, but the data has 300 rows"):
        selection_metrics(y, p, np.ones(10, bool))
    with pytest.raises(ValueError, match=r"row indices in 0..299. Got indices in \[0, 300\]"):
        selection_metrics(y, p, np.array([0, 300]))
    with pytest.raises(ValueError, match=r"bool mask or integer row indices"):
        selection_metrics(y, p, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"1-D bool mask"):
        selection_metrics(y, p, np.ones((300, 1), bool))


@pytest.mark.parametrize("cut, msg", [(1.5, r"float in \[0, 1\]"), (True, r"float in \[0, 1\]"),
                                      (np.full(3, 0.5), r"shape \(17,\).*Got shape \(3,\)"),
                                      (np.full(17, np.nan), r"values in \[0, 1\]")])
def test_bad_cutoff(multilabel, cut, msg):
    y, p = multilabel
    with pytest.raises(ValueError, match=r"'cutoff' parameter of confusion_counts must .*" + msg):
        confusion_counts(y, p, cutoff=cut)


@pytest.mark.parametrize("frac", [0.2, 0.8])
def test_selection_paths_agree(rng, frac):
    # <= half the rows: gather-then-pack; more: pack-all-then-gather. Both equal the subset's metrics.
    y, p = make_multilabel(rng, 200)
    mask = rng.random(200) < frac
    m = selection_metrics(y, p, mask)
    ref = SelectionScorer(y[mask], p[mask])()
    pd.testing.assert_frame_equal(m.per_attribute, ref.per_attribute)
    assert m.overall == pytest.approx(ref.overall, nan_ok=True)


def test_scorer_all_rows_mask_equals_none(multilabel):
    y, p = multilabel
    scorer = SelectionScorer(y, p)
    a, b = scorer(np.ones(len(y), bool)), scorer()
    pd.testing.assert_frame_equal(a.per_attribute, b.per_attribute)
    assert a.overall == pytest.approx(b.overall, nan_ok=True)
    one = np.zeros(len(y), bool)
    one[7] = True
    pd.testing.assert_frame_equal(scorer(one).per_attribute, attribute_metrics(y[7:8], p[7:8]).assign(ap=np.nan))
