"""Model input and label-respecting augmentation, in torch (runs on the CPU or the GPU).

:func:`to_model_input` is the torch twin of :func:`xsgpu.preprocess.to_model_input`: the same
resize (integer-factor box average, then bilinear with half-pixel centres) and per-image
standardisation, so training and inference can run it on the device where the model lives, on
float16 frames copied straight from ``images.zarr`` (half the bytes of float32 over PCIe).

:func:`augment` changes an image only in ways that keep all 17 labels true (see docs/model_card.md):

* flips about the vertical and horizontal axes and transposition (the 8 symmetries of the square):
  every attribute is a property of the pattern's presence, not of its absolute direction; a flip moves a
  beamstop with the beam, never removes one, and keeps an off-detector beam off the detector;
* a small exposure change (counts x U(0.9, 1.1), i.e. a constant added to the log of lit pixels),
  small enough to keep the count thresholds of Strong/Weak scattering and High background;
* a little Gaussian noise (sigma 0.03) after standardisation.

No crop, no translation, no rotation by other angles: a crop can remove a beamstop or push the beam
off the detector (changing Beam Off Image), and resampling would blur thin rings.

Examples
--------
>>> import numpy as np, torch
>>> from xsgpu.preprocess import to_model_input as np_input
>>> from xsgpu.model.transforms import to_model_input
>>> x = np.random.default_rng(0).random((2, 64, 64)).astype(np.float32) * 300
>>> bool(np.allclose(to_model_input(torch.from_numpy(x), 32).numpy(), np_input(x, 32), atol=1e-4))
True
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from xsgpu.preprocess import LOG_BASE

__all__ = ["to_model_input", "standardise", "resize", "augment", "EXPOSURE_RANGE", "NOISE_SIGMA"]

#: Multiplicative exposure range applied to counts by :func:`augment`.
EXPOSURE_RANGE = (0.9, 1.1)
#: Standard deviation of the Gaussian noise added after standardisation by :func:`augment`.
NOISE_SIGMA = 0.03


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize (N, H, W) frames to (N, size, size) float32 exactly as :func:`xsgpu.preprocess.resize_batch`."""
    x = x.to(torch.float32)
    n, h, w = x.shape
    if (h, w) == (size, size):
        return x
    x4 = x[:, None]
    fy, fx = h // size, w // size
    if fy >= 2 and fx >= 2 and h % fy == 0 and w % fx == 0:
        x4 = F.avg_pool2d(x4, kernel_size=(fy, fx))
        if tuple(x4.shape[-2:]) == (size, size):
            return x4[:, 0]
    x4 = F.interpolate(x4, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
    return x4[:, 0]


def standardise(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Per-image zero mean, unit variance over the last two axes (population std, as NumPy)."""
    mean = x.mean(dim=(-2, -1), keepdim=True)
    std = x.std(dim=(-2, -1), keepdim=True, unbiased=False)
    return (x - mean) / (std + eps)


def to_model_input(log_frames: torch.Tensor, size: int) -> torch.Tensor:
    """Log-scaled frames (N, H, W), any float dtype -> standardised model input (N, 1, size, size) float32."""
    if log_frames.ndim != 3:
        raise ValueError(f"log_frames must have shape (N, H, W). Got shape {tuple(log_frames.shape)} instead.")
    return standardise(resize(log_frames, size))[:, None]


def augment(log_frames: torch.Tensor, size: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Label-preserving random augmentation + :func:`to_model_input`.

    Parameters
    ----------
    log_frames : tensor, shape (N, H, W)
        Log-scaled frames (0 where masked or dark).
    size : int
        Model input size.
    generator : torch.Generator, optional
        Random source (on the tensor's device) for reproducible augmentation.

    Returns
    -------
    tensor, shape (N, 1, size, size), float32
    """
    x = resize(log_frames, size)
    n, dev = x.shape[0], x.device

    def rand(*shape):
        return torch.rand(*shape, device=dev, generator=generator)

    lo, hi = EXPOSURE_RANGE
    gain = lo + (hi - lo) * rand(n, 1, 1)
    offset = torch.log(gain) / math.log(LOG_BASE)
    x = torch.where(x > 0, x + offset, x)
    flip_v, flip_h, transpose = (rand(n) < 0.5 for _ in range(3))
    x = torch.where(flip_v[:, None, None], x.flip(-2), x)
    x = torch.where(flip_h[:, None, None], x.flip(-1), x)
    x = torch.where(transpose[:, None, None], x.transpose(-2, -1), x)
    x = standardise(x)
    x = x + NOISE_SIGMA * torch.randn(x.shape, device=dev, generator=generator)
    return x[:, None]
