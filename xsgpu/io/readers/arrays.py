"""NumPy ``.npy`` and ``.npz`` files: an (H, W) image or an (N, H, W) stack.

``.npy`` is memory-mapped, so a frame is read without loading the stack. In ``.npz`` archives the
array is the one named by ``dataset`` (``--h5-dataset``), else the first of ``detector_image``,
``data``, ``image``, ``images``, ``frames`` present, else the only array, else the only image-like
array (2-D/3-D integer or float, its name not containing ``mask``) beside masks and 1-D/scalar
extras (``im`` + ``mask``). A mask member beside the image (a bool or integer array named ``*mask*``
of the frame's (H, W), or of the stack's (N, H, W)) is applied with the detector convention that
non-zero marks an invalid pixel (fabio, pyFAI); a mask that would hide more than half of a frame is
applied all the same and logged, since it may follow the opposite convention. Counting frames reads only
the ``.npy`` headers inside the archive. Pickled object arrays are refused (``allow_pickle=False``).

Scalar members named like a header field (``exposure``, ``wavelength``, ``energy``, ``sample_name`` ...;
:mod:`xsgpu.io.readers.headers`) give the frames' ``metadata["hdr"]``.

Declared shapes are checked against :class:`~xsgpu.io.limits.FrameLimits` and against the bytes the
file (or archive member) actually holds before anything is read: a 128-byte ``.npy`` header claiming
10**12 elements is refused at the scan. ``.npz`` members are read frame by frame from the archive
stream, so a compressed member that inflates to gigabytes costs one frame of memory.
"""
from __future__ import annotations

import logging
import os
import zipfile
from typing import IO, Iterable, Iterator

import numpy as np

from xsgpu.io.frame import CorruptFileError, DatasetNotFoundError, Frame, FrameShapeError, make_frame
from xsgpu.io.limits import DEFAULT_LIMITS, FrameLimits
from xsgpu.io.readers._common import FileInfo, select_frames, stack_length
from xsgpu.io.readers.headers import guarded_header, is_header_candidate, standard_header

__all__ = ["scan_npy", "read_npy", "scan_npz", "read_npz", "NPZ_KEYS"]

NPZ_KEYS = ("detector_image", "data", "image", "images", "frames")

log = logging.getLogger(__name__)


def _npy_header_full(fh: IO[bytes]) -> tuple[tuple[int, ...], np.dtype, bool]:
    """(shape, dtype, fortran_order) of a ``.npy`` stream, leaving ``fh`` at the first data byte."""
    version = np.lib.format.read_magic(fh)
    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = reader(fh)
    return tuple(int(s) for s in shape), np.dtype(dtype), bool(fortran)


def _npy_header(fh) -> tuple[tuple[int, ...], np.dtype]:
    shape, dtype, _fortran = _npy_header_full(fh)
    return shape, dtype


def _check_data_size(path: str, what: str, shape: tuple[int, ...], dtype: np.dtype, available: int) -> None:
    """Refuse a header that declares more data bytes than the file (or archive member) holds."""
    need = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if need > available:
        raise CorruptFileError(
            f"{path}: {what} declares shape {shape} of {dtype} ({need:,} bytes of data), but only {available:,} "
            "bytes follow the header. The file is truncated or its header is corrupt; copy or export it again.")


def _check_dtype(path: str, what: str, dtype: np.dtype) -> None:
    if dtype.kind not in "biuf":
        raise DatasetNotFoundError(f"{path}: {what} has dtype {dtype}; expected integer or floating-point "
                                   "intensities.")


def _check_npy(path: str, limits: FrameLimits) -> tuple[tuple[int, ...], np.dtype, int]:
    """Header checks of a ``.npy`` file: dtype, dimensions, limits, data size. Returns (shape, dtype, n)."""
    with open(path, "rb") as fh:
        shape, dtype, _fortran = _npy_header_full(fh)
        offset = fh.tell()
    _check_dtype(path, "the array", dtype)
    n = stack_length(shape, path, what="the array")
    limits.check_frame(shape, path, what=f"frames (array shape {shape})")
    limits.check_count(n, path, shape=shape)
    _check_data_size(path, "the array", shape, dtype, os.path.getsize(path) - offset)
    return shape, dtype, n


def scan_npy(path: str, *, limits: FrameLimits = DEFAULT_LIMITS) -> FileInfo:
    """Read the ``.npy`` header: shape and dtype, checked against ``limits`` and the file size."""
    shape, _dtype, n = _check_npy(path, limits)
    return FileInfo(path=path, format="npy", n_frames=n, frame_shape=tuple(shape[-2:]), detail="npy")


def read_npy(path: str, *, frames: Iterable[int] | None = None,
             limits: FrameLimits = DEFAULT_LIMITS) -> Iterator[Frame]:
    """Yield the selected frames of a ``.npy`` image or stack (header checked first, then memory-mapped)."""
    _check_npy(path, limits)
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


def _check_member(path: str, key: str, limits: FrameLimits) -> None:
    """Limits and declared-size checks of the ``.npz`` member ``key`` (headers and zip directory only)."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(key + ".npy")
        with zf.open(info) as fh:
            shape, dtype, _fortran = _npy_header_full(fh)
            offset = fh.tell()
    n = stack_length(shape, path, what=f"array {key!r}")
    limits.check_frame(shape, path, what=f"frames (array {key!r}, shape {shape})")
    limits.check_count(n, path, shape=shape)
    _check_data_size(path, f"array {key!r}", shape, dtype, int(info.file_size) - offset)


def _member_frames(path: str, key: str, chosen: list[int], limits: FrameLimits) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(index, frame)`` for ``chosen`` frames of member ``key``, one frame in memory at a time.

    The member is streamed (a compressed member is inflated as it is read, never as a whole); a
    Fortran-ordered stack, whose frames are not contiguous, is read whole only within
    ``limits.max_frame_pixels``.
    """
    with zipfile.ZipFile(path) as zf, zf.open(key + ".npy") as fh:
        shape, dtype, fortran = _npy_header_full(fh)
        start = fh.tell()
        hw = shape[-2:]
        if fortran and len(shape) == 3:
            total = int(np.prod(shape, dtype=np.int64))
            if total > limits.max_frame_pixels:
                raise FrameShapeError(
                    f"{path}: array {key!r} is a Fortran-ordered stack {shape}; its frames are not contiguous, "
                    f"so it would be loaded whole ({total:,} pixels > max_frame_pixels = "
                    f"{limits.max_frame_pixels:,}). Hint: re-save it C-ordered (np.ascontiguousarray).")
            whole = np.frombuffer(_read_exact(fh, total * dtype.itemsize, path, key), dtype).reshape(shape, order="F")
            for i in chosen:
                yield i, whole[i]
            return
        nbytes = int(np.prod(hw, dtype=np.int64)) * dtype.itemsize
        for i in chosen:
            fh.seek(start + i * nbytes)  # forward: inflates and discards; backward: restarts the stream
            buf = _read_exact(fh, nbytes, path, key)
            yield i, np.frombuffer(buf, dtype).reshape(hw, order="F" if fortran else "C")


def _read_exact(fh: IO[bytes], nbytes: int, path: str, key: str) -> bytes:
    buf = fh.read(nbytes)
    if len(buf) != nbytes:
        raise CorruptFileError(f"{path}: array {key!r} ends after {len(buf):,} of {nbytes:,} bytes of a frame; the "
                               "archive is truncated or corrupt. Copy or export it again.")
    return buf


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


def scan_npz(path: str, *, dataset: str | None = None, limits: FrameLimits = DEFAULT_LIMITS) -> FileInfo:
    """Pick the image array and read its shape from the header inside the archive (checked against ``limits``)."""
    return _scan_members(path, _npz_members(path), dataset, limits)


def _scan_members(path: str, members: dict[str, tuple[tuple[int, ...], np.dtype]], dataset: str | None,
                  limits: FrameLimits) -> FileInfo:
    key = _choose(path, members, dataset)
    shape, dtype = members[key]
    _check_dtype(path, f"array {key!r}", dtype)
    n = stack_length(shape, path, what=f"array {key!r}")
    _check_member(path, key, limits)
    return FileInfo(path=path, format="npz", n_frames=n, frame_shape=tuple(shape[-2:]), dataset=key,
                    detail="npz")


def _mask_member(members: dict[str, tuple[tuple[int, ...], np.dtype]], image_key: str) -> str | None:
    """The member holding the image's pixel mask: named ``*mask*``, bool/int, shaped like a frame or the stack."""
    image_shape = members[image_key][0]
    hw = tuple(image_shape[-2:])
    found = [k for k, (shape, dtype) in members.items()
             if k != image_key and "mask" in k.lower() and dtype.kind in "biu"
             and (tuple(shape) == hw or tuple(shape) == tuple(image_shape))]
    return found[0] if len(found) == 1 else None


def _npz_header(path: str, members: dict[str, tuple[tuple[int, ...], np.dtype]]) -> dict:
    """Standard header fields from scalar members named like them (``exposure``, ``energy``, ``sample_name``)."""
    keys = [k for k, (shape, dtype) in members.items() if is_header_candidate(k, shape, dtype.kind)]
    if not keys:
        return {}
    with np.load(path, allow_pickle=False) as archive:
        pairs = [(k, archive[k].reshape(()).item()) for k in keys]
    return standard_header(pairs)


def read_npz(path: str, *, dataset: str | None = None, frames: Iterable[int] | None = None,
             limits: FrameLimits = DEFAULT_LIMITS) -> Iterator[Frame]:
    """Yield the selected frames of the image array of a ``.npz`` archive (streamed, one frame at a time).

    A pixel mask stored beside the image (see the module docstring) is applied; its key is in each
    frame's metadata (``mask_key``).
    """
    members = _npz_members(path)
    info = _scan_members(path, members, dataset, limits)
    chosen = select_frames(frames, info.n_frames, path)
    mask_key = _mask_member(members, info.dataset)
    meta: dict = {"format": "npz", "key": info.dataset}
    hdr = guarded_header(_npz_header, path, members, path=path)
    if hdr:
        meta["hdr"] = hdr
    images = _member_frames(path, info.dataset, chosen, limits)
    if mask_key is None:
        masks: Iterator[np.ndarray | None] = iter([None] * len(chosen))
    else:
        _check_member(path, mask_key, limits)
        meta["mask_key"] = mask_key
        if len(members[mask_key][0]) == 2:  # one mask for every frame
            shared = next(_member_frames(path, mask_key, [0], limits))[1] != 0
            masks = iter([shared] * len(chosen))
        else:  # one mask per frame, streamed beside the frames
            masks = (m != 0 for _i, m in _member_frames(path, mask_key, chosen, limits))
    for (i, arr), pixel_mask in zip(images, masks):
        if pixel_mask is not None and pixel_mask.mean() > 0.5:
            log.warning("%s: the mask %r marks %.0f %% of frame %d invalid (non-zero = invalid); if it marks the "
                        "valid pixels instead, invert it (np.logical_not) and save again", path, mask_key,
                        100 * pixel_mask.mean(), i)
        yield make_frame(arr, source_uri=path, frame=i, metadata=meta, pixel_mask=pixel_mask)
