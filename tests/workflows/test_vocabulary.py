"""A run's own attribute vocabulary end to end: 5 and 40 attributes through every stage, and a model of
other attributes refused (naming both lists) unless given an attribute map.

Each run: a folder of .npy and .tif frames (32 px) in three experiment directories (train/val/test by
the ingest's hash of the directory name) with a label file of the vocabulary's attributes ->
``ingest --vocabulary from-labels`` -> a one-epoch resnet18 -> infer -> embed (PCA) -> evaluate ->
export-labels.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tifffile

from xsgpu.attributes import DEFAULT_VOCABULARY, Vocabulary, VocabularyError
from xsgpu.embed.run import embed_run
from xsgpu.io.corrections import export_labels, record_correction
from xsgpu.io.ingest import ingest_paths, split_for_run
from xsgpu.io.runstore import RunStore
from xsgpu.io.schema import EMBEDDING_BY_METHOD
from xsgpu.io.vocabulary import apply_attribute_map, read_attribute_map, read_vocabulary
from xsgpu.metrics.evaluate import evaluate_run, metrics_table
from xsgpu.model.checkpoint import CheckpointMismatch, checkpoint_vocabulary, read_checkpoint_meta, save_checkpoint
from xsgpu.model.infer import infer_run
from xsgpu.model.predictor import Predictor
from xsgpu.model.resnet import build_resnet
from xsgpu.model.train import train_model

SIZE = 32
FIVE = ["Ring", "Halo", "Crystal A", "Crystal B", "Streak"]
FORTY = [f"Feature {i:02d}" for i in range(38)] + ["Ring", "Beam Off Image"]


def _run_names() -> list[str]:
    """One experiment directory name per split (ingest splits by a hash of the name)."""
    found: dict[str, str] = {}
    for i in range(200):
        found.setdefault(split_for_run(f"exp{i:03d}"), f"exp{i:03d}")
        if len(found) == 3:
            break
    return [found["train"], found["val"], found["test"]]


def _make_folder(root, names: list[str], *, per_run=(24, 8, 8), seed: int = 0):
    """Frames (half .npy, half .tif) under root/<experiment>/ and root/labels.csv for ``names``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    rad = np.hypot(yy - SIZE / 2, xx - SIZE / 2)
    rows = []
    for run, n in zip(_run_names(), per_run):
        (root / run).mkdir(parents=True)
        for i in range(n):
            y = rng.random(len(names)) < 0.4
            img = 50.0 + 400.0 * np.exp(-rad / 4)
            if y[0]:  # the first attribute is a learnable ring
                img += 800.0 * np.exp(-((rad - 9) ** 2) / 2)
            img = rng.poisson(img).astype(np.float32)
            name = f"img{i:03d}.npy" if i % 2 else f"img{i:03d}.tif"
            if name.endswith(".npy"):
                np.save(root / run / name, img)
            else:
                tifffile.imwrite(root / run / name, img)
            rows.append({"file": f"{run}/{name}", **{a: int(v) for a, v in zip(names, y)}, "notes": f"n{i}"})
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    return root / "labels.csv", len(rows)


def _stages(tmp_path, names: list[str]) -> dict:
    data = tmp_path / "data"
    labels, n = _make_folder(data, names)
    run = tmp_path / "run"
    store = ingest_paths([data], run, labels=labels, vocabulary="from-labels", size=SIZE, partition_size=16,
                         progress=False)
    model = tmp_path / "model"
    train_model(run, arch="resnet18", size=SIZE, epochs=1, out=model, batch_size=8, device="cpu", progress=False,
                num_threads=1, keep_epochs=1)
    infer_run(run, model=model, device="cpu", batch_size=16, num_threads=1, progress=False, heatmaps=False)
    embed_run(run, method="pca", device="cpu", progress=False)
    metrics = evaluate_run(run)
    exported = export_labels(store.reload(), tmp_path / "export.csv")
    return {"store": store.reload(), "n": n, "model": model, "metrics": metrics, "exported": exported,
            "labels": pd.read_csv(labels)}


@pytest.mark.parametrize("names", [FIVE, FORTY], ids=["5-attributes", "40-attributes"])
def test_every_stage_follows_the_run_vocabulary(tmp_path, names):
    out = _stages(tmp_path, names)
    store, n, k = out["store"], out["n"], len(names)
    vocab = store.vocabulary
    assert list(vocab.names) == names and len(set(vocab.colours)) == k
    assert store.manifest["vocabulary"] == vocab.to_manifest()
    # ingest: y__<slug> of the run's attributes, in order; labels as written
    samples = store.samples.read()
    assert [c for c in samples.columns if c.startswith("y__")] == vocab.label_columns()
    assert len(samples) == n and samples["labelled"].all() and "meta__notes" in samples.columns
    by_file = out["labels"].set_index("file")
    rel = samples["source_uri"].map(lambda p: "/".join(p.split("/")[-2:]))
    np.testing.assert_array_equal(samples[vocab.label_columns()].to_numpy(int), by_file.loc[rel, names].to_numpy())
    # train: k outputs, the vocabulary in the checkpoint
    meta = read_checkpoint_meta(out["model"])
    assert meta["n_outputs"] == k and meta["attributes"] == names
    assert checkpoint_vocabulary(meta).to_manifest() == vocab.to_manifest()
    # infer: p__<slug> of the run, (n, k) in [0, 1]
    preds = store.predictions.read()
    assert [c for c in preds.columns if c.startswith("p__")] == vocab.prob_columns()
    p = preds[vocab.prob_columns()].to_numpy()
    assert p.shape == (n, k) and ((p >= 0) & (p <= 1)).all()
    # embed: one row per sample in every space
    emb = store.read_table(EMBEDDING_BY_METHOD.named(method="pca"))
    assert len(emb) == n and np.isfinite(emb[["act_x", "act_y", "prd_x", "prd_y"]].to_numpy()).all()
    # evaluate: one block of rows per attribute of the run
    per, model_metrics = metrics_table(out["metrics"])
    assert list(per.index) == list(vocab.slugs) and model_metrics["n"] == n
    assert (per["support"].to_numpy() == samples[vocab.label_columns()].sum().to_numpy()).all()
    assert 0.0 <= model_metrics["f1_micro"] <= 1.0 and np.isfinite(model_metrics["subset_accuracy"])
    # the evaluate command takes one cut-off per attribute of the run, and refuses 17 for another vocabulary
    from click.testing import CliRunner

    from workflows.cli import main

    res = CliRunner().invoke(main, ["evaluate", str(store.path), "--no-suspicious", "--cutoff", ",".join(["0.4"] * k)])
    assert res.exit_code == 0 and vocab.slugs[-1] in res.output, res.output
    res = CliRunner().invoke(main, ["evaluate", str(store.path), "--cutoff", ",".join(["0.4"] * 17)])
    assert res.exit_code == 2 and f"must be one float or {k} comma-separated floats" in res.output, res.output
    # export-labels: the run's names as 0/1 columns, as ingest reads them
    assert list(out["exported"].columns) == ["source_uri", "frame", "sample_id", *names]
    record_correction(store, sample_id=0, attribute=names[-1], new=not bool(samples.loc[0, vocab.label_columns()[-1]]))
    again = export_labels(store, tmp_path / "corrected.csv")
    assert again.loc[0, names[-1]] != out["exported"].loc[0, names[-1]]


def test_a_model_of_other_attributes_needs_an_attribute_map(tmp_path):
    data = tmp_path / "data"
    labels, n = _make_folder(data, FIVE, per_run=(4, 2, 2))
    run = tmp_path / "run"
    ingest_paths([data], run, labels=labels, vocabulary="from-labels", size=SIZE, partition_size=8, progress=False)
    model = tmp_path / "m17"
    save_checkpoint(model, build_resnet("resnet18"), input_size=SIZE)  # the paper's 17 outputs
    with pytest.raises(CheckpointMismatch) as info:
        infer_run(run, model=model, device="cpu", num_threads=1, progress=False, heatmaps=False)
    msg = str(info.value)
    assert "'Crystal A'" in msg and "'Wedge beamstop'" in msg and "(17)" in msg and "(5)" in msg
    assert not RunStore.open(run).predictions.path.exists()
    # a map: BCC -> Crystal A, FCC -> Crystal B, Linear beamstop -> Streak; Ring and Halo match by name
    amap = tmp_path / "map.csv"
    amap.write_text("model,run\nBCC,Crystal A\nFCC,Crystal B\nlinear_beamstop,streak\n")
    infer_run(run, model=model, device="cpu", num_threads=1, progress=False, heatmaps=False, attribute_map=amap)
    store = RunStore.open(run)
    preds = store.predictions.read()
    assert [c for c in preds.columns if c.startswith("p__")] == store.vocabulary.prob_columns()
    _, probs17 = Predictor.from_checkpoint(model, device="cpu", num_threads=1).predict(store.images.open()[:])
    want = [DEFAULT_VOCABULARY.index(a) for a in ("Ring", "Halo", "BCC", "FCC", "Linear beamstop")]
    np.testing.assert_allclose(preds[store.vocabulary.prob_columns()].to_numpy(), probs17[:, want], atol=1e-6)
    # the CLI: one line naming both lists, exit status 2; with --attribute-map the same predictions
    from click.testing import CliRunner

    from workflows.cli import main

    base = ["infer", str(run), "--model", str(model), "--device", "cpu", "--threads", "1", "--no-heatmaps",
            "--no-progress", "--overwrite"]
    res = CliRunner().invoke(main, base)
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert "'Crystal A'" in res.output and "'Wedge beamstop'" in res.output
    res = CliRunner().invoke(main, base + ["--attribute-map", str(amap)])
    assert res.exit_code == 0, res.output
    np.testing.assert_allclose(store.predictions.read()[store.vocabulary.prob_columns()].to_numpy(),
                               probs17[:, want], atol=1e-6)
    # a map leaving a run attribute without an output: one error naming it and both lists
    amap.write_text(json.dumps({"BCC": "Crystal A"}))
    with pytest.raises(CheckpointMismatch, match=r"no output for 2 attribute\(s\) of the run.*Crystal B, Streak"):
        infer_run(run, model=model, device="cpu", num_threads=1, progress=False, heatmaps=False,
                  attribute_map=amap, overwrite=True)


def test_vocabulary_files_and_attribute_maps(tmp_path):
    txt = tmp_path / "v.txt"
    txt.write_text("# mine\nRing\n\nCrystal A\n")
    assert read_vocabulary(txt).names == ("Ring", "Crystal A")
    js = tmp_path / "v.json"
    js.write_text(json.dumps(Vocabulary.from_names(FIVE).to_manifest()))
    assert read_vocabulary(js).slugs == Vocabulary.from_names(FIVE).slugs
    js.write_text(json.dumps(["Ring", "ring"]))
    with pytest.raises(VocabularyError, match=r"v.json: .*share the name 'ring'"):
        read_vocabulary(js)
    with pytest.raises(VocabularyError, match="does not exist"):
        read_vocabulary(tmp_path / "missing.txt")
    m = tmp_path / "m.csv"
    m.write_text("a,b\na,c\n")
    with pytest.raises(VocabularyError, match="model output 'a' is mapped twice"):
        read_attribute_map(m)
    run, model = Vocabulary.from_names(["X", "Y"]), Vocabulary.from_names(["Y", "Z", "X"])
    assert apply_attribute_map(model, run, {"Z": "Y"}) == [2, 1]  # a mapped output wins over a same-named one
    with pytest.raises(VocabularyError, match=r"different attributes.*has 2 \[X, Y\].*has 3 \[Y, Z, X\]"):
        apply_attribute_map(model, run, None)
    with pytest.raises(VocabularyError, match="output\\(s\\) 'Q' that the model does not have"):
        apply_attribute_map(model, run, {"Q": "X"})


def test_a_foreign_model_spec_can_declare_its_own_vocabulary(tmp_path):
    import torch

    from xsgpu.model.foreign.outputs import foreign_meta, map_outputs
    from xsgpu.model.foreign.spec import ModelSpecError, parse_spec

    own = {"input": {"size": 32}, "output": {"kind": "logits", "attributes": ["Streak", "", "Ring", "Crystal A"],
                                              "vocabulary": "own"}}
    spec = parse_spec(own)
    assert spec.output.model_attributes == ("Streak", "Ring", "Crystal A") and spec.output.columns == (0, 2, 3)
    raw = torch.tensor([[0.0, 9.0, 1.0, -1.0]])
    np.testing.assert_allclose(map_outputs(raw, spec.output).numpy(), torch.sigmoid(raw[:, [0, 2, 3]]).numpy())
    (tmp_path / "m.onnx").write_bytes(b"not read here")
    meta = foreign_meta(tmp_path / "m.onnx", spec, fmt="onnx", feature_dim=8)
    assert checkpoint_vocabulary(meta).names == ("Streak", "Ring", "Crystal A")  # the rule of check_run applies
    # without vocabulary = "own" the names must be the paper's 17 (as before), and the error says how to opt out
    with pytest.raises(ModelSpecError, match="output.vocabulary = 'own'"):
        parse_spec({"output": {"kind": "logits", "attributes": ["Streak", "Ring"]}})
    with pytest.raises(ModelSpecError, match="share the name 'ring'"):
        parse_spec({"output": {"kind": "logits", "attributes": ["Ring", "ring"], "vocabulary": "own"}})


def test_the_pipeline_ingests_with_the_label_files_vocabulary(tmp_path, dask_client):
    from workflows.pipeline import run_pipeline

    labels, n = _make_folder(tmp_path / "data", FIVE, per_run=(4, 2, 2))
    res = run_pipeline(tmp_path / "run", ingest=[tmp_path / "data"], labels=labels, vocabulary="from-labels",
                       size=SIZE, partition_size=4, embed=False, evaluate=False, client=dask_client, progress=False)
    store = RunStore.open(res.run_path)
    assert store.vocabulary.names == tuple(FIVE) and store.n_samples == n
    assert [c for c in store.samples.read().columns if c.startswith("y__")] == store.vocabulary.label_columns()


def test_ingest_vocabulary_sources(tmp_path):
    from click.testing import CliRunner

    from workflows.cli import main
    from xsgpu.io.ingest import IngestError
    from xsgpu.io.labels import LabelsError

    labels, n = _make_folder(tmp_path / "data", FIVE, per_run=(2, 1, 1))
    data = tmp_path / "data"
    # the default vocabulary: the file must give the paper's 17; the error says how to take its own
    with pytest.raises(LabelsError, match="--vocabulary from-labels"):
        ingest_paths([data], tmp_path / "r17", labels=labels, size=SIZE, progress=False)
    # from-labels: y__ columns are attributes (prefix dropped), meta__ columns metadata whatever their values
    table = pd.read_csv(labels).rename(columns={"Streak": "y__Streak"}).assign(meta__flag=1)
    table.to_csv(tmp_path / "l2.csv", index=False)
    store = ingest_paths([data], tmp_path / "r5", labels=tmp_path / "l2.csv", vocabulary="from-labels", size=SIZE,
                         progress=False)
    assert store.vocabulary.names == tuple(FIVE) and "meta__flag" in store.samples.read().columns
    # a vocabulary file for an unlabelled run: its columns, all False
    (tmp_path / "forty.txt").write_text("\n".join(FORTY) + "\n")
    res = CliRunner().invoke(main, ["ingest", str(data), "--out", str(tmp_path / "r40"), "--size", str(SIZE),
                                    "--vocabulary", str(tmp_path / "forty.txt"), "--no-progress"])
    assert res.exit_code == 0, res.output
    r40 = RunStore.open(tmp_path / "r40")
    assert len(r40.vocabulary) == 40 and not r40.samples.read()[r40.vocabulary.label_columns()].to_numpy().any()
    with pytest.raises(IngestError, match="'from-labels' needs a label file"):
        ingest_paths([data], tmp_path / "rx", vocabulary="from-labels", size=SIZE, progress=False)
    # what export-labels writes, ingest reads back with the same vocabulary
    export_labels(store, tmp_path / "back.csv")
    again = ingest_paths([data], tmp_path / "again", labels=tmp_path / "back.csv", vocabulary="from-labels",
                         size=SIZE, progress=False)
    assert again.vocabulary.to_manifest() == store.vocabulary.to_manifest()
    cols = store.vocabulary.label_columns()
    assert again.samples.read()[cols].equals(store.samples.read()[cols])


def test_import_outputs_takes_the_run_attributes(tmp_path):
    from xsgpu.io.import_outputs import OutputsImportError, import_outputs

    labels, n = _make_folder(tmp_path / "data", FIVE, per_run=(2, 1, 1))
    store = ingest_paths([tmp_path / "data"], tmp_path / "run", labels=labels, vocabulary="from-labels", size=SIZE,
                         progress=False)
    rng = np.random.default_rng(3)
    p = rng.random((n, 5)).astype(np.float32)
    cols = ["Ring", "halo", "p__crystal_a", "Crystal B", "streak"]  # names, slugs or p__ columns, any case
    pd.DataFrame(p, columns=cols).assign(sample_id=np.arange(n)).to_csv(tmp_path / "p.csv", index=False)
    features = tmp_path / "f.npy"
    np.save(features, rng.random((n, 8)).astype(np.float32))
    import_outputs(store.path, predictions=tmp_path / "p.csv", features=features)
    got = store.predictions.read()
    np.testing.assert_allclose(got[store.vocabulary.prob_columns()].to_numpy(), p, atol=1e-6)
    pd.DataFrame(p[:, :4], columns=cols[:4]).assign(sample_id=np.arange(n)).to_csv(tmp_path / "q.csv", index=False)
    with pytest.raises(OutputsImportError, match=r"missing attribute column\(s\) Streak; all 5 of the run's"):
        import_outputs(store.path, predictions=tmp_path / "q.csv", features=features, overwrite=True)
