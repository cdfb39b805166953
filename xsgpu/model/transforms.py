"""Model input and label-respecting augmentation, in torch (runs on the CPU or the GPU).

:func:`to_model_input` is the torch twin of :func:`xsgpu.preprocess.to_model_input`: the same
resize (integer-factor box average, then bilinear with half-pixel centres) and per-image
standardisation, so training and inference can run it on the device where the model lives, on
float16 frames copied straight from ``images.zarr`` (half the bytes of float32 over PCIe).

:func:`augment` changes an image only in ways that keep all 17 labels true (see docs/model_card.md):

* optionally (``flips=True``; off by default since issue 14's 4th session) flips about the vertical and
  horizontal axes and transposition (the 8 symmetries of the square): every attribute is a property of
  the pattern's presence, and a flip moves a beamstop with the beam, never removes one; but a detector
  has an orientation (its beamstop holder, the beam's usual corner), and without flips the model keeps
  it: cms-dev mAP 0.504 -> 0.532 over two training seeds (docs/synth.md);
* a small exposure change (counts x U(0.9, 1.1), i.e. a constant added to the log of lit pixels),
  small enough to keep the count thresholds of Strong/Weak scattering and High background;
* a little Gaussian noise (sigma 0.03) after standardisation.

These defaults are :data:`DEFAULT_AUGMENTATION`. :class:`Augmentation` also offers options that were
measured for transfer to the original generator's images (issue 14; docs/synth.md "Training choices and
augmentations, one at a time"). None of them helped there, so all are off by default: a random
translation by up to ``shift`` input pixels (zero fill; it moves a beam near an edge across it, and
Beam Off Image AP on cms-dev fell from 0.78 to 0.49), Poisson re-noising at a lower exposure (counts
re-drawn as Poisson(g I) / g, g = 10^U(poisson_log10_gain), on a share ``poisson`` of the images) and a
wider exposure range. No rotation by other angles: resampling would blur thin rings.

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
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from xsgpu.preprocess import LOG_BASE

__all__ = ["to_model_input", "standardise", "normalise", "resize", "augment", "Augmentation", "DEFAULT_AUGMENTATION",
           "DEFAULT_NORMALISATION",
           "EXPOSURE_RANGE", "NOISE_SIGMA", "NORMALISATIONS", "FIXED_MEAN", "FIXED_STD", "input_channels",
           "to_channels", "channels_to_image", "check_pixel_factor"]

#: Multiplicative exposure range applied to counts by :func:`augment`.
EXPOSURE_RANGE = (0.9, 1.1)
#: Standard deviation of the Gaussian noise added after standardisation by :func:`augment`.
NOISE_SIGMA = 0.03
#: How log frames become model input: ``"image"`` standardises each image (zero mean, unit variance, the
#: default), ``"fixed"`` applies one affine map to every image, ``(x - FIXED_MEAN) / FIXED_STD``, so that the
#: absolute count level (Strong / Weak scattering, High background) reaches the model; ``"image+level"``
#: standardises each image and adds its mean level as a constant, ``(mean(x) - FIXED_MEAN) / FIXED_STD``;
#: ``"two-view"`` gives the model both ``"image"`` and ``"fixed"`` as two input views (channels).
NORMALISATIONS = ("image", "fixed", "image+level", "two-view")
#: what :func:`xsgpu.model.train_model` uses unless told otherwise (issue 14's 4th session: with the
#: original's diffuse tree the absolute level no longer gives a Diffuse low-q shortcut; cms-dev mAP
#: 0.532 -> 0.547 over two training seeds, without flips)
DEFAULT_NORMALISATION = "two-view"
#: the views (input channels before :func:`to_channels` folds pixels) of each normalisation
VIEWS = {"image": 1, "fixed": 1, "image+level": 1, "two-view": 2}
#: log-value offset and scale of the ``"fixed"`` normalisation (mean and std of the log values of 1,500
#: images of the default synthetic mix at 128 px: 52.9 and 72.8, i.e. about 8 counts)
FIXED_MEAN = 50.0
FIXED_STD = 75.0


@dataclass(frozen=True)
class Augmentation:
    """Parameters of :func:`augment` (recorded in a checkpoint's ``training.augmentation``).

    Attributes
    ----------
    exposure : (float, float)
        Range of the multiplicative exposure change (uniform) applied to the counts of lit pixels.
    noise_sigma : float
        Gaussian noise added after standardisation.
    flips : bool
        Random flips and transposition (the 8 symmetries of the square). Off by default: the detector's
        orientation is information (measured on cms-dev, docs/synth.md).
    shift : int
        Largest random translation in input pixels along each axis (0: none); vacated pixels are 0.
    poisson : float
        Share of images re-noised as Poisson counts at a lower exposure.
    poisson_log10_gain : (float, float)
        Range of log10 of that exposure factor g (uniform).

    Examples
    --------
    >>> Augmentation.parse("shift=4,poisson=0.5").shift
    4
    >>> Augmentation(shift=-1)
    Traceback (most recent call last):
    ...
    ValueError: The 'shift' parameter of Augmentation must be an int >= 0. Got -1 instead.
    """

    exposure: tuple = EXPOSURE_RANGE
    noise_sigma: float = NOISE_SIGMA
    flips: bool = False
    shift: int = 0
    poisson: float = 0.0
    poisson_log10_gain: tuple = (-1.5, 0.0)

    def __post_init__(self) -> None:
        lo, hi = self.exposure
        if not 0 < lo <= hi:
            raise ValueError(f"The 'exposure' parameter of Augmentation must be a (low, high) pair with "
                             f"0 < low <= high. Got {self.exposure!r} instead.")
        if not (isinstance(self.shift, int) and self.shift >= 0):
            raise ValueError(f"The 'shift' parameter of Augmentation must be an int >= 0. Got {self.shift!r} instead.")
        if not 0.0 <= self.poisson <= 1.0:
            raise ValueError(f"The 'poisson' parameter of Augmentation must be a probability in [0, 1]. "
                             f"Got {self.poisson!r} instead.")
        if not self.noise_sigma >= 0:
            raise ValueError(f"The 'noise_sigma' parameter of Augmentation must be >= 0. Got {self.noise_sigma!r} instead.")
        glo, ghi = self.poisson_log10_gain
        if not glo <= ghi:
            raise ValueError(f"The 'poisson_log10_gain' parameter of Augmentation must be a (low, high) pair with "
                             f"low <= high. Got {self.poisson_log10_gain!r} instead.")

    @classmethod
    def parse(cls, text: str) -> "Augmentation":
        """``"key=value,..."`` over the defaults; pairs are ``lo:hi`` (e.g. ``"exposure=0.3:3,shift=4"``)."""
        kw: dict = {}
        for item in filter(None, (t.strip() for t in text.split(","))):
            key, sep, value = item.partition("=")
            if not sep or key not in cls.__dataclass_fields__:
                raise ValueError(f"Augmentation option {item!r} is not key=value with a key in "
                                 f"{list(cls.__dataclass_fields__)}.")
            if key in ("exposure", "poisson_log10_gain"):
                kw[key] = tuple(float(v) for v in value.split(":"))
            elif key == "shift":
                kw[key] = int(value)
            elif key == "flips":
                kw[key] = value.lower() in ("1", "true", "yes")
            else:
                kw[key] = float(value)
        return cls(**kw)

    def to_dict(self) -> dict:
        """JSON-able form."""
        return asdict(self)


#: what :func:`augment` does unless told otherwise
DEFAULT_AUGMENTATION = Augmentation()


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


def normalise(x: torch.Tensor, mode: str = "image") -> torch.Tensor:
    """Log frames (N, H, W) -> model scale: per-image :func:`standardise` (``"image"``), the ``"fixed"`` affine
    map, or the standardised image plus its mean level (``"image+level"``); see :data:`NORMALISATIONS`.
    ``"two-view"`` returns (N, 2, H, W): the ``"image"`` and the ``"fixed"`` view."""
    if mode == "two-view":
        return torch.stack([standardise(x), (x - FIXED_MEAN) / FIXED_STD], dim=1)
    if mode == "image":
        return standardise(x)
    if mode == "fixed":
        return (x - FIXED_MEAN) / FIXED_STD
    if mode == "image+level":
        return standardise(x) + (x.mean(dim=(-2, -1), keepdim=True) - FIXED_MEAN) / FIXED_STD
    raise ValueError(f"The 'normalisation' parameter must be one of {', '.join(NORMALISATIONS)}. Got {mode!r} instead.")


def check_pixel_factor(pixel_factor: object, owner: str = "") -> int:
    """``pixel_factor`` as an int in 1..8, or a ValueError naming the parameter (of ``owner``, if given)."""
    if isinstance(pixel_factor, bool) or not isinstance(pixel_factor, int) or not 1 <= pixel_factor <= 8:
        of = f" of {owner}" if owner else ""
        raise ValueError(f"The 'pixel_factor' parameter{of} must be an int in 1..8 (1: one model pixel per input pixel). "
                         f"Got {pixel_factor!r} instead.")
    return pixel_factor


def input_channels(normalisation: str = "image", pixel_factor: int = 1, where: str | None = None) -> int:
    """Input channels of a model fed by :func:`to_model_input`: views x ``pixel_factor`` ** 2.

    Validates both options; ``where`` names the caller in the error (e.g. ``"train_model"``).
    """
    if normalisation not in VIEWS:
        of = f" of {where}" if where else ""
        raise ValueError(f"The 'normalisation' parameter{of} must be one of {', '.join(NORMALISATIONS)}. "
                         f"Got {normalisation!r} instead.")
    return VIEWS[normalisation] * check_pixel_factor(pixel_factor) ** 2


def to_channels(x: torch.Tensor, normalisation: str = "image", pixel_factor: int = 1) -> torch.Tensor:
    """Log frames (N, f S, f S) at the model's pixel size -> model input (N, views f^2, S, S).

    Each view of :func:`normalise` is folded by space-to-depth (``pixel_unshuffle``) with factor ``f =
    pixel_factor``: the f x f pixels of one model pixel become f^2 channels, so a network of spatial size S
    sees every pixel of an f S image at the cost of an S image (only its first convolution grows).
    """
    v = normalise(x, normalisation)
    if v.ndim == 3:
        v = v[:, None]
    return F.pixel_unshuffle(v, pixel_factor) if pixel_factor > 1 else v


def channels_to_image(c: torch.Tensor, pixel_factor: int = 1, views: int = 1) -> torch.Tensor:
    """The inverse fold of :func:`to_channels` for one input or its attribution (views f^2, S, S) -> (views, f S, f S)."""
    t = torch.as_tensor(c)
    if pixel_factor > 1:
        t = F.pixel_shuffle(t[None], pixel_factor)[0]
    if t.shape[0] != views:
        raise ValueError(f"expected {views} view(s) after unfolding; got {t.shape[0]} channels.")
    return t


def to_model_input(log_frames: torch.Tensor, size: int, normalisation: str = "image",
                   pixel_factor: int = 1) -> torch.Tensor:
    """Log-scaled frames (N, H, W), any float dtype -> normalised model input (N, C, size, size) float32.

    C is 1 for the default (``normalisation="image"``, ``pixel_factor=1``); see :func:`input_channels`. The
    frames are resized to ``size * pixel_factor`` first.
    """
    if log_frames.ndim != 3:
        raise ValueError(f"log_frames must have shape (N, H, W). Got shape {tuple(log_frames.shape)} instead.")
    return to_channels(resize(log_frames, size * pixel_factor), normalisation, pixel_factor)


def augment(log_frames: torch.Tensor, size: int, *, generator: torch.Generator | None = None,
            options: Augmentation = DEFAULT_AUGMENTATION, normalisation: str = "image",
            pixel_factor: int = 1) -> torch.Tensor:
    """Label-preserving random augmentation + :func:`to_model_input`.

    Parameters
    ----------
    log_frames : tensor, shape (N, H, W)
        Log-scaled frames (0 where masked or dark).
    size : int
        Model input size.
    generator : torch.Generator, optional
        Random source (on the tensor's device) for reproducible augmentation.
    options : Augmentation
        What to apply (the default is :data:`DEFAULT_AUGMENTATION`).
    normalisation : {"image", "fixed", "image+level", "two-view"}
        See :func:`normalise`.
    pixel_factor : int
        See :func:`to_channels`; the frames are resized to ``size * pixel_factor`` and augmented there.

    Returns
    -------
    tensor, shape (N, C, size, size), float32
        C from :func:`input_channels`.
    """
    x = resize(log_frames, size * pixel_factor)
    n, dev = x.shape[0], x.device

    def rand(*shape):
        return torch.rand(*shape, device=dev, generator=generator)

    lo, hi = options.exposure
    gain = lo + (hi - lo) * rand(n, 1, 1)
    offset = torch.log(gain) / math.log(LOG_BASE)
    x = torch.where(x > 0, x + offset, x)
    if options.poisson > 0:
        x = _poisson_renoise(x, options, rand, generator)
    if options.flips:
        flip_v, flip_h, transpose = (rand(n) < 0.5 for _ in range(3))
        x = torch.where(flip_v[:, None, None], x.flip(-2), x)
        x = torch.where(flip_h[:, None, None], x.flip(-1), x)
        x = torch.where(transpose[:, None, None], x.transpose(-2, -1), x)
    if options.shift > 0:
        x = _shift(x, options.shift, generator)
    x = to_channels(x, normalisation, pixel_factor)
    if options.noise_sigma > 0:
        x = x + options.noise_sigma * torch.randn(x.shape, device=dev, generator=generator)
    return x


def _poisson_renoise(x: torch.Tensor, options: Augmentation, rand, generator) -> torch.Tensor:
    """Re-draw the counts of a share of the images as Poisson(g I) / g (log values in and out)."""
    n = x.shape[0]
    pick = rand(n) < options.poisson
    glo, ghi = options.poisson_log10_gain
    g = 10 ** (glo + (ghi - glo) * rand(n, 1, 1))
    counts = torch.where(x > 0, torch.exp(x * math.log(LOG_BASE)), torch.zeros_like(x))
    drawn = torch.poisson(counts * g, generator=generator) / g
    renoised = torch.where(drawn > 0, torch.log(torch.clamp(drawn, min=1e-30)) / math.log(LOG_BASE),
                           torch.zeros_like(x)).clamp_min(0)
    return torch.where(pick[:, None, None], renoised, x)


def _shift(x: torch.Tensor, max_shift: int, generator) -> torch.Tensor:
    """Translate each image by up to ``max_shift`` pixels along each axis, filling with 0."""
    n, h, w = x.shape
    d = torch.randint(-max_shift, max_shift + 1, (n, 2), device=x.device, generator=generator)
    pad = F.pad(x, (max_shift, max_shift, max_shift, max_shift))
    rows = (torch.arange(h, device=x.device)[None, :] + max_shift - d[:, :1])  # (n, h)
    cols = (torch.arange(w, device=x.device)[None, :] + max_shift - d[:, 1:])  # (n, w)
    return pad[torch.arange(n, device=x.device)[:, None, None], rows[:, :, None], cols[:, None, :]]
