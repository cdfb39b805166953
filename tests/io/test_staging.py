"""Staging areas: old artifacts stay until the new ones are complete; an interrupted swap is finished."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from xsgpu.io import staging as staging_mod
from xsgpu.io.runstore import RunStore
from xsgpu.io.staging import Staging, recover


def _part(store, table, part, value):
    start, stop = store.partition_bounds(part)
    df = pd.DataFrame({"sample_id": np.arange(start, stop), "v": value})
    if table == "predictions":
        df = df.assign(**{c: 0.5 for c in store.vocabulary.prob_columns()})
    store.write_partition(table, part, df)


@pytest.fixture
def run(tmp_path):
    store = RunStore.create(tmp_path / "run", n_samples=4, partition_size=2)
    store.images.create((4, 2, 2), np.float16)[:] = np.ones((4, 2, 2))
    for p in (0, 1):
        _part(store, "predictions", p, 1)
    store.features.create((4, 3), np.float16)[:] = np.ones((4, 3))
    return store


def _stage_new(run, token="new"):
    st = Staging.begin(run, ["predictions", "features"], key="infer", token=token)
    for p in (0, 1):
        _part(st.store, "predictions", p, 2)
    st.store.features.create((4, 3), np.float16)[:] = np.full((4, 3), 2)
    return st


def test_staging_is_a_view_of_the_run_and_leaves_the_old_outputs(run):
    st = _stage_new(run)
    assert os.path.islink(st.path / "images.zarr") and float(np.asarray(st.store.images.open()[:]).sum()) == 16
    assert run.predictions.read()["v"].tolist() == [1, 1, 1, 1]
    assert float(np.asarray(run.features.open()[:]).sum()) == 12
    st.commit()
    assert run.predictions.read()["v"].tolist() == [2, 2, 2, 2]
    assert float(np.asarray(run.features.open()[:]).sum()) == 24
    assert not (run.path / ".staging").exists() and float(np.asarray(run.images.open()[:]).sum()) == 16


def test_begin_resumes_same_token_and_discards_another(run):
    st = Staging.begin(run, ["predictions", "features"], key="infer", token="a")
    _part(st.store, "predictions", 0, 2)
    assert Staging.begin(run, ["predictions", "features"], key="infer", token="a").store.predictions.finished() == {0}
    assert Staging.begin(run, ["predictions", "features"], key="infer", token="b").store.predictions.finished() == set()


@pytest.mark.parametrize("crash_after", [1, 2, 3])
def test_an_interrupted_swap_never_mixes_and_is_finished_by_recover(run, monkeypatch, crash_after):
    st = _stage_new(run)
    real, calls = os.rename, []

    def crashing_rename(a, b):
        if len(calls) == crash_after:
            raise KeyboardInterrupt("killed")
        calls.append(a)
        real(a, b)

    monkeypatch.setattr(staging_mod.os, "rename", crashing_rename)
    with pytest.raises(KeyboardInterrupt):
        st.commit()
    monkeypatch.setattr(staging_mod.os, "rename", real)
    # never the old predictions beside the new features, or the reverse
    if run.predictions.path.exists():
        assert run.predictions.read()["v"].tolist() == [1, 1, 1, 1]
        assert float(np.asarray(run.features.open()[:]).sum()) == 12
    assert recover(run) == ["infer"]
    assert run.predictions.read()["v"].tolist() == [2, 2, 2, 2]
    assert float(np.asarray(run.features.open()[:]).sum()) == 24
    assert recover(run) == []


def test_uncommitted_staging_is_left_to_begin(run):
    _stage_new(run)
    assert recover(run) == [] and run.predictions.read()["v"].tolist() == [1, 1, 1, 1]
