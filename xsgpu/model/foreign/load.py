"""One entry point for any model: an xsgpu checkpoint directory, or a foreign model file with its spec.

:func:`load_predictor` returns a :class:`~xsgpu.model.predictor.Predictor` (or a subclass) with the same
``predict(log_frames) -> (features, probs)``, ``predict_iter`` and ``meta`` interface, so
:func:`xsgpu.model.infer_run` and ``xsgpu infer`` treat every format alike.

Examples
--------
>>> import tempfile
>>> from xsgpu.model import build_resnet, save_checkpoint
>>> d = tempfile.mkdtemp()
>>> _ = save_checkpoint(d, build_resnet("resnet18"), input_size=32)
>>> type(load_predictor(d, device="cpu", num_threads=1)).__name__
'Predictor'
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from xsgpu.backend import torch_device
from xsgpu.model.checkpoint import META_FILE, WEIGHTS_FILE
from xsgpu.model.foreign.spec import ModelSpec, ModelSpecError, detect_format, find_spec, read_spec
from xsgpu.model.predictor import Predictor

__all__ = ["load_predictor", "is_checkpoint"]

log = logging.getLogger(__name__)

_MODEL_SUFFIXES = (".onnx", ".safetensors", ".pt", ".pth", ".bin", ".ts", ".torchscript", ".jit")


def is_checkpoint(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an xsgpu checkpoint (its directory, or ``model.json``/``model.safetensors`` in one)."""
    p = Path(path)
    if p.is_dir():
        return True
    return p.name in (META_FILE, WEIGHTS_FILE) and (p.parent / META_FILE).is_file()


def load_predictor(
    path: str | os.PathLike,
    *,
    spec: str | os.PathLike | ModelSpec | None = None,
    device: str = "auto",
    batch_size: int = 256,
    compile: bool = False,
    num_threads: int | None = None,
) -> Predictor:
    """Load any supported model for inference.

    Parameters
    ----------
    path : path
        An xsgpu checkpoint directory (no spec needed), or a model file: ``.onnx``, ``.safetensors`` /
        ``.pt`` / ``.pth`` state dict, TorchScript ``.pt`` / ``.ts``.
    spec : path or ModelSpec, optional
        The model spec (:mod:`xsgpu.model.foreign.spec`); default ``NAME.spec.toml`` or ``NAME.spec.json``
        beside the model file.
    device : {"auto", "cpu", "gpu"}
    batch_size : int
    compile : bool
        ``torch.compile`` (xsgpu checkpoints and torch formats, CUDA only).
    num_threads : int, optional
        CPU threads (torch: process-wide; ONNX Runtime: per session).

    Raises
    ------
    ModelSpecError
        No spec for a foreign model, or a spec that does not fit it.
    ModelError
        An unreadable model file.
    """
    p = Path(path)
    if is_checkpoint(p) or (not p.exists() and p.suffix.lower() not in _MODEL_SUFFIXES):
        if spec is not None:
            raise ModelSpecError(f"{p} is an xsgpu checkpoint, which carries its own metadata; drop --spec.")
        return Predictor.from_checkpoint(p, device=device, batch_size=batch_size, compile=compile,
                                         num_threads=num_threads)
    if not p.is_file():
        raise ModelSpecError(f"No model at {p}. Hint: --model takes an xsgpu checkpoint directory or a model file "
                             "(.onnx, .safetensors, .pt/.pth, TorchScript).")
    if spec is None:
        found = find_spec(p)
        if found is None:
            raise ModelSpecError(
                f"{p} is not an xsgpu checkpoint, so it needs a model spec: write {p.with_name(p.stem + '.spec.toml')} "
                f"or pass --spec FILE. Hint: `xsgpu model inspect {p}` prints what the spec must say "
                "(docs/own_model.md).")
        spec = found
    spec = spec if isinstance(spec, ModelSpec) else read_spec(spec)
    fmt = spec.format or detect_format(p)
    dev = torch_device(device)
    if dev == "cpu" and fmt != "onnx":
        import torch

        torch.set_num_threads(int(num_threads or os.cpu_count() or 1))
    if compile and (dev == "cpu" or fmt == "onnx"):
        log.info("compile=True is only used for torch models on CUDA; ignoring it")
        compile = False
    if fmt == "onnx":
        from xsgpu.model.foreign.onnx_model import load_onnx_predictor

        return load_onnx_predictor(p, spec, device=dev, batch_size=batch_size, num_threads=num_threads,
                                   auto=device == "auto")
    from xsgpu.model.foreign.torch_models import load_torch_predictor

    return load_torch_predictor(p, spec, fmt=fmt, device=dev, batch_size=batch_size, compile=compile)
