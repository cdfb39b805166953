"""PyTorch models from elsewhere: torchvision-style state dicts and TorchScript archives.

* **State dict** (``.safetensors``, or ``.pt``/``.pth`` read with ``torch.load(weights_only=True)``,
  which refuses anything but tensors and plain containers): ``architecture`` names the torchvision
  builder (``resnet18`` ... ``resnet152`` and any other ``torchvision.models`` classifier). The number
  of outputs and the first convolution's input channels are read from the weights; a ``module.``
  prefix (DataParallel) and a ``{"state_dict": ...}`` / ``{"model": ...}`` wrapper are undone. FEA is
  the output of the graph node ``features.name`` (``torchvision.models.feature_extraction``; default
  ``avgpool`` where the model has one), flattened.
* **TorchScript** (``torch.jit.save``): the archive's own code runs (load only models you trust). FEA
  and the attribute outputs are elements of its output: ``features.name`` / ``output.name`` are indices
  into a tuple output, or keys of a dict output.

Both run in float32 (no autocast) so that predictions equal the model's own to ~1e-5.
"""
from __future__ import annotations

import logging
import os
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from xsgpu.errors import ModelError
from xsgpu.model.foreign.inputs import spec_input
from xsgpu.model.foreign.outputs import check_output_shape, foreign_meta, map_outputs
from xsgpu.model.foreign.spec import ModelSpec, ModelSpecError, complete_input
from xsgpu.model.predictor import Predictor

__all__ = ["load_state_dict_file", "build_torchvision", "TorchForeignPredictor", "load_torch_predictor",
           "first_conv_channels", "guess_resnet"]

log = logging.getLogger(__name__)

_WRAPPERS = ("state_dict", "model_state_dict", "model", "net")


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a state dict file: safetensors, or a ``torch.save`` file read with ``weights_only=True``.

    Raises
    ------
    ModelError
        Unreadable file, a pickle holding more than tensors, or no tensors at all.
    """
    path = Path(path)
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # safetensors / the restricted unpickler say what is wrong
        raise ModelError(f"{path}: cannot read it as a state dict ({type(exc).__name__}: {exc}). A .pt/.pth file "
                         "must hold tensors only (torch.save(model.state_dict(), ...)); a whole pickled model is "
                         "refused: save its state_dict, or export TorchScript/ONNX.") from exc
    if isinstance(state, dict):
        for key in _WRAPPERS:
            inner = state.get(key)
            if isinstance(inner, dict) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                log.info("%s: using the tensors under %r", path, key)
                state = inner
                break
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path}: expected a mapping of parameter names to tensors (a state dict); got "
                         f"{type(state).__name__}. Hint: torch.save(model.state_dict(), PATH).")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def first_conv_channels(state: dict[str, torch.Tensor]) -> int | None:
    """Input channels of the first 4-D weight (the stem convolution) of a state dict."""
    for v in state.values():
        if v.ndim == 4:
            return int(v.shape[1])
    return None


def guess_resnet(state: dict[str, torch.Tensor]) -> str | None:
    """The torchvision ResNet whose parameter layout a state dict has (``resnet18`` ... ``resnet152``), else None."""
    if "conv1.weight" not in state or "fc.weight" not in state:
        return None
    blocks = tuple(len({k.split(".")[1] for k in state if k.startswith(f"layer{i}.")}) for i in range(1, 5))
    bottleneck = any(k.endswith("conv3.weight") for k in state)
    table = {((2, 2, 2, 2), False): "resnet18", ((3, 4, 6, 3), False): "resnet34", ((3, 4, 6, 3), True): "resnet50",
             ((3, 4, 23, 3), True): "resnet101", ((3, 8, 36, 3), True): "resnet152"}
    return table.get((blocks, bottleneck))


def _last_linear(model: nn.Module) -> tuple[str, nn.Linear] | None:
    found = None
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            found = (name, m)
    return found


def _replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent = model
    *path, last = name.split(".")
    for p in path:
        parent = getattr(parent, p)
    setattr(parent, last, new)


def build_torchvision(architecture: str, state: dict[str, torch.Tensor], *, source: str) -> nn.Module:
    """Build ``torchvision.models.<architecture>`` shaped like ``state`` (outputs, stem channels) and load it."""
    import torchvision.models as tvm

    builder = getattr(tvm, architecture, None) if architecture and not architecture.startswith("_") else None
    if builder is None or not callable(builder):
        raise ModelSpecError(f"architecture {architecture!r} (for {source}) is not a torchvision.models builder; "
                             "e.g. resnet18, resnet50, densenet121, efficientnet_b0.")
    model = builder(weights=None)
    lin = _last_linear(model)
    if lin is not None and f"{lin[0]}.weight" in state:
        w = state[f"{lin[0]}.weight"]
        if tuple(w.shape) != tuple(lin[1].weight.shape):
            _replace_module(model, lin[0], nn.Linear(int(w.shape[1]), int(w.shape[0]),
                                                     bias=f"{lin[0]}.bias" in state))
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            w = state.get(f"{name}.weight")
            if w is not None and w.ndim == 4 and int(w.shape[1]) != m.in_channels:
                _replace_module(model, name, nn.Conv2d(int(w.shape[1]), m.out_channels, m.kernel_size, m.stride,
                                                       m.padding, m.dilation, m.groups, bias=m.bias is not None))
            break
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        ours = model.state_dict()
        missing = [k for k in ours if k not in state][:5]
        unexpected = [k for k in state if k not in ours][:5]
        shapes = [f"{k}: {tuple(state[k].shape)} vs {tuple(ours[k].shape)}" for k in state
                  if k in ours and state[k].shape != ours[k].shape][:3]
        raise ModelSpecError(
            f"{source} does not fit torchvision {architecture}: missing {missing}, unexpected {unexpected}, "
            f"shape differences {shapes}. Hint: check `architecture` in the spec (`xsgpu model inspect` guesses "
            "ResNets from the weights).") from exc
    return model.eval()


class _StateDictModule(nn.Module):
    """torchvision model -> (FEA node output flattened, final output), through an FX feature extractor."""

    def __init__(self, model: nn.Module, feature_node: str, *, source: str):
        super().__init__()
        from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

        _, nodes = get_graph_node_names(model)
        if feature_node not in nodes:
            tail = [n for n in nodes if not n.startswith("layer") or n.count(".") == 0][-8:]
            raise ModelSpecError(f"features.name {feature_node!r} is not a node of {source}; nodes near the end: "
                                 f"{tail}. Hint: `xsgpu model inspect MODEL` lists them.")
        self.extractor = create_feature_extractor(model, return_nodes={feature_node: "features", nodes[-1]: "outputs"})
        self.feature_dim = 0

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.extractor(x)
        return out["features"].flatten(1), out["outputs"]


def _pick(out: Any, key: str | int | None, *, what: str, source: str) -> torch.Tensor:
    if key is None:
        if isinstance(out, torch.Tensor):
            return out
        raise ModelSpecError(f"{source} returns a {type(out).__name__}, not one tensor: set {what} to the index "
                             "(tuple) or key (dict) of the element to use.")
    try:
        t = out[key]
    except (IndexError, KeyError, TypeError) as exc:
        raise ModelSpecError(f"{what} = {key!r}, but {source} returns {_describe(out)}.") from exc
    if not isinstance(t, torch.Tensor):
        raise ModelSpecError(f"{what} = {key!r} selects a {type(t).__name__}, not a tensor, in {source}.")
    return t


def _describe(out: Any) -> str:
    if isinstance(out, torch.Tensor):
        return f"one tensor {tuple(out.shape)}"
    if isinstance(out, dict):
        return "a dict {" + ", ".join(f"{k!r}: {_describe(v)}" for k, v in out.items()) + "}"
    if isinstance(out, (tuple, list)):
        return f"a {type(out).__name__} (" + ", ".join(f"[{i}] {_describe(v)}" for i, v in enumerate(out)) + ")"
    return type(out).__name__


class _ScriptModule(nn.Module):
    """TorchScript model -> (FEA element flattened, output element)."""

    def __init__(self, script: torch.jit.ScriptModule, spec: ModelSpec, *, source: str):
        super().__init__()
        if spec.features is None:
            raise ModelSpecError(f"{source} is TorchScript: features.name must give the index (tuple output) or key "
                                 "(dict output) of the FEA tensor; export a model that returns (features, logits).")
        self.script = script
        self.feature_key = spec.features
        self.output_key = spec.output.name
        self.source = source
        self.feature_dim = 0

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.script(x)
        feats = _pick(out, self.feature_key, what="features.name", source=self.source)
        raw = _pick(out, self.output_key, what="output.name", source=self.source)
        return feats.flatten(1), raw


class TorchForeignPredictor(Predictor):
    """A :class:`Predictor` over a foreign PyTorch model: the spec's input recipe, float32, mapped outputs."""

    def __init__(self, module: nn.Module, meta: dict[str, Any], spec: ModelSpec, *, device: str,
                 batch_size: int = 256, compile: bool = False):
        self.spec = spec
        super().__init__(module, meta, device=device, batch_size=batch_size, compile=compile)

    @torch.no_grad()
    def _run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = spec_input(x, self.spec.input)
        if self.cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        feats, raw = self._forward(x)
        return feats.float(), map_outputs(raw, self.spec.output)


def _probe(module: nn.Module, spec: ModelSpec, *, source: str) -> int:
    """Run two blank frames through the model; check the output width; return the FEA dimension."""
    x = spec_input(torch.zeros(2, spec.input.size, spec.input.size), spec.input)
    try:
        with torch.no_grad():
            feats, raw = module(x)
    except ModelSpecError:
        raise
    except Exception as exc:
        raise ModelSpecError(f"{source} fails on a ({2}, {spec.input.channels}, {spec.input.size}, {spec.input.size}) "
                             f"input ({type(exc).__name__}: {str(exc)[:300]}). Hint: check input.size and "
                             "input.channels in the spec.") from exc
    check_output_shape(tuple(raw.shape), spec, what=f"the output of {source}")
    if feats.ndim != 2 or feats.shape[0] != 2:
        raise ModelSpecError(f"FEA of {source} has shape {tuple(feats.shape)}; expected (N, D).")
    return int(feats.shape[1])


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any("/code/" in n or n.startswith("code/") for n in zf.namelist())


def load_torch_predictor(path: str | os.PathLike, spec: ModelSpec, *, fmt: str, device: str, batch_size: int = 256,
                         compile: bool = False) -> TorchForeignPredictor:
    """Load a state dict (``fmt="state_dict"``) or TorchScript archive (``"torchscript"``) as a predictor.

    ``device`` is a torch device (``"cpu"``/``"cuda"``). Missing ``input.channels`` is read from the
    weights; ``input.size`` is required (these models take any size).
    """
    path = Path(path)
    source = f"{fmt} model {path}"
    if fmt == "state_dict":
        if _is_torchscript(path):
            raise ModelSpecError(f"{path} is a TorchScript archive, but the spec says format = 'state_dict'. "
                                 "Hint: set format = 'torchscript'.")
        state = load_state_dict_file(path)
        arch = spec.architecture or guess_resnet(state)
        if arch is None:
            raise ModelSpecError(f"{source}: the spec must name the torchvision architecture (architecture = "
                                 "'resnet50', ...); the weights are not a torchvision ResNet layout.")
        if spec.architecture is None:
            log.info("%s: architecture %s guessed from the weights", path, arch)
        spec = complete_input(spec, channels=first_conv_channels(state), source=source)
        net = build_torchvision(arch, state, source=source)
        module: nn.Module = _StateDictModule(net, spec.features or "avgpool", source=source)
        from dataclasses import replace

        spec = replace(spec, architecture=arch, features=spec.features or "avgpool")
    elif fmt == "torchscript":
        try:
            script = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:
            raise ModelError(f"{path}: cannot load it as TorchScript "
                             f"({type(exc).__name__}: {str(exc)[:300]}).") from exc
        script.eval()
        channels = None
        for p in script.parameters():
            if p.ndim == 4:
                channels = int(p.shape[1])
                break
        spec = complete_input(spec, channels=channels, source=source)
        module = _ScriptModule(script, spec, source=source)
    else:
        raise ValueError(f"The 'fmt' parameter of load_torch_predictor must be 'state_dict' or 'torchscript'. "
                         f"Got {fmt!r} instead.")
    module.eval()
    module.feature_dim = _probe(module, spec, source=source)
    meta = foreign_meta(path, spec, fmt=fmt, feature_dim=module.feature_dim)
    log.info("loaded %s (%s, FEA %d, input %dx%dx%d)", meta["model_id"], meta["arch"], module.feature_dim,
             spec.input.channels, spec.input.size, spec.input.size)
    return TorchForeignPredictor(module, meta, spec, device=device, batch_size=batch_size, compile=compile)
