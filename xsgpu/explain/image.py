"""On-demand explanations of one image of a run: :func:`explain_image` (``xsgpu explain``, the app's detail view).

The image is read from the run's ``images.zarr``, preprocessed exactly as at inference (the model's
resize and standardisation, or a foreign model's spec recipe), and attributed with
:mod:`xsgpu.explain.attribution`:

* ``gradcam`` at any layer (default ``layer4``, the last block; ``layer1`` .. ``layer3`` are the
  earlier blocks, and any dotted module name such as ``trunk.layer3.1.conv2`` works);
* ``ig`` (Integrated Gradients from a flat frame, 32 Gauss-Legendre steps) and ``gxi``
  (Gradient x Input), both at the model input's resolution.

The score attributed is the attribute's logit for an xsgpu checkpoint and its probability for a
foreign PyTorch model (whose outputs pass through the spec's mapping). ONNX models cannot be
differentiated here.

Examples
--------
::

    from xsgpu.explain import explain_image
    m = explain_image("runs/demo", 17, "Ring", method="gradcam", layer="layer3")   # (S, S) float32
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from xsgpu.errors import InputError, ModelMismatch
from xsgpu.explain.attribution import METHODS, grad_cam, gradient_x_input, integrated_gradients, upsample
from xsgpu.explain.cam import LAYERS
from xsgpu.explain.model_path import model_for_run
from xsgpu.io.runstore import RunStore, RunStoreError
from xsgpu.io.schema import IMAGES
from xsgpu.model.transforms import channels_to_image

__all__ = ["explain_image", "explain", "Explanation", "model_for_run", "DEFAULT_LAYER"]

log = logging.getLogger(__name__)

#: Grad-CAM's default layer: the last block
DEFAULT_LAYER = "layer4"


@dataclass
class Explanation:
    """One explanation: the map and what it is of.

    Attributes
    ----------
    map : ndarray, float32
        (S, S) at the model input's size (Grad-CAM upsampled bilinearly unless ``upsample=False``:
        then (h, w) at the layer's resolution).
    image : ndarray, float32
        The model input the map refers to (S, S; first channel for a multi-channel foreign model).
    method, attribute, layer : str
    score : float
        The attributed score of this image (logit, or probability for a foreign model).
    delta : float or None
        Integrated Gradients' completeness error |sum(map) - (score - score(baseline))|.
    """

    map: np.ndarray
    image: np.ndarray
    method: str
    attribute: str
    layer: str | None
    score: float
    delta: float | None = None


def _torch_parts(predictor: Any) -> tuple[nn.Module, Callable[[torch.Tensor], torch.Tensor],
                                          Callable[[np.ndarray], torch.Tensor], list[str], str]:
    """(module, forward -> scores in the model's attribute order, preprocessing, attribute names, score name)."""
    fmt = predictor.meta.get("format")
    if fmt == "onnx":
        raise ModelMismatch("an ONNX model runs inside ONNX Runtime and cannot be differentiated by xsgpu: Grad-CAM and "
                            "gradient attributions need a PyTorch model (an xsgpu checkpoint, a state dict or TorchScript).")
    model = predictor.model.eval()
    if getattr(predictor, "spec", None) is None:  # an xsgpu checkpoint
        from xsgpu.model.transforms import to_model_input

        def prep(frame: np.ndarray) -> torch.Tensor:
            return to_model_input(torch.from_numpy(np.asarray(frame, np.float32))[None], predictor.input_size,
                                  getattr(predictor, "normalisation", "image"), getattr(predictor, "pixel_factor", 1))

        return model, (lambda x: model.forward_logits(x)[1]), prep, list(predictor.meta["attributes"]), "logit"
    from xsgpu.model.foreign.inputs import spec_input
    from xsgpu.model.foreign.outputs import map_outputs

    spec = predictor.spec

    def prep_foreign(frame: np.ndarray) -> torch.Tensor:
        return spec_input(torch.from_numpy(np.asarray(frame, np.float32))[None], spec.input)

    return (model, (lambda x: map_outputs(model(x)[1], spec.output)), prep_foreign, list(predictor.meta["attributes"]),
            "probability")


def _layer(model: nn.Module, name: str, *, source: str) -> nn.Module:
    roots = [model, getattr(model, "trunk", None), getattr(model, "extractor", None)]
    if isinstance(model, torch.jit.ScriptModule) or isinstance(getattr(model, "script", None), torch.jit.ScriptModule):
        raise ModelMismatch(f"{source} is TorchScript: its layers take no hooks, so Grad-CAM cannot run on it. "
                            "Hint: use --method ig or gxi, or export a state dict.")
    for root in roots:
        if root is None:
            continue
        try:
            return root.get_submodule(name)
        except AttributeError:
            continue
    tops = [n for n, _ in (getattr(model, "trunk", None) or getattr(model, "extractor", None) or model).named_children()]
    raise InputError(f"--layer {name!r} is not a module of {source}; its top-level modules are {tops} (dotted names "
                     "like layer3.1.conv2 reach inside).")


def explain(predictor: Any, frame: np.ndarray, attribute: str | int, *, method: str = "gradcam",
            layer: str | None = None, upsample_map: bool = True, n_steps: int = 32) -> Explanation:
    """Explain one log frame (H, W) with a loaded predictor (see :func:`explain_image`)."""
    if method not in METHODS:
        raise InputError(f"--method must be one of {', '.join(METHODS)}. Got {method!r} instead.")
    if layer is not None and method != "gradcam":
        raise InputError(f"--layer is Grad-CAM's; --method {method} attributes the input (drop --layer).")
    model, forward, prep, names, score_name = _torch_parts(predictor)
    from xsgpu.attributes import Vocabulary

    try:
        target = Vocabulary.from_names(names).index(attribute)
    except KeyError as exc:
        raise InputError(f"--attribute: {exc.args[0]}") from None
    x = prep(frame).to(predictor.device)
    with torch.no_grad():
        score = float(forward(x)[0, target])
    factor = int(getattr(predictor, "pixel_factor", 1))
    views = int(x.shape[1]) // factor ** 2

    def unfold(c: torch.Tensor | np.ndarray) -> np.ndarray:
        """(views f^2, S, S) model channels -> (views, f S, f S) pixels (identity for the one-channel input)."""
        return channels_to_image(torch.as_tensor(c), factor, views).numpy()

    image = unfold(x[0].detach().cpu())[0].astype(np.float32)
    delta = None
    source = f"model {predictor.meta.get('path', predictor.meta.get('model_id'))}"
    if method == "gradcam":
        layer = layer or DEFAULT_LAYER
        m = grad_cam(forward, _layer(model, layer, source=source), x, target=target)
        if upsample_map:
            m = upsample(m, image.shape[-1])
    elif method == "ig":
        a, delta = integrated_gradients(forward, x, target=target, n_steps=n_steps)
        m = unfold(a).sum(0)
        log.info("integrated gradients: completeness error %.3g (score %.4g)", delta, score)
    else:
        m = unfold(gradient_x_input(forward, x, target=target)).sum(0)
    return Explanation(map=np.asarray(m, np.float32), image=image, method=method, attribute=names[target],
                       layer=layer, score=score, delta=delta)


def explain_image(run_path: str | os.PathLike, sample_id: int, attribute: str | int, *, method: str = "gradcam",
                  layer: str | None = None, model: str | os.PathLike | Any | None = None, spec: str | None = None,
                  device: str = "cpu", upsample_map: bool = True, details: bool = False) -> np.ndarray | Explanation:
    """Grad-CAM, Integrated Gradients or Gradient x Input of one attribute for one image of a run.

    Parameters
    ----------
    run_path : path
        Run store with ``images``.
    sample_id : int
    attribute : str or int
        Display name, slug or index (``"Ring"``, ``"ring"``, ``12``).
    method : {"gradcam", "ig", "gxi"}
    layer : str, optional
        Grad-CAM's layer: ``layer1`` .. ``layer4`` (default) or a dotted module name.
    model : path or Predictor, optional
        Default: the model recorded with the run's predictions (``model_path``).
    spec : path, optional
        A foreign model's spec (default beside the model file).
    device : {"cpu", "gpu", "auto"}
    upsample_map : bool
        Resize Grad-CAM's map to the model input's size (bilinear).
    details : bool
        Return an :class:`Explanation` (map, the input image, score, IG's completeness error) instead of the map.

    Returns
    -------
    ndarray or Explanation
        The map, float32: (S, S) at the model input's size, or (h, w) for Grad-CAM without upsampling.
    """
    store = RunStore.open(run_path, require=[IMAGES])
    sid = int(sample_id)
    if not 0 <= sid < store.n_samples:
        raise InputError(f"--sample {sample_id}: {store.path} holds sample_id 0..{store.n_samples - 1}.")
    if model is None:
        model = model_for_run(store)
    if isinstance(model, (str, os.PathLike)):
        from xsgpu.model.foreign import load_predictor

        predictor = load_predictor(model, spec=spec, device=device, batch_size=1, num_threads=None)
    else:
        predictor = model
    if predictor.meta.get("format") != "onnx":
        predictor.check_run(store)
    ran = store.predictions.metadata().get("weights_sha256") if store.predictions.path.exists() else None
    if ran and ran != predictor.meta.get("weights_sha256"):
        log.warning("%s: its predictions come from model %s..., this explanation from %s...", store.path, ran[:12],
                    str(predictor.meta.get("weights_sha256"))[:12])
    if layer is not None and layer not in LAYERS and method == "gradcam":
        log.info("Grad-CAM at module %s", layer)
    frame = np.asarray(store.images.open()[sid], np.float32)
    if not np.isfinite(frame).all():
        raise RunStoreError(f"{store.images.path}: sample_id {sid} holds NaN/inf. Hint: re-ingest the run.")
    out = explain(predictor, frame, attribute, method=method, layer=layer, upsample_map=upsample_map)
    return out if details else out.map
