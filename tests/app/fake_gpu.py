"""A NumPy stand-in for CuPy and cuDF, so the app's GPU paths run on a machine without a GPU.

Not a GPU test: it checks the wiring of the ``--device gpu`` code (which arrays go to the "device", that no host
array is mixed into device arithmetic, that results come back with ``.get()``), and that those paths give the
CPU's numbers. The same test bodies run on real CuPy/cuDF under the ``gpu`` marker (``backend`` fixture of
``test_gpu_paths.py``).

What the stand-in enforces, as CuPy does: device arrays are their own type (``FakeDeviceArray``), arithmetic and
``cupy.*`` functions refuse host arrays (``TypeError``), ``cupy.searchsorted`` wants a device array of keys, and
``cupy.asarray`` copies. What it cannot catch: ``np.asarray(device_array)`` and indexing a host array with a
device array (CuPy raises on both; NumPy here does not).
"""
from __future__ import annotations

import sys
import types
from typing import Any

import numpy as np
import pandas as pd


class FakeDeviceArray(np.ndarray):
    """A "device" array: a NumPy subclass that refuses host operands and hands out host copies by ``.get()``."""

    def get(self) -> np.ndarray:
        return np.array(self.view(np.ndarray), copy=True)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        _refuse_host(inputs, f"{ufunc.__name__}")
        raw = [x.view(np.ndarray) if isinstance(x, FakeDeviceArray) else x for x in inputs]
        if "out" in kwargs:
            kwargs["out"] = tuple(o.view(np.ndarray) if isinstance(o, FakeDeviceArray) else o for o in kwargs["out"])
        return _wrap(getattr(ufunc, method)(*raw, **kwargs))

    def __array_function__(self, func, types_, args, kwargs):  # np.where(device, ...) as CuPy dispatches it
        _refuse_host(args, func.__name__)
        return _wrap(func(*_unwrap(args), **_unwrap(kwargs)))

    def __getitem__(self, key):
        keys = key if isinstance(key, tuple) else (key,)
        if any(type(k) is np.ndarray for k in keys):
            raise TypeError("FakeDeviceArray indexed by a host array: copy the index to the device first")
        return _wrap(self.view(np.ndarray)[_unwrap(key)])

    def __setitem__(self, key, value):
        _refuse_host((value,), "__setitem__")
        self.view(np.ndarray)[_unwrap(key)] = _unwrap(value)


def _refuse_host(args: Any, what: str) -> None:
    for a in args:
        if type(a) is np.ndarray and a.ndim > 0:
            raise TypeError(f"{what}: a host array among device operands (CuPy raises here too)")
        if isinstance(a, (list, tuple)):
            _refuse_host(a, what)


def _unwrap(x: Any) -> Any:
    if isinstance(x, FakeDeviceArray):
        return x.view(np.ndarray)
    if isinstance(x, tuple):
        return tuple(_unwrap(v) for v in x)
    if isinstance(x, list):
        return [_unwrap(v) for v in x]
    if isinstance(x, dict):
        return {k: _unwrap(v) for k, v in x.items()}
    return x


def _wrap(x: Any) -> Any:
    if isinstance(x, np.ndarray) and not isinstance(x, FakeDeviceArray):
        return x.view(FakeDeviceArray)
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    return x


def make_fake_cupy() -> types.ModuleType:
    """A ``cupy`` module over NumPy (see the module docstring)."""
    mod = types.ModuleType("cupy")
    mod.ndarray = FakeDeviceArray

    def asarray(a, dtype=None):
        return np.array(_unwrap(a), dtype=dtype, copy=True).view(FakeDeviceArray)

    def searchsorted(a, v, side="left", sorter=None):
        if not isinstance(a, FakeDeviceArray) or not isinstance(v, FakeDeviceArray):
            raise NotImplementedError("Only int or ndarray are supported for v")   # CuPy's own message
        return _wrap(np.searchsorted(a.view(np.ndarray), v.view(np.ndarray), side=side, sorter=sorter))

    def asnumpy(a):
        return a.get() if isinstance(a, FakeDeviceArray) else np.asarray(a)

    mod.asarray = mod.array = asarray
    mod.searchsorted = searchsorted
    mod.asnumpy = asnumpy
    mod.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1))

    def forward(name: str):
        func = getattr(np, name)
        if not callable(func) or isinstance(func, type):
            return func   # dtypes (cupy.float32 is numpy.float32), constants

        def call(*args, **kwargs):
            _refuse_host(args, f"cupy.{name}")
            return _wrap(func(*_unwrap(args), **_unwrap(kwargs)))
        return call

    mod.__getattr__ = forward
    return mod


def make_fake_cudf() -> types.ModuleType:
    """A ``cudf`` module whose ``DataFrame`` takes device columns and gives datashader a pandas frame."""
    mod = types.ModuleType("cudf")

    class DataFrame:   # a type, as libraries test isinstance(obj, cudf.DataFrame) once "cudf" is imported
        def __new__(cls, cols: dict, nan_as_null: bool = True):
            for k, v in cols.items():
                if not isinstance(v, FakeDeviceArray):
                    raise TypeError(f"cudf.DataFrame stand-in: column {k!r} is not on the device ({type(v).__name__})")
            return pd.DataFrame({k: v.get() for k, v in cols.items()})

    class Series:
        pass

    mod.DataFrame, mod.Series = DataFrame, Series
    return mod


def install(monkeypatch) -> None:
    """Put the stand-ins in ``sys.modules`` for one test (datashader and xarray imported first, so they keep
    their CPU code paths) and forget what the GPU check and the device copies cached."""
    import datashader  # noqa: F401
    import datashader.transfer_functions  # noqa: F401
    import xarray  # noqa: F401

    from panel_app.device import clear_mirror
    from xsgpu.backend import gpu_status

    monkeypatch.setitem(sys.modules, "cupy", make_fake_cupy())
    monkeypatch.setitem(sys.modules, "cudf", make_fake_cudf())
    gpu_status.cache_clear()
    clear_mirror()
