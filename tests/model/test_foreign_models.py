"""Models from elsewhere: a torchvision ResNet-18 (and, marked slow, ResNet-50) with 17 outputs, exported as a
state dict (safetensors and .pt), TorchScript and ONNX, predicts through its spec what the in-process model
predicts.

Tolerance: 1e-4 absolute on probabilities, 1e-4 relative (to the largest |value|) on features, all on CPU in
float32. The reference preprocessing is computed with the NumPy pipeline (:func:`xsgpu.preprocess.to_model_input`),
independent of the torch code under test.
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
import torchvision

from xsgpu.attributes import NAMES
from xsgpu.model.foreign import ModelSpecError, load_predictor
from xsgpu.model.foreign.spec import read_spec
from xsgpu.preprocess import to_model_input

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")

SIZE = 64
MEAN = [0.1, 0.2, 0.3]
STD = [1.5, 1.0, 0.5]
PROB_ATOL = 1e-4
FEA_RTOL = 1e-4
# the model's output columns hold the attributes in reverse order, to test the mapping
ORDER = list(NAMES[::-1])


def _net(seed: int = 0, arch: str = "resnet18") -> torch.nn.Module:
    torch.manual_seed(seed)
    net = getattr(torchvision.models, arch)(weights=None, num_classes=17)
    with torch.no_grad():  # non-trivial batch-norm statistics, so eval mode matters
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return net.eval()


class _Both(torch.nn.Module):
    """(pooled features, logits): the shape a TorchScript/ONNX export gives FEA."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        x = n.layer4(n.layer3(n.layer2(n.layer1(x))))
        f = torch.flatten(n.avgpool(x), 1)
        return f, n.fc(f)


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(3)
    x = rng.gamma(2.0, 40.0, (5, 96, 96)).astype(np.float32)
    x[:, :8] = 0  # a masked band
    return x


def _reference(frames, arch="resnet18"):
    """Features and probabilities (canonical attribute order) of the in-process model."""
    net = _net(arch=arch)
    x = to_model_input(frames, SIZE)  # (n, 1, S, S), per-image standardised
    x = (np.repeat(x, 3, axis=1) - np.array(MEAN)[None, :, None, None]) / np.array(STD)[None, :, None, None]
    with torch.no_grad():
        feats, logits = _Both(net)(torch.from_numpy(x.astype(np.float32)))
    probs = torch.sigmoid(logits).numpy()
    canon = probs[:, [ORDER.index(n) for n in NAMES]]
    return feats.numpy(), canon


@pytest.fixture(scope="module")
def reference(frames):
    return _reference(frames)


def _spec(path, **extra) -> str:
    spec = {"input": {"size": SIZE, "mean": MEAN, "std": STD},
            "output": {"kind": "logits", "attributes": ORDER}}
    for k, v in extra.items():
        spec.setdefault(k, {}).update(v) if isinstance(v, dict) else spec.__setitem__(k, v)
    path.write_text(json.dumps(spec))
    return str(path)


def _check(pred, frames, reference, *, fea_rtol=FEA_RTOL, prob_atol=PROB_ATOL):
    feats, probs = pred.predict(frames)
    ref_f, ref_p = reference
    assert feats.shape == ref_f.shape and feats.shape[0] == 5 and probs.shape == (5, 17)
    assert np.abs(probs - ref_p).max() < prob_atol
    assert np.abs(feats - ref_f).max() < fea_rtol * np.abs(ref_f).max()
    assert pred.meta["attributes"] == list(NAMES) and pred.meta["input_size"] == SIZE
    return np.abs(probs - ref_p).max()


def _export_onnx(module, path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros(2, 3, SIZE, SIZE),), str(path), dynamo=False, **kw)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_state_dict_equals_the_model(tmp_path, frames, reference, suffix):
    net = _net()
    path = tmp_path / f"r18{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    else:
        torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, path)
    spec = _spec(tmp_path / "r18.spec.json", architecture="resnet18")
    pred = load_predictor(path, spec=spec, device="cpu", batch_size=2, num_threads=1)
    _check(pred, frames, reference)
    assert pred.meta["arch"] == "state_dict:resnet18" and pred.meta["format"] == "state_dict"
    # found beside the model without --spec; the architecture is guessed from the weights
    (tmp_path / "r18.spec.json").rename(tmp_path / "r18.spec.json.bak")
    _spec(tmp_path / "r18.spec.json")
    _check(load_predictor(path, device="cpu", batch_size=8, num_threads=1), frames, reference)


def test_torchscript_equals_the_model(tmp_path, frames, reference):
    path = tmp_path / "r18.pt"
    torch.jit.trace(_Both(_net()), torch.zeros(1, 3, SIZE, SIZE)).save(str(path))
    spec = _spec(tmp_path / "s.json", output={"name": 1}, features={"name": 0})
    pred = load_predictor(path, spec=spec, device="cpu", batch_size=3, num_threads=1)
    assert pred.meta["format"] == "torchscript"
    _check(pred, frames, reference)


def test_onnx_equals_the_model(tmp_path, frames, reference):
    path = tmp_path / "r18.onnx"
    _export_onnx(_Both(_net()), path, input_names=["image"], output_names=["fea", "logits"],
                 dynamic_axes={"image": {0: "n"}})
    pred = load_predictor(path, spec=_spec(tmp_path / "s.json", output={"name": "logits"}, features={"name": "fea"}),
                          device="cpu", batch_size=4, num_threads=1)
    assert pred.meta["format"] == "onnx" and pred.meta["providers"] == ["CPUExecutionProvider"]
    _check(pred, frames, reference)


def test_onnx_single_output_fixed_batch_fea_from_the_graph(tmp_path, frames, reference):
    """Logits only, batch fixed at 2: FEA is the Gemm's input (found without features.name), batches padded."""
    path = tmp_path / "r18.onnx"
    _export_onnx(_net(), path, input_names=["x"], output_names=["logits"])
    pred = load_predictor(path, spec=_spec(tmp_path / "s.toml.json"), device="cpu", batch_size=3, num_threads=1)
    assert pred.spec.features and pred.feature_dim == 512
    _check(pred, frames, reference)


def test_probabilities_output_and_toml_spec(tmp_path, frames, reference):
    class Probs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = _Both(_net())

        def forward(self, x):
            f, z = self.m(x)
            return {"features": f, "probs": torch.sigmoid(z)}

    path = tmp_path / "p.pt"
    torch.jit.script(Probs()).save(str(path))
    attrs = ", ".join(json.dumps(a) for a in ORDER)
    (tmp_path / "p.spec.toml").write_text(
        f'format = "torchscript"\n[input]\nsize = {SIZE}\nmean = {MEAN}\nstd = {STD}\n'
        f'[output]\nkind = "probabilities"\nname = "probs"\nattributes = [{attrs}]\n[features]\nname = "features"\n')
    _check(load_predictor(path, device="cpu", num_threads=1), frames, reference)
    # the same model declared as logits would be double-sigmoided: not detectable; as probabilities a logit model is
    lp = tmp_path / "l.pt"
    torch.jit.trace(_Both(_net()), torch.zeros(1, 3, SIZE, SIZE)).save(str(lp))
    spec = _spec(tmp_path / "l.json", output={"name": 1, "kind": "probabilities"}, features={"name": 0})
    with pytest.raises(ModelSpecError, match=r"output.kind is 'probabilities', but the model gave values in .*"
                                             r"set output.kind = 'logits'"):
        load_predictor(lp, spec=spec, device="cpu", num_threads=1).predict(frames)


def test_spec_errors_name_the_key(tmp_path):
    net_path = tmp_path / "m.safetensors"
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in _net().state_dict().items()}, str(net_path))
    with pytest.raises(ModelSpecError, match=r"is not an xsgpu checkpoint, so it needs a model spec: write "
                                             r".*m.spec.toml or pass --spec FILE"):
        load_predictor(net_path, device="cpu")
    cases = [
        ({"output": {"attributes": ORDER}}, r"output.kind is required"),
        ({"output": {"kind": "logits", "attributes": ORDER[:-1]}}, r"output.attributes lacks \['BCC'\]"),
        ({"output": {"kind": "logits", "attributes": ORDER[:-1] + ["Rings"]}},
         r"unknown attribute\(s\) column 16: 'Rings'"),
        ({"output": {"kind": "logit", "attributes": ORDER}},
         r"output.kind must be one of \['logits', 'probabilities'\]"),
        ({"input": {"size": 64, "chanels": 3}, "output": {"kind": "logits", "attributes": ORDER}},
         r"unknown key\(s\) \['chanels'\] in \[input\]"),
        ({"input": {"channels": 3}, "output": {"kind": "logits", "attributes": ORDER}}, r"input.size is required"),
        ({"input": {"size": 64, "channels": 1}, "output": {"kind": "logits", "attributes": ORDER}},
         r"input.channels is 1 in the spec, but the model takes 3"),
        ({"input": {"size": 64}, "output": {"kind": "logits", "attributes": ORDER + [""]}},
         r"has shape \(2, 17\), but output.attributes .* lists 18 columns"),
        ({"input": {"size": 64}, "architecture": "resnet34", "output": {"kind": "logits", "attributes": ORDER}},
         r"does not fit torchvision resnet34: missing \['layer1.2"),
        ({"input": {"size": 64}, "features": {"name": "pool"}, "output": {"kind": "logits", "attributes": ORDER}},
         r"features.name 'pool' is not a node .* 'avgpool'"),
    ]
    for i, (spec, message) in enumerate(cases):
        p = tmp_path / f"s{i}.json"
        p.write_text(json.dumps(spec))
        with pytest.raises(ModelSpecError, match=message):
            load_predictor(net_path, spec=read_spec(p), device="cpu", num_threads=1)


@pytest.mark.slow
def test_resnet50_state_dict_and_onnx_equal_the_model(tmp_path, frames):
    """The issue's case: a torchvision ResNet-50 with 17 outputs (FEA D = 2048)."""
    ref = _reference(frames, "resnet50")
    net = _net(arch="resnet50")
    torch.save(net.state_dict(), tmp_path / "r50.pth")
    pred = load_predictor(tmp_path / "r50.pth", spec=_spec(tmp_path / "a.json"), device="cpu", num_threads=1)
    assert pred.meta["arch"] == "state_dict:resnet50" and pred.feature_dim == 2048
    _check(pred, frames, ref)
    _export_onnx(_Both(net), tmp_path / "r50.onnx", input_names=["x"], output_names=["fea", "logits"],
                 dynamic_axes={"x": {0: "n"}})
    spec = _spec(tmp_path / "b.json", output={"name": "logits"}, features={"name": "fea"})
    _check(load_predictor(tmp_path / "r50.onnx", spec=spec, device="cpu", num_threads=1), frames, ref)
