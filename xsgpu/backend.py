"""The one place that decides CPU or GPU.

Two axes (DESIGN.md "Backends"):

* creation: entry points take ``device="auto" | "cpu" | "gpu"`` and call :func:`resolve_device`;
  ``"auto"`` picks the GPU when CUDA is visible and CuPy imports, an explicit ``"gpu"`` that cannot be
  served raises :class:`GPUUnavailable` with the reason;
* compute: pure functions call :func:`namespace_of` on their inputs and return arrays of the same kind.

One policy for every layer: the GPU is "available" when CUDA is visible and CuPy imports
(:func:`gpu_status`). ``"auto"`` means the GPU only then, for torch too, so inference and embed never
disagree; ``XSGPU_DEVICE=cpu|gpu|auto`` overrides what ``"auto"`` resolves to. A GPU library that is
missing on a GPU node (cuML) is met with :func:`gpu_fallback`: ``"auto"`` falls back to the CPU with a
logged reason, ``"gpu"`` raises :class:`GPUUnavailable` with the remedy.

GPU libraries (cupy, cudf, cuml, torch.cuda) are imported lazily here (:func:`import_gpu`) and nowhere
at module top level.

Examples
--------
>>> import numpy as np
>>> from xsgpu.backend import namespace_of, resolve_device
>>> namespace_of(np.zeros(3)) is np
True
>>> resolve_device("cpu")
'cpu'
"""
from __future__ import annotations

import functools
import importlib
import logging
import os
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, Literal

import numpy as np

from xsgpu.errors import BackendError, XsgpuError

__all__ = [
    "Device", "DeviceRequest", "Backend", "GPUUnavailable", "UnsupportedOnGPU", "DEVICE_ENV",
    "resolve_device", "get_backend", "namespace_of", "to_host", "gpu_status", "torch_device",
    "import_gpu", "import_cuml", "gpu_fallback",
]

log = logging.getLogger(__name__)

Device = Literal["cpu", "gpu"]
DeviceRequest = Literal["auto", "cpu", "gpu"]

DEVICE_ENV = "XSGPU_DEVICE"
"""Environment variable that overrides what ``device="auto"`` resolves to (``cpu``, ``gpu`` or ``auto``)."""


class GPUUnavailable(BackendError):
    """An explicit ``device="gpu"`` request that this machine cannot serve."""


class UnsupportedOnGPU(XsgpuError, ValueError):
    """A GPU implementation cannot handle this request; the CPU twin can.

    ``device="auto"`` callers log the reason and fall back to CPU; ``device="gpu"`` callers re-raise.
    """


@functools.lru_cache(maxsize=1)
def gpu_status() -> tuple[bool, str]:
    """Return ``(available, reason)`` for the GPU compute stack (CUDA visible and CuPy importable)."""
    try:
        cupy = importlib.import_module("cupy")
    except Exception as exc:  # ImportError or a broken CUDA install
        return False, f"cupy is not importable ({exc.__class__.__name__}: {exc}); install the [gpu] extra"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return False, f"CUDA runtime error: {exc}"
    if n < 1:
        return False, "no CUDA device is visible"
    return True, f"{n} CUDA device(s) visible"


def _check_request(device: str, *, allowed: tuple[str, ...] = ("auto", "cpu", "gpu")) -> None:
    if device not in allowed:
        raise ValueError(f"The 'device' parameter must be 'auto', 'cpu' or 'gpu'. Got {device!r} instead.")


def _auto_request() -> str:
    """What ``"auto"`` stands for: ``$XSGPU_DEVICE`` when set, else ``"auto"``."""
    env = os.environ.get(DEVICE_ENV, "").strip().lower()
    if not env:
        return "auto"
    if env not in ("auto", "cpu", "gpu"):
        raise ValueError(f"The {DEVICE_ENV} environment variable must be 'auto', 'cpu' or 'gpu'. "
                         f"Got {env!r} instead. Hint: unset it or set {DEVICE_ENV}=cpu.")
    return env


def resolve_device(device: str = "auto") -> Device:
    """Resolve a device request to ``"cpu"`` or ``"gpu"``.

    Parameters
    ----------
    device : {"auto", "cpu", "gpu"}
        ``"auto"`` picks the GPU when available (or what ``$XSGPU_DEVICE`` says); ``"gpu"`` raises when
        it is not available.

    Raises
    ------
    ValueError
        For an unknown request (or an unknown ``$XSGPU_DEVICE``).
    GPUUnavailable
        For ``"gpu"`` on a machine without a usable GPU stack; the message gives the reason.
    """
    _check_request(device)
    if device == "auto":
        device = _auto_request()
        if device != "auto":
            log.debug("device='auto' taken as %r from $%s", device, DEVICE_ENV)
    if device == "cpu":
        return "cpu"
    ok, reason = gpu_status()
    if device == "gpu" and not ok:
        raise GPUUnavailable(f"device='gpu' was requested but {reason}. Hint: use device='cpu' or 'auto'.")
    if device == "auto":
        log.debug("device='auto' resolved to %s (%s)", "gpu" if ok else "cpu", reason)
    return "gpu" if ok else "cpu"


def import_gpu(module: str, *, remedy: str = "install the [gpu] extra") -> ModuleType:
    """Import a GPU library (``cupy``, ``cudf``, ``cuml.manifold`` ...) lazily.

    Raises
    ------
    GPUUnavailable
        If it cannot be imported, naming the module, the cause and the remedy.
    """
    try:
        return importlib.import_module(module)
    except Exception as exc:  # ImportError or a broken CUDA install
        raise GPUUnavailable(f"{module} is not importable ({exc.__class__.__name__}: {exc}). "
                             f"Hint: {remedy} or use device='cpu'.") from exc


def import_cuml(submodule: str) -> ModuleType:
    """Import ``cuml.<submodule>`` (GPU nodes only); :class:`GPUUnavailable` with the remedy if missing."""
    return import_gpu(f"cuml.{submodule}", remedy="install the [gpu] extra (cuml-cu13)")


def gpu_fallback(device: str, what: str, check: Callable[[], Any]) -> tuple[Device, str | None]:
    """Resolve ``device`` for ``what``, where the GPU path also needs ``check()`` to pass.

    The one fallback policy: ``check`` raises :class:`GPUUnavailable` or :class:`UnsupportedOnGPU`
    when the GPU path cannot serve (cuML missing, a parameter cuML lacks). ``"auto"`` then falls back
    to the CPU and logs the reason; an explicit ``"gpu"`` re-raises.

    Parameters
    ----------
    device : {"auto", "cpu", "gpu"}
    what : str
        Who asks (for the log line), e.g. ``"suspicious_labels"``.
    check : callable
        Called only when the GPU would be used.

    Returns
    -------
    device : {"cpu", "gpu"}
    fallback_reason : str or None
        Why ``"auto"`` fell back to the CPU although a GPU is there; ``None`` otherwise.
    """
    dev = resolve_device(device)
    if dev == "cpu":
        return "cpu", None
    try:
        check()
    except (GPUUnavailable, UnsupportedOnGPU) as exc:
        if device == "gpu" or _auto_request() == "gpu":
            raise
        log.warning("%s: falling back to CPU: %s", what, exc)
        return "cpu", str(exc)
    return "gpu", None


@dataclass(frozen=True)
class Backend:
    """Array and dataframe modules for one resolved device.

    Attributes
    ----------
    device : {"cpu", "gpu"}
    """

    device: Device

    @property
    def xp(self) -> ModuleType:
        """``numpy`` on CPU, ``cupy`` on GPU."""
        return np if self.device == "cpu" else importlib.import_module("cupy")

    @property
    def xdf(self) -> ModuleType:
        """``pandas`` on CPU, ``cudf`` on GPU."""
        return importlib.import_module("pandas" if self.device == "cpu" else "cudf")

    @property
    def torch_device(self) -> str:
        """The torch device string (``"cpu"`` or ``"cuda"``)."""
        return "cpu" if self.device == "cpu" else "cuda"


def get_backend(device: str = "auto") -> Backend:
    """Return the :class:`Backend` for a device request (see :func:`resolve_device`)."""
    return Backend(resolve_device(device))


def torch_device(device: str = "auto") -> str:
    """Resolve a device request for torch: ``"cuda"`` or ``"cpu"``.

    ``"auto"`` follows :func:`resolve_device` (the one GPU test), so inference runs on CUDA exactly when
    embed and metrics run on the GPU; a node where torch sees CUDA but CuPy is missing uses the CPU under
    ``"auto"`` and logs why. An explicit ``"gpu"`` (or ``"cuda"``) needs only ``torch.cuda``.
    """
    _check_request(device, allowed=("auto", "cpu", "gpu", "cuda"))
    if device == "cuda":
        device = "gpu"
    if device == "auto":
        device = _auto_request()
    if device == "cpu":
        return "cpu"
    import torch

    cuda = torch.cuda.is_available()
    if device == "gpu":
        if not cuda:
            raise GPUUnavailable("device='gpu' was requested but torch sees no CUDA device. "
                                 "Hint: use device='cpu'.")
        return "cuda"
    if resolve_device("auto") == "gpu" and cuda:
        return "cuda"
    if cuda:
        log.warning("torch sees a CUDA device but device='auto' uses the CPU: %s. Pass device='gpu' to "
                    "run torch on CUDA anyway.", gpu_status()[1])
    return "cpu"


def namespace_of(*arrays: Any) -> ModuleType:
    """Return the array module (numpy or cupy) of the given arrays.

    CuPy is only considered if it is already imported (``"cupy" in sys.modules``), so a CPU process
    never imports it. Mixed NumPy/CuPy inputs raise ``TypeError``.
    """
    kinds = set()
    for a in arrays:
        if a is None:
            continue
        if "cupy" in sys.modules and isinstance(a, sys.modules["cupy"].ndarray):
            kinds.add("cupy")
        else:
            kinds.add("numpy")
    if len(kinds) > 1:
        raise TypeError("Arrays mix NumPy and CuPy; move them to one device first (xsgpu.backend.to_host).")
    if kinds == {"cupy"}:
        return sys.modules["cupy"]
    return np


def to_host(x: Any) -> Any:
    """Return a NumPy array (or pandas object) for a CuPy array (or cudf object); others unchanged."""
    if "cupy" in sys.modules and isinstance(x, sys.modules["cupy"].ndarray):
        return x.get()
    if hasattr(x, "to_pandas") and type(x).__module__.startswith("cudf"):
        return x.to_pandas()
    return x
