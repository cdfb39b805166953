"""Batched inference with one loaded model: log frames in, FEA features and PRD probabilities out.

:class:`Predictor` holds a model on its device. On CUDA it runs bf16 autocast with channels_last
(optionally ``torch.compile``), copies float16 frames from pinned host memory on a side stream, and
resizes/standardises on the GPU; the frames of the next batch are produced by a background thread
(e.g. Zarr reads and decompression) while the model works on the current one. On CPU it uses all
cores (``torch.set_num_threads``) and the same background reader.

Examples
--------
>>> import numpy as np, tempfile
>>> from xsgpu.model import build_resnet, save_checkpoint
>>> from xsgpu.model.predictor import Predictor
>>> d = tempfile.mkdtemp()
>>> _ = save_checkpoint(d, build_resnet("resnet18"), input_size=32)
>>> pred = Predictor.from_checkpoint(d, device="cpu", batch_size=4, num_threads=1)
>>> feats, probs = pred.predict(np.zeros((5, 64, 64), np.float32))
>>> feats.shape, probs.shape, str(probs.dtype)
((5, 512), (5, 17), 'float32')
"""
from __future__ import annotations

import logging
import os
import queue
import threading
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

from xsgpu.attributes import Vocabulary, VocabularyError
from xsgpu.backend import torch_device
from xsgpu.errors import ModelMismatch
from xsgpu.io import schema
from xsgpu.model.checkpoint import (CheckpointMismatch, check_compatible, checkpoint_vocabulary, input_layout,
                                    load_checkpoint)
from xsgpu.model.resnet import XSResNet
from xsgpu.model.transforms import to_model_input

__all__ = ["Predictor", "prefetch", "HEATMAPS", "layer_array", "layer_of"]

log = logging.getLogger(__name__)

_DONE = object()

#: run-store array of the class activation maps (N, C, h, w) float16 written by ``xsgpu infer``
HEATMAPS = schema.HEATMAPS.name


def layer_of(array: str) -> str | None:
    """The block whose pooled activations run-store array ``array`` holds (``features_layer2`` -> ``layer2``), or None."""
    prefix = schema.LAYER_FEATURES.name.split("{")[0]
    return array[len(prefix):] if array.startswith(prefix) and len(array) > len(prefix) else None


def layer_array(layer: str) -> str:
    """Run-store array name of the pooled activations of block ``layer`` (``"layer2"`` -> ``features_layer2``)."""
    return schema.LAYER_FEATURES.named(layer=layer).name


def prefetch(items: Iterable[Any], *, depth: int = 2) -> Iterator[Any]:
    """Iterate ``items`` in a background thread, keeping up to ``depth`` results ready.

    Exceptions raised by the producer are re-raised in the consumer.

    >>> list(prefetch(iter(range(4))))
    [0, 1, 2, 3]
    """
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_DONE)
        except BaseException as exc:  # handed to the consumer
            q.put(exc)

    t = threading.Thread(target=produce, name="xsgpu-prefetch", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        t.join(timeout=5)


class Predictor:
    """A loaded model ready for batched inference; build it with :meth:`from_checkpoint`.

    Parameters
    ----------
    model : XSResNet
        The network, in eval mode, on ``device``.
    meta : dict
        The checkpoint metadata.
    device : str
        Torch device (``"cpu"`` or ``"cuda"``).
    batch_size : int
        Images per forward pass.
    compile : bool
        Wrap the model with ``torch.compile`` (CUDA only; the first batches pay the compile time).
    """

    def __init__(self, model: XSResNet, meta: dict[str, Any], *, device: str, batch_size: int = 256,
                 compile: bool = False):
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"The 'batch_size' parameter of Predictor must be a positive int. Got {batch_size!r} instead.")
        self.device = device
        self.batch_size = int(batch_size)
        self.cuda = device.startswith("cuda")
        self._meta = dict(meta)
        model = model.to(device).eval()
        if self.cuda:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self._compile = bool(compile)
        self._forward = torch.compile(model) if compile else model
        self.input_size = int(meta["input_size"])
        self.normalisation, self.pixel_factor, self.input_channels = input_layout(meta)
        self.feature_dim = int(model.feature_dim)
        self._stream = torch.cuda.Stream() if self.cuda else None
        self.extra_outputs: tuple[str, ...] = ()
        self.extra_shapes: dict[str, tuple[int, ...]] = {}

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, *, device: str = "auto", batch_size: int = 256,
                        compile: bool = False, num_threads: int | None = None) -> "Predictor":
        """Load a checkpoint (safetensors, hash-checked) onto ``device``.

        Parameters
        ----------
        path : path
            Checkpoint directory (or its ``model.json`` / ``model.safetensors``).
        device : {"auto", "cpu", "gpu"}
        batch_size : int
        compile : bool
            ``torch.compile`` the model (CUDA only; ignored with a log line on CPU).
        num_threads : int, optional
            CPU threads for torch (default: all cores, ``os.cpu_count()``); process-wide.
        """
        dev = torch_device(device)
        if dev == "cpu":
            torch.set_num_threads(int(num_threads or os.cpu_count() or 1))
            if compile:
                log.info("compile=True is only used on CUDA; running eager on CPU")
                compile = False
        model, meta = load_checkpoint(path, device=dev)
        meta = {**meta, "path": str(path)}
        return cls(model, meta, device=dev, batch_size=batch_size, compile=compile)

    @property
    def meta(self) -> dict[str, Any]:
        """Checkpoint metadata plus ``device``: model_id, arch, weights_sha256, input_size, feature_dim, ..."""
        return {**self._meta, "device": self.device, "feature_dim": self.feature_dim}

    def heatmap_support(self) -> str | None:
        """``None`` if this model's class activation maps can be computed in its forward pass, else why not.

        Only networks ending in global average pooling + one linear layer whose weights xsgpu holds
        have them (:func:`xsgpu.explain.cam.cam_support`): xsgpu checkpoints. ONNX, TorchScript and
        foreign state dicts (whose outputs pass through a spec's mapping) have none.
        """
        if getattr(self, "output_columns", None) is not None:
            return "an attribute map selects or reorders the model's outputs, so its maps are not the run's attributes'"
        fmt = self._meta.get("format")
        if fmt == "onnx":
            return "an ONNX model runs inside ONNX Runtime: its last block's maps and classifier weights are not reachable"
        if fmt == "torchscript":
            return "a TorchScript model is a compiled graph: its last block's maps and classifier weights are not reachable"
        if fmt == "state_dict":
            return ("a foreign state-dict model's outputs pass through the spec's output mapping, so its classifier "
                    "weights are not the attributes' weights")
        from xsgpu.explain.cam import cam_support

        model = getattr(self, "model", None)
        return cam_support(model) if model is not None else f"{type(self).__name__} holds no PyTorch model"

    def set_outputs(self, *, heatmaps: bool = False, layers: Sequence[str] = ()) -> tuple[str, ...]:
        """Choose the outputs yielded besides features and probabilities; return their array names in order.

        Parameters
        ----------
        heatmaps : bool
            Class activation maps (b, C, h, w) of every attribute (:mod:`xsgpu.explain.cam`). Skipped,
            with the reason logged, for a model that has none (:meth:`heatmap_support`).
        layers : sequence of str
            Blocks (``"layer1"``, ``"layer2"``, ``"layer3"``) whose globally average-pooled activations
            (b, K) are also kept (arrays ``features_<layer>``).

        Raises
        ------
        ModelMismatch
            If ``layers`` is asked of a model without such blocks, or names an unknown block.
        """
        from xsgpu.explain.cam import KEEP_LAYERS, ExplainedForward, heatmap_shape, layer_dims

        layers = tuple(dict.fromkeys(layers))
        bad = [name for name in layers if name not in KEEP_LAYERS]
        if bad:
            raise ModelMismatch(f"--layers {','.join(bad)}: choose among {','.join(KEEP_LAYERS)} (layer4's pooled "
                                "activations are FEA, features.zarr).")
        reason = self.heatmap_support()
        if reason is not None:
            if heatmaps:
                log.info("no heatmaps for model %s: %s", self._meta.get("model_id"), reason)
            if layers:
                raise ModelMismatch(f"--layers needs a ResNet whose blocks xsgpu can reach; model "
                                    f"{self._meta.get('path', self._meta.get('model_id'))}: {reason}.")
            heatmaps = False
        if not heatmaps and not layers:
            if getattr(self, "extra_outputs", ()):  # back to the plain forward
                self._forward = torch.compile(self.model) if self._compile else self.model
            self.extra_outputs, self.extra_shapes = (), {}
            return ()
        wrapped = ExplainedForward(self.model, heatmaps=heatmaps, layers=layers)
        self._forward = torch.compile(wrapped) if self._compile else wrapped
        names, shapes = [], {}
        if heatmaps:
            names.append(HEATMAPS)
            shapes[HEATMAPS] = (int(self.model.head.out_features), *heatmap_shape(self.input_size))
        dims = layer_dims(self.model)
        for name in layers:
            names.append(layer_array(name))
            shapes[layer_array(name)] = (dims[name],)
        self.extra_outputs, self.extra_shapes = tuple(names), shapes
        return self.extra_outputs

    @property
    def vocabulary(self) -> Vocabulary:
        """The model's outputs, in order (:func:`~xsgpu.model.checkpoint.checkpoint_vocabulary`)."""
        return checkpoint_vocabulary(self._meta, where=f"model {self._meta.get('path', self._meta['model_id'])}")

    def set_attribute_map(self, mapping: dict[str, str] | None) -> None:
        """Map model output names to run attribute names (``xsgpu infer --attribute-map``); None: none.

        With a map, :meth:`check_run` accepts a run of other attributes when every run attribute is
        given by one output (renamed by the map, or of the same name), and :func:`~xsgpu.model.infer.infer_partition`
        writes those outputs (:attr:`output_columns`) in the run's order.
        """
        self.attribute_map = dict(mapping) if mapping else None
        self.output_columns = None

    def check_run(self, store) -> None:
        """Refuse a run whose attributes or stored frame size do not match this model, naming both.

        The model's attributes must be the run's (``store.vocabulary``), in order, unless an attribute
        map was set (:meth:`set_attribute_map`); then the outputs that give the run's attributes are
        selected (:attr:`output_columns`). The model was trained on frames stored at
        ``preprocessing.source_size`` and resized to ``input_size``; a run stored at another size would
        see the beamstops and rings at another scale after the same resize.
        """
        from xsgpu.io.vocabulary import apply_attribute_map

        name = f"model {self._meta.get('path', self._meta['model_id'])}"
        mapping = getattr(self, "attribute_map", None)
        if mapping is None:
            check_compatible(self._meta, attributes=list(store.vocabulary.names), source=f"run {store.path}",
                             checkpoint=name)
            self.output_columns = None
        else:
            try:
                cols = apply_attribute_map(self.vocabulary, store.vocabulary, mapping, theirs=name)
            except VocabularyError as exc:
                raise CheckpointMismatch(f"run {store.path}: {exc}") from None
            self.output_columns = None if cols == list(range(len(self.vocabulary))) else cols
            if self.output_columns is not None and HEATMAPS in getattr(self, "extra_outputs", ()):
                raise CheckpointMismatch(f"{name}: heatmaps are per model output; with an attribute map that "
                                         "selects or reorders outputs, run infer with --no-heatmaps.")
        src = (self._meta.get("preprocessing") or {}).get("source_size")
        if src is not None and store.images.path.exists():
            shape = tuple(store.images.open().shape[1:])
            if tuple(src) != shape:
                raise CheckpointMismatch(
                    f"model {self._meta.get('path', self._meta['model_id'])} was trained on frames stored at "
                    f"{src[0]}x{src[1]} (input size {self.input_size}), but run {store.path} stores {shape[0]}x{shape[1]}. "
                    f"Hint: ingest the run with --size {src[0]}, or train a model on frames of this size.")

    @torch.no_grad()
    def _run(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = to_model_input(x, self.input_size, self.normalisation, self.pixel_factor)
        if self.cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.cuda):
            out = self._forward(x)
        return tuple(t.float() for t in out)

    def _host_batches(self, frames: Iterable[np.ndarray]) -> Iterator[torch.Tensor]:
        for f in frames:
            t = torch.from_numpy(np.ascontiguousarray(f))
            if t.dtype not in (torch.float16, torch.float32):
                t = t.float()
            if self.cuda:
                t = t.pin_memory()
            yield t

    def predict_iter(self, frames: Iterable[np.ndarray], *, depth: int = 2) -> Iterator[tuple[np.ndarray, ...]]:
        """Predict a stream of batches of log frames, each (b, H, W) float16/float32.

        The stream is consumed in a background thread (:func:`prefetch`), so reading the next batch
        overlaps the forward pass of this one. Yields ``(features (b, D), probs (b, 17))`` float32,
        followed by one array per :attr:`extra_outputs` (see :meth:`set_outputs`).
        """
        pending = None
        for host in prefetch(self._host_batches(frames), depth=depth):
            if host.ndim != 3:
                raise ValueError(f"log frames must have shape (N, H, W). Got shape {tuple(host.shape)} instead.")
            if self.cuda:
                with torch.cuda.stream(self._stream):
                    dev = host.to(self.device, non_blocking=True)
                torch.cuda.current_stream().wait_stream(self._stream)
                dev.record_stream(torch.cuda.current_stream())
            else:
                dev = host
            outs = self._run(dev)
            if self.cuda:
                # copy the previous batch's outputs while this one computes
                if pending is not None:
                    yield tuple(t.numpy() for t in _finish(pending))
                pending = _start_copy(*outs)
            else:
                yield tuple(t.numpy() for t in outs)
        if pending is not None:
            yield tuple(t.numpy() for t in _finish(pending))

    def predict(self, log_frames) -> tuple[np.ndarray, np.ndarray]:
        """Features (n, D) and probabilities (n, 17), float32, for log-scaled frames (n, H, W).

        ``log_frames`` is a NumPy array (or anything sliceable into one, like a Zarr array).
        """
        n = len(log_frames)
        if n == 0:
            return np.zeros((0, self.feature_dim), np.float32), np.zeros((0, len(self._meta["attributes"])), np.float32)
        parts = list(self.predict_iter(np.asarray(log_frames[a:a + self.batch_size])
                                       for a in range(0, n, self.batch_size)))
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def __repr__(self) -> str:
        return (f"Predictor({self._meta['model_id']!r}, device={self.device!r}, batch_size={self.batch_size}, "
                f"input_size={self.input_size})")


def _start_copy(*tensors: torch.Tensor):
    outs = []
    for t in tensors:
        host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
        host.copy_(t, non_blocking=True)
        outs.append(host)
    ev = torch.cuda.Event()
    ev.record()
    return outs, ev


def _finish(pending):
    outs, ev = pending
    ev.synchronize()
    return outs
