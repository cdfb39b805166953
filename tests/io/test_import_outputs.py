"""`xsgpu import-outputs`: predictions/features computed elsewhere become what `xsgpu infer` writes."""
from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from workflows.cli import main
from xsgpu.attributes import NAMES, SLUGS, label_columns, prob_columns
from xsgpu.errors import StoreError
from xsgpu.io.import_outputs import OutputsImportError, import_outputs
from xsgpu.io.runstore import RunStore
from xsgpu.io.schema import fill_samples
from xsgpu.metrics.evaluate import evaluate_run

N = 30


def _run(tmp_path, *, labelled=None) -> RunStore:
    """30 samples: 20 single-frame TIFFs in data/run7 and data/run8, and one 10-frame HDF5 file in data/run8."""
    rng = np.random.default_rng(0)
    uris = [str(tmp_path / "data" / f"run{7 + i // 10}" / f"img_{i:04d}.tif") for i in range(20)]
    uris += [str(tmp_path / "data" / "run8" / "stack.h5")] * 10
    frames = [0] * 20 + list(range(10))
    store = RunStore.create(tmp_path / "run", n_samples=N, partition_size=12, params={})
    y = rng.random((N, 17)) < 0.3
    lab = np.ones(N, bool) if labelled is None else labelled
    for p in range(store.n_partitions):
        a, b = store.partition_bounds(p)
        df = pd.DataFrame({"sample_id": np.arange(a, b, dtype=np.int64), "source_uri": uris[a:b],
                           "frame": np.array(frames[a:b], np.int32), "run_id": [u.split("/")[-2] for u in uris[a:b]],
                           "split": "test", "is_synthetic": False, "labelled": lab[a:b], "valid": True})
        for j, c in enumerate(label_columns()):
            df[c] = y[a:b, j] & lab[a:b]
        store.samples.write_partition(p, fill_samples(df))
    return store


def _probs(seed=1):
    return np.random.default_rng(seed).random((N, 17)).astype(np.float32)


def _file_keyed(tmp_path, probs, order=None):
    keys = [f"run{7 + i // 10}/img_{i:04d}.tif" for i in range(20)] + ["stack.h5"] * 10
    frames = [""] * 20 + [str(f) for f in range(10)]
    df = pd.DataFrame({"file": keys, "frame": frames, "model": "keras-v3",
                       **{NAMES[j]: probs[:, j] for j in range(17)}})
    if order is not None:
        df = df.iloc[order].reset_index(drop=True)
    path = tmp_path / "preds.csv"
    df.to_csv(path, index=False)
    return path


def test_csv_by_file_and_frame_with_npy_features_then_evaluate(tmp_path):
    store = _run(tmp_path)
    probs = _probs()
    feats = np.random.default_rng(2).normal(size=(N, 24)).astype(np.float32)
    np.save(tmp_path / "fea.npy", feats)
    s = import_outputs(store.path, predictions=_file_keyed(tmp_path, probs), features=tmp_path / "fea.npy")
    assert s["n_samples"] == N and s["feature_dim"] == 24 and s["model_id"].startswith("imported-")
    store = RunStore.open(store.path)
    preds = store.predictions.read()
    assert preds["sample_id"].tolist() == list(range(N)) and list(preds.columns) == ["sample_id", *prob_columns()]
    assert np.abs(preds[prob_columns()].to_numpy() - probs).max() < 1e-7
    stored = np.asarray(store.features.open()[:])
    assert stored.dtype == np.float16 and np.abs(stored - feats).max() < 4e-3
    assert store.predictions.finished() == {0, 1, 2}
    assert store.predictions.metadata()["arch"] == "imported"
    metrics = evaluate_run(store.path, suspicious=False)
    assert set(metrics["scope"]) >= {"model", "attribute"}
    from xsgpu.embed import embed_run

    emb = embed_run(store.path, method="pca", device="cpu", progress=False)
    assert len(emb) == N and np.isfinite(emb[["act_x", "fea_x", "prd_x"]].to_numpy()).all()


def test_parquet_logits_by_sample_id_shuffled_and_keyed_features(tmp_path):
    store = _run(tmp_path)
    probs = _probs()
    logits = np.log(probs / (1 - probs))
    order = np.random.default_rng(3).permutation(N)
    df = pd.DataFrame({"sample_id": order, **{f"logit__{SLUGS[j]}": logits[order, j] for j in range(17)}})
    df.to_parquet(tmp_path / "p.parquet")
    feats = np.random.default_rng(4).normal(size=(N, 8)).astype(np.float32)
    with h5py.File(tmp_path / "f.h5", "w") as fh:
        fh["out/embedding"] = feats[order]
        fh["sample_id"] = order
        fh["out/other"] = np.zeros((3, 3))
    import_outputs(store.path, predictions=tmp_path / "p.parquet", kind="logits", features=tmp_path / "f.h5",
                   features_dataset="out/embedding")
    store = RunStore.open(store.path)
    assert np.abs(store.predictions.read()[prob_columns()].to_numpy() - probs).max() < 1e-5
    assert np.abs(np.asarray(store.features.open()[:]) - feats).max() < 4e-3


def test_zarr_features_in_predictions_row_order(tmp_path):
    import zarr

    store = _run(tmp_path)
    order = np.random.default_rng(5).permutation(N)
    feats = np.random.default_rng(6).normal(size=(N, 5)).astype(np.float32)
    zarr.save_array(str(tmp_path / "f.zarr"), feats[order])
    import_outputs(store.path, predictions=_file_keyed(tmp_path, _probs(), order=order),
                   features=tmp_path / "f.zarr", features_order="predictions")
    assert np.abs(np.asarray(RunStore.open(store.path).open_array("features")[:]) - feats).max() < 4e-3


def test_bad_predictions_are_named_by_row_or_key(tmp_path):
    store = _run(tmp_path)
    probs = _probs()
    base = pd.read_csv(_file_keyed(tmp_path, probs), dtype=str, keep_default_na=False)
    cases = [
        (base.drop(index=[4, 25]), r"2 of the run's 30 samples have no row: sample_id 4 \(.*img_0004.tif frame 0\), "
                                   r"sample_id 25 \(.*stack.h5 frame 5\)"),
        (pd.concat([base, base.iloc[[3]]]), r"1 samples have several rows: sample_id 3 \(.*; rows 5, 32\)"),
        (base.assign(Ring=["nan"] + ["0.5"] * 29), r"column 'Ring' must hold finite numbers; got row 2: 'nan'"),
        (base.assign(BCC=["1.5"] + ["0.5"] * 29), r"column 'BCC' holds values outside \[0, 1\] \(row 2: 1.5\)\. "
                                                  r"Hint: .* --kind logits"),
        (base.replace({"run7/img_0002.tif": "run9/img_0002.tif"}),
         r"keys matching no sample of the run: row 4: 'run9/img_0002.tif'"),
        (base.assign(frame=base["frame"].replace({"3": "12"})), r"row 25: 'stack.h5' frame 12 \(the run has frames"),
        (base.assign(frame=base["frame"].replace({"3": ""})), r"row 25: 'stack.h5' has 10 frames, give the frame"),
        (base.drop(columns=["Halo"]), r"missing attribute column\(s\) Halo"),
    ]
    for i, (df, message) in enumerate(cases):
        path = tmp_path / f"bad{i}.csv"
        df.to_csv(path, index=False)
        with pytest.raises(OutputsImportError, match=message):
            import_outputs(store.path, predictions=path)
    assert not store.predictions.path.exists()


def test_bad_features_and_existing_outputs(tmp_path):
    store = _run(tmp_path)
    preds = _file_keyed(tmp_path, _probs())
    np.save(tmp_path / "short.npy", np.zeros((N - 1, 4), np.float32))
    with pytest.raises(OutputsImportError, match=r"short.npy: 29 rows, but the run has 30 samples"):
        import_outputs(store.path, predictions=preds, features=tmp_path / "short.npy")
    bad = np.zeros((N, 4), np.float32)
    bad[17, 2] = np.inf
    np.save(tmp_path / "inf.npy", bad)
    with pytest.raises(OutputsImportError, match=r"rows for sample_id 17 hold NaN/inf"):
        import_outputs(store.path, predictions=preds, features=tmp_path / "inf.npy")
    assert not store.predictions.path.exists() and not store.features.path.exists()
    import_outputs(store.path, predictions=preds)
    with pytest.raises(StoreError, match=r"already holds predictions .* --overwrite"):
        import_outputs(store.path, predictions=preds)
    np.save(tmp_path / "ok.npy", np.ones((N, 4), np.float32))
    import_outputs(store.path, predictions=preds, features=tmp_path / "ok.npy", overwrite=True)
    assert RunStore.open(store.path).open_array("features").shape == (N, 4)


def test_cli(tmp_path):
    store = _run(tmp_path)
    np.save(tmp_path / "fea.npy", np.ones((N, 6), np.float32))
    runner = CliRunner()
    res = runner.invoke(main, ["import-outputs", str(store.path), "--predictions", str(_file_keyed(tmp_path, _probs())),
                               "--features", str(tmp_path / "fea.npy"), "--model-id", "keras-v3"])
    assert res.exit_code == 0, res.output
    assert "imported predictions for 30 samples and 6-D features as keras-v3" in res.output
    res = runner.invoke(main, ["import-outputs", str(store.path), "--predictions", str(tmp_path / "nope.csv")])
    assert res.exit_code == 2 and "Predictions file" in res.output and "does not exist" in res.output
