"""Checkpoints (safetensors + JSON, hash-checked, mismatch refused) and the run-store data loader."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from xsgpu.attributes import NAMES
from xsgpu.model.checkpoint import (
    CheckpointError, CheckpointMismatch, check_compatible, load_checkpoint, load_optimizer_file,
    load_optimizer_state, read_checkpoint_meta, save_checkpoint,
)
from xsgpu.model.data import load_frames, load_training_data, split_indices
from xsgpu.model.resnet import build_resnet
from xsgpu.preprocess import resize_batch


@pytest.fixture
def ckpt(tmp_path):
    torch.manual_seed(0)
    net = build_resnet("resnet18")
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    _, logits = net.forward_logits(torch.randn(4, 1, 32, 32))
    logits.sum().backward()
    opt.step()
    save_checkpoint(tmp_path / "m", net, input_size=32, training={"run_path": "/x"}, metrics={"val_map": 0.5},
                    optimizer=opt, resume={"epoch": 0, "step": 1})
    return tmp_path / "m", net.eval(), opt


def test_checkpoint_round_trip(ckpt, monkeypatch):
    path, net, _ = ckpt
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load must never be used on checkpoints"))
    model, meta = load_checkpoint(path)
    assert meta["arch"] == "resnet18" and meta["input_size"] == 32 and meta["attributes"] == list(NAMES)
    assert meta["feature_dim"] == 512 and meta["metrics"]["val_map"] == 0.5 and len(meta["weights_sha256"]) == 64
    assert meta["model_id"].startswith("resnet18-32-")
    x = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        for a, b in zip(model(x), net(x)):
            torch.testing.assert_close(a, b)
    # the same checkpoint is found through its files too
    assert read_checkpoint_meta(path / "model.json")["weights_sha256"] == meta["weights_sha256"]
    assert read_checkpoint_meta(path / "model.safetensors")["model_id"] == meta["model_id"]


def test_optimizer_state_round_trip(ckpt):
    path, net, opt = ckpt
    meta = read_checkpoint_meta(path)
    fresh = torch.optim.AdamW(build_resnet("resnet18").parameters(), lr=1e-3)
    load_optimizer_state(fresh, load_optimizer_file(path, meta), meta["resume"]["optimizer"])
    a, b = opt.state_dict(), fresh.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for k in a["state"]:
        for key in ("exp_avg", "exp_avg_sq", "step"):
            torch.testing.assert_close(a["state"][k][key], b["state"][k][key])


def test_corrupt_or_incomplete_checkpoint_is_refused(ckpt, tmp_path):
    path, _, _ = ckpt
    raw = bytearray((path / "model.safetensors").read_bytes())
    raw[-10] ^= 0xFF
    (path / "model.safetensors").write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="does not match model.json weights_sha256"):
        load_checkpoint(path)
    (path / "model.json").unlink()
    with pytest.raises(CheckpointError, match="model.json is missing"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="the directory does not exist"):
        load_checkpoint(tmp_path / "nope")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "model.json").write_text(json.dumps({"format": "pickle"}))
    with pytest.raises(CheckpointError, match="field 'format' is 'pickle'"):
        read_checkpoint_meta(tmp_path / "other")


@pytest.mark.parametrize("field, value, message", [
    ("input_size", 100000, r"field 'input_size' is 100000; xsgpu accepts an int in 8..4096"),
    ("input_size", 4, r"field 'input_size' is 4; xsgpu accepts an int in 8..4096"),
    ("input_size", "32", r"field 'input_size' is '32'"),
    ("input_size", True, r"field 'input_size' is True"),
    ("n_outputs", 10**9, r"field 'n_outputs' is 1000000000; it must equal the number of attributes \(17\)"),
    ("attributes", ["a"] * 5000, r"field 'attributes' must be a list of 1..1024 names; got 5000"),
    ("preprocessing", {"source_size": [100000, 100000]}, r"field 'preprocessing.source_size' is \[100000, 100000\]"),
])
def test_declared_sizes_out_of_bounds_are_refused_before_loading(ckpt, field, value, message, monkeypatch):
    path, _, _ = ckpt
    meta = json.loads((path / "model.json").read_text())
    meta[field] = value
    (path / "model.json").write_text(json.dumps(meta))

    def no_build(*args, **kwargs):
        raise AssertionError("the model was built from out-of-bounds metadata")

    monkeypatch.setattr("xsgpu.model.checkpoint.build_resnet", no_build)
    with pytest.raises(CheckpointError, match=message + r".*Hint: the file is corrupt or was not written by"):
        load_checkpoint(path)


def test_check_compatible_names_both_sides(ckpt):
    meta = read_checkpoint_meta(ckpt[0])
    swapped = list(NAMES)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    with pytest.raises(CheckpointMismatch, match=r"trained on attributes \['BCC', 'Beam Off Image'.*but run R has "
                                                 r"\['Beam Off Image', 'BCC'.*#0: 'BCC' vs 'Beam Off Image'"):
        check_compatible(meta, attributes=swapped, source="run R", checkpoint="model M")
    with pytest.raises(CheckpointMismatch, match="model M has input size 32, but run R asks for input size 64"):
        check_compatible(meta, input_size=64, source="run R", checkpoint="model M")
    with pytest.raises(CheckpointMismatch, match="model M is a resnet18, but run R asks for resnet50"):
        check_compatible(meta, arch="resnet50", source="run R", checkpoint="model M")
    check_compatible(meta, attributes=list(NAMES), input_size=32, arch="resnet18")  # no error


def _samples(splits, runs):
    return pd.DataFrame({"sample_id": np.arange(len(splits)), "split": splits, "run_id": runs})


def test_split_indices_checks_runs_and_columns():
    s = _samples(["train"] * 4 + ["val"] * 2 + ["test"] * 2, list("aabbccdd"))
    ids = split_indices(s)
    assert ids["train"].tolist() == [0, 1, 2, 3] and ids["val"].tolist() == [4, 5] and ids["test"].tolist() == [6, 7]
    half = split_indices(s, max_images=4)
    assert [len(half[k]) for k in ("train", "val", "test")] == [2, 1, 1]
    with pytest.raises(ValueError, match="column 'split' is missing"):
        split_indices(s.drop(columns="split"))
    with pytest.raises(ValueError, match=r"runs \['b'\] appear in more than one split"):
        split_indices(_samples(["train", "train", "train", "val", "val", "val"], list("aabbcc")))
    with pytest.raises(ValueError, match="the 'val' split is empty"):
        split_indices(_samples(["train", "test"], list("ab")))
    with pytest.raises(ValueError, match=r"column 'split' must hold only train, val, test. Got \['dev'\]"):
        split_indices(_samples(["train", "dev"], list("ab")))
    with pytest.raises(ValueError, match="The 'max_images' parameter must be an int >= 2"):
        split_indices(s, max_images=1)
    lab = s.assign(labelled=[True] * 6 + [False] * 2)
    assert len(split_indices(lab)["test"]) == 0
    unreadable = s.assign(valid=[True, False, True, True, True, True, True, False])  # ingest's failed frames
    ids = split_indices(unreadable)
    assert ids["train"].tolist() == [0, 2, 3] and ids["test"].tolist() == [6]


def test_load_frames_matches_preprocess_and_limits_memory(rng):
    x = (rng.random((10, 64, 64)) * 300).astype(np.float16)
    ids = np.array([1, 2, 7, 9])
    out = load_frames(x, ids, 32, progress=False)
    assert out.dtype == torch.float16 and out.shape == (4, 32, 32)
    np.testing.assert_allclose(out.float().numpy(), resize_batch(x[ids].astype(np.float32), 32), rtol=2e-3, atol=0.2)
    with pytest.raises(MemoryError, match="needs .* GiB, more than max_bytes=0.0 GiB. Hint: lower --max-images or --size"):
        load_frames(x, ids, 32, max_bytes=100, progress=False)


def test_load_training_data_from_run(easy_run):
    data = load_training_data(easy_run, 32, progress=False)
    n = sum(len(v) for v in data.ids.values())
    assert n == easy_run.n_samples and data.source_size == (32, 32)
    labels = easy_run.labels()
    for k in ("train", "val", "test"):
        assert data.frames[k].shape == (len(data.ids[k]), 32, 32)
        np.testing.assert_array_equal(data.labels[k], labels[data.ids[k]])
    samples = easy_run.samples.read()
    runs = {k: set(samples.loc[data.ids[k], "run_id"]) for k in data.ids}
    assert not (runs["train"] & runs["val"]) and not (runs["train"] & runs["test"]) and not (runs["val"] & runs["test"])
