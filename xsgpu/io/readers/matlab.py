"""MATLAB ``.mat`` files: v4/v5/v7 through ``scipy.io``, v7.3 (an HDF5 file) through h5py.

The variable holding the frames is the one named by ``dataset`` (``--h5-dataset``), else
``detector_image`` (what the synthetic x-ray dataset of Wang et al. stores), else the only image-like
variable: numeric (integer or floating point), 2 or 3 dimensions with H, W > 1 (MATLAB stores scalars
and vectors as 1 x 1 and 1 x n matrices), its name not containing ``mask``; logical arrays, masks and
1-D/scalar extras (``q``, ``exposure``) beside it do not count. Several
image-like variables are refused, listing them (name one with ``--h5-dataset``). A mask variable beside
the image (logical or integer, named ``*mask*``, shaped like one frame (H, W) or like the stack
(H, W, N)) is applied with the detector convention that non-zero marks an invalid pixel, as in
:mod:`xsgpu.io.readers.arrays`. MATLAB arrays are (H, W) images or (H, W, N) stacks (frames on the
last axis). v7.3 files store arrays column-major, so h5py sees them with reversed axes; the reader
reverses them back, so both versions give the same frames.

Scalar and text variables named like a header field (``exposure``, ``wavelength``, ``energy``,
``sample_name`` ...; :mod:`xsgpu.io.readers.headers`) give the frames' ``metadata["hdr"]``.

Declared shapes are checked against :class:`~xsgpu.io.limits.FrameLimits` from the variable headers
before anything is loaded. ``scipy.io`` loads a v5 variable whole, so a v5 stack must fit
``max_frame_pixels`` as a whole (H x W x N); v7.3 stacks are read frame by frame.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator

import numpy as np

from xsgpu.io.frame import DatasetNotFoundError, Frame, FrameLimitError, make_frame
from xsgpu.io.limits import DEFAULT_LIMITS, FrameLimits
from xsgpu.io.readers._common import FileInfo, is_mask_name, select_frames, stack_length, warn_if_inverted
from xsgpu.io.readers.headers import guarded_header, is_header_candidate, standard_header

__all__ = ["scan_mat", "read_mat", "is_mat73"]

PREFERRED_KEY = "detector_image"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def is_mat73(path: str) -> bool:
    """True when the file is HDF5-based (MATLAB v7.3: 512-byte text header, then HDF5)."""
    with open(path, "rb") as fh:
        head = fh.read(520)
    return head[:8] == _HDF5_MAGIC or head[512:520] == _HDF5_MAGIC


def _image_like(variables: dict[str, tuple[tuple[int, ...], str]]) -> list[str]:
    """Variables that may hold the frames: integer/float, 2-D or 3-D, not named ``*mask*``.

    MATLAB stores scalars and vectors as 1 x 1 and 1 x n matrices, so an image needs H, W > 1.
    """
    return sorted(k for k, (shape, kind) in variables.items()
                  if kind in "iuf" and len(shape) in (2, 3) and min(shape[:2]) > 1 and not is_mask_name(k))


def _choose(path: str, variables: dict[str, tuple[tuple[int, ...], str]], dataset: str | None) -> str:
    """Pick the variable; ``variables`` maps name -> (MATLAB-order shape, dtype kind)."""
    if dataset is not None:
        if dataset not in variables:
            raise DatasetNotFoundError(f"{path}: the variable {dataset!r} asked for with --h5-dataset does not "
                                       f"exist; the file holds {sorted(variables)}.")
        return dataset
    if PREFERRED_KEY in variables:
        return PREFERRED_KEY
    images = _image_like(variables)
    if len(images) == 1:
        return images[0]
    numeric = sorted(k for k, (shape, kind) in variables.items() if kind in "biuf" and len(shape) in (2, 3))
    if not images and len(numeric) == 1:  # a lone logical image (or one named *mask*) is still the image
        return numeric[0]
    raise DatasetNotFoundError(
        f"{path}: cannot tell which variable holds the image: no {PREFERRED_KEY!r} among "
        f"{sorted(variables) or 'no variables'}, and {len(images)} image-like (2-D/3-D numeric, not a mask) "
        f"variables {images}. Hint: name it with --h5-dataset VARIABLE.")


def _mask_variable(variables: dict[str, tuple[tuple[int, ...], str]], image_key: str) -> str | None:
    """The variable holding the image's pixel mask: ``*mask*``, logical/integer, shaped like a frame or the stack."""
    shape = tuple(variables[image_key][0])
    found = [k for k, (s, kind) in variables.items()
             if k != image_key and is_mask_name(k) and kind in "biu" and tuple(s) in (shape[:2], shape)]
    return found[0] if len(found) == 1 else None


def _v73_variables(f: Any) -> dict[str, tuple[tuple[int, ...], str]]:
    import h5py

    out = {}
    for k, obj in f.items():
        if isinstance(obj, h5py.Dataset) and not k.startswith("#"):
            cls = obj.attrs.get("MATLAB_class", b"")
            char = (cls.decode() if isinstance(cls, bytes) else str(cls)) == "char"
            out[k] = (tuple(reversed(obj.shape)), "char" if char else obj.dtype.kind)
    return out


def _v5_variables(path: str) -> dict[str, tuple[tuple[int, ...], str]]:
    import scipy.io

    kinds = {"double": "f", "single": "f", "logical": "b", "char": "char"}
    out = {}
    for name, shape, cls in scipy.io.whosmat(path):
        kind = kinds.get(cls, "i" if "int" in cls else "?")
        out[name] = (tuple(shape), kind)
    return out


def _variables(path: str) -> tuple[dict[str, tuple[tuple[int, ...], str]], str]:
    """``({name: (MATLAB-order shape, dtype kind)}, "mat-v5" | "mat-v7.3")`` from the variable headers."""
    if is_mat73(path):
        from xsgpu.io.readers.hdf5 import _h5py

        with _h5py().File(path, "r") as f:
            return _v73_variables(f), "mat-v7.3"
    return _v5_variables(path), "mat-v5"


def _scan(path: str, variables: dict[str, tuple[tuple[int, ...], str]], detail: str, dataset: str | None,
          limits: FrameLimits) -> FileInfo:
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


def scan_mat(path: str, *, dataset: str | None = None, limits: FrameLimits = DEFAULT_LIMITS) -> FileInfo:
    """Find the image variable and count its frames (variable headers only; checked against ``limits``)."""
    variables, detail = _variables(path)
    return _scan(path, variables, detail, dataset, limits)


def _mat_header(path: str, variables: dict[str, tuple[tuple[int, ...], str]], detail: str) -> dict[str, Any]:
    """Standard header fields from scalar or text variables named like them (``exposure``, ``sample_name`` ...)."""
    keys = [k for k, (shape, kind) in variables.items() if is_header_candidate(k, shape, kind)]
    if not keys:
        return {}
    pairs: list[tuple[str, Any]] = []
    if detail == "mat-v7.3":
        from xsgpu.io.readers.hdf5 import _h5py

        with _h5py().File(path, "r") as f:
            for k in keys:
                arr = np.asarray(f[k][()])
                text = variables[k][1] == "char"
                pairs.append((k, "".join(map(chr, arr.ravel().tolist())) if text else arr.ravel()[0].item()))
    else:
        import scipy.io

        loaded = scipy.io.loadmat(path, variable_names=keys)
        for k in keys:
            arr = np.asarray(loaded[k])
            pairs.append((k, str(arr.ravel()[0]) if arr.dtype.kind in "US" else arr.ravel()[0].item()))
    return standard_header(pairs)


def _frame_mask(mask: Any, i: int, v73: bool) -> np.ndarray:
    """Frame ``i`` of a mask variable: shared (H, W) or per frame (H, W, N), in (H, W) order."""
    if v73:  # stored reversed: (W, H) or (N, W, H)
        return np.asarray(mask[i] if mask.ndim == 3 else mask[()]).T != 0
    return np.asarray(mask[:, :, i] if mask.ndim == 3 else mask) != 0


def read_mat(path: str, *, dataset: str | None = None, frames: Iterable[int] | None = None,
             limits: FrameLimits = DEFAULT_LIMITS) -> Iterator[Frame]:
    """Yield the selected frames of the image variable (its declared shape checked first).

    A pixel mask variable beside the image (module docstring) is applied; its name is in each frame's
    metadata (``mask_key``).
    """
    variables, detail = _variables(path)
    info = _scan(path, variables, detail, dataset, limits)
    chosen = select_frames(frames, info.n_frames, path)
    mask_key = _mask_variable(variables, info.dataset)
    meta: dict[str, Any] = {"format": "mat", "variable": info.dataset, "version": info.detail}
    if mask_key is not None:
        meta["mask_key"] = mask_key
    hdr = guarded_header(_mat_header, path, variables, detail, path=path)
    if hdr:
        meta["hdr"] = hdr

    def frame_of(arr: np.ndarray, i: int, pixel_mask: np.ndarray | None) -> Frame:
        if pixel_mask is not None:
            warn_if_inverted(path, mask_key, pixel_mask, i)  # type: ignore[arg-type]
        return make_frame(arr, source_uri=path, frame=i, metadata=meta, pixel_mask=pixel_mask)

    if info.detail == "mat-v7.3":
        from xsgpu.io.readers.hdf5 import _h5py

        with _h5py().File(path, "r") as f:
            ds = f[info.dataset]
            mask = f[mask_key] if mask_key is not None else None
            for i in chosen:
                # stored reversed: MATLAB (H, W, N) appears as (N, W, H); (H, W) as (W, H)
                arr = (ds[i] if ds.ndim == 3 else ds[()]).T
                yield frame_of(arr, i, None if mask is None else _frame_mask(mask, i, True))
        return
    import scipy.io

    names = [info.dataset] + ([mask_key] if mask_key is not None else [])
    loaded = scipy.io.loadmat(path, variable_names=names)
    arr = np.asarray(loaded[info.dataset])
    mask = np.asarray(loaded[mask_key]) if mask_key is not None else None
    for i in chosen:
        yield frame_of(arr[:, :, i] if arr.ndim == 3 else arr, i, None if mask is None else _frame_mask(mask, i, False))
