"""`xsgpu model inspect` and `xsgpu infer --model MODEL.onnx`: a foreign model through the CLI into a run store
that evaluate reads unchanged."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import torch
import torchvision
from click.testing import CliRunner

from workflows.cli import main
from xsgpu.attributes import NAMES, prob_columns
from xsgpu.io.runstore import RunStore
from xsgpu.model.foreign import load_predictor

from .conftest import make_easy_run

SIZE = 32


def _onnx(path):
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None, num_classes=17).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(2, 3, SIZE, SIZE),), str(path), dynamo=False, input_names=["x"],
                          output_names=["logits"], dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}})


def test_inspect_says_what_the_spec_must_still_say(tmp_path):
    _onnx(tmp_path / "r18.onnx")
    res = CliRunner().invoke(main, ["model", "inspect", str(tmp_path / "r18.onnx")])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "r18.onnx: onnx" in out and "'x': ['n', 3, 32, 32]" in out and "'logits': ['n', 17]" in out
    assert "input.size = 32" in out and "input.channels = 3" in out and "n_outputs = 17" in out
    assert "features.name = '/Flatten_output_0'" in out and "(GlobalAveragePool output)" in out
    assert "the spec must still say: output.kind, output.attributes (17 names, in output order)" in out
    assert "no spec found beside the model" in out
    (tmp_path / "r18.spec.toml").write_text('[output]\nkind = "logits"\nattributes = ["BCC"]\n')
    res = CliRunner().invoke(main, ["model", "inspect", str(tmp_path / "r18.onnx"), "--json"])
    report = json.loads(res.output)
    assert report["spec_check"]["ok"] is False and "output.attributes lacks" in report["spec_check"]["message"]


def _labelled_run(path):
    store = make_easy_run(path, n=24, size=SIZE, partition_size=12)
    samples = store.samples.read()
    samples["labelled"] = True
    for part in range(store.n_partitions):
        a, b = store.partition_bounds(part)
        store.samples.write_partition(part, samples.iloc[a:b].reset_index(drop=True))
    return store


def test_infer_with_an_onnx_model_then_evaluate(tmp_path):
    store = _labelled_run(tmp_path / "run")
    model = tmp_path / "r18.onnx"
    _onnx(model)
    spec = tmp_path / "my.toml"
    spec.write_text('[output]\nkind = "logits"\nattributes = [' + ", ".join(json.dumps(n) for n in NAMES) + "]\n")
    runner = CliRunner()
    res = runner.invoke(main, ["infer", str(store.path), "--model", str(model), "--device", "cpu", "--threads", "1",
                               "--no-progress"])
    assert res.exit_code == 2 and "needs a model spec" in res.output and "xsgpu model inspect" in res.output
    res = runner.invoke(main, ["infer", str(store.path), "--model", str(model), "--spec", str(spec), "--device", "cpu",
                               "--threads", "1", "--batch-size", "5", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "predicted 24 images in 2 partitions (0 already done) with r18-" in res.output
    store = RunStore.open(store.path)
    preds = store.predictions.read()
    feats = np.asarray(store.features.open()[:])
    direct_f, direct_p = load_predictor(model, spec=spec, device="cpu", num_threads=1).predict(
        store.images.open()[:])
    assert preds["sample_id"].tolist() == list(range(24))
    assert np.abs(preds[prob_columns()].to_numpy() - direct_p).max() < 1e-6
    assert feats.shape == (24, 512) and np.abs(feats - direct_f).max() < 1e-2 * np.abs(direct_f).max()
    meta = store.predictions.metadata()
    assert meta["arch"] == "onnx:r18" and meta["input_size"] == SIZE
    res = runner.invoke(main, ["evaluate", str(store.path), "--no-suspicious"])
    assert res.exit_code == 0, res.output
    metrics = pd.read_parquet(store.path / "metrics.parquet")
    assert set(metrics["scope"]) >= {"model", "attribute"}
