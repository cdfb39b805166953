from __future__ import annotations

import numpy as np
import pytest

from xsgpu.attributes import SLUGS
from xsgpu.metrics import SUSPICIOUS_COLUMNS, suspicious_labels


def simulated_run(rng, n=3000, n_flips=150, noise=0.35):
    """A simulated model: clean labels -> features and probabilities (+ noise); ACT = clean with flips."""
    freq = rng.uniform(0.05, 0.4, 17)
    clean = rng.random((n, 17)) < freq
    proj = rng.normal(size=(17, 24))
    features = clean.astype(np.float32) @ proj + rng.normal(0, noise, (n, 24))
    logits = np.where(clean, 2.0, -2.0) + rng.normal(0, 1.2, (n, 17))
    probs = (1 / (1 + np.exp(-logits))).astype(np.float32)
    act = clean.copy()
    flat = rng.choice(n * 17, n_flips, replace=False)
    r, c = np.divmod(flat, 17)
    act[r, c] = ~act[r, c]
    return act, probs, features.astype(np.float32), set(zip(r.tolist(), c.tolist()))


def _precision_at(df, flipped, k=100):
    top = df.head(k)
    hits = sum((int(s), SLUGS.index(a)) in flipped for s, a in zip(top["sample_id"], top["attribute"]))
    return hits / k


def test_finds_flipped_labels(rng):
    act, probs, feats, flipped = simulated_run(rng)
    df = suspicious_labels(act, probs, feats, k=10, top=200, device="cpu")
    assert list(df.columns) == SUSPICIOUS_COLUMNS
    assert df["rank"].tolist() == list(range(1, 201))
    assert df["score"].is_monotonic_decreasing
    p100 = _precision_at(df, flipped)
    assert p100 >= 0.5, p100
    # each signal alone is weaker than the two together on this simulated model, but still informative
    model_only = suspicious_labels(act, probs, None, top=100)
    assert model_only["neighbour_rate"].isna().all()
    assert _precision_at(model_only, flipped) >= 0.3


def test_columns_values_and_ids(rng):
    act, probs, feats, _ = simulated_run(rng, n=300, n_flips=10)
    ids = np.arange(1000, 1300)
    df = suspicious_labels(act, probs, feats, k=5, top=None, sample_ids=ids, device="cpu")
    assert len(df) == 300 * 17
    row = df.iloc[0]
    i, j = int(row["sample_id"]) - 1000, SLUGS.index(row["attribute"])
    assert row["label"] == act[i, j] and row["prob"] == pytest.approx(probs[i, j])
    expected = 0.5 * abs(act[i, j] - probs[i, j]) + 0.5 * abs(act[i, j] - row["neighbour_rate"])
    assert row["score"] == pytest.approx(expected, abs=1e-6)
    sub = suspicious_labels(act, probs, feats, k=5, attributes=["ring", "Halo"], device="cpu")
    assert set(sub["attribute"]) <= {"ring", "halo"}


def test_duplicate_points_exclude_self():
    y = np.zeros((4, 17), bool)
    y[0, 0] = True
    p = np.zeros((4, 17), np.float32)
    feats = np.zeros((4, 2), np.float32)   # all identical: kNN order among them is arbitrary
    df = suspicious_labels(y, p, feats, k=3, top=None, device="cpu")
    r0 = df[(df.sample_id == 0) & (df.attribute == SLUGS[0])].iloc[0]
    assert r0["neighbour_rate"] == 0.0     # its 3 neighbours are the other images, not itself
    r1 = df[(df.sample_id == 1) & (df.attribute == SLUGS[0])].iloc[0]
    assert r1["neighbour_rate"] == pytest.approx(1 / 3)


def test_errors(rng):
    act, probs, feats, _ = simulated_run(rng, n=50, n_flips=2)
    with pytest.raises(ValueError, match=r"'features' parameter of suspicious_labels must have shape \(50, d\)"):
        suspicious_labels(act, probs, feats[:10])
    with pytest.raises(ValueError, match=r"'k' parameter of suspicious_labels must be smaller than the number"):
        suspicious_labels(act, probs, feats, k=50)
    with pytest.raises(ValueError, match=r"'weight' parameter of suspicious_labels must be a float in \[0, 1\]"):
        suspicious_labels(act, probs, feats, weight=2)
    with pytest.raises(ValueError, match=r"unknown attribute 'Donut'"):
        suspicious_labels(act, probs, feats, attributes=["Donut"])
    with pytest.raises(ValueError, match=r"'sample_ids' parameter of suspicious_labels must have shape \(50,\)"):
        suspicious_labels(act, probs, feats, sample_ids=np.arange(3))


def test_approximate_neighbours_recall_and_ranking(rng):
    """Annoy (openTSNE's) against the exact search: most neighbours agree and the ranking keeps its power."""
    from xsgpu.metrics import knn_indices

    act, probs, feats, flipped = simulated_run(rng)
    exact = knn_indices(feats, 10, device="cpu", neighbors="exact")
    approx = knn_indices(feats, 10, device="cpu", neighbors="approx", n_jobs=1)
    assert approx.shape == exact.shape == (len(feats), 10) and approx.dtype == np.int64
    assert not (approx == np.arange(len(feats))[:, None]).any()          # never the row itself
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
    assert recall >= 0.8, recall
    df = suspicious_labels(act, probs, feats, k=10, top=100, device="cpu", neighbors="approx")
    assert _precision_at(df, flipped) >= 0.5


def test_approximate_neighbours_with_duplicates_exclude_self():
    from xsgpu.metrics import knn_indices

    base = np.random.default_rng(1).normal(size=(200, 4)).astype(np.float32)
    feats = np.vstack([base, base[:20]])                                 # rows 200..219 copy rows 0..19
    ind = knn_indices(feats, 3, device="cpu", neighbors="approx", n_jobs=1)
    assert not (ind == np.arange(len(feats))[:, None]).any()
    assert all(200 + i in ind[i] for i in range(20))                     # the twin is a neighbour
    assert knn_indices(feats[:4], 3, device="cpu", neighbors="approx").shape == (4, 3)


def test_bad_neighbors_mode(rng):
    act, probs, feats, _ = simulated_run(rng, n=50, n_flips=2)
    with pytest.raises(ValueError, match=r"'neighbors' parameter of suspicious_labels must be one of \['auto', 'exact', 'approx'\]"):
        suspicious_labels(act, probs, feats, neighbors="fast")
