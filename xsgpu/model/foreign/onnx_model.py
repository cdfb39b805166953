"""ONNX models through ONNX Runtime: CPUExecutionProvider here, CUDAExecutionProvider on GPU nodes.

The FEA tensor (``features.name``) may be any value of the graph, not only a graph output: when it is
an intermediate tensor (the input of the final ``Gemm``, the output of ``GlobalAveragePool`` ...),
it is added to the graph's outputs in memory (the file is not changed). Without ``features.name``
the first input of the ``Gemm``/``MatMul`` that computes the attribute output is used, which is the
pooled feature vector of a classifier exported from torchvision. A graph with a fixed batch size
(exported with batch 1, say) is run in slices of that size, the last one padded.

Needs the ``onnx`` and ``onnxruntime`` packages (the ``[onnx]`` extra; ``onnxruntime-gpu`` for
the CUDA provider).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import torch

from xsgpu.backend import GPUUnavailable
from xsgpu.errors import ModelError
from xsgpu.model.foreign.inputs import spec_input
from xsgpu.model.foreign.outputs import check_output_shape, foreign_meta, map_outputs
from xsgpu.model.foreign.spec import ModelSpec, ModelSpecError, complete_input
from xsgpu.model.predictor import Predictor, prefetch

__all__ = ["OnnxPredictor", "load_onnx_predictor", "read_onnx", "onnx_value_shapes", "default_feature_tensor",
           "import_onnx"]

log = logging.getLogger(__name__)


def import_onnx():
    """Import ``onnx`` and ``onnxruntime``, or raise an ImportError naming the package to install."""
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:
        raise ImportError(f"ONNX models need the onnx and onnxruntime packages ({exc}). Hint: "
                          "pip install 'xsgpu[onnx]' (or onnxruntime-gpu on GPU nodes).") from exc
    return onnx, onnxruntime


def read_onnx(path: str | os.PathLike):
    """Load an ONNX model (with shape inference run on it); raise :class:`ModelError` if it is not one."""
    onnx, _ = import_onnx()
    try:
        model = onnx.load(str(path))
        return onnx.shape_inference.infer_shapes(model)
    except Exception as exc:
        raise ModelError(f"{path}: cannot read it as an ONNX model ({type(exc).__name__}: {str(exc)[:300]}).") from exc


def _dims(value_info) -> tuple[int | str, ...] | None:
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim)


def onnx_value_shapes(model) -> dict[str, tuple[int | str, ...] | None]:
    """Every named value of the graph (inputs, outputs, intermediates) -> its shape (``?``/names for free dims)."""
    g = model.graph
    out: dict[str, tuple[int | str, ...] | None] = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        out[vi.name] = _dims(vi)
    return out


def graph_inputs(model) -> list[Any]:
    """Graph inputs that are not initializers (weights)."""
    init = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in init]


def default_feature_tensor(model, output_name: str) -> str | None:
    """The first input of the Gemm/MatMul (optionally followed by Add) that produces ``output_name``."""
    producer = {o: n for n in model.graph.node for o in n.output}
    node = producer.get(output_name)
    if node is not None and node.op_type == "Add":
        node = next((producer[i] for i in node.input if i in producer and producer[i].op_type == "MatMul"), None)
    if node is not None and node.op_type in ("Gemm", "MatMul"):
        return node.input[0]
    return None


class OnnxPredictor(Predictor):
    """A :class:`Predictor` over an ONNX Runtime session (same ``predict``/``predict_iter``/``meta``)."""

    def __init__(self, session, meta: dict[str, Any], spec: ModelSpec, *, input_name: str, output_name: str,
                 feature_name: str, static_batch: int | None, device: str, batch_size: int = 256):
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"The 'batch_size' parameter of OnnxPredictor must be a positive int. Got {batch_size!r} "
                             "instead.")
        self.session = session
        self.spec = spec
        self.device = device
        self.batch_size = int(batch_size)
        self.cuda = False  # frames stay on the host; ONNX Runtime copies them to its provider
        self._meta = dict(meta)
        self.input_size = int(spec.input.size)
        self.feature_dim = int(meta["feature_dim"])
        self._names = (input_name, output_name, feature_name)
        self._static_batch = static_batch
        self._stream = None

    def _session_run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        inp, out, fea = self._names
        b = self._static_batch
        if b is None:
            raw, feats = self.session.run([out, fea], {inp: x})
            return np.asarray(raw), np.asarray(feats)
        raws, featss = [], []
        for a in range(0, len(x), b):
            piece = x[a:a + b]
            k = len(piece)
            if k < b:
                piece = np.concatenate([piece, np.zeros((b - k, *piece.shape[1:]), piece.dtype)])
            raw, feats = self.session.run([out, fea], {inp: piece})
            raws.append(np.asarray(raw)[:k])
            featss.append(np.asarray(feats)[:k])
        return np.concatenate(raws), np.concatenate(featss)

    def _run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            inp = spec_input(x.float(), self.spec.input).numpy()
        raw, feats = self._session_run(inp)
        return (torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32)).flatten(1),
                map_outputs(torch.from_numpy(np.ascontiguousarray(raw)), self.spec.output))

    def predict_iter(self, frames: Iterable[np.ndarray], *, depth: int = 2) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Predict a stream of batches of log frames (b, H, W); yields ``(features (b, D), probs (b, 17))``."""
        for host in prefetch(self._host_batches(frames), depth=depth):
            if host.ndim != 3:
                raise ValueError(f"log frames must have shape (N, H, W). Got shape {tuple(host.shape)} instead.")
            feats, probs = self._run(host)
            yield feats.numpy(), probs.numpy()


def _providers(device: str) -> list[str]:
    _, ort = import_onnx()
    available = ort.get_available_providers()
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" in available:
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        raise GPUUnavailable(f"device 'gpu' asked for, but this ONNX Runtime has no CUDAExecutionProvider "
                             f"(providers: {available}). Hint: pip install onnxruntime-gpu, or use --device cpu.")
    return ["CPUExecutionProvider"]


def load_onnx_predictor(path: str | os.PathLike, spec: ModelSpec, *, device: str, batch_size: int = 256,
                        num_threads: int | None = None, auto: bool = False) -> OnnxPredictor:
    """Open an ONNX model with ONNX Runtime as a predictor.

    Parameters
    ----------
    path : path
        The ``.onnx`` file.
    spec : ModelSpec
    device : {"cpu", "cuda"}
        Torch-style device; ``"cuda"`` uses the CUDA provider.
    batch_size : int
    num_threads : int, optional
        ONNX Runtime intra-op threads (default: its own choice).
    auto : bool
        The device came from ``"auto"``: without a CUDA provider, fall back to the CPU with a log line.
    """
    onnx, ort = import_onnx()
    path = Path(path)
    source = f"ONNX model {path}"
    model = read_onnx(path)
    shapes = onnx_value_shapes(model)
    inputs = graph_inputs(model)
    if spec.input.name is not None:
        match = [i for i in inputs if i.name == spec.input.name]
        if not match:
            raise ModelSpecError(f"input.name {spec.input.name!r} is not an input of {source}; inputs: "
                                 f"{[i.name for i in inputs]}.")
        inp = match[0]
    elif len(inputs) == 1:
        inp = inputs[0]
    else:
        raise ModelSpecError(f"{source} has inputs {[i.name for i in inputs]}: set input.name in the spec.")
    dims = _dims(inp) or ()
    if len(dims) != 4:
        raise ModelSpecError(f"{source}: input {inp.name!r} has shape {dims}; expected (N, C, H, W).")
    h, w = dims[2], dims[3]
    size = h if isinstance(h, int) and h > 0 and h == w else None
    channels = dims[1] if isinstance(dims[1], int) and dims[1] > 0 else None
    spec = complete_input(spec, channels=channels, size=size, source=source)
    outputs = [o.name for o in model.graph.output]
    out_name = spec.output.name
    if out_name is None:
        if len(outputs) != 1:
            raise ModelSpecError(f"{source} has outputs {outputs}: set output.name in the spec.")
        out_name = outputs[0]
    if not isinstance(out_name, str) or out_name not in shapes:
        raise ModelSpecError(f"output.name {out_name!r} is not a tensor of {source}; outputs: {outputs}.")
    fea = spec.features if spec.features is not None else default_feature_tensor(model, out_name)
    if fea is None:
        raise ModelSpecError(f"{source}: features.name is required (no Gemm/MatMul computes {out_name!r}, so the "
                             "FEA tensor cannot be guessed). Hint: `xsgpu model inspect MODEL` lists candidates.")
    if not isinstance(fea, str) or fea not in shapes:
        raise ModelSpecError(f"features.name {fea!r} is not a tensor of {source}. Hint: `xsgpu model inspect MODEL` "
                             "lists the candidates.")
    if fea not in outputs:
        vi = onnx.helper.make_tensor_value_info(fea, onnx.TensorProto.FLOAT, None)
        model.graph.output.append(vi)
    try:
        providers = _providers(device)
    except GPUUnavailable as exc:
        if not auto:
            raise
        log.info("falling back to CPU: %s", exc)
        device, providers = "cpu", ["CPUExecutionProvider"]
    opts = ort.SessionOptions()
    if num_threads:
        opts.intra_op_num_threads = int(num_threads)
    try:
        session = ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=providers)
    except Exception as exc:
        raise ModelError(f"{source}: ONNX Runtime cannot open it ({type(exc).__name__}: {str(exc)[:300]}).") from exc
    static = dims[0] if isinstance(dims[0], int) and dims[0] > 0 else None
    from dataclasses import replace

    spec = replace(spec, features=fea, output=replace(spec.output, name=out_name),
                   input=replace(spec.input, name=inp.name))
    pred = OnnxPredictor(session, {"feature_dim": 0}, spec, input_name=inp.name, output_name=out_name,
                         feature_name=fea, static_batch=static, device=device, batch_size=batch_size)
    probe = spec_input(torch.zeros(2, spec.input.size, spec.input.size), spec.input).numpy()
    try:
        raw, feats = pred._session_run(probe)
    except Exception as exc:
        raise ModelSpecError(f"{source} fails on a {probe.shape} input ({type(exc).__name__}: {str(exc)[:300]}). "
                             "Hint: check input.size, input.channels and the tensor names in the spec.") from exc
    check_output_shape(tuple(raw.shape), spec, what=f"output {out_name!r} of {source}")
    dim = int(np.prod(feats.shape[1:]))
    pred.feature_dim = dim
    pred._meta = foreign_meta(path, spec, fmt="onnx", feature_dim=dim)
    pred._meta["providers"] = providers
    log.info("loaded %s (ONNX, providers %s, FEA %r %d, input %dx%dx%d)", pred._meta["model_id"], providers, fea,
             dim, spec.input.channels, spec.input.size, spec.input.size)
    return pred
