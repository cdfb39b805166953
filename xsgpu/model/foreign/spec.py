"""Model spec files: how to feed a model trained elsewhere and how to read its outputs.

A model that ``xsgpu train`` did not write (a torchvision state dict, a TorchScript archive, an ONNX
graph) carries no record of its input recipe or of which output is which attribute. The spec says
it, in TOML or JSON. Every key but ``output.kind`` and ``output.attributes`` has a default;
``xsgpu model inspect MODEL`` prints what it found in the model file and which keys remain::

    format = "onnx"              # "onnx" | "torchscript" | "state_dict" (default: from the file)
    architecture = "resnet18"    # state_dict only: a torchvision builder name (resnet18, resnet50 ...)
    model_id = "beamline-r18"    # optional; default <file stem>-<hash>

    [input]
    size = 224                   # model input is size x size (ONNX: default from a static input shape)
    channels = 3                 # 1 or 3; a one-channel frame is repeated (default from the model)
    scale = "log"                # "log": the run's stored log(I)/log(1.0414); "linear": counts I
    normalize = "per_image"      # "per_image" (zero mean, unit std) | "minmax" (to [0, 1]) | "none"
    mean = [0.485, 0.456, 0.406] # subtracted after normalize: one value or one per channel (default 0)
    std = [0.229, 0.224, 0.225]  # divided after mean (default 1)
    name = "input"               # ONNX input name (default: the only input)

    [output]
    kind = "logits"              # "logits" (sigmoid applied) | "probabilities"
    name = "logits"              # ONNX output name; TorchScript: index (int) or key of a tuple/dict output
    attributes = ["BCC", "Beam Off Image", "..."]  # output column -> attribute, "" skips a column
    vocabulary = "paper"         # "paper": the names are the paper's 17, all required (default);
                                 # "own": the names are the model's own attributes, in column order

    [features]
    name = "avgpool"             # FEA: state_dict: a graph node (torchvision.models.feature_extraction);
                                 # ONNX: any tensor name; TorchScript: an output index or key

The frames reach the model as stored in the run (``images.zarr``, log-scaled, 0 where masked), resized
to ``input.size`` exactly as xsgpu's own models see them, then scaled, normalised, repeated to
``input.channels`` and standardised with ``mean``/``std``.

Examples
--------
>>> import json, tempfile, os
>>> from xsgpu.attributes import NAMES
>>> d = tempfile.mkdtemp()
>>> p = os.path.join(d, "m.spec.json")
>>> with open(p, "w") as fh:
...     json.dump({"input": {"size": 64, "channels": 3}, "output": {"kind": "logits",
...                "attributes": list(NAMES)}, "features": {"name": "avgpool"}}, fh)
>>> spec = read_spec(p)
>>> spec.input.size, spec.input.channels, spec.output.kind, spec.output.columns[:3]
(64, 3, 'logits', (0, 1, 2))
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from xsgpu.attributes import N_ATTRIBUTES, NAMES, resolve_attribute
from xsgpu.errors import InputError

__all__ = [
    "ModelSpecError", "ModelSpec", "InputSpec", "OutputSpec", "FORMATS", "read_spec", "parse_spec",
    "find_spec", "detect_format", "spec_sha256", "complete_input",
]

log = logging.getLogger(__name__)

Format = Literal["onnx", "torchscript", "state_dict"]
FORMATS: tuple[str, ...] = ("onnx", "torchscript", "state_dict")
_SCALES = ("log", "linear")
_NORMALIZE = ("per_image", "minmax", "none")
_KINDS = ("logits", "probabilities")
_TOP_KEYS = {"format", "architecture", "model_id", "input", "output", "features"}
_INPUT_KEYS = {"size", "channels", "scale", "normalize", "mean", "std", "name"}
_OUTPUT_KEYS = {"kind", "name", "attributes", "vocabulary"}
_FEATURE_KEYS = {"name"}


class ModelSpecError(InputError):
    """A model spec is missing, malformed, or does not fit its model; the message names the key and the fix."""


@dataclass(frozen=True)
class InputSpec:
    """How run frames become model input (see the module docstring)."""

    size: int | None = None
    channels: int | None = None
    scale: str = "log"
    normalize: str = "per_image"
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    name: str | None = None


@dataclass(frozen=True)
class OutputSpec:
    """Which outputs are which attribute, and whether they are logits or probabilities.

    ``columns[j]`` is the model output column holding attribute ``j`` of :attr:`model_attributes`:
    the paper's 17 in canonical order (:data:`NAMES`, ``vocabulary="paper"``), or the spec's own names
    in column order (``vocabulary="own"``; a run of other attributes then needs them, or an attribute
    map, exactly as an xsgpu checkpoint of that vocabulary would).
    """

    kind: str
    attributes: tuple[str, ...]
    columns: tuple[int, ...]
    name: str | int | None = None
    vocabulary: str = "paper"

    @property
    def model_attributes(self) -> tuple[str, ...]:
        """The attributes the mapped outputs give, in order (what :func:`map_outputs` returns)."""
        if self.vocabulary == "own":
            return tuple(self.attributes[c].strip() for c in self.columns)
        return NAMES

    @property
    def n_outputs(self) -> int:
        """Number of output columns the model must have."""
        return len(self.attributes)


@dataclass(frozen=True)
class ModelSpec:
    """A validated model spec; ``input.size``/``input.channels`` may still be filled from the model."""

    path: Path | None
    format: str | None
    architecture: str | None
    model_id: str | None
    input: InputSpec
    output: OutputSpec
    features: str | int | None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def with_input(self, **changes: Any) -> "ModelSpec":
        """A copy with ``input`` fields replaced (sizes found in the model file)."""
        from dataclasses import replace

        return replace(self, input=replace(self.input, **changes))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able record, stored in the predictions metadata."""
        output = {"kind": self.output.kind, "name": self.output.name, "attributes": list(self.output.attributes)}
        if self.output.vocabulary != "paper":  # absent for the default, so older specs keep their hash
            output["vocabulary"] = self.output.vocabulary
        return {"format": self.format, "architecture": self.architecture, "model_id": self.model_id,
                "input": asdict(self.input), "features": self.features, "output": output}


def _where(path: Path | None) -> str:
    return f"Model spec {path}" if path is not None else "Model spec"


def _unknown(path: Path | None, section: str, got: Mapping[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(got) - allowed)
    if extra:
        raise ModelSpecError(f"{_where(path)}: unknown key(s) {extra} in {section}; allowed: {sorted(allowed)}.")


def _choice(path: Path | None, key: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ModelSpecError(f"{_where(path)}: {key} must be one of {list(allowed)}. Got {value!r} instead.")
    return str(value)


def _positive_int(path: Path | None, key: str, value: Any, *, allowed: Sequence[int] | None = None) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1 or (allowed and value not in allowed):
        want = f"one of {list(allowed)}" if allowed else "a positive integer"
        raise ModelSpecError(f"{_where(path)}: {key} must be {want}. Got {value!r} instead.")
    return int(value)


def _floats(path: Path | None, key: str, value: Any, default: float) -> tuple[float, ...]:
    if value is None:
        return (default,)
    vals = value if isinstance(value, (list, tuple)) else [value]
    if not vals or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
        raise ModelSpecError(f"{_where(path)}: {key} must be a number or a list of numbers. Got {value!r} instead.")
    if key == "input.std" and any(v == 0 for v in vals):
        raise ModelSpecError(f"{_where(path)}: input.std must not hold 0. Got {value!r} instead.")
    return tuple(float(v) for v in vals)


def _name(path: Path | None, key: str, value: Any) -> str | int | None:
    if value is None or (isinstance(value, (str, int)) and not isinstance(value, bool)):
        return value
    raise ModelSpecError(f"{_where(path)}: {key} must be a tensor/layer name (string) or an output index "
                         f"(integer). Got {value!r} instead.")


def _mapping(path: Path | None, value: Any) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """``output.attributes`` -> (names as written, output column of each canonical attribute)."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ModelSpecError(
            f"{_where(path)}: output.attributes must list, in output order, the attribute each output column "
            f"holds ('' for a column to skip). Got {value!r} instead. Hint: for xsgpu's order write "
            f"attributes = {json.dumps(list(NAMES[:2]))[:-1]}, ...].")
    columns = [-1] * N_ATTRIBUTES
    unknown, repeated = [], []
    for col, name in enumerate(value):
        if not name.strip():
            continue
        try:
            j = resolve_attribute(name.strip()).index
        except KeyError:
            unknown.append(f"column {col}: {name!r}")
            continue
        if columns[j] >= 0:
            repeated.append(f"{NAMES[j]!r} (columns {columns[j]} and {col})")
        columns[j] = col
    if unknown:
        raise ModelSpecError(f"{_where(path)}: output.attributes names unknown attribute(s) {', '.join(unknown)}. "
                             f"Valid names: {', '.join(NAMES)} (or their slugs); write '' to skip a column, or set "
                             "output.vocabulary = 'own' for a model of other attributes.")
    if repeated:
        raise ModelSpecError(f"{_where(path)}: output.attributes gives {', '.join(repeated)} twice; "
                             "each attribute is one column.")
    missing = [NAMES[j] for j in range(N_ATTRIBUTES) if columns[j] < 0]
    if missing:
        raise ModelSpecError(f"{_where(path)}: output.attributes lacks {missing}; the run has all "
                             f"{N_ATTRIBUTES} attributes, so the model must give each of them (or set "
                             "output.vocabulary = 'own': the model's own attributes, for a run of those).")
    return tuple(value), tuple(columns)


def _own_mapping(path: Path | None, value: Any) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """``output.attributes`` with ``vocabulary = "own"`` -> (names as written, the non-skipped columns)."""
    from xsgpu.attributes import Vocabulary, VocabularyError

    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value) or not any(
            v.strip() for v in value):
        raise ModelSpecError(f"{_where(path)}: output.attributes must list, in output order, the model's attribute "
                             f"names ('' for a column to skip). Got {value!r} instead.")
    columns = tuple(c for c, v in enumerate(value) if v.strip())
    try:
        Vocabulary.from_names([value[c] for c in columns])
    except VocabularyError as exc:
        raise ModelSpecError(f"{_where(path)}: output.attributes: {exc}") from None
    return tuple(value), columns


def parse_spec(data: Mapping[str, Any], *, path: Path | None = None) -> ModelSpec:
    """Validate a spec given as a mapping (the parsed TOML/JSON); see the module docstring.

    Raises
    ------
    ModelSpecError
        Unknown keys, bad values, or an output mapping that does not give every attribute exactly once.
    """
    if not isinstance(data, Mapping):
        raise ModelSpecError(f"{_where(path)}: the top level must be a table/object. Got {type(data).__name__}.")
    _unknown(path, "the top level", data, _TOP_KEYS)
    sections = {}
    for sec, keys in (("input", _INPUT_KEYS), ("output", _OUTPUT_KEYS), ("features", _FEATURE_KEYS)):
        got = data.get(sec, {})
        if not isinstance(got, Mapping):
            raise ModelSpecError(f"{_where(path)}: [{sec}] must be a table/object. Got {got!r} instead.")
        _unknown(path, f"[{sec}]", got, keys)
        sections[sec] = got
    fmt = data.get("format")
    if fmt is not None:
        _choice(path, "format", fmt, FORMATS)
    arch = data.get("architecture")
    if arch is not None and not isinstance(arch, str):
        raise ModelSpecError(f"{_where(path)}: architecture must be a torchvision builder name such as 'resnet50'. "
                             f"Got {arch!r} instead.")
    i = sections["input"]
    inp = InputSpec(
        size=_positive_int(path, "input.size", i.get("size")),
        channels=_positive_int(path, "input.channels", i.get("channels"), allowed=(1, 3)),
        scale=_choice(path, "input.scale", i.get("scale", "log"), _SCALES),
        normalize=_choice(path, "input.normalize", i.get("normalize", "per_image"), _NORMALIZE),
        mean=_floats(path, "input.mean", i.get("mean"), 0.0),
        std=_floats(path, "input.std", i.get("std"), 1.0),
        name=_name(path, "input.name", i.get("name")),
    )
    for key, vals in (("input.mean", inp.mean), ("input.std", inp.std)):
        if len(vals) not in (1, inp.channels or len(vals)):
            raise ModelSpecError(f"{_where(path)}: {key} has {len(vals)} values but input.channels is "
                                 f"{inp.channels}; give one value or one per channel.")
    o = sections["output"]
    if "kind" not in o:
        raise ModelSpecError(f"{_where(path)}: output.kind is required: 'logits' (xsgpu applies the sigmoid) or "
                             "'probabilities' (the model ends with a sigmoid).")
    vocabulary = _choice(path, "output.vocabulary", o.get("vocabulary", "paper"), ("paper", "own"))
    names, columns = (_mapping(path, o.get("attributes")) if vocabulary == "paper"
                      else _own_mapping(path, o.get("attributes")))
    out = OutputSpec(kind=_choice(path, "output.kind", o["kind"], _KINDS), attributes=names, columns=columns,
                     name=_name(path, "output.name", o.get("name")), vocabulary=vocabulary)
    model_id = data.get("model_id")
    if model_id is not None and (not isinstance(model_id, str) or not model_id.strip()):
        raise ModelSpecError(f"{_where(path)}: model_id must be a non-empty string. Got {model_id!r} instead.")
    return ModelSpec(path=path, format=fmt, architecture=arch, model_id=model_id, input=inp, output=out,
                     features=_name(path, "features.name", sections["features"].get("name")), raw=dict(data))


def read_spec(path: str | os.PathLike) -> ModelSpec:
    """Read and validate a spec file (``.toml`` or ``.json``).

    Raises
    ------
    ModelSpecError
        A missing or unparsable file, or any problem :func:`parse_spec` finds.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelSpecError(f"Model spec {path} does not exist. Hint: `xsgpu model inspect MODEL` prints what the "
                             "spec must say; see docs/own_model.md.")
    try:
        text = path.read_text()
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        elif path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            raise ModelSpecError(f"Model spec {path}: unsupported extension {path.suffix!r}; expected .toml or .json.")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelSpecError(f"Model spec {path}: cannot parse it ({exc}).") from exc
    return parse_spec(data, path=path)


def find_spec(model_path: str | os.PathLike) -> Path | None:
    """The spec file beside a model: ``NAME.spec.toml`` or ``NAME.spec.json`` for ``NAME.onnx`` etc."""
    p = Path(model_path)
    for ext in (".toml", ".json"):
        cand = p.with_name(p.stem + ".spec" + ext)
        if cand.is_file():
            return cand
    return None


def detect_format(model_path: str | os.PathLike) -> str:
    """``onnx``, ``torchscript`` or ``state_dict`` from a model file's extension and, for ``.pt``, its content.

    A ``.pt``/``.pth`` zip archive holding a ``code/`` folder is TorchScript (``torch.jit.save``);
    any other is a state dict (``torch.save``). Raises :class:`ModelSpecError` for other files.
    """
    import zipfile

    p = Path(model_path)
    ext = p.suffix.lower()
    if ext == ".onnx":
        return "onnx"
    if ext == ".safetensors":
        return "state_dict"
    if ext in (".ts", ".torchscript", ".jit"):
        return "torchscript"
    if ext in (".pt", ".pth", ".bin"):
        if zipfile.is_zipfile(p):
            with zipfile.ZipFile(p) as zf:
                if any("/code/" in n or n.startswith("code/") for n in zf.namelist()):
                    return "torchscript"
        return "state_dict"
    raise ModelSpecError(
        f"{p}: cannot tell the model format from the extension {ext!r}. Known: .onnx (ONNX), .safetensors / .pt / "
        ".pth (state dict), .pt / .ts (TorchScript), or an xsgpu checkpoint directory. Hint: set format in the spec.")


def spec_sha256(spec: ModelSpec) -> str:
    """Hex SHA-256 of the spec's content (key order independent)."""
    return hashlib.sha256(json.dumps(spec.to_dict(), sort_keys=True).encode()).hexdigest()


def complete_input(spec: ModelSpec, *, channels: int | None, size: int | None = None, source: str) -> ModelSpec:
    """Fill ``input.size``/``input.channels`` from the model where the spec leaves them out; check they agree.

    Parameters
    ----------
    spec : ModelSpec
    channels, size : int, optional
        What the model file says (``None``: it does not say).
    source : str
        The model, for messages.

    Raises
    ------
    ModelSpecError
        A value neither the spec nor the model gives, or a spec value the model contradicts.
    """
    changes: dict[str, Any] = {}
    for key, mine, theirs, hint in (("size", spec.input.size, size, "the side of the square input the model was "
                                     "trained on, e.g. 224"), ("channels", spec.input.channels, channels, "1 or 3")):
        if mine is None:
            if theirs is None or (key == "channels" and theirs not in (1, 3)):
                raise ModelSpecError(f"{source}: input.{key} is required in the spec ({hint}).")
            changes[key] = int(theirs)
        elif theirs is not None and int(theirs) != mine:
            raise ModelSpecError(f"{source}: input.{key} is {mine} in the spec, but the model takes {theirs}.")
    if changes:
        spec = spec.with_input(**changes)
    for key, vals in (("input.mean", spec.input.mean), ("input.std", spec.input.std)):
        if len(vals) not in (1, spec.input.channels):
            raise ModelSpecError(f"{source}: {key} has {len(vals)} values for {spec.input.channels} channels; "
                                 "give one value or one per channel.")
    return spec
