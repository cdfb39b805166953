"""`xsgpu train` and `xsgpu infer` as thin wrappers: help with examples, errors as messages, a tiny run."""
from __future__ import annotations

import json

from click.testing import CliRunner

from workflows.cli import main

from .conftest import make_easy_run


def test_help_has_worked_examples():
    runner = CliRunner()
    for name in ("train", "infer"):
        res = runner.invoke(main, [name, "--help"])
        assert res.exit_code == 0, res.output
        assert "Examples:" in res.output and f"xsgpu {name} runs/demo" in res.output


def test_train_then_infer_cli(tmp_path):
    store = make_easy_run(tmp_path / "run", n=60, size=32, partition_size=30, per_run=6)
    runner = CliRunner()
    res = runner.invoke(main, ["train", str(store.path), "--arch", "resnet18", "--size", "32", "--epochs", "1",
                               "--batch-size", "16", "--device", "cpu", "--threads", "1", "--no-progress", "--json",
                               "--out", str(tmp_path / "m")])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output.strip().splitlines()[-1])
    assert report["epochs_run"] == 1 and report["arch"] == "resnet18"
    res = runner.invoke(main, ["infer", str(store.path), "--model", str(tmp_path / "m"), "--device", "cpu",
                               "--threads", "1", "--batch-size", "16", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "predicted 60 images in 2 partitions (0 already done)" in res.output
    res = runner.invoke(main, ["infer", str(store.path), "--model", str(tmp_path / "m"), "--device", "cpu",
                               "--threads", "1", "--no-progress"])
    assert "predicted 0 images in 0 partitions (2 already done)" in res.output


def test_cli_errors_are_messages(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["infer", str(tmp_path / "nowhere"), "--model", str(tmp_path / "m")])
    assert res.exit_code == 2 and "Error: No run store at" in res.output
    store = make_easy_run(tmp_path / "run", n=20, size=32, partition_size=20)
    res = runner.invoke(main, ["infer", str(store.path), "--model", str(tmp_path / "m"), "--device", "cpu"])
    assert res.exit_code == 2 and "Error: No checkpoint at" in res.output and "xsgpu train" in res.output
    res = runner.invoke(main, ["train", str(store.path), "--arch", "vgg", "--out", str(tmp_path / "m")])
    assert res.exit_code == 2 and "'vgg' is not one of" in res.output
