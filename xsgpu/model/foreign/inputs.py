"""Run frames -> the input a foreign model expects, as its spec describes (torch, CPU or GPU).

The frames come from ``images.zarr`` (``log(I)/log(1.0414)``, 0 where masked or dark). They are resized
to ``input.size`` exactly as for xsgpu's own models (:func:`xsgpu.model.transforms.resize`), then:

1. ``scale = "linear"`` turns them back into counts (``1.0414 ** x`` where ``x > 0``, else 0);
2. ``normalize``: ``per_image`` (zero mean, unit population std, as xsgpu's models), ``minmax``
   (each image to [0, 1]) or ``none``;
3. the channel is repeated to ``input.channels``;
4. ``(x - mean) / std`` per channel.

Examples
--------
>>> import torch
>>> from xsgpu.model.foreign.spec import InputSpec
>>> x = spec_input(torch.rand(2, 64, 64) * 100, InputSpec(size=32, channels=3, mean=(0.5,), std=(2.0,)))
>>> tuple(x.shape), bool(torch.allclose(x[:, 0], x[:, 2]))
((2, 3, 32, 32), True)
"""
from __future__ import annotations

import math

import torch

from xsgpu.model.foreign.spec import InputSpec
from xsgpu.model.transforms import resize, standardise
from xsgpu.preprocess import LOG_BASE

__all__ = ["spec_input"]


def spec_input(log_frames: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """Log frames (N, H, W), any float dtype -> model input (N, channels, size, size) float32.

    Parameters
    ----------
    log_frames : tensor, shape (N, H, W)
        Frames as stored in the run.
    spec : InputSpec
        With ``size`` and ``channels`` set.
    """
    if log_frames.ndim != 3:
        raise ValueError(f"log_frames must have shape (N, H, W). Got shape {tuple(log_frames.shape)} instead.")
    if spec.size is None or spec.channels is None:
        raise ValueError("spec_input needs input.size and input.channels; fill them from the model first.")
    x = resize(log_frames, spec.size)
    if spec.scale == "linear":
        x = torch.where(x > 0, torch.exp(x * math.log(LOG_BASE)), torch.zeros_like(x))
    if spec.normalize == "per_image":
        x = standardise(x)
    elif spec.normalize == "minmax":
        lo = x.amin(dim=(-2, -1), keepdim=True)
        hi = x.amax(dim=(-2, -1), keepdim=True)
        x = (x - lo) / torch.clamp(hi - lo, min=1e-12)
    x = x[:, None].expand(-1, spec.channels, -1, -1)
    mean = torch.tensor(spec.mean, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)
    std = torch.tensor(spec.std, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)
    return ((x - mean) / std).contiguous()
