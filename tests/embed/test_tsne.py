import numpy as np
import pytest

from xsgpu.embed import ReferenceMap, make_projector, trustworthiness
from xsgpu.embed.tsne_cpu import OpenTSNE

from .conftest import structured_data

FAST = dict(n_iter=250, early_exaggeration_iter=100)


@pytest.fixture(scope="module")
def data():
    _, feats, probs, cluster = structured_data(400, seed=1, dim=40)
    return feats, probs, cluster


@pytest.fixture(scope="module")
def fitted(data):
    feats, _, _ = data
    return OpenTSNE(perplexity=20, n_jobs=1, random_state=7, **FAST).fit(feats)


def test_trustworthiness_and_no_nan(data, fitted):
    feats, probs, _ = data
    assert np.isfinite(fitted.embedding_).all() and fitted.embedding_.dtype == np.float32
    assert trustworthiness(feats, fitted.embedding_, n_neighbors=10) >= 0.90
    y_prd = make_projector("tsne", device="cpu", perplexity=20, random_state=0, **FAST).fit_transform(probs)
    assert trustworthiness(probs, y_prd, n_neighbors=10) >= 0.90


def test_same_seed_is_bit_identical_with_two_threads(data, fitted):
    feats, _, _ = data
    again = OpenTSNE(perplexity=20, n_jobs=1, random_state=7, **FAST).fit(feats)
    assert np.array_equal(again.embedding_, fitted.embedding_)
    short = dict(n_iter=100, early_exaggeration_iter=50)
    a, b = (OpenTSNE(perplexity=10, n_jobs=2, random_state=3, **short).fit(feats[:200]).embedding_ for _ in range(2))
    assert np.array_equal(a, b)


def test_transform_lands_near_its_neighbours(data, fitted):
    feats, _, cluster = data
    _, new, _, new_cluster = structured_data(60, seed=2, dim=40)
    placed = fitted.transform(new)
    assert placed.shape == (60, 2) and np.isfinite(placed).all()
    # the fitted map did not move (transform re-centres openTSNE's copy; we undo that)
    assert np.allclose(np.asarray(fitted.tsne_embedding_, np.float32), fitted.embedding_, atol=1e-4)
    d = np.linalg.norm(placed[:, None, :] - fitted.embedding_[None], axis=2)
    nearest = np.argsort(d, axis=1)[:, :10]
    agree = (cluster[nearest] == new_cluster[:, None]).mean()
    assert agree >= 0.9


def test_reference_map_from_plain_arrays_places_like_the_fitted_object(data, fitted):
    feats, _, cluster = data
    _, new, _, new_cluster = structured_data(40, seed=3, dim=40)
    ref = ReferenceMap(feats, fitted.embedding_, perplexity=20, random_state=7)
    placed = ref.transform(new)
    d = np.linalg.norm(placed[:, None, :] - fitted.embedding_[None], axis=2)
    assert (cluster[np.argmin(d, axis=1)] == new_cluster).mean() >= 0.9


def test_reference_map_checks_shapes(data):
    feats, _, _ = data
    with pytest.raises(ValueError, match=r"The 'coords' parameter of ReferenceMap must have shape \(400, 2\)"):
        ReferenceMap(feats, np.zeros((399, 2)))
    ref = ReferenceMap(feats, np.zeros((400, 2)))
    with pytest.raises(ValueError, match="must have 40 columns like the reference inputs. Got 3"):
        ref.transform(np.zeros((2, 3)))


def test_bad_parameters_are_named():
    with pytest.raises(ValueError, match="The 'perplexity' parameter of OpenTSNE must be a positive number. Got -1"):
        OpenTSNE(perplexity=-1).fit(np.random.default_rng(0).normal(size=(20, 3)))
    with pytest.raises(ValueError, match="must have at least 5 rows"):
        OpenTSNE().fit(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="The 'random_state' parameter of OpenTSNE must be a non-negative int"):
        OpenTSNE(random_state=-3).fit(np.random.default_rng(0).normal(size=(20, 3)))
