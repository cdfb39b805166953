"""MATLAB ``.mat`` files: v4/v5/v7 through ``scipy.io``, v7.3 (an HDF5 file) through h5py.

The variable holding the frames is the one named by ``dataset`` (``--h5-dataset``), else
``detector_image`` (what the synthetic x-ray dataset of Wang et al. stores), else the only numeric
variable with 2 or 3 dimensions. MATLAB arrays are (H, W) images or (H, W, N) stacks (frames on the
last axis). v7.3 files store arrays column-major, so h5py sees them with reversed axes; the reader
reverses them back, so both versions give the same frames.

Declared shapes are checked against :class:`~xsgpu.io.limits.FrameLimits` from the variable headers
before anything is loaded. ``scipy.io`` loads a v5 variable whole, so a v5 stack must fit
``max_frame_pixels`` as a whole (H x W x N); v7.3 stacks are read frame by frame.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator

import numpy as np

from xsgpu.io.frame import DatasetNotFoundError, Frame, FrameLimitError, make_frame
from xsgpu.io.limits import DEFAULT_LIMITS, FrameLimits
from xsgpu.io.readers._common import FileInfo, select_frames, stack_length

__all__ = ["scan_mat", "read_mat", "is_mat73"]

PREFERRED_KEY = "detector_image"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def is_mat73(path: str) -> bool:
    """True when the file is HDF5-based (MATLAB v7.3: 512-byte text header, then HDF5)."""
    with open(path, "rb") as fh:
        head = fh.read(520)
    return head[:8] == _HDF5_MAGIC or head[512:520] == _HDF5_MAGIC


def _choose(path: str, variables: dict[str, tuple[tuple[int, ...], str]], dataset: str | None) -> str:
    """Pick the variable; ``variables`` maps name -> (MATLAB-order shape, dtype kind)."""
    if dataset is not None:
        if dataset not in variables:
            raise DatasetNotFoundError(f"{path}: the variable {dataset!r} asked for with --h5-dataset does not "
                                       f"exist; the file holds {sorted(variables)}.")
        return dataset
    if PREFERRED_KEY in variables:
        return PREFERRED_KEY
    numeric = [k for k, (shape, kind) in variables.items() if kind in "biuf" and len(shape) in (2, 3)]
    if len(numeric) == 1:
        return numeric[0]
    raise DatasetNotFoundError(
        f"{path}: cannot tell which variable holds the image: no {PREFERRED_KEY!r}, and "
        f"{'no' if not numeric else len(numeric)} numeric 2-D/3-D variables ({sorted(numeric)}). "
        "Hint: name it with --h5-dataset VARIABLE.")


def _v73_variables(f: Any) -> dict[str, tuple[tuple[int, ...], str]]:
    import h5py

    out = {}
    for k, obj in f.items():
        if isinstance(obj, h5py.Dataset) and not k.startswith("#"):
            out[k] = (tuple(reversed(obj.shape)), obj.dtype.kind)
    return out


def _v5_variables(path: str) -> dict[str, tuple[tuple[int, ...], str]]:
    import scipy.io

    kinds = {"double": "f", "single": "f", "logical": "b"}
    out = {}
    for name, shape, cls in scipy.io.whosmat(path):
        kind = kinds.get(cls, "i" if "int" in cls else "?")
        out[name] = (tuple(shape), kind)
    return out


def scan_mat(path: str, *, dataset: str | None = None, limits: FrameLimits = DEFAULT_LIMITS) -> FileInfo:
    """Find the image variable and count its frames (variable headers only; checked against ``limits``)."""
    if is_mat73(path):
        from xsgpu.io.readers.hdf5 import _h5py

        with _h5py().File(path, "r") as f:
            variables = _v73_variables(f)
        detail = "mat-v7.3"
    else:
        variables = _v5_variables(path)
        detail = "mat-v5"
    key = _choose(path, variables, dataset)
    shape, kind = variables[key]
    if kind not in "biuf":
        raise DatasetNotFoundError(f"{path}: variable {key!r} is not numeric; expected an image of counts.")
    n = stack_length(shape, path, what=f"variable {key!r}", frames_last=True)
    limits.check_frame(shape[:2], path, what=f"frames (variable {key!r}, shape {tuple(shape)})")
    limits.check_count(n, path, shape=shape)
    if detail == "mat-v5" and n > 1 and int(np.prod(shape, dtype=np.int64)) > limits.max_frame_pixels:
        raise FrameLimitError(
            f"{path}: variable {key!r} is a MATLAB v5 stack of shape {tuple(shape)}; scipy.io loads it whole "
            f"({int(np.prod(shape, dtype=np.int64)):,} pixels), above the limit max_frame_pixels = "
            f"{limits.max_frame_pixels:,}. Hint: save it with `save -v7.3` (read frame by frame), or raise the "
            "limit (setting max_frame_pixels, `xsgpu ingest --max-frame-pixels N`).")
    return FileInfo(path=path, format="mat", n_frames=n, frame_shape=tuple(shape[:2]), dataset=key,
                    detail=detail)


def read_mat(path: str, *, dataset: str | None = None, frames: Iterable[int] | None = None,
             limits: FrameLimits = DEFAULT_LIMITS) -> Iterator[Frame]:
    """Yield the selected frames of the image variable (its declared shape checked first)."""
    info = scan_mat(path, dataset=dataset, limits=limits)
    chosen = select_frames(frames, info.n_frames, path)
    meta = {"format": "mat", "variable": info.dataset, "version": info.detail}
    if info.detail == "mat-v7.3":
        from xsgpu.io.readers.hdf5 import _h5py

        with _h5py().File(path, "r") as f:
            ds = f[info.dataset]
            for i in chosen:
                # stored reversed: MATLAB (H, W, N) appears as (N, W, H); (H, W) as (W, H)
                arr = (ds[i] if ds.ndim == 3 else ds[()]).T
                yield make_frame(arr, source_uri=path, frame=i, metadata=meta)
        return
    import scipy.io

    arr = np.asarray(scipy.io.loadmat(path, variable_names=[info.dataset])[info.dataset])
    for i in chosen:
        yield make_frame(arr[:, :, i] if arr.ndim == 3 else arr, source_uri=path, frame=i, metadata=meta)
