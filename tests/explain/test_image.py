"""explain_image and ``xsgpu explain`` on an inferred run (issue 12.2).

At the last block Grad-CAM equals ReLU(CAM) / (h w) of the stored heatmap (the gradient of a logit
through global average pooling + linear is w_c / (h w) everywhere): float16 storage, so the tolerance
is 2e-3 relative to the largest value.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from xsgpu.errors import InputError, ModelMismatch
from xsgpu.explain.image import explain_image

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")


def test_grad_cam_at_the_last_block_is_the_stored_heatmap(explained_run):
    store, model, _ = explained_run
    h = store.heatmaps.open()
    for sid in (0, 21):
        m = explain_image(store.path, sid, "Ring", method="gradcam", upsample_map=False)
        cam = h[sid, 12].astype(np.float32)
        want = np.maximum(cam, 0) / cam.size
        assert m.shape == (2, 2)
        assert np.abs(m - want).max() <= 2e-3 * max(1e-6, np.abs(cam).max() / cam.size)


def test_other_layers_and_methods(explained_run):
    store, model, net = explained_run
    l3 = explain_image(store.path, 5, "ring", method="gradcam", layer="layer3")
    assert l3.shape == (64, 64) and np.isfinite(l3).all() and (l3 >= 0).all()
    assert explain_image(store.path, 5, 12, method="gradcam", layer="layer3", upsample_map=False).shape == (4, 4)
    assert explain_image(store.path, 5, 12, method="gradcam", layer="layer2.1.conv2",
                         upsample_map=False).shape == (8, 8)
    ex = explain_image(store.path, 5, "Ring", method="ig", details=True)
    assert ex.map.shape == (64, 64) and ex.delta is not None
    with torch.no_grad():  # the score attributed is the logit of the model on that image
        from xsgpu.model.transforms import to_model_input

        x = to_model_input(torch.from_numpy(store.images.open()[5:6].astype(np.float32)), 64)
        logit = float(net.forward_logits(x)[1][0, 12])
        base = float(net.forward_logits(torch.zeros_like(x))[1][0, 12])
    assert abs(ex.score - logit) < 1e-4
    assert abs(ex.map.sum() - (logit - base)) <= ex.delta + 1e-3 * (1 + abs(logit - base))
    gxi = explain_image(store.path, 5, "Ring", method="gxi")
    assert gxi.shape == (64, 64) and np.isfinite(gxi).all()


def test_errors_name_the_option(explained_run, tmp_path):
    store, model, _ = explained_run
    with pytest.raises(InputError, match="Unknown attribute 'Rnig'"):
        explain_image(store.path, 0, "Rnig")
    with pytest.raises(InputError, match="--layer 'layer9' is not a module"):
        explain_image(store.path, 0, "Ring", layer="layer9")
    with pytest.raises(InputError, match="--sample 999"):
        explain_image(store.path, 999, "Ring")
    with pytest.raises(InputError, match="--layer is Grad-CAM's"):
        explain_image(store.path, 0, "Ring", method="ig", layer="layer2")
    from tests.model.test_foreign_models import SIZE, _Both, _net, _spec

    path = tmp_path / "r18.pt"
    torch.jit.trace(_Both(_net()), torch.zeros(1, 3, SIZE, SIZE)).save(str(path))
    spec = _spec(tmp_path / "s.json", output={"name": 1}, features={"name": 0})
    with pytest.raises(ModelMismatch, match="TorchScript: its layers take no hooks"):
        explain_image(store.path, 0, "Ring", model=str(path), spec=spec)
    ig = explain_image(store.path, 0, "Ring", model=str(path), spec=spec, method="gxi")  # input attributions work
    assert ig.shape == (64, 64) and np.isfinite(ig).all()


def test_cli_writes_npy_and_png(explained_run, tmp_path):
    from workflows.cli import main

    store, model, _ = explained_run
    npy, png = tmp_path / "m.npy", tmp_path / "m.png"
    res = CliRunner().invoke(main, ["explain", str(store.path), "--sample", "3", "--attribute", "Ring",
                                    "--layer", "layer3", "--out", str(npy)])
    assert res.exit_code == 0, res.output
    assert np.load(npy).shape == (64, 64) and "gradcam at layer3 of Ring for sample 3" in res.output
    res = CliRunner().invoke(main, ["explain", str(store.path), "--sample", "3", "--attribute", "Ring",
                                    "--method", "ig", "--out", str(png)])
    assert res.exit_code == 0, res.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "completeness error" in res.output
    res = CliRunner().invoke(main, ["explain", str(store.path), "--sample", "3", "--attribute", "Nope",
                                    "--out", str(npy)])
    assert res.exit_code == 2 and "Unknown attribute 'Nope'" in res.output
