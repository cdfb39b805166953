"""Class activation maps at inference (issue 12.1): the CAM invariant, storage, flags, models without CAMs.

Invariant: for every image and attribute, the spatial mean of the stored map plus the head's bias equals
the logit. Tolerances: in float32 (the forward pass itself) 1e-4 absolute; from ``heatmaps.zarr``
(float16, relative rounding 2**-11 per cell) ``2e-3 * (1 + max |CAM| of that image)`` absolute, which
bounds the rounding of a mean of cells of that size with room to spare.
"""
from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
import torch

from xsgpu.errors import ModelMismatch
from xsgpu.explain.cam import ExplainedForward, cam_support, heatmap_shape
from xsgpu.io.runstore import RunStore, RunStoreError
from xsgpu.model import Predictor, infer_run, save_checkpoint
from xsgpu.model.checkpoint import default_preprocessing
from xsgpu.model.transforms import to_model_input

from .conftest import make_easy_run, random_resnet18

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")

F32_ATOL = 1e-4
F16_REL = 2e-3


def _logits(model, frames: np.ndarray, size: int) -> np.ndarray:
    with torch.no_grad():
        _, logits = model.forward_logits(to_model_input(torch.from_numpy(frames.astype(np.float32)), size))
    return logits.numpy()


@pytest.fixture(scope="module")
def r18_64(tmp_path_factory):
    """A random resnet18 at 64 px input for 64 px frames (2 x 2 maps), with non-trivial batch-norm statistics."""
    net = random_resnet18(0)
    with torch.no_grad():
        net.head.bias.uniform_(-3, 1)
    path = tmp_path_factory.mktemp("cam") / "r18"
    save_checkpoint(path, net, input_size=64, preprocessing=default_preprocessing((64, 64)))
    return path, net.eval()


@pytest.fixture
def run64(tmp_path):
    return make_easy_run(tmp_path / "run", n=24, size=64, partition_size=12, seed=2)


@pytest.mark.parametrize("size", [64, 96, 224])
def test_cam_mean_plus_bias_is_the_logit_in_float32(r18_64, size):
    _, net = r18_64
    x = torch.randn(3, 1, size, size)
    with torch.no_grad():
        feats, probs, cams = ExplainedForward(net, heatmaps=True)(x)
        ref_feats, ref_logits = net.forward_logits(x)
    assert tuple(cams.shape) == (3, 17, *heatmap_shape(size))
    assert heatmap_shape(224) == (7, 7) and heatmap_shape(64) == (2, 2)
    np.testing.assert_allclose(feats.numpy(), ref_feats.numpy(), atol=1e-5)
    np.testing.assert_allclose(probs.numpy(), torch.sigmoid(ref_logits).numpy(), atol=1e-6)
    recon = cams.mean(dim=(2, 3)) + net.head.bias.detach()
    assert float((recon - ref_logits).abs().max()) < F32_ATOL


def test_infer_stores_heatmaps_by_default_and_they_reproduce_the_logits(run64, r18_64):
    model, net = r18_64
    s = infer_run(run64.path, model=model, device="cpu", batch_size=5, num_threads=1, progress=False)
    assert s["outputs"] == ["heatmaps"]
    h = run64.heatmaps.open()
    assert h.shape == (24, 17, 2, 2) and h.dtype == np.float16
    assert h.chunks[0] == 12  # one chunk per partition, like features.zarr
    assert h.attrs["weights_sha256"] == run64.predictions.metadata()["weights_sha256"]
    assert h.attrs["attributes"][12] == "Ring"
    cams = h[:].astype(np.float32)
    bias = np.asarray(h.attrs["bias"], np.float32)
    logits = _logits(net, run64.images.open()[:], 64)
    err = np.abs(cams.mean(axis=(2, 3)) + bias - logits)
    bound = F16_REL * (1 + np.abs(cams).max(axis=(1, 2, 3)))[:, None]
    assert (err <= bound).all(), float((err / bound).max())
    assert run64.predictions.metadata()["outputs"] == {"heatmaps": [17, 2, 2]}


def test_no_heatmaps_flag_and_layer_arrays(run64, r18_64):
    model, net = r18_64
    s = infer_run(run64.path, model=model, device="cpu", batch_size=8, num_threads=1, progress=False,
                  heatmaps=False, layers=["layer1", "layer3"])
    assert s["outputs"] == ["features_layer1", "features_layer3"]
    assert not run64.heatmaps.path.exists()
    l1 = run64.artifact("features_layer1").open()
    l3 = run64.artifact("features_layer3").open()
    assert l1.shape == (24, 64) and l3.shape == (24, 256) and l1.dtype == np.float16
    x = to_model_input(torch.from_numpy(run64.images.open()[:].astype(np.float32)), 64)
    t = net.trunk
    with torch.no_grad():
        a1 = t.layer1(t.maxpool(t.relu(t.bn1(t.conv1(x)))))
        a3 = t.layer3(t.layer2(a1))
    np.testing.assert_allclose(l1[:].astype(np.float32), a1.mean((2, 3)).numpy(), rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(l3[:].astype(np.float32), a3.mean((2, 3)).numpy(), rtol=2e-3, atol=2e-3)
    with pytest.raises(ModelMismatch, match="layer4's pooled activations are FEA"):
        infer_run(run64.path, model=model, device="cpu", num_threads=1, progress=False, layers=["layer4"])


def test_resume_with_other_outputs_is_refused_and_overwrite_replaces(run64, r18_64):
    from xsgpu.model import infer_partition

    model, _ = r18_64
    p = Predictor.from_checkpoint(model, device="cpu", batch_size=12, num_threads=1)
    infer_partition(run64.path, 0, p)  # no extra outputs: predicted without heatmaps
    with pytest.raises(RunStoreError, match=r"partitions \[0\] were predicted with the extra outputs none.*--overwrite"):
        infer_run(run64.path, model=p, progress=False, heatmaps=True)
    # without flags a resume keeps what the finished partitions have
    staged = run64.path.parent / "resumed"
    shutil.copytree(run64.path, staged)
    s = infer_run(staged, model=p, progress=False)
    assert s["outputs"] == [] and s["n_partitions_skipped"] == 1 and not (staged / "heatmaps.zarr").exists()
    s = infer_run(run64.path, model=p, progress=False, overwrite=True)
    assert s["n_partitions_done"] == 2 and run64.heatmaps.path.exists()
    # an overwrite without heatmaps leaves none of the old ones behind
    infer_run(run64.path, model=p, progress=False, overwrite=True, heatmaps=False)
    assert not run64.heatmaps.path.exists()
    assert RunStore.open(run64.path).predictions.metadata()["outputs"] == {}


def test_models_without_cams_get_none_with_a_logged_reason(run64, tmp_path, caplog):
    from xsgpu.model.foreign import load_predictor

    from .test_foreign_models import SIZE, _Both, _net, _spec

    assert SIZE == 64
    path = tmp_path / "r18.pt"
    torch.jit.trace(_Both(_net()), torch.zeros(1, 3, SIZE, SIZE)).save(str(path))
    spec = _spec(tmp_path / "s.json", output={"name": 1}, features={"name": 0})
    pred = load_predictor(path, spec=spec, device="cpu", batch_size=12, num_threads=1)
    assert "TorchScript" in pred.heatmap_support()
    with caplog.at_level(logging.INFO, logger="xsgpu.model.predictor"):
        s = infer_run(run64.path, model=pred, progress=False)
    assert s["outputs"] == [] and not run64.heatmaps.path.exists()
    assert any("no heatmaps" in r.message and "TorchScript" in r.message for r in caplog.records)
    with pytest.raises(ModelMismatch, match="--layers needs"):
        pred.set_outputs(layers=["layer2"])
    assert cam_support(torch.nn.Linear(3, 2)) is not None


def test_cli_flags(run64, r18_64):
    from click.testing import CliRunner

    from workflows.commands.infer import command

    model, _ = r18_64
    res = CliRunner().invoke(command, [str(run64.path), "--model", str(model), "--device", "cpu", "--threads", "1",
                                       "--no-progress", "--no-heatmaps", "--layers", "layer2"])
    assert res.exit_code == 0, res.output
    assert "features_layer2.zarr" in res.output and "heatmaps" not in res.output
    shutil.rmtree(run64.artifact("features_layer2").path)
    assert not run64.heatmaps.path.exists()
