"""The "More filters" (panel_app.filters; issue 10.3/10.5): run, split, file pattern, metadata columns,
probability range, outcome at the cut-off, labelled / unlabelled, combined with the attribute filters in
AppState.filtered_mask. Every expected mask is computed here by a plain per-row loop over the same table."""
from __future__ import annotations

import fnmatch
import inspect
import posixpath

import numpy as np
import pandas as pd
import pytest

from panel_app.data import RunData
from panel_app.filters import (
    MISSING, ColumnFilter, FilterSpec, column_kind, filter_mask, metadata_columns, numeric_range, path_mask,
    value_options,
)
from panel_app.state import AppState
from xsgpu.attributes import DEFAULT_VOCABULARY, Vocabulary

N = 400


def _samples(n: int = N, *, categorical: bool = False) -> pd.DataFrame:
    ids = np.arange(n)
    rng = np.random.default_rng(1)
    exp = rng.choice([0.1, 0.5, 1.0, 2.0], n).astype(np.float64)
    exp[ids % 17 == 0] = np.nan
    sample = pd.Series(np.where(ids % 3 == 0, "silica", np.where(ids % 3 == 1, "gold", "SBA-15")), dtype="string")
    sample[ids % 11 == 0] = pd.NA
    df = pd.DataFrame({
        "sample_id": ids,
        "source_uri": [f"/data/run{i // 100}/{'scan' if i % 2 else 'img'}_{i:04d}.{'h5' if i % 4 == 3 else 'tif'}"
                       for i in ids],
        "frame": (ids % 4).astype(np.int32),
        "run_id": [f"run{i // 100}" for i in ids],
        "split": np.where(ids % 5 == 0, "test", np.where(ids % 5 == 1, "val", "train")),
        "labelled": ids % 3 != 2,
        "meta__sample": sample,
        "meta__temperature": pd.array(np.where(ids % 7 == 0, None, 20 + ids % 30), dtype="Int64"),
        "meta__flagged": pd.array(np.where(ids % 13 == 0, None, ids % 2 == 0), dtype="boolean"),
        "hdr__exposure_time": exp,
        "hdr__timestamp": pd.Series([f"2026-12-01T10:{i // 60:02d}:{i % 60:02d}" for i in ids], dtype="string"),
        "hdr__energy": np.full(n, np.nan),   # a header no file carried: not offered
    })
    if categorical:
        for c in ("source_uri", "run_id", "split"):
            df[c] = df[c].astype("category")
    return df


def _data(samples: pd.DataFrame, k: int = 17, vocabulary: Vocabulary | None = None) -> RunData:
    n = len(samples)
    rng = np.random.default_rng(2)
    y = rng.random((n, k)) < 0.4
    y[~samples["labelled"].to_numpy(bool)] = False   # unlabelled images carry no label
    p = rng.random((n, k)).astype(np.float32)
    extra = {} if vocabulary is None else {"vocabulary": vocabulary}
    return RunData.from_arrays(y_true=y, y_prob=p, coords=rng.normal(size=(n, 6)), samples=samples, **extra)


@pytest.fixture(params=[False, True], ids=["object", "categorical"])
def data(request) -> RunData:
    return _data(_samples(categorical=request.param))


def _rows(data: RunData, keep) -> np.ndarray:
    """The expected mask by a per-row loop (the reference the vectorised code must equal)."""
    recs = data.samples.to_dict("records")
    return np.array([bool(keep(i, r)) for i, r in enumerate(recs)])


def test_inactive_spec_keeps_everything(data):
    spec = FilterSpec()
    assert not spec.active
    assert filter_mask(data, spec).all()
    assert not FilterSpec(prob_attribute="ring").active          # full range [0, 1] hides nothing
    assert not FilterSpec(outcome_attribute="ring").active        # no outcome chosen
    assert not FilterSpec(columns=(ColumnFilter("meta__sample"),)).active


def test_run_and_split(data):
    got = filter_mask(data, FilterSpec(run_ids=("run1", "run3"), splits=("test",)))
    want = _rows(data, lambda i, r: str(r["run_id"]) in ("run1", "run3") and str(r["split"]) == "test")
    assert want.sum() > 0
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("pattern", ["*.h5", "scan_00*", "/data/run2/*", "*/run[13]/img_*.tif", "run0/scan",
                                     "img_01?0.tif", "nothing-like-this"])
def test_path_pattern_glob_or_substring(data, pattern):
    got = path_mask(data, pattern)

    def keep(i, r):
        path = str(r["source_uri"])
        if any(ch in pattern for ch in "*?["):
            target = path if "/" in pattern else posixpath.basename(path)
            return fnmatch.fnmatchcase(target, pattern)
        return pattern in path

    np.testing.assert_array_equal(got, _rows(data, keep))
    np.testing.assert_array_equal(filter_mask(data, FilterSpec(path=pattern)), got)


def test_metadata_columns_discovered_and_typed(data):
    cols = metadata_columns(data.samples)
    assert cols == ["meta__sample", "meta__temperature", "meta__flagged", "hdr__exposure_time", "hdr__timestamp"]
    kinds = {c: column_kind(data.samples[c]) for c in cols}
    assert kinds == {"meta__sample": "values", "meta__temperature": "range", "meta__flagged": "values",
                     "hdr__exposure_time": "range", "hdr__timestamp": "values"}
    opts = value_options(data, "meta__sample")
    assert set(opts) == {"silica", "gold", "SBA-15", MISSING}
    assert set(value_options(data, "meta__flagged")) == {"True", "False", MISSING}
    assert numeric_range(data, "hdr__exposure_time") == (0.1, 2.0)
    assert numeric_range(data, "hdr__energy") is None


def test_metadata_choice_range_and_contains(data):
    spec = FilterSpec(columns=(ColumnFilter("meta__sample", values=("gold", MISSING)),
                               ColumnFilter("meta__temperature", lo=25, hi=40)))
    got = filter_mask(data, spec)
    want = _rows(data, lambda i, r: (pd.isna(r["meta__sample"]) or r["meta__sample"] == "gold")
                 and not pd.isna(r["meta__temperature"]) and 25 <= r["meta__temperature"] <= 40)
    assert 0 < want.sum() < N
    np.testing.assert_array_equal(got, want)
    # a float range leaves out NaN (a frame whose header had no exposure time)
    got = filter_mask(data, FilterSpec(columns=(ColumnFilter("hdr__exposure_time", lo=0.5),)))
    np.testing.assert_array_equal(got, _rows(data, lambda i, r: r["hdr__exposure_time"] >= 0.5))
    # yes/no column by value
    got = filter_mask(data, FilterSpec(columns=(ColumnFilter("meta__flagged", values=("True",)),)))
    np.testing.assert_array_equal(got, _rows(data, lambda i, r: r["meta__flagged"] is True))
    # a many-valued text column by substring
    got = filter_mask(data, FilterSpec(columns=(ColumnFilter("hdr__timestamp", contains="10:03:"),)))
    np.testing.assert_array_equal(got, _rows(data, lambda i, r: "10:03:" in r["hdr__timestamp"]))
    assert got.sum() == 60


def test_with_column_replaces_and_drops():
    spec = FilterSpec().with_column(ColumnFilter("meta__a", values=("x",)))
    spec = spec.with_column(ColumnFilter("meta__a", values=("y",)))
    assert spec.columns == (ColumnFilter("meta__a", values=("y",)),)
    assert spec.with_column(ColumnFilter("meta__a")).columns == ()


def test_probability_range_and_labelled(data):
    j = DEFAULT_VOCABULARY.index("ring")
    got = filter_mask(data, FilterSpec(prob_attribute="ring", prob_range=(0.25, 0.6), labelled="labelled"))
    want = _rows(data, lambda i, r: 0.25 <= data.y_prob[i, j] <= 0.6 and r["labelled"])
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(filter_mask(data, FilterSpec(labelled="unlabelled")),
                                  ~data.samples["labelled"].to_numpy(bool))


@pytest.mark.parametrize("outcomes", [("TP",), ("FP", "FN"), ("TN",), ("TP", "FP", "FN", "TN")])
def test_outcome_at_cutoff_labelled_only(data, outcomes):
    j = DEFAULT_VOCABULARY.index("halo")
    y = data.y_true.copy()
    y[5, j] = not y[5, j]   # corrected labels are what counts, not the stored ones
    got = filter_mask(data, FilterSpec(outcome_attribute="halo", outcomes=outcomes), y_act=lambda: y, cutoff=0.3)

    def keep(i, r):
        act, pred = bool(y[i, j]), bool(data.y_prob[i, j] > 0.3)
        out = ("T" if act == pred else "F") + ("P" if pred else "N")
        return r["labelled"] and out in outcomes

    np.testing.assert_array_equal(got, _rows(data, keep))


def test_bad_inputs_name_the_field(data):
    with pytest.raises(ValueError, match="'labelled' parameter"):
        FilterSpec(labelled="some")
    with pytest.raises(ValueError, match="'outcomes' parameter.*'XX'"):
        FilterSpec(outcomes=("XX",))
    with pytest.raises(ValueError, match="prob_range"):
        FilterSpec(prob_range=(0.8, 0.2))
    with pytest.raises(KeyError, match="nope"):
        filter_mask(data, FilterSpec(prob_attribute="nope", prob_range=(0.1, 0.2)))
    with pytest.raises(ValueError, match="meta__absent"):
        filter_mask(data, FilterSpec(columns=(ColumnFilter("meta__absent", values=("x",)),)))


def test_other_vocabulary():
    if "vocabulary" not in inspect.signature(RunData.from_arrays).parameters:
        pytest.skip("RunData of a run's own vocabulary is not in this tree yet")
    vocab = Vocabulary.from_names(["Crystal", "Amorphous", "Texture"])
    d = _data(_samples(), k=3, vocabulary=vocab)
    got = filter_mask(d, FilterSpec(prob_attribute="texture", prob_range=(0.5, 1.0)))
    np.testing.assert_array_equal(got, d.y_prob[:, 2] >= 0.5)


def test_state_combines_with_attribute_filters_and_caches(data):
    state = AppState(data=data)
    assert state.filtered_mask().all()
    state.filter_attributes = ["ring"]
    j = DEFAULT_VOCABULARY.index("ring")
    spec = FilterSpec(splits=("train",), path="*.tif")
    state.more_filters = spec
    m = state.filtered_mask()
    np.testing.assert_array_equal(m, data.y_true[:, j] & filter_mask(data, spec))
    assert state.filtered_mask() is m                      # cached while nothing changes
    state.more_filters = FilterSpec(splits=("train",), path="*.tif")
    assert state.filtered_mask() is m                      # an equal spec is the same key
    # the outcome filter follows the cut-off
    state.filter_attributes = []
    state.more_filters = FilterSpec(outcome_attribute="ring", outcomes=("FP",))
    a = state.filtered_mask().copy()
    state.cutoff = 0.9
    b = state.filtered_mask()
    lab = data.samples["labelled"].to_numpy(bool)
    np.testing.assert_array_equal(a, ~data.y_true[:, j] & (data.y_prob[:, j] > 0.5) & lab)
    np.testing.assert_array_equal(b, ~data.y_true[:, j] & (data.y_prob[:, j] > 0.9) & lab)
    assert state.filters_active
    state.more_filters = FilterSpec()
    assert not state.filters_active and state.filtered_mask().all()


def test_state_outcome_filter_follows_corrections(app_state):
    """On a run store, a recorded correction changes the outcome of that image (cache keyed by corrections)."""
    from xsgpu.io.corrections import record_correction

    j = DEFAULT_VOCABULARY.index("ring")
    app_state.more_filters = FilterSpec(outcome_attribute="ring", outcomes=("TP", "FN"))
    before = app_state.filtered_mask().copy()
    np.testing.assert_array_equal(before, app_state.data.y_true[:, j])
    sid = int(np.flatnonzero(~before)[0])
    record_correction(app_state.data.store, sample_id=sid, attribute="ring", new=True)
    app_state.corrections_version += 1
    after = app_state.filtered_mask()
    assert after[sid] and (after != before).sum() == 1


def test_more_filters_widgets_write_the_spec(data):
    from panel_app.views.controls import AttributeFilters
    from panel_app.views.more_filters import MoreFilters, set_range

    state = AppState(data=data)
    filters = AttributeFilters(state=state)
    mf = filters.more
    assert isinstance(mf, MoreFilters)
    kinds = {c: type(w).__name__ for c, w in mf.columns.items()}
    assert kinds == {"meta__sample": "MultiChoice", "meta__temperature": "RangeSlider", "meta__flagged": "MultiChoice",
                     "hdr__exposure_time": "RangeSlider", "hdr__timestamp": "TextInput"}   # 400 distinct: a substring
    assert mf.run_ids.options[0].startswith("run") and sorted(mf.splits.options) == ["test", "train", "val"]
    mf.run_ids.value = ["run1"]
    mf.path.value = "*.tif"
    set_range(mf.columns["hdr__exposure_time"], (0.5, 2.0))
    mf.columns["meta__sample"].value = ["gold"]
    mf.outcome_attribute.value = "ring"
    mf.outcomes.value = ["TP", "FN"]
    mf.labelled.value = "labelled"
    spec = state.more_filters
    assert spec == FilterSpec(run_ids=("run1",), path="*.tif", labelled="labelled", outcome_attribute="ring",
                              outcomes=("TP", "FN"),
                              columns=(ColumnFilter("meta__sample", values=("gold",)),
                                       ColumnFilter("hdr__exposure_time", lo=0.5)))
    n = int(state.filtered_mask().sum())
    assert 0 < n < N and f"data-count='{n}'" in filters.count.object
    # the probability range needs an attribute; the slider alone hides nothing
    set_range(mf.prob_range, (0.2, 0.6))
    assert not state.more_filters.prob_active
    mf.prob_attribute.value = "halo"
    assert state.more_filters.prob_active and state.more_filters.prob_range == (0.2, 0.6)
    # "Clear filters" clears these too, in one update
    filters.clear.clicks += 1
    assert state.more_filters == FilterSpec() and state.filtered_mask().all()
    assert mf.columns["hdr__exposure_time"].value == (0.1, 2.0)


def test_metric_panels_cover_labelled_images_and_say_so():
    from panel_app.panels.overview import ModelOverview
    from panel_app.panels.selection import SelectionManager

    data = _data(_samples())
    lab = data.samples["labelled"].to_numpy(bool)
    state = AppState(data=data)
    mo = ModelOverview(state=state, scope="all")
    assert mo.overall("all")["n"] == lab.sum()
    np.testing.assert_array_equal(mo.scope_ids(), np.flatnonzero(lab))
    assert f"over {lab.sum():,} of {N:,} images (labelled)" in mo._summary.object
    # unlabelled only in scope: said so, nothing scored
    state.more_filters = FilterSpec(labelled="unlabelled")
    mo.scope = "filtered"
    assert len(mo.scope_ids()) == 0 and "No labelled images in scope **filtered**" in mo._summary.object
    sm = SelectionManager(state=state)
    state.select(np.arange(30))
    head, table = sm.metrics_table("(current selection)")
    assert f"(30 images; metrics over {lab[:30].sum()} labelled)" in head
    assert sm.group_metrics("(current selection)").overall["n"] == lab[:30].sum()
    state.select(np.flatnonzero(~lab)[:5])
    head, table = sm.metrics_table("(current selection)")
    assert "no labelled image" in head and table.empty


def test_warm_up_builds_what_a_session_reads(data):
    from panel_app.filters import n_values, warm_up_filters

    warm_up_filters(data)
    for col in ("run_id", "split", "meta__sample", "meta__flagged"):
        assert ("filter_codes", col) in data._cache and ("filter_order", col) in data._cache
    assert ("filter_numbers", "hdr__exposure_time") in data._cache
    assert ("filter_order", "hdr__timestamp") not in data._cache     # 400 distinct: filtered by substring
    assert n_values(data, "hdr__timestamp") == N
    assert value_options(data, "meta__sample", limit=2) == value_options(data, "meta__sample")[:2]
