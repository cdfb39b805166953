"""Gradient attributions of one attribute's score through Captum: Grad-CAM, Integrated Gradients, Gradient x Input.

These work on any differentiable PyTorch ``forward(x) -> scores (N, C)`` (for an xsgpu ResNet the
logits); :func:`xsgpu.explain.image.explain_image` wires them to a run's image and model.

* :func:`grad_cam` (Selvaraju et al., 2017): at a layer with maps ``A`` (K, h, w), weights
  ``alpha_k = mean_ij d score / d A_k(i, j)`` and map ``ReLU(sum_k alpha_k A_k)`` (h, w) at that layer's
  resolution (Captum ``LayerGradCam``). At the last block of a network ending in global average pooling
  + linear it equals ``ReLU(CAM_c) / (h w)``, the stored heatmap up to the ReLU and a constant.
* :func:`integrated_gradients` (Sundararajan et al., 2017): ``(x - x0) * mean over the path x0 -> x of
  the gradient`` (Captum ``IntegratedGradients``, Gauss-Legendre steps); the attributions sum to
  ``score(x) - score(x0)`` up to the integration error (the "completeness" Captum reports as delta).
* :func:`gradient_x_input`: ``x * d score / d x`` (Captum ``InputXGradient``), one backward pass.

Examples
--------
>>> import torch
>>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
...                           torch.nn.Flatten(), torch.nn.Linear(2, 3))
>>> grad_cam(net, net[1], torch.ones(1, 1, 6, 6), target=0).shape
(4, 4)
"""
from __future__ import annotations

import logging
from typing import Callable

import numpy as np
import torch
from torch import nn

__all__ = ["grad_cam", "integrated_gradients", "gradient_x_input", "METHODS", "upsample"]

log = logging.getLogger(__name__)

#: the on-demand methods: Grad-CAM at a layer, and two input attributions
METHODS: tuple[str, ...] = ("gradcam", "ig", "gxi")

Forward = Callable[[torch.Tensor], torch.Tensor]


def _check_input(x: torch.Tensor) -> torch.Tensor:
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"x must be one model input of shape (1, channels, S, S). Got shape {tuple(x.shape)} instead.")
    return x.detach().float()


def grad_cam(forward: Forward, layer: nn.Module, x: torch.Tensor, *, target: int, relu: bool = True) -> np.ndarray:
    """Grad-CAM of score ``target`` at ``layer`` for one input: (h, w) float32 at the layer's resolution.

    Parameters
    ----------
    forward : callable or nn.Module
        ``forward(x) -> scores (N, C)``; ``layer`` must run inside it.
    layer : nn.Module
        The layer whose output maps are weighted (a conv, a ReLU, a ResNet block).
    x : tensor, shape (1, channels, S, S)
        The model input (after preprocessing).
    target : int
        Column of the score.
    relu : bool
        Apply the ReLU of Grad-CAM (``False``: the signed weighted sum).
    """
    from captum.attr import LayerGradCam

    x = _check_input(x)
    attr = LayerGradCam(forward, layer).attribute(x, target=int(target), relu_attributions=relu)
    if attr.ndim != 4:
        raise ValueError(f"Grad-CAM needs a layer with (N, K, h, w) maps; {type(layer).__name__} gives shape "
                         f"{tuple(attr.shape)}. Hint: choose a convolutional layer or block.")
    return attr.detach()[0].sum(0).cpu().numpy().astype(np.float32)


def integrated_gradients(forward: Forward, x: torch.Tensor, *, target: int, baseline: torch.Tensor | None = None,
                         n_steps: int = 32) -> tuple[np.ndarray, float]:
    """Integrated Gradients of score ``target`` for one input: ((channels, S, S) float32, completeness delta).

    ``baseline`` defaults to zeros (for an xsgpu model: the standardised image's mean level, i.e. a
    flat frame). ``delta`` = sum of attributions - (score(x) - score(baseline)), Captum's convergence delta.
    """
    from captum.attr import IntegratedGradients

    x = _check_input(x)
    base = torch.zeros_like(x) if baseline is None else baseline.detach().float()
    attr, delta = IntegratedGradients(forward).attribute(x, baselines=base, target=int(target), n_steps=int(n_steps),
                                                         return_convergence_delta=True)
    return attr.detach()[0].cpu().numpy().astype(np.float32), float(delta.detach().abs().max())


def gradient_x_input(forward: Forward, x: torch.Tensor, *, target: int) -> np.ndarray:
    """Gradient x Input of score ``target`` for one input: (channels, S, S) float32."""
    from captum.attr import InputXGradient

    x = _check_input(x).requires_grad_()
    return InputXGradient(forward).attribute(x, target=int(target)).detach()[0].cpu().numpy().astype(np.float32)


def upsample(m: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of an (h, w) map to (size, size) (half-pixel centres, like the model's input resize)."""
    t = torch.from_numpy(np.ascontiguousarray(m, dtype=np.float32))[None, None]
    return torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)[0, 0].numpy()
