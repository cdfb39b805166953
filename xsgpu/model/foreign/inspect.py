"""What a model file holds, and what its spec must still say (``xsgpu model inspect``).

:func:`inspect_model` reads a model without a spec: its format, inputs and outputs with their shapes,
the tensors or layers that could serve as FEA, the spec values it can tell (input size and channels,
architecture, number of outputs) and the keys only the spec can give. With a spec (given, or found
beside the model) it also loads the model through it and reports whether they fit.

Examples
--------
>>> import tempfile, os, torch, torchvision
>>> d = tempfile.mkdtemp()
>>> torch.save(torchvision.models.resnet18(num_classes=17).state_dict(), os.path.join(d, "r18.pt"))
>>> r = inspect_model(os.path.join(d, "r18.pt"))
>>> r["format"], r["found"]["architecture"], r["found"]["n_outputs"], r["found"]["input.channels"]
('state_dict', 'resnet18', 17, 3)
>>> r["spec_needs"][:2]
['input.size', 'output.kind']
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from xsgpu.model.foreign.load import is_checkpoint, load_predictor
from xsgpu.model.foreign.spec import ModelSpec, detect_format, find_spec

__all__ = ["inspect_model", "format_report"]

log = logging.getLogger(__name__)

_POOL_OPS = ("GlobalAveragePool", "GlobalMaxPool", "Flatten", "ReduceMean", "AveragePool")


def _shape(s) -> list[Any] | None:
    return list(s) if s is not None else None


def _inspect_onnx(path: Path, report: dict[str, Any]) -> None:
    from xsgpu.model.foreign.onnx_model import default_feature_tensor, graph_inputs, onnx_value_shapes, read_onnx

    model = read_onnx(path)
    shapes = onnx_value_shapes(model)
    report["inputs"] = [{"name": i.name, "shape": _shape(shapes.get(i.name))} for i in graph_inputs(model)]
    report["outputs"] = [{"name": o.name, "shape": _shape(shapes.get(o.name))} for o in model.graph.output]
    cands = []
    for node in model.graph.node:
        if node.op_type in _POOL_OPS or node.op_type in ("Gemm", "MatMul"):
            for o in (node.output if node.op_type in _POOL_OPS else node.input[:1]):
                if o in shapes and all(c["name"] != o for c in cands):
                    cands.append({"name": o, "shape": _shape(shapes[o]), "note": f"{node.op_type} "
                                  + ("output" if node.op_type in _POOL_OPS else "input")})
    report["feature_candidates"] = cands[-6:]
    found = report["found"]
    if len(report["inputs"]) == 1:
        dims = report["inputs"][0]["shape"] or []
        if len(dims) == 4:
            if isinstance(dims[1], int) and dims[1] > 0:
                found["input.channels"] = dims[1]
            if isinstance(dims[2], int) and dims[2] > 0 and dims[2] == dims[3]:
                found["input.size"] = dims[2]
            if isinstance(dims[0], int) and dims[0] > 0:
                found["static_batch"] = dims[0]
    else:
        report["spec_needs"].append("input.name")
    if len(report["outputs"]) == 1:
        out = report["outputs"][0]
        dims = out["shape"] or []
        if len(dims) == 2 and isinstance(dims[1], int):
            found["n_outputs"] = dims[1]
        fea = default_feature_tensor(model, out["name"])
        if fea is not None:
            found["features.name"] = fea
    else:
        report["spec_needs"].append("output.name")
    if "features.name" not in found:
        report["spec_needs"].append("features.name")


def _inspect_state_dict(path: Path, report: dict[str, Any]) -> None:
    from xsgpu.model.foreign.torch_models import first_conv_channels, guess_resnet, load_state_dict_file

    state = load_state_dict_file(path)
    found = report["found"]
    found["n_tensors"] = len(state)
    ch = first_conv_channels(state)
    if ch is not None:
        found["input.channels"] = ch
    two_d = [(k, tuple(v.shape)) for k, v in state.items() if v.ndim == 2]
    if two_d:
        name, shape = two_d[-1]
        found["n_outputs"] = shape[0]
        report["outputs"] = [{"name": name, "shape": ["N", shape[0]]}]
    report["inputs"] = [{"name": "x", "shape": ["N", ch, "size", "size"]}]
    arch = guess_resnet(state)
    if arch is None:
        report["spec_needs"].append("architecture")
        return
    found["architecture"] = arch
    import torchvision.models as tvm
    from torchvision.models.feature_extraction import get_graph_node_names

    _, nodes = get_graph_node_names(getattr(tvm, arch)(weights=None))
    report["feature_candidates"] = [{"name": n, "shape": None, "note": "graph node"}
                                    for n in nodes if n.count(".") == 0][-5:]
    if "avgpool" in nodes:
        found["features.name"] = "avgpool"
    else:
        report["spec_needs"].append("features.name")


def _describe(out: Any) -> list[dict[str, Any]]:
    import torch

    if isinstance(out, torch.Tensor):
        return [{"name": None, "shape": list(out.shape)}]
    if isinstance(out, dict):
        return [{"name": k, "shape": list(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__}
                for k, v in out.items()]
    if isinstance(out, (tuple, list)):
        return [{"name": i, "shape": list(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__}
                for i, v in enumerate(out)]
    return [{"name": None, "shape": type(out).__name__}]


def _inspect_torchscript(path: Path, report: dict[str, Any], size: int) -> None:
    import torch

    from xsgpu.errors import ModelError

    try:
        script = torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as exc:
        raise ModelError(f"{path}: cannot load it as TorchScript ({type(exc).__name__}: {str(exc)[:300]}).") from exc
    found = report["found"]
    ch = next((int(p.shape[1]) for p in script.parameters() if p.ndim == 4), None)
    if ch is not None:
        found["input.channels"] = ch
    found["submodules"] = [n for n, _ in script.named_children()]
    report["inputs"] = [{"name": "x", "shape": ["N", ch, "size", "size"]}]
    try:
        with torch.no_grad():
            out = script(torch.zeros(1, ch or 3, size, size))
        report["outputs"] = _describe(out)
        report["notes"].append(f"outputs measured on a 1 x {ch or 3} x {size} x {size} input")
    except Exception as exc:
        report["notes"].append(f"a 1 x {ch or 3} x {size} x {size} probe failed: {type(exc).__name__}: "
                               f"{str(exc)[:200]}")
    outs = report["outputs"]
    if len(outs) == 1 and outs[0]["name"] is None:
        shape = outs[0]["shape"]
        if isinstance(shape, list) and len(shape) == 2:
            found["n_outputs"] = shape[1]
        report["notes"].append("a single-tensor output gives no FEA: export a model returning (features, logits)")
    else:
        report["feature_candidates"] = [o for o in outs if isinstance(o["shape"], list) and len(o["shape"]) >= 2]
        report["spec_needs"].append("output.name")
    report["spec_needs"].append("features.name")


def inspect_model(path: str | os.PathLike, *, spec: str | os.PathLike | ModelSpec | None = None,
                  probe_size: int = 224) -> dict[str, Any]:
    """Describe a model file (JSON-able dict).

    Parameters
    ----------
    path : path
        A model file (ONNX, state dict, TorchScript) or an xsgpu checkpoint directory.
    spec : path or ModelSpec, optional
        Check this spec against the model (default: ``NAME.spec.toml``/``.json`` beside it, if any).
    probe_size : int
        Input side used to run a TorchScript model once, to see its outputs (the spec's size if given).

    Returns
    -------
    dict
        ``path``, ``format``, ``inputs``/``outputs`` (name, shape), ``feature_candidates``, ``found``
        (spec values the file tells), ``spec_needs`` (keys only the spec can give), ``notes`` and
        ``spec_check`` (``None``, or ``{"path", "ok", "message"}``).
    """
    p = Path(path)
    report: dict[str, Any] = {"path": str(p), "format": None, "inputs": [], "outputs": [], "feature_candidates": [],
                              "found": {}, "spec_needs": [], "notes": [], "spec_check": None}
    if is_checkpoint(p):
        from xsgpu.model.checkpoint import read_checkpoint_meta

        meta = read_checkpoint_meta(p)
        report["format"] = "xsgpu-checkpoint"
        report["found"] = {k: meta.get(k) for k in ("model_id", "arch", "input_size", "attributes")}
        report["notes"].append("an xsgpu checkpoint carries its own metadata: no spec is needed")
        return report
    spec_path = spec if spec is not None else find_spec(p)
    spec_obj = None
    spec_error = None
    if isinstance(spec_path, ModelSpec):
        spec_obj = spec_path
    elif spec_path is not None:
        from xsgpu.model.foreign.spec import ModelSpecError, read_spec

        try:
            spec_obj = read_spec(spec_path)
        except ModelSpecError as exc:  # reported below: inspect is the place to see what is wrong
            spec_error = {"path": str(spec_path), "ok": False, "message": f"{type(exc).__name__}: {exc}"}
    fmt = (spec_obj.format if spec_obj is not None else None) or detect_format(p)
    report["format"] = fmt
    if fmt == "onnx":
        _inspect_onnx(p, report)
    elif fmt == "state_dict":
        _inspect_state_dict(p, report)
    else:
        size = spec_obj.input.size if spec_obj is not None and spec_obj.input.size else probe_size
        _inspect_torchscript(p, report, size)
    needs = report["spec_needs"]
    if "input.size" not in report["found"]:
        needs.insert(0, "input.size")
    if "input.channels" not in report["found"]:
        needs.append("input.channels")
    needs += ["output.kind", "output.attributes"]
    report["spec_needs"] = list(dict.fromkeys(needs))
    if spec_obj is not None:
        check = {"path": str(spec_obj.path) if spec_obj.path else None, "ok": False, "message": ""}
        try:
            pred = load_predictor(p, spec=spec_obj, device="cpu", batch_size=2, num_threads=1)
            check.update(ok=True, message=f"loads: model_id {pred.meta['model_id']}, FEA dimension {pred.feature_dim}, "
                                          f"input {pred.spec.input.channels} x {pred.input_size} x {pred.input_size}")
        except Exception as exc:  # reported, not raised: inspect is the place to see what is wrong
            check["message"] = f"{type(exc).__name__}: {exc}"
        report["spec_check"] = check
    elif spec_error is not None:
        report["spec_check"] = spec_error
    return report


def format_report(report: dict[str, Any]) -> str:
    """The text ``xsgpu model inspect`` prints for :func:`inspect_model`'s dict."""
    lines = [f"{report['path']}: {report['format']}"]
    for key in ("inputs", "outputs", "feature_candidates"):
        if report[key]:
            lines.append(f"{key.replace('_', ' ')}:")
            for item in report[key]:
                note = f"  ({item['note']})" if item.get("note") else ""
                lines.append(f"  {item['name']!r}: {item['shape']}{note}")
    if report["found"]:
        lines.append("found in the file (the spec may leave these out):")
        lines += [f"  {k} = {v!r}" for k, v in report["found"].items()]
    for note in report["notes"]:
        lines.append(f"note: {note}")
    if report["spec_needs"]:
        n = report["found"].get("n_outputs")
        needs = [f"{k} ({n} names, in output order)" if k == "output.attributes" and n else k
                 for k in report["spec_needs"]]
        chk = report.get("spec_check")
        lead = "keys only the spec gives (yours has them)" if chk and chk["ok"] else "the spec must still say"
        lines.append(f"{lead}: " + ", ".join(needs))
    chk = report.get("spec_check")
    if chk is not None:
        lines.append(f"spec {chk['path']}: {'OK, ' if chk['ok'] else 'DOES NOT FIT: '}{chk['message']}")
    elif report["format"] != "xsgpu-checkpoint":
        lines.append("no spec found beside the model (NAME.spec.toml or NAME.spec.json); see docs/own_model.md")
    return "\n".join(lines)
