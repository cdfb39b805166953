from __future__ import annotations

import numpy as np
import pytest

from xsgpu.attributes import NAMES
from xsgpu.metrics import COOCCURRENCE_COLUMNS, cooccurrence_table


def test_counts_against_brute_force(rng):
    y = rng.random((400, 17)) < 0.08
    p = np.where(rng.random((400, 17)) < 0.95, y, ~y).astype(np.float32)
    df = cooccurrence_table(y, p, top=None)
    assert list(df.columns) == COOCCURRENCE_COLUMNS
    assert df["n_true"].sum() == 400
    assert df["n_true"].is_monotonic_decreasing
    for _, row in df.head(5).iterrows():
        members = [NAMES.index(n) for n in row["combination"].split(" + ")] if row["attributes"] else []
        want = np.zeros(17, bool)
        want[members] = True
        rows = (y == want).all(axis=1)
        assert row["n_true"] == rows.sum()
        assert row["n_correct"] == ((p[rows] > 0.5) == y[rows]).all(axis=1).sum()
        assert row["n_predicted"] == ((p > 0.5) == want).all(axis=1).sum()
        assert row["rate"] == pytest.approx(row["n_correct"] / row["n_true"])
        assert row["n_attributes"] == len(members)
    assert "(none)" in set(df["combination"])


def test_top_min_count_and_attribute_subset():
    y = np.zeros((6, 17), bool)
    y[:, 9] = True           # linear beamstop everywhere
    y[:4, 12] = True         # ring on 4
    y[4:, 6] = True          # halo on 2
    p = y.astype(np.float32)
    p[0, 9] = 0.0            # beamstop missed on image 0
    full = cooccurrence_table(y, p)
    assert full["combination"].tolist() == ["Linear beamstop + Ring", "Halo + Linear beamstop"]
    assert full["n_correct"].tolist() == [3, 2]
    sub = cooccurrence_table(y, p, attributes=["ring", "Halo"])
    assert sub["combination"].tolist() == ["Ring", "Halo"]
    assert sub["n_correct"].tolist() == [4, 2]      # the beamstop miss no longer counts
    assert len(cooccurrence_table(y, p, top=1)) == 1
    assert cooccurrence_table(y, p, min_count=3)["combination"].tolist() == ["Linear beamstop + Ring"]


def test_errors(multilabel):
    y, p = multilabel
    with pytest.raises(ValueError, match=r"'attributes' parameter of cooccurrence_table names an unknown attribute "
                                         r"'Donut'"):
        cooccurrence_table(y, p, attributes=["ring", "Donut"])
    with pytest.raises(ValueError, match=r"'top' parameter of cooccurrence_table must be an int >= 1 or None"):
        cooccurrence_table(y, p, top=0)
    with pytest.raises(ValueError, match=r"length mismatch"):
        cooccurrence_table(y, p[:5])
