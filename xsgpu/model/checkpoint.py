"""Checkpoints: safetensors weights + a JSON metadata file; never pickle.

A checkpoint is a directory::

    MODEL/model.safetensors     the weights (safetensors: no code runs on load)
    MODEL/model.json            metadata: format, model_id, arch, attributes (names, in order),
                                vocabulary (the same as {name, slug, colour}), input_size,
                                preprocessing, training run, validation metrics, weights_sha256, ...
    MODEL/optimizer.safetensors optional (training checkpoints): AdamW moment tensors; the
                                param groups, step and schedule live in model.json["resume"]

The JSON is written last, so a checkpoint is complete exactly when ``model.json`` exists, and its
``weights_sha256`` is verified on every load (a truncated or swapped weight file is refused).
:func:`check_compatible` refuses a checkpoint whose attributes or input size do not match what the
caller has, naming both. ``torch.load`` is never used.

Examples
--------
>>> import tempfile
>>> from xsgpu.model.resnet import build_resnet
>>> from xsgpu.model.checkpoint import save_checkpoint, load_checkpoint
>>> d = tempfile.mkdtemp()
>>> _ = save_checkpoint(d, build_resnet("resnet18"), input_size=32)
>>> model, meta = load_checkpoint(d)
>>> meta["arch"], meta["input_size"], len(meta["attributes"])
('resnet18', 32, 17)
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Sequence

import torch

from xsgpu import __version__
from xsgpu.attributes import DEFAULT_VOCABULARY, Vocabulary, VocabularyError
from xsgpu.errors import ModelError, ModelMismatch
from xsgpu.io.atomic import atomic_path, write_json_atomic
from xsgpu.model.resnet import FEATURE_DIMS, XSResNet, build_resnet, check_arch
from xsgpu.preprocess import LOG_BASE

__all__ = [
    "CheckpointError", "CheckpointMismatch", "FORMAT", "FORMAT_VERSION", "WEIGHTS_FILE", "META_FILE",
    "OPTIMIZER_FILE", "save_checkpoint", "load_checkpoint", "read_checkpoint_meta", "resolve_checkpoint",
    "check_compatible", "sha256_file", "optimizer_state_to_tensors", "load_optimizer_state", "load_optimizer_file",
    "default_preprocessing", "check_meta_bounds", "checkpoint_vocabulary", "INPUT_SIZE_RANGE", "SOURCE_SIZE_RANGE", "MAX_OUTPUTS",
]

log = logging.getLogger(__name__)

FORMAT = "xsgpu-checkpoint"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
META_FILE = "model.json"
OPTIMIZER_FILE = "optimizer.safetensors"
#: bounds on the sizes a model.json may declare, checked before anything is allocated from them
INPUT_SIZE_RANGE = (8, 4096)        # model input side S (inputs are N x 1 x S x S); as `xsgpu ingest --size`
SOURCE_SIZE_RANGE = (1, 4096)       # side of the stored frames the model was trained on
MAX_OUTPUTS = 1024                  # attributes (sigmoid outputs) of one model


class CheckpointError(ModelError):
    """A checkpoint is missing, incomplete, corrupt or of an unknown format; the message names the path."""


class CheckpointMismatch(ModelMismatch):
    """A checkpoint does not fit the run or the request (attributes, input size, architecture)."""


def sha256_file(path: str | os.PathLike, *, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def default_preprocessing(source_size: Sequence[int] | None = None, normalisation: str = "image",
                          pixel_factor: int = 1) -> dict[str, Any]:
    """The preprocessing record stored in checkpoints (what :mod:`xsgpu.model.transforms` does).

    ``normalisation`` (``"image"``, ``"fixed"``, ``"image+level"`` or ``"two-view"``;
    :func:`xsgpu.model.transforms.normalise`) and ``pixel_factor`` (:func:`xsgpu.model.transforms.to_channels`)
    are recorded under those keys when they are not the defaults; :class:`xsgpu.model.predictor.Predictor`
    reads them (absent: ``"image"`` and 1). ``channels`` is the model's input channels.
    """
    from xsgpu.model.transforms import FIXED_MEAN, FIXED_STD, input_channels

    rec = {
        "log_scale": f"log(I)/log({LOG_BASE}), 0 where I <= 0 or masked",
        "resize": "integer-factor box average, then bilinear (half-pixel centres)",
        "standardise": "per image, population std, eps 1e-6",
        "channels": input_channels(normalisation, pixel_factor),
        "source_size": list(source_size) if source_size is not None else None,
    }
    if normalisation == "fixed":
        rec["standardise"] = f"none: (x - {FIXED_MEAN}) / {FIXED_STD} for every image"
    elif normalisation == "image+level":
        rec["standardise"] += f", plus the image's (mean - {FIXED_MEAN}) / {FIXED_STD}"
    elif normalisation == "two-view":
        rec["standardise"] += f" (view 1) and (x - {FIXED_MEAN}) / {FIXED_STD} for every image (view 2)"
    if normalisation != "image":
        rec["normalisation"] = normalisation
    if pixel_factor != 1:
        rec["pixel_factor"] = int(pixel_factor)
        rec["resize"] += f" to input_size x {pixel_factor}, then space-to-depth (pixel_unshuffle) by {pixel_factor}"
    return rec


def input_layout(meta: dict[str, Any], where: str = "model.json") -> tuple[str, int, int]:
    """(normalisation, pixel_factor, input channels) of a checkpoint's ``preprocessing``, checked.

    Raises
    ------
    CheckpointError
        If a recorded value is not one xsgpu knows, or ``channels`` does not fit the other two.
    """
    from xsgpu.model.transforms import input_channels

    pre = meta.get("preprocessing") or {}
    norm, factor = pre.get("normalisation", "image"), pre.get("pixel_factor", 1)
    try:
        channels = input_channels(norm, factor)
    except ValueError as exc:
        raise CheckpointError(f"{where}: field 'preprocessing': {exc}") from None
    if int(pre.get("channels", channels)) != channels:
        raise CheckpointError(f"{where}: field 'preprocessing.channels' is {pre['channels']!r}, but normalisation "
                              f"{norm!r} with pixel_factor {factor} gives {channels}.")
    return str(norm), int(factor), channels


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """Return the checkpoint directory for a directory, its ``model.json`` or its ``model.safetensors``."""
    p = Path(path)
    if p.is_file() and p.name in (META_FILE, WEIGHTS_FILE):
        p = p.parent
    if not p.is_dir():
        raise CheckpointError(f"No checkpoint at {p}: the directory does not exist. "
                              "Hint: train one with `xsgpu train RUN --out MODEL`.")
    if not (p / META_FILE).is_file():
        raise CheckpointError(f"{p} is not a complete checkpoint: {META_FILE} is missing "
                              "(an interrupted save, or not a checkpoint directory).")
    return p


def read_checkpoint_meta(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate the metadata of a checkpoint (directory or file inside it)."""
    d = resolve_checkpoint(path)
    try:
        meta = json.loads((d / META_FILE).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{d / META_FILE}: cannot read the checkpoint metadata ({exc}).") from exc
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{d / META_FILE}: field 'format' is {meta.get('format')!r}, expected {FORMAT!r}.")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(f"{d / META_FILE}: format_version {meta.get('format_version')} is newer than this "
                              f"xsgpu understands ({FORMAT_VERSION}); upgrade xsgpu.")
    for key in ("arch", "attributes", "input_size", "weights_sha256"):
        if key not in meta:
            raise CheckpointError(f"{d / META_FILE}: required field {key!r} is missing.")
    check_meta_bounds(meta, where=str(d / META_FILE))
    return meta


def _bounded_int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def check_meta_bounds(meta: dict[str, Any], *, where: str = META_FILE) -> None:
    """Refuse declared sizes out of bounds before anything is allocated from them.

    A hand-edited or hostile ``model.json`` declaring ``input_size`` 100000 would otherwise make the
    first batch ask for 100000 x 100000 floats per image.

    Raises
    ------
    CheckpointError
        Naming the field, its value, the accepted range and the remedy.
    """
    hint = "Hint: the file is corrupt or was not written by `xsgpu train`; retrain the model or restore the file."
    lo, hi = INPUT_SIZE_RANGE
    if not _bounded_int(meta["input_size"], lo, hi):
        raise CheckpointError(f"{where}: field 'input_size' is {meta['input_size']!r}; xsgpu accepts an int in "
                              f"{lo}..{hi} (the model input is input_size x input_size pixels). {hint}")
    attrs = meta["attributes"]
    if not isinstance(attrs, list) or not 1 <= len(attrs) <= MAX_OUTPUTS or not all(isinstance(a, str) for a in attrs):
        n = len(attrs) if isinstance(attrs, list) else type(attrs).__name__
        raise CheckpointError(f"{where}: field 'attributes' must be a list of 1..{MAX_OUTPUTS} names; got {n}. {hint}")
    n_out = meta.get("n_outputs", len(attrs))
    if not _bounded_int(n_out, 1, MAX_OUTPUTS) or n_out != len(attrs):
        raise CheckpointError(f"{where}: field 'n_outputs' is {n_out!r}; it must equal the number of attributes "
                              f"({len(attrs)}) and lie in 1..{MAX_OUTPUTS}. {hint}")
    src = (meta.get("preprocessing") or {}).get("source_size")
    lo, hi = SOURCE_SIZE_RANGE
    if src is not None and (not isinstance(src, list) or len(src) != 2 or not all(_bounded_int(v, lo, hi) for v in src)):
        raise CheckpointError(f"{where}: field 'preprocessing.source_size' is {src!r}; xsgpu accepts [H, W] with "
                              f"each side an int in {lo}..{hi}. {hint}")


def checkpoint_vocabulary(meta: dict[str, Any], *, where: str = META_FILE) -> Vocabulary:
    """The vocabulary of a checkpoint: ``meta["vocabulary"]`` (slugs and colours kept), else its ``attributes``.

    Checkpoints written before the per-run vocabulary hold names only; their slugs and colours are
    derived (:meth:`Vocabulary.from_names`; the paper's 17 keep theirs).

    Raises
    ------
    CheckpointError
        When the field is malformed (``attributes`` wins over a ``vocabulary`` naming others).
    """
    try:
        if "vocabulary" in meta:
            vocab = Vocabulary.from_manifest(meta["vocabulary"], where=where)
            if list(vocab.names) == list(meta["attributes"]):
                return vocab
            log.warning("%s: fields 'vocabulary' and 'attributes' differ; using 'attributes'", where)
        return Vocabulary.from_names(meta["attributes"])
    except VocabularyError as exc:
        raise CheckpointError(f"{where}: {exc}") from None


def check_compatible(
    meta: dict[str, Any],
    *,
    attributes: Sequence[str] | None = None,
    input_size: int | None = None,
    arch: str | None = None,
    source: str = "the run",
    checkpoint: str = "the checkpoint",
) -> None:
    """Raise :class:`CheckpointMismatch` if the checkpoint's attributes, input size or arch differ.

    Parameters
    ----------
    meta : dict
        Checkpoint metadata (:func:`read_checkpoint_meta`).
    attributes, input_size, arch : optional
        What the caller has; ``None`` skips that check.
    source, checkpoint : str
        Names used in the message (e.g. the run path and the model path).
    """
    if attributes is not None and list(meta["attributes"]) != list(attributes):
        mine, theirs = list(meta["attributes"]), list(attributes)
        diff = [f"#{i}: {a!r} vs {b!r}" for i, (a, b) in enumerate(zip(mine, theirs)) if a != b]
        raise CheckpointMismatch(
            f"{checkpoint} was trained on attributes {mine} ({len(mine)}), but {source} has {theirs} "
            f"({len(theirs)}); first differences: {', '.join(diff[:3]) or 'lengths differ'}. "
            "Hint: use a model trained on this attribute set.")
    if input_size is not None and int(meta["input_size"]) != int(input_size):
        raise CheckpointMismatch(
            f"{checkpoint} has input size {meta['input_size']}, but {source} asks for input size {input_size}. "
            f"Hint: use --size {meta['input_size']} or a checkpoint trained at {input_size}.")
    if arch is not None and meta["arch"] != arch:
        raise CheckpointMismatch(f"{checkpoint} is a {meta['arch']}, but {source} asks for {arch}. "
                                 f"Hint: use --arch {meta['arch']} or another checkpoint.")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def optimizer_state_to_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer's ``state_dict`` into safetensors-able tensors and JSON-able rest.

    Tensors become ``state.<param index>.<key>``; non-tensor per-parameter values and the param groups
    go to the JSON part.
    """
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            if torch.is_tensor(val):
                tensors[f"state.{idx}.{key}"] = val.detach().to("cpu").contiguous()
            else:
                scalars.setdefault(str(idx), {})[key] = val
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def load_optimizer_state(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
    """Inverse of :func:`optimizer_state_to_tensors`: restore the state into ``optimizer``."""
    state: dict[int, dict[str, Any]] = {}
    for name, t in tensors.items():
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = t
    for idx, vals in info.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(vals)
    # JSON turned tuples (AdamW's betas) into lists
    groups = [{k: (tuple(v) if isinstance(v, list) and k != "params" else v) for k, v in g.items()}
              for g in info["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def save_checkpoint(
    directory: str | os.PathLike,
    model: XSResNet,
    *,
    input_size: int,
    preprocessing: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    resume: dict[str, Any] | None = None,
    vocabulary: Vocabulary | None = None,
) -> Path:
    """Write ``model`` (and optionally the optimizer) as a checkpoint directory; return its ``model.json``.

    Parameters
    ----------
    directory : path
        Checkpoint directory (created; an existing checkpoint there is replaced file by file, JSON last).
    model : XSResNet
        The network (its ``arch`` and ``n_outputs`` are recorded).
    input_size : int
        Model input size S (inputs are (N, 1, S, S)).
    preprocessing, training, metrics : dict, optional
        Recorded as given (JSON-serialisable values).
    optimizer : torch.optim.Optimizer, optional
        Saved to ``optimizer.safetensors`` for ``--resume``.
    resume : dict, optional
        Trainer state (epoch, step, schedule, seed ...) stored in ``model.json["resume"]``.
    vocabulary : Vocabulary, optional
        What the outputs are, in order (``model.json`` ``attributes`` and ``vocabulary``); default the
        paper's 17. Its length must equal the model's ``n_outputs``.
    """
    from safetensors.torch import save_file

    vocab = vocabulary or DEFAULT_VOCABULARY
    if len(vocab) != model.n_outputs:
        raise ValueError(f"save_checkpoint: the model has {model.n_outputs} outputs but the vocabulary has "
                         f"{len(vocab)} attributes ({', '.join(vocab.names[:5])}...); they must match.")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_path(d / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp), metadata={"format": FORMAT})
    sha = sha256_file(d / WEIGHTS_FILE)
    meta: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_id": f"{model.arch}-{input_size}-{sha[:12]}",
        "arch": model.arch,
        "n_outputs": model.n_outputs,
        "feature_dim": model.feature_dim,
        "attributes": list(vocab.names),
        "vocabulary": vocab.to_manifest(),
        "input_size": int(input_size),
        "preprocessing": preprocessing or default_preprocessing(),
        "training": training or {},
        "metrics": metrics or {},
        "weights_file": WEIGHTS_FILE,
        "weights_sha256": sha,
        "created": _now(),
        "xsgpu_version": __version__,
        "torch_version": torch.__version__,
    }
    if optimizer is not None:
        tensors, info = optimizer_state_to_tensors(optimizer)
        with atomic_path(d / OPTIMIZER_FILE) as tmp:
            save_file(tensors, str(tmp), metadata={"format": FORMAT})
        meta["resume"] = {**(resume or {}), "optimizer": info, "optimizer_sha256": sha256_file(d / OPTIMIZER_FILE)}
    elif resume:
        meta["resume"] = dict(resume)
    write_json_atomic(d / META_FILE, meta)
    log.info("saved checkpoint %s (%s)", d, meta["model_id"])
    return d / META_FILE


def load_checkpoint(path: str | os.PathLike, *, device: str = "cpu") -> tuple[XSResNet, dict[str, Any]]:
    """Load a checkpoint's model (eval mode, on torch ``device``) and metadata.

    The weights' SHA-256 must equal ``weights_sha256`` in the metadata, the architecture must be known,
    and the tensors must match the architecture exactly.

    Raises
    ------
    CheckpointError
        Missing/corrupt files, a hash mismatch, or weights that do not fit the architecture.
    """
    from safetensors.torch import load_file

    d = resolve_checkpoint(path)
    meta = read_checkpoint_meta(d)
    weights = d / meta.get("weights_file", WEIGHTS_FILE)
    if not weights.is_file():
        raise CheckpointError(f"{d}: weight file {weights.name} is missing.")
    sha = sha256_file(weights)
    if sha != meta["weights_sha256"]:
        raise CheckpointError(f"{weights}: SHA-256 {sha[:16]}... does not match model.json weights_sha256 "
                              f"{str(meta['weights_sha256'])[:16]}...; the file is corrupt or was replaced.")
    try:
        check_arch(meta["arch"])
    except ValueError as exc:
        raise CheckpointError(f"{d / META_FILE}: field 'arch': {exc}") from exc
    channels = input_layout(meta, str(d / META_FILE))[2]
    model = build_resnet(meta["arch"], n_outputs=int(meta.get("n_outputs", len(meta["attributes"]))),
                         in_channels=channels)
    state = load_file(str(weights), device="cpu")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{weights}: the tensors do not fit a {meta['arch']} ({exc}).") from exc
    if FEATURE_DIMS[meta["arch"]] != int(meta.get("feature_dim", FEATURE_DIMS[meta["arch"]])):
        raise CheckpointError(f"{d / META_FILE}: feature_dim {meta['feature_dim']} does not fit {meta['arch']}.")
    return model.to(device).eval(), meta


def load_optimizer_file(path: str | os.PathLike, meta: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Load and verify ``optimizer.safetensors`` of a training checkpoint (for ``--resume``)."""
    from safetensors.torch import load_file

    d = resolve_checkpoint(path)
    f = d / OPTIMIZER_FILE
    info = meta.get("resume", {})
    if not f.is_file() or "optimizer" not in info:
        raise CheckpointError(f"{d}: no optimizer state ({OPTIMIZER_FILE}); it is not a training checkpoint "
                              "and cannot be resumed.")
    if sha256_file(f) != info.get("optimizer_sha256"):
        raise CheckpointError(f"{f}: SHA-256 does not match model.json; the file is corrupt or was replaced.")
    return load_file(str(f), device="cpu")
