"""Training: the loss falls, mAP beats the prevalence baseline, checkpoints per epoch, resume."""
from __future__ import annotations


import numpy as np
import pytest
import torch

from xsgpu.model import train_model
from xsgpu.model.checkpoint import CheckpointMismatch, load_checkpoint, read_checkpoint_meta
from xsgpu.model.train import compute_pos_weight, latest_epoch_checkpoint, lr_at

from .conftest import make_easy_run


def test_training_learns_the_easy_set(trained_model, easy_run):
    out, report = trained_model
    hist = report["history"]
    assert len(hist) == report["epochs_run"] == 3
    assert hist[-1]["train_loss"] < 0.8 * hist[0]["train_loss"]
    assert np.isfinite(report["val_prevalence_map"]) and report["val_prevalence_map"] < 0.5
    assert report["val_map"] > report["val_prevalence_map"] + 0.2
    assert report["test_map"] > report["test_prevalence_map"] + 0.2
    meta = read_checkpoint_meta(out)
    assert meta["arch"] == "resnet18" and meta["input_size"] == 32
    assert meta["training"]["run_path"] == str(easy_run.path.resolve())
    assert meta["preprocessing"]["source_size"] == [32, 32]
    assert meta["metrics"]["val_map"] == pytest.approx(report["val_map"])
    assert "resume" not in meta and not (out / "optimizer.safetensors").exists()  # the final model is weights only
    # one checkpoint per epoch, older ones pruned (keep 2 + the best)
    epochs = sorted(p.name for p in (out / "epochs").iterdir())
    assert "epoch-0002" in epochs and len(epochs) <= 3
    assert (out / "epochs" / "epoch-0002" / "optimizer.safetensors").exists()


def test_resume_continues_exactly(tmp_path):
    store = make_easy_run(tmp_path / "run", n=80, size=32, partition_size=40, seed=3, per_run=8)
    kw = dict(arch="resnet18", size=32, batch_size=16, lr=2e-3, device="cpu", progress=False, seed=5, num_threads=1)
    straight = train_model(store.path, epochs=2, out=tmp_path / "a", **kw)
    train_model(store.path, epochs=2, out=tmp_path / "b", time_budget_s=1, **kw)  # stops after epoch 1
    assert latest_epoch_checkpoint(tmp_path / "b").name == "epoch-0000"
    resumed = train_model(store.path, epochs=2, out=tmp_path / "b", resume=True, **kw)
    assert resumed["epochs_run"] == 2 and [h["epoch"] for h in resumed["history"]] == [0, 1]
    a, _ = load_checkpoint(tmp_path / "a" / "epochs" / "epoch-0001")
    b, _ = load_checkpoint(tmp_path / "b" / "epochs" / "epoch-0001")
    for (name, ta), tb in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(ta, tb, rtol=1e-4, atol=1e-5, msg=name)
    assert resumed["history"][1]["val_map"] == pytest.approx(straight["history"][1]["val_map"], abs=1e-4)
    with pytest.raises(CheckpointMismatch, match=r"epoch-0001 has input size 32, but this training request asks for input size 64"):
        train_model(store.path, epochs=3, out=tmp_path / "b", resume=True, **{**kw, "size": 64})
    with pytest.raises(CheckpointMismatch, match="is a resnet18, but this training request asks for resnet34"):
        train_model(store.path, epochs=3, out=tmp_path / "b", resume=True, **{**kw, "arch": "resnet34"})


def test_train_rejects_bad_parameters(easy_run, tmp_path):
    with pytest.raises(ValueError, match="The 'arch' parameter must be one of"):
        train_model(easy_run.path, arch="resnet101", out=tmp_path / "m")
    with pytest.raises(ValueError, match="The 'size' parameter of train_model must be an int >= 32. Got 16 instead."):
        train_model(easy_run.path, arch="resnet18", size=16, out=tmp_path / "m")
    with pytest.raises(ValueError, match="The 'pos_weight' parameter must be 'sqrt', 'balanced' or 'none'. Got 'x'"):
        train_model(easy_run.path, arch="resnet18", size=32, out=tmp_path / "m", pos_weight="x")
    with pytest.raises(ValueError, match="The 'lr' parameter of train_model must be a positive float. Got -1"):
        train_model(easy_run.path, arch="resnet18", size=32, out=tmp_path / "m", lr=-1)


def test_train_refuses_run_without_a_train_split(tmp_path):
    store = make_easy_run(tmp_path / "run", n=40, size=32, partition_size=40, with_split=False)  # all "test"
    with pytest.raises(ValueError, match="the 'train' split is empty; training needs images in both 'train' and 'val'"):
        train_model(store.path, arch="resnet18", size=32, epochs=1, out=tmp_path / "m", progress=False)


def test_schedule_and_pos_weight():
    lrs = [lr_at(s, 100, lr=1.0) for s in range(101)]
    assert lrs[0] == pytest.approx(0.04) and max(lrs) == pytest.approx(1.0) and lrs[-1] == pytest.approx(1e-3)
    assert np.all(np.diff(lrs[10:]) <= 1e-12) and np.all(np.diff(lrs[:11]) > 0)
    y = np.zeros((100, 3), bool)
    y[:1, 0] = True   # 1 % -> sqrt(99) ~ 9.95
    y[:50, 1] = True  # 50 % -> 1
    w = compute_pos_weight(y, "sqrt")
    assert w[0] == pytest.approx(np.sqrt(99)) and w[1] == 1.0 and w[2] == 1.0  # no positives -> 1
    assert compute_pos_weight(y, "balanced")[0] == 10.0  # capped
    assert compute_pos_weight(y, "none").tolist() == [1.0, 1.0, 1.0]


def test_fixed_normalisation_is_recorded_and_used_by_the_predictor(tmp_path):
    """``normalisation="fixed"``: the checkpoint says so and the predictor scores with the same map (its
    probabilities on the val split give the mAP the training loop measured)."""
    from xsgpu.model.predictor import Predictor
    from xsgpu.model.scoring import mean_ap
    from xsgpu.model.transforms import FIXED_MEAN, FIXED_STD, normalise

    store = make_easy_run(tmp_path / "run", n=80, size=32, partition_size=40, seed=3, per_run=8)
    report = train_model(store.path, arch="resnet18", size=32, epochs=1, batch_size=16, out=tmp_path / "m",
                         device="cpu", progress=False, seed=0, num_threads=1, normalisation="fixed")
    meta = read_checkpoint_meta(tmp_path / "m")
    assert meta["preprocessing"]["normalisation"] == "fixed"
    pred = Predictor.from_checkpoint(tmp_path / "m", device="cpu", num_threads=1)
    assert pred.normalisation == "fixed"
    samples = store.samples.read()
    val = samples.index[samples["split"] == "val"].to_numpy()
    frames = np.asarray(store.images.open()[:])[val]
    y = samples.loc[val, [c for c in samples.columns if c.startswith("y__")]].to_numpy()
    # one val run of 8 images: the predictor's torch resize and the loop's preloaded frames differ in the last
    # float bits, which can swap two near-tied scores; more than that would be a different input layout
    assert mean_ap(y, pred.predict(frames)[1]) == pytest.approx(report["val_map"], abs=1e-2)
    x = torch.full((1, 4, 4), FIXED_MEAN + FIXED_STD)
    torch.testing.assert_close(normalise(x, "fixed"), torch.ones(1, 4, 4))
    torch.testing.assert_close(normalise(x, "image+level"), torch.ones(1, 4, 4))  # flat image: only its level
    with pytest.raises(ValueError, match="The 'normalisation' parameter of train_model must be one of image, fixed, image\\+level"):
        train_model(store.path, arch="resnet18", size=32, out=tmp_path / "m2", normalisation="none")


def test_pixel_factor_and_two_views_train_record_predict_and_explain(tmp_path):
    """``pixel_factor=2`` with ``normalisation="two-view"``: the network is S x S with 2 x 2^2 = 8 input
    channels, the checkpoint records the layout, the predictor reproduces the training loop's val mAP, a
    resume with another layout is refused, and attributions come back at the f S x f S pixel grid."""
    from xsgpu.explain.image import explain
    from xsgpu.model.predictor import Predictor
    from xsgpu.model.scoring import mean_ap
    from xsgpu.model.transforms import channels_to_image, input_channels, to_channels, to_model_input

    x = torch.rand(3, 8, 8) * 200
    c = to_channels(x, "two-view", 2)
    assert c.shape == (3, 8, 4, 4) and input_channels("two-view", 2) == 8
    torch.testing.assert_close(channels_to_image(c[0], 2, 2)[1], (x[0] - 50.0) / 75.0)  # the fold is lossless
    torch.testing.assert_close(to_model_input(x, 8), to_channels(x)[:, :1])  # the default stays one channel
    with pytest.raises(ValueError, match="The 'pixel_factor' parameter of train_model must be an int in 1..8"):
        train_model(tmp_path, arch="resnet18", size=32, out=tmp_path / "m0", pixel_factor=0)

    store = make_easy_run(tmp_path / "run", n=80, size=32, partition_size=40, seed=3, per_run=8)
    kw = dict(arch="resnet18", size=32, batch_size=16, device="cpu", progress=False, seed=0, num_threads=1)
    report = train_model(store.path, epochs=1, out=tmp_path / "m", normalisation="two-view", pixel_factor=2, **kw)
    meta = read_checkpoint_meta(tmp_path / "m")
    pre = meta["preprocessing"]
    assert (pre["normalisation"], pre["pixel_factor"], pre["channels"]) == ("two-view", 2, 8)
    model, _ = load_checkpoint(tmp_path / "m")
    assert model.trunk.conv1.in_channels == 8
    pred = Predictor.from_checkpoint(tmp_path / "m", device="cpu", num_threads=1)
    samples = store.samples.read()
    val = samples.index[samples["split"] == "val"].to_numpy()
    frames = np.asarray(store.images.open()[:])[val]
    y = samples.loc[val, [c for c in samples.columns if c.startswith("y__")]].to_numpy()
    # one val run of 8 images: the predictor's torch resize and the loop's preloaded frames differ in the last
    # float bits, which can swap two near-tied scores; more than that would be a different input layout
    assert mean_ap(y, pred.predict(frames)[1]) == pytest.approx(report["val_map"], abs=1e-2)
    ex = explain(pred, frames[0], 0, method="gxi")
    assert ex.map.shape == ex.image.shape == (64, 64)
    with pytest.raises(CheckpointMismatch, match="trained with normalisation 'two-view' and pixel_factor 2"):
        train_model(store.path, epochs=2, out=tmp_path / "m", resume=True, **kw)
