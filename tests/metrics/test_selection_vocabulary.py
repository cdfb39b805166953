"""SelectionScorer, selection_metrics and cooccurrence_table for other vocabularies (issue 9.3): 5 attributes
(per-image codes) and 40 (bool rows, wider than CODE_MAX_ATTRIBUTES), against plain NumPy counts and
sklearn's averages."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support

from xsgpu.attributes import Vocabulary
from xsgpu.metrics import SelectionScorer, cooccurrence_table, selection_metrics
from xsgpu.metrics import confusion

VOCABS = {k: Vocabulary.from_names([f"Attr {i}" for i in range(k)]) for k in (5, 40)}


@pytest.fixture(params=[5, 40])
def arrays(request):
    k = request.param
    rng = np.random.default_rng(k)
    y = rng.random((300, k)) < 0.3
    p = np.clip(y * 0.6 + rng.random((300, k)) * 0.5, 0, 1).astype(np.float32)
    return VOCABS[k], y, p


@pytest.mark.parametrize("sel", ["indices", "small mask", "large mask"])
def test_scorer_matches_numpy_and_sklearn(arrays, sel):
    vocab, y, p = arrays
    rng = np.random.default_rng(1)
    selection = {"indices": rng.choice(300, 80, replace=False), "small mask": rng.random(300) < 0.2,
                 "large mask": rng.random(300) < 0.8}[sel]
    m = SelectionScorer(y, p, cutoff=0.5, vocabulary=vocab)(selection)
    ys, ps = y[selection], p[selection] > 0.5
    per = m.per_attribute
    assert per.index.tolist() == list(vocab.slugs)
    for name, want in (("tp", ys & ps), ("fp", ~ys & ps), ("fn", ys & ~ps), ("tn", ~ys & ~ps)):
        np.testing.assert_array_equal(per[name].to_numpy(), want.sum(axis=0))
    assert m.overall["n"] == len(ys)
    assert m.overall["accuracy"] == pytest.approx((ys == ps).mean())
    assert m.overall["subset_accuracy"] == pytest.approx((ys == ps).all(axis=1).mean())
    for avg in ("micro", "macro", "samples"):
        prec, rec, f1, _ = precision_recall_fscore_support(ys, ps, average=avg, zero_division=0)
        assert m.overall[f"precision_{avg}"] == pytest.approx(prec)
        assert m.overall[f"recall_{avg}"] == pytest.approx(rec)
        assert m.overall[f"f1_{avg}"] == pytest.approx(f1)
    one_shot = selection_metrics(y, p, selection, vocabulary=vocab)
    np.testing.assert_array_equal(one_shot.per_attribute["tp"].to_numpy(), per["tp"].to_numpy())


def test_row_path_equals_code_path(monkeypatch):
    """17 attributes scored through bool rows give exactly what the per-image codes give."""
    rng = np.random.default_rng(3)
    y = rng.random((500, 17)) < 0.3
    p = rng.random((500, 17)).astype(np.float32)
    sel = rng.random(500) < 0.4
    codes = SelectionScorer(y, p)(sel)
    monkeypatch.setattr(confusion, "CODE_MAX_ATTRIBUTES", 0)
    scorer = SelectionScorer(y, p)
    assert scorer.true_codes.ndim == 2
    rows = scorer(sel)
    assert rows.per_attribute.equals(codes.per_attribute)
    assert rows.overall == pytest.approx(codes.overall, nan_ok=True)


def test_scorer_refuses_the_wrong_width():
    y = np.zeros((4, 5), bool)
    with pytest.raises(ValueError, match="17"):
        SelectionScorer(y, y.astype(np.float32))
    with pytest.raises(ValueError, match="40"):
        SelectionScorer(y, y.astype(np.float32), vocabulary=VOCABS[40])


def test_cooccurrence_of_other_vocabularies(arrays):
    vocab, y, p = arrays
    t = cooccurrence_table(y, p, top=None, vocabulary=vocab)
    assert t["n_true"].sum() == len(y)
    first = np.isin(np.arange(len(vocab)), [vocab.index(s) for s in t["attributes"].iloc[0]])
    rows = (y == first).all(axis=1)
    assert int(t["n_true"].iloc[0]) == int(rows.sum())
    assert int(t["n_correct"].iloc[0]) == int(((p[rows] > 0.5) == first).all(axis=1).sum())
    assert t["combination"].iloc[0] == (" + ".join(vocab.names[j] for j in np.flatnonzero(first)) or "(none)")
    only = cooccurrence_table(y, p, top=None, vocabulary=vocab, attributes=[vocab[len(vocab) - 1].slug])
    assert set(only["combination"]) <= {"(none)", vocab[len(vocab) - 1].name}
