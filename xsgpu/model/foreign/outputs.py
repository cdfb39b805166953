"""Model outputs -> the run's 17 probabilities, and the metadata a foreign model writes with them.

Examples
--------
>>> import torch
>>> from xsgpu.attributes import NAMES
>>> from xsgpu.model.foreign.spec import parse_spec
>>> spec = parse_spec({"output": {"kind": "logits", "attributes": [""] + list(NAMES[::-1])}})
>>> raw = torch.zeros(2, 18)
>>> raw[:, 1] = 10.0                      # column 1 is the last attribute (Wedge beamstop)
>>> p = map_outputs(raw, spec.output)
>>> tuple(p.shape), round(float(p[0, -1]), 4), round(float(p[0, 0]), 4)
((2, 17), 1.0, 0.5)
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch

from xsgpu.model.checkpoint import sha256_file
from xsgpu.model.foreign.spec import ModelSpec, ModelSpecError, OutputSpec, spec_sha256

__all__ = ["map_outputs", "foreign_meta", "check_output_shape"]

_TOLERANCE = 1e-4  # probabilities this far outside [0, 1] are rounding, not logits


def check_output_shape(shape: tuple[int, ...], spec: ModelSpec, *, what: str) -> None:
    """Refuse an output that is not (N, K) with K = the number of columns ``output.attributes`` lists."""
    k = spec.output.n_outputs
    if len(shape) != 2 or shape[1] != k:
        raise ModelSpecError(
            f"{what} has shape {tuple(shape)}, but output.attributes in {spec.path or 'the spec'} lists {k} "
            f"columns, so the model should give (N, {k}). Hint: `xsgpu model inspect MODEL` shows the outputs; "
            "fix output.name or output.attributes.")


def map_outputs(raw: torch.Tensor, spec: OutputSpec) -> torch.Tensor:
    """Raw outputs (N, K) -> probabilities (N, k) float32, in the order of ``spec.model_attributes``.

    Logits get a sigmoid; probabilities are checked to lie in [0, 1] (a model that ends without a
    sigmoid, declared ``kind = "probabilities"`` by mistake, is refused rather than clipped).
    """
    raw = raw.float()
    cols = raw[:, list(spec.columns)]
    if spec.kind == "logits":
        return torch.sigmoid(cols)
    if cols.numel():
        lo, hi = float(cols.min()), float(cols.max())
        if lo < -_TOLERANCE or hi > 1 + _TOLERANCE or cols.isnan().any():
            raise ModelSpecError(
                f"output.kind is 'probabilities', but the model gave values in [{lo:.4g}, {hi:.4g}]. Hint: the model "
                "ends without a sigmoid: set output.kind = 'logits'.")
    return cols.clamp(0.0, 1.0)


def foreign_meta(path: str | os.PathLike, spec: ModelSpec, *, fmt: str, feature_dim: int) -> dict[str, Any]:
    """The metadata of a foreign model, shaped like a checkpoint's (see :attr:`Predictor.meta`).

    ``weights_sha256`` hashes the model file AND the spec, so a rerun of ``xsgpu infer`` with another
    output mapping or preprocessing is treated as another model (``--overwrite`` needed), never mixed in.
    """
    path = Path(path)
    file_sha = sha256_file(path)
    spec_sha = spec_sha256(spec)
    combined = hashlib.sha256(f"{file_sha}:{spec_sha}".encode()).hexdigest()
    return {
        "format": fmt,
        "model_id": spec.model_id or f"{path.stem}-{combined[:12]}",
        "arch": f"{fmt}:{spec.architecture or path.stem}",
        "attributes": list(spec.output.model_attributes),
        "input_size": int(spec.input.size),
        "preprocessing": {"source_size": None, "input": spec.to_dict()["input"]},
        "weights_sha256": combined,
        "file_sha256": file_sha,
        "spec_sha256": spec_sha,
        "spec": spec.to_dict(),
        "spec_path": str(spec.path) if spec.path else None,
        "path": str(path),
        "feature_dim": int(feature_dim),
    }
