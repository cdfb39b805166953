"""Neuron ranking, most-activating images and the attribute x channel correlation (issue 12.4) against a
direct NumPy computation on the whole (small) arrays; asked for 7-row blocks, the streaming code reads one
16-row chunk at a time (3 blocks), so the merging across blocks is exercised. Tolerances: 1e-9 on mean
differences, 1e-7 on standard deviations and Cohen's d, 1e-6 on correlations (float64 sums of the same
float16 values, computed two ways)."""
from __future__ import annotations

import numpy as np
import pytest

from xsgpu.errors import InputError
from xsgpu.explain.neurons import attribute_channel_correlation, rank_channels, top_images

ATOL = 1e-9


@pytest.fixture(scope="module")
def fea(explained_run):
    store, _, _ = explained_run
    return store.features.open()[:].astype(np.float64)


def test_rank_channels_equals_numpy(explained_run, fea):
    store, _, _ = explained_run
    sel = np.array([1, 4, 5, 9, 20, 33, 47])
    df = rank_channels(store.path, sel, batch_rows=7)
    mask = np.zeros(len(fea), bool)
    mask[sel] = True
    a, b = fea[mask], fea[~mask]
    diff = a.mean(0) - b.mean(0)
    pooled = np.sqrt(((len(a) - 1) * a.var(0, ddof=1) + (len(b) - 1) * b.var(0, ddof=1)) / (len(fea) - 2))
    d = np.where(pooled > 0, diff / np.where(pooled > 0, pooled, 1), 0)
    by_channel = df.set_index("channel").sort_index()
    np.testing.assert_allclose(by_channel["diff"], diff, atol=ATOL)
    np.testing.assert_allclose(by_channel["cohen_d"], d, atol=1e-7)
    np.testing.assert_allclose(by_channel["std_selection"], a.std(0, ddof=1), atol=1e-7)
    assert list(df["channel"][:5]) == list(np.argsort(-d, kind="stable")[:5])
    assert df.attrs["n_selection"] == 7 and len(rank_channels(store.path, mask, top=3)) == 3
    # a kept layer works the same way
    l2 = rank_channels(store.path, sel, space="layer2", batch_rows=7)
    assert len(l2) == 128
    with pytest.raises(InputError, match="some but not all"):
        rank_channels(store.path, [])
    with pytest.raises(InputError, match="outside 0..47"):
        rank_channels(store.path, [48])


def test_top_images_equals_numpy(explained_run, fea):
    store, _, _ = explained_run
    chans = [0, 7, 300]
    df = top_images(store.path, chans, k=4, batch_rows=7)
    assert len(df) == 12
    for c in chans:
        want = np.lexsort((np.arange(len(fea)), -fea[:, c]))[:4]
        got = df[df["channel"] == c].sort_values("rank")
        assert got["sample_id"].tolist() == want.tolist()
        np.testing.assert_allclose(got["activation"], fea[want, c], rtol=1e-6)


@pytest.mark.parametrize("source", ["prd", "act"])
def test_attribute_channel_correlation_equals_numpy(explained_run, fea, source):
    store, _, _ = explained_run
    if source == "prd":
        from xsgpu.embed.run import _read_prd

        y = _read_prd(store).astype(np.float64)
    else:
        y = store.labels().astype(np.float64)
    r = attribute_channel_correlation(store.path, source=source, batch_rows=7)
    assert r.shape == (17, 512) and r.index[12] == "Ring"
    yc, xc = y - y.mean(0), fea - fea.mean(0)
    denom = np.outer(np.sqrt((yc ** 2).sum(0)), np.sqrt((xc ** 2).sum(0)))
    want = np.where(denom > 0, yc.T @ xc / np.where(denom > 0, denom, 1), 0)
    np.testing.assert_allclose(r.to_numpy(), want, atol=1e-6)
    assert (r.to_numpy()[y.std(0) == 0] == 0).all()  # constant attributes: 0, not NaN
