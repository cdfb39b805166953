from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from sklearn.metrics import average_precision_score

from workflows.cli import main
from xsgpu.attributes import SLUGS, label_columns, prob_columns
from xsgpu.io.runstore import RunStore, RunStoreError
from xsgpu.metrics import (
    METRICS_COLUMNS, attribute_metrics, evaluate_run, mean_average_precision, metrics_table, split_table,
)

from .conftest import make_multilabel
from xsgpu.io.schema import SAMPLES, fill_samples


def make_run(path, rng, *, n=120, part=50, labelled_frac=0.75, predictions=True, nan_at=None):
    y, p = make_multilabel(rng, n)
    labelled = rng.random(n) < labelled_frac
    store = RunStore.create(path, n_samples=n, partition_size=part)
    for k in range(store.n_partitions):
        a, b = store.partition_bounds(k)
        s = pd.DataFrame({"sample_id": np.arange(a, b), "labelled": labelled[a:b],
                          "split": np.array(["train", "val", "test"])[np.arange(a, b) % 3]})
        for j, c in enumerate(label_columns()):
            s[c] = y[a:b, j]
        store.write_partition(SAMPLES, k, fill_samples(s))
        if predictions:
            q = pd.DataFrame({"sample_id": np.arange(a, b)})
            for j, c in enumerate(prob_columns()):
                q[c] = p[a:b, j]
            if nan_at is not None and a <= nan_at < b:
                q.loc[nan_at - a, prob_columns()[0]] = np.nan
            if nan_at is not None and a <= nan_at < b:  # as another tool could write it (RunStore refuses NaN)
                store.predictions.path.mkdir(exist_ok=True)
                pq.write_table(pa.Table.from_pandas(q, preserve_index=False), store.predictions.partition_path(k))
            else:
                store.predictions.write_partition(k, q, metadata={"model_id": "test-model"})
    return store, y, p, labelled


def test_evaluate_run_writes_long_table(tmp_path, rng):
    store, y, p, labelled = make_run(tmp_path / "run", rng)
    df = evaluate_run(store.path)
    assert list(df.columns) == METRICS_COLUMNS
    on_disk = store.metrics.read()
    pd.testing.assert_frame_equal(on_disk, df)
    per, model = metrics_table(on_disk)
    ref = attribute_metrics(y[labelled], p[labelled])
    np.testing.assert_allclose(per.to_numpy(float), ref.to_numpy(float), equal_nan=True)
    aps = [average_precision_score(y[labelled, j], p[labelled, j]) for j in range(17) if y[labelled, j].any()]
    assert model["map"] == pytest.approx(np.mean(aps), abs=1e-9)
    assert model["n"] == labelled.sum()
    meta = store.metrics.metadata()
    assert meta["model_id"] == "test-model" and meta["cutoff"] == 0.5 and meta["n_evaluated"] == labelled.sum()
    assert store.stage_status()["evaluate"] == "done"
    assert set(df.loc[df.scope == "attribute", "attribute"]) == set(SLUGS)
    splits = split_table(df)
    assert list(splits.index) == ["test", "train", "val"]
    for k, name in enumerate(["train", "val", "test"]):
        rows = labelled & (np.arange(len(y)) % 3 == k)
        assert splits.loc[name, "n"] == rows.sum()
        assert splits.loc[name, "map"] == pytest.approx(mean_average_precision(y[rows], p[rows]), abs=1e-12)


def test_cli_prints_table_and_map(tmp_path, rng):
    store, *_ = make_run(tmp_path / "run", rng)
    res = CliRunner().invoke(main, ["evaluate", str(store.path), "--cutoff", "0.4"])
    assert res.exit_code == 0, res.output
    assert "mAP" in res.output and "strong_scattering" in res.output and "support" in res.output
    assert " test: mAP" in res.output
    assert store.metrics.metadata()["cutoff"] == 0.4
    res = CliRunner().invoke(main, ["evaluate", str(store.path), "--cutoff", "0.4,0.5"])
    assert res.exit_code != 0 and "17 comma-separated floats" in res.output
    assert "Examples" in CliRunner().invoke(main, ["evaluate", "--help"]).output


def test_missing_predictions(tmp_path, rng):
    store, *_ = make_run(tmp_path / "run", rng, predictions=False)
    with pytest.raises(RunStoreError, match=r"no predictions yet.*xsgpu infer"):
        evaluate_run(store.path)
    res = CliRunner().invoke(main, ["evaluate", str(store.path)])
    assert res.exit_code == 2 and "no predictions yet" in res.output


def test_incomplete_predictions(tmp_path, rng):
    store, *_ = make_run(tmp_path / "run", rng)
    (store.predictions.path / "part-00001.parquet").unlink()
    with pytest.raises(RunStoreError, match=r"predictions are incomplete \(2 of 3 partitions"):
        evaluate_run(store.path)


def test_nan_predictions_name_the_table(tmp_path, rng):
    store, _, _, labelled = make_run(tmp_path / "run", rng, nan_at=7, labelled_frac=1.0)
    with pytest.raises(ValueError, match=r"predictions.parquet: The 'y_prob' parameter .* must not contain NaN"):
        evaluate_run(store.path)


def test_no_labelled_samples(tmp_path, rng, caplog):
    """An unlabelled run is evaluated as n = 0 (all else NaN), not a failed stage; the loader still refuses."""
    from xsgpu.metrics.evaluate import NoLabelledSamples, load_evaluation_frame

    store, *_ = make_run(tmp_path / "run", rng, labelled_frac=0.0)
    with pytest.raises(NoLabelledSamples, match=r"no sample is labelled"):
        load_evaluation_frame(store)
    df = evaluate_run(store.path)
    per, model = metrics_table(store.metrics.read())
    assert model["n"] == 0 and np.isnan(model["map"]) and (per["support"] == 0).all() and per["ap"].isna().all()
    meta = store.metrics.metadata()
    assert meta["n_evaluated"] == 0 and meta["n_samples"] == 120 and len(df) == len(store.metrics.read())
    assert store.reload().manifest["stages"]["evaluate"]["status"] == "done"
    assert "no sample is labelled" in caplog.text
    res = CliRunner().invoke(main, ["evaluate", str(store.path)])
    assert res.exit_code == 0 and "no labelled samples among the 120 images" in res.output


def test_bad_cutoff(tmp_path, rng):
    store, *_ = make_run(tmp_path / "run", rng)
    with pytest.raises(ValueError, match=r"'cutoff' parameter of evaluate_run"):
        evaluate_run(store.path, cutoff=2.0)


def test_suspicious_audit_of_an_embedded_run(tmp_path, rng):
    """With fea_reduced.npy, evaluate audits every labelled image; --no-suspicious skips it; bad shapes are named."""
    from xsgpu.metrics import suspicious_labels

    store, y, p, labelled = make_run(tmp_path / "run", rng)
    feats = (y.astype(np.float32) @ rng.normal(size=(17, 8))).astype(np.float32)
    store.fea_reduced.save(feats)
    res = CliRunner().invoke(main, ["evaluate", str(store.path), "--suspicious-top", "40"])
    assert res.exit_code == 0, res.output
    assert "suspicious.parquet" in res.output
    got = store.suspicious.read().sort_values("rank").reset_index(drop=True)
    ids = np.flatnonzero(labelled)
    ref = suspicious_labels(y[ids], p[ids], feats[ids], k=10, top=40, sample_ids=ids, device="cpu")
    pd.testing.assert_frame_equal(got, ref, check_dtype=False)
    meta = store.suspicious.metadata()
    assert meta["n_audited"] == labelled.sum() and meta["neighbors"] == "exact" and meta["k"] == 10
    store.suspicious.path.unlink()
    res = CliRunner().invoke(main, ["evaluate", str(store.path), "--no-suspicious"])
    assert res.exit_code == 0 and not store.suspicious.exists()
    np.save(store.fea_reduced.path, feats[:10])  # as a stale file could be: RunStore's own writes refuse the shape
    res = CliRunner().invoke(main, ["evaluate", str(store.path)])
    assert res.exit_code != 0 and "fea_reduced.npy: shape (10, 8)" in res.output and "xsgpu embed" in res.output
