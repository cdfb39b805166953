"""The one place that decides CPU or GPU.

Two axes (DESIGN.md "Backends"):

* creation: entry points take ``device="auto" | "cpu" | "gpu"`` and call :func:`resolve_device`;
  ``"auto"`` picks the GPU when CUDA is visible and CuPy imports, an explicit ``"gpu"`` that cannot be
  served raises :class:`GPUUnavailable` with the reason;
* compute: pure functions call :func:`namespace_of` on their inputs and return arrays of the same kind.

GPU libraries (cupy, cudf, cuml, torch.cuda) are imported lazily here and nowhere at module top level.

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
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

import numpy as np

from xsgpu.errors import BackendError, XsgpuError

__all__ = [
    "Device", "DeviceRequest", "Backend", "GPUUnavailable", "UnsupportedOnGPU",
    "resolve_device", "get_backend", "namespace_of", "to_host", "gpu_status", "torch_device",
]

log = logging.getLogger(__name__)

Device = Literal["cpu", "gpu"]
DeviceRequest = Literal["auto", "cpu", "gpu"]


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


def resolve_device(device: str = "auto") -> Device:
    """Resolve a device request to ``"cpu"`` or ``"gpu"``.

    Parameters
    ----------
    device : {"auto", "cpu", "gpu"}
        ``"auto"`` picks the GPU when available; ``"gpu"`` raises when it is not.

    Raises
    ------
    ValueError
        For an unknown request.
    GPUUnavailable
        For ``"gpu"`` on a machine without a usable GPU stack; the message gives the reason.
    """
    if device not in ("auto", "cpu", "gpu"):
        raise ValueError(f"The 'device' parameter must be 'auto', 'cpu' or 'gpu'. Got {device!r} instead.")
    if device == "cpu":
        return "cpu"
    ok, reason = gpu_status()
    if device == "gpu" and not ok:
        raise GPUUnavailable(f"device='gpu' was requested but {reason}. Hint: use device='cpu' or 'auto'.")
    if device == "auto":
        log.debug("device='auto' resolved to %s (%s)", "gpu" if ok else "cpu", reason)
    return "gpu" if ok else "cpu"


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
    """Resolve a device request for torch: ``"cuda"`` if torch sees a GPU and it was asked for.

    Unlike :func:`resolve_device` this does not need CuPy, only ``torch.cuda``.
    """
    if device not in ("auto", "cpu", "gpu", "cuda"):
        raise ValueError(f"The 'device' parameter must be 'auto', 'cpu' or 'gpu'. Got {device!r} instead.")
    if device == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if device in ("gpu", "cuda"):
        raise GPUUnavailable("device='gpu' was requested but torch sees no CUDA device. Hint: use device='cpu'.")
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
