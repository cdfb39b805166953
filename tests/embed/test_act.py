import numpy as np
import pytest

from xsgpu.embed.act import dedupe_labels, spread_duplicates

from .conftest import structured_data


def test_dedupe_round_trips():
    labels, *_ = structured_data(1000, seed=0)
    unique, inverse, counts = dedupe_labels(labels)
    assert np.array_equal(unique[inverse], labels)
    assert counts.sum() == 1000 and len(unique) < 200  # massive duplication, as in real ACT
    assert np.array_equal(np.bincount(inverse), counts)


def test_dedupe_rejects_non_binary():
    with pytest.raises(ValueError, match="must be binary"):
        dedupe_labels(np.array([[0, 2], [1, 0]]))
    with pytest.raises(ValueError, match=r"must be 2-D \(n_samples, n_attributes\). Got shape \(3,\)"):
        dedupe_labels(np.zeros(3, bool))


def test_spread_is_deterministic_local_and_shows_density():
    rng = np.random.default_rng(0)
    uxy = rng.uniform(-50, 50, (30, 2))
    counts = np.r_[1, 2, 3, rng.integers(1, 400, 27)]
    inverse = rng.permutation(np.repeat(np.arange(30), counts))
    a = spread_duplicates(uxy, inverse, counts, random_state=4)
    b = spread_duplicates(uxy, inverse, counts, random_state=4)
    assert np.array_equal(a, b) and a.dtype == np.float32
    # every sample is closer to its own unique point than to any other (discs never overlap)
    d = np.linalg.norm(a[:, None, :] - uxy[None], axis=2)
    assert np.array_equal(np.argmin(d, axis=1), inverse)
    # a lone sample sits on its point; copies are spread, not stacked
    lone = np.flatnonzero(inverse == 0)
    assert np.allclose(a[lone], uxy[0], atol=1e-4)
    big = int(np.argmax(counts))
    pts = a[inverse == big]
    assert len(np.unique(pts.round(4), axis=0)) == counts[big]
    # the largest group covers a larger disc than a small one (relative to the local spacing)
    from xsgpu.embed.act import _nearest_other_distance
    spacing = _nearest_other_distance(uxy)
    r = {g: np.linalg.norm(a[inverse == g] - uxy[g], axis=1).max() / spacing[g] for g in (2, big)}
    assert r[big] > r[2]


def test_spread_checks_counts():
    with pytest.raises(ValueError, match="does not match the inverse index"):
        spread_duplicates(np.zeros((2, 2)), np.array([0, 0, 1]), np.array([1, 2]))
