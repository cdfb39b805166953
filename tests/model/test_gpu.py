"""The CUDA path: bf16 + channels_last inference agrees with CPU fp32; one GPU training epoch runs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from xsgpu.model import Predictor, build_resnet, save_checkpoint, train_model
from xsgpu.model.transforms import to_model_input

from .conftest import make_easy_run

pytestmark = pytest.mark.gpu


def test_predictor_cuda_matches_cpu(tmp_path, rng):
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "m", build_resnet("resnet18"), input_size=64)
    frames = (rng.random((40, 128, 128)) * 300).astype(np.float16)
    cpu = Predictor.from_checkpoint(tmp_path / "m", device="cpu", batch_size=16)
    gpu = Predictor.from_checkpoint(tmp_path / "m", device="gpu", batch_size=16)
    assert gpu.device == "cuda" and gpu.cuda
    f0, p0 = cpu.predict(frames)
    f1, p1 = gpu.predict(frames)
    assert f1.dtype == np.float32 and p1.shape == (40, 17)
    np.testing.assert_allclose(p1, p0, atol=0.03)  # bf16 autocast
    assert np.corrcoef(f0.ravel(), f1.ravel())[0, 1] > 0.99


def test_torch_preprocess_on_cuda_matches_cpu(rng):
    x = torch.from_numpy((rng.random((4, 256, 256)) * 300).astype(np.float32))
    torch.testing.assert_close(to_model_input(x.cuda(), 224).cpu(), to_model_input(x, 224), atol=1e-4, rtol=1e-4)


def test_train_one_epoch_on_cuda(tmp_path):
    store = make_easy_run(tmp_path / "run", n=120, size=32, partition_size=40)
    r = train_model(store.path, arch="resnet18", size=32, epochs=2, out=tmp_path / "m", batch_size=16, device="gpu",
                    progress=False)
    assert r["device"] == "cuda" and r["epochs_run"] == 2 and np.isfinite(r["val_map"])


def test_resume_on_cuda(tmp_path):
    store = make_easy_run(tmp_path / "run", n=80, size=32, partition_size=40, per_run=8)
    kw = dict(arch="resnet18", size=32, batch_size=16, device="gpu", progress=False)
    train_model(store.path, epochs=2, out=tmp_path / "m", time_budget_s=0.001, **kw)
    r = train_model(store.path, epochs=2, out=tmp_path / "m", resume=True, **kw)
    assert [h["epoch"] for h in r["history"]] == [0, 1] and np.isfinite(r["val_map"])
