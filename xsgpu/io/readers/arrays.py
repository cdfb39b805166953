"""NumPy ``.npy`` and ``.npz`` files: an (H, W) image or an (N, H, W) stack.

``.npy`` is memory-mapped, so a frame is read without loading the stack. In ``.npz`` archives the
array is the one named by ``dataset`` (``--h5-dataset``), else the first of ``detector_image``,
``data``, ``image``, ``images``, ``frames`` present, else the only array, else the only image-like
array (2-D/3-D integer or float, its name not containing ``mask``) beside masks and 1-D/scalar
extras (``im`` + ``mask``). Counting frames reads only
the ``.npy`` headers inside the archive. Pickled object arrays are refused (``allow_pickle=False``).
"""
from __future__ import annotations

import zipfile
from typing import Iterable, Iterator

import numpy as np

from xsgpu.io.frame import DatasetNotFoundError, Frame, make_frame
from xsgpu.io.readers._common import FileInfo, select_frames, stack_length

__all__ = ["scan_npy", "read_npy", "scan_npz", "read_npz", "NPZ_KEYS"]

NPZ_KEYS = ("detector_image", "data", "image", "images", "frames")


def _npy_header(fh) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(fh)
    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _fortran, dtype = reader(fh)
    return tuple(shape), np.dtype(dtype)


def _check_dtype(path: str, what: str, dtype: np.dtype) -> None:
    if dtype.kind not in "biuf":
        raise DatasetNotFoundError(f"{path}: {what} has dtype {dtype}; expected integer or floating-point "
                                   "intensities.")


def scan_npy(path: str) -> FileInfo:
    """Read the ``.npy`` header: shape and dtype."""
    with open(path, "rb") as fh:
        shape, dtype = _npy_header(fh)
    _check_dtype(path, "the array", dtype)
    n = stack_length(shape, path, what="the array")
    return FileInfo(path=path, format="npy", n_frames=n, frame_shape=tuple(shape[-2:]), detail="npy")


def read_npy(path: str, *, frames: Iterable[int] | None = None) -> Iterator[Frame]:
    """Yield the selected frames of a ``.npy`` image or stack."""
    arr = np.load(path, mmap_mode="r", allow_pickle=False)
    n = stack_length(arr.shape, path, what="the array")
    for i in select_frames(frames, n, path):
        yield make_frame(np.array(arr[i] if arr.ndim == 3 else arr), source_uri=path, frame=i,
                         metadata={"format": "npy"})


def _npz_members(path: str) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    out = {}
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            if not name.endswith(".npy"):
                continue
            with zf.open(name) as fh:
                out[name[:-4]] = _npy_header(fh)
    return out


def _choose(path: str, members: dict[str, tuple[tuple[int, ...], np.dtype]], dataset: str | None) -> str:
    if dataset is not None:
        if dataset not in members:
            raise DatasetNotFoundError(f"{path}: the array {dataset!r} asked for with --h5-dataset is not in "
                                       f"this .npz; it holds {sorted(members)}.")
        return dataset
    for key in NPZ_KEYS:
        if key in members:
            return key
    if len(members) == 1:
        return next(iter(members))
    # one image-like array (numeric, 2-D or 3-D) beside masks (bool, or named *mask*) and 1-D/scalar extras
    images = [k for k, (shape, dtype) in members.items()
              if len(shape) in (2, 3) and dtype.kind in "iuf" and "mask" not in k.lower()]
    if len(images) == 1:
        return images[0]
    raise DatasetNotFoundError(
        f"{path}: cannot tell which array holds the image: none of {list(NPZ_KEYS)} among "
        f"{sorted(members) or 'no arrays'}, and {len(images)} image-like (2-D/3-D numeric, not a mask) arrays "
        f"{sorted(images)}. Hint: name it with --h5-dataset KEY.")


def scan_npz(path: str, *, dataset: str | None = None) -> FileInfo:
    """Pick the image array and read its shape from the header inside the archive."""
    members = _npz_members(path)
    key = _choose(path, members, dataset)
    shape, dtype = members[key]
    _check_dtype(path, f"array {key!r}", dtype)
    n = stack_length(shape, path, what=f"array {key!r}")
    return FileInfo(path=path, format="npz", n_frames=n, frame_shape=tuple(shape[-2:]), dataset=key,
                    detail="npz")


def read_npz(path: str, *, dataset: str | None = None, frames: Iterable[int] | None = None) -> Iterator[Frame]:
    """Yield the selected frames of the image array of a ``.npz`` archive."""
    info = scan_npz(path, dataset=dataset)
    with np.load(path, allow_pickle=False) as z:
        arr = z[info.dataset]
    for i in select_frames(frames, info.n_frames, path):
        yield make_frame(arr[i] if arr.ndim == 3 else arr, source_uri=path, frame=i,
                         metadata={"format": "npz", "key": info.dataset})
