"""Pieces shared by the reader modules: :class:`FileInfo`, frame selection, JSON-friendly metadata."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from xsgpu.io.frame import FrameShapeError, ReaderError

__all__ = ["FileInfo", "stack_length", "select_frames", "jsonable", "header_dict", "is_mask_name", "warn_if_inverted"]

log = logging.getLogger(__name__)

#: longest string kept from a header value (full headers can hold kilobytes of calibration text)
MAX_TEXT = 2048


@dataclass(frozen=True)
class FileInfo:
    """What a cheap scan learns about a file, without decoding every frame.

    Attributes
    ----------
    path : str
        Absolute path.
    format : str
        Reader key: ``tiff``, ``hdf5``, ``mat``, ``npy``, ``npz``, ``picture`` or ``fabio``.
    n_frames : int
        Number of frames the file yields.
    frame_shape : tuple of int
        ``(H, W)`` of the first frame.
    quantitative : bool
        False for pictures (grey levels, not counts).
    dataset : str or None
        HDF5 dataset path, MATLAB variable or ``.npz`` key the frames come from.
    detail : str
        Sub-format (``edf``, ``cbf``, ``mat-v5``, ``mat-v7.3``, ``png`` ...).
    linked_files : tuple of str
        Absolute paths of other files whose frames this one reads (the data files of an Eiger master
        file); an ingest that also lists them reads them once, through this file.
    """

    path: str
    format: str
    n_frames: int
    frame_shape: tuple[int, int]
    quantitative: bool = True
    dataset: str | None = None
    detail: str = ""
    linked_files: tuple[str, ...] = ()


def stack_length(shape: Sequence[int], path: str, *, what: str = "image data", frames_last: bool = False) -> int:
    """Number of frames of an array of ``shape``: 1 for (H, W), N for a stack.

    The stack axis is the first one (N, H, W), or the last one (H, W, N) with ``frames_last``
    (MATLAB convention).

    Raises
    ------
    FrameShapeError
        For 0-, 1- or >= 4-D shapes and for empty frames.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) == 2:
        n, hw = 1, shape
    elif len(shape) == 3:
        n, hw = (shape[2], shape[:2]) if frames_last else (shape[0], shape[1:])
    else:
        layout = "(H, W, N)" if frames_last else "(N, H, W)"
        raise FrameShapeError(
            f"{path}: {what} has {len(shape)} dimension(s), shape {shape}; expected a 2-D image (H, W) or a "
            f"stack of frames {layout}. Hint: name the image dataset/key with --h5-dataset, or reshape and "
            "re-save the data.")
    if 0 in hw:
        raise FrameShapeError(f"{path}: {what} has empty frames of shape {hw}; expected H, W >= 1.")
    return n


def select_frames(frames: Iterable[int] | None, n: int, path: str) -> list[int]:
    """Validate a frame selection against ``n`` frames (``None`` = all), keeping its order."""
    if frames is None:
        return list(range(n))
    chosen = [int(i) for i in frames]
    bad = [i for i in chosen if not 0 <= i < n]
    if bad:
        raise ReaderError(f"{path}: frame index(es) {bad[:5]} out of range; the file has {n} frame(s) "
                          f"(0..{n - 1}).")
    return chosen


def jsonable(value: Any) -> Any:
    """Turn a header value into something ``json.dumps`` accepts, or ``None`` to drop it."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value[:MAX_TEXT]
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, np.ndarray):
        if value.size == 1:
            return jsonable(value.reshape(()).item())
        if value.size <= 16 and value.dtype.kind in "biufSU":
            return [jsonable(v) for v in value.ravel().tolist()]
        return None
    if isinstance(value, (list, tuple)) and len(value) <= 16:
        return [jsonable(v) for v in value]
    return None


def header_dict(items: Iterable[tuple[Any, Any]]) -> dict[str, Any]:
    """JSON-friendly ``{str: value}`` from header pairs, dropping what :func:`jsonable` cannot keep."""
    out: dict[str, Any] = {}
    for k, v in items:
        j = jsonable(v)
        if j is not None:
            out[str(k)] = j
    return out


def is_mask_name(name: str) -> bool:
    """Whether an array/variable/dataset name marks a pixel mask (``mask``, ``pixel_mask``, ``MaskBad`` ...)."""
    return "mask" in name.rsplit("/", 1)[-1].lower()


def warn_if_inverted(path: str, mask_name: str, pixel_mask: np.ndarray, frame: int) -> None:
    """Log a mask that hides more than half of a frame: it may mark the *valid* pixels instead."""
    share = float(np.mean(pixel_mask)) if pixel_mask.size else 0.0
    if share > 0.5:
        log.warning("%s: the mask %r marks %.0f %% of frame %d invalid (non-zero = invalid); if it marks the "
                    "valid pixels instead, invert it (np.logical_not) and save again", path, mask_name,
                    100 * share, frame)
