"""Models trained elsewhere: torchvision state dicts, TorchScript and ONNX, each with a small spec.

:func:`load_predictor` opens any of them (or an xsgpu checkpoint) as a predictor for ``xsgpu infer``;
:func:`inspect_model` reports what a model file holds and what its spec must still say
(``xsgpu model inspect``). See docs/own_model.md.
"""
from __future__ import annotations

from xsgpu.model.foreign.inspect import inspect_model, format_report
from xsgpu.model.foreign.load import is_checkpoint, load_predictor
from xsgpu.model.foreign.spec import ModelSpec, ModelSpecError, parse_spec, read_spec

__all__ = ["load_predictor", "is_checkpoint", "inspect_model", "format_report", "ModelSpec", "ModelSpecError",
           "parse_spec", "read_spec"]
