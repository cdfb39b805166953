"""The :class:`Frame`: one detector image as float32 intensities, an invalid-pixel mask and metadata.

Every reader in :mod:`xsgpu.io.readers` yields frames built by :func:`make_frame`, which applies the
masking conventions in one place:

* integer detector data (Pilatus TIFF/CBF, Eiger HDF5, ...): negative values are not counts. Pilatus
  marks module gaps with ``-1`` and bad pixels with ``-2``; every negative value is masked and the
  ``-1``/``-2`` counts are kept in the metadata (``n_gap_pixels``, ``n_bad_pixels``);
* unsigned 32-bit data: ``2**32 - 1`` and ``2**32 - 2`` are Pilatus/Eiger's ``-1``/``-2`` written
  unsigned (no 32-bit detector counts that high) and are masked the same way;
* ``mask_max=True`` (Eiger HDF5 convention): the largest value of an unsigned integer type
  (``2**16 - 1``, ``2**32 - 1``) marks gaps and dead pixels and is masked;
* floating-point data: NaN and +-inf are masked; negative floats are kept (they can be legitimate after
  background subtraction; :func:`xsgpu.preprocess.log_scale` maps them to 0 anyway);
* an explicit detector ``pixel_mask`` (True/non-zero = invalid) is OR-ed in;
* values beyond float32's range (float64 data above ~3.4e38) are masked too (``n_overflow_pixels``).

Masked pixels hold 0.0 in ``Frame.data``, so downstream code never sees a sentinel as an intensity.

Examples
--------
>>> import numpy as np
>>> from xsgpu.io.frame import make_frame
>>> f = make_frame(np.array([[5, -1], [-2, 7]], dtype=np.int32), source_uri="/d/a.tif")
>>> f.data.tolist(), f.mask.tolist()
([[5.0, 0.0], [0.0, 7.0]], [[False, True], [True, False]])
>>> f.metadata["n_gap_pixels"], f.metadata["n_bad_pixels"], f.quantitative
(1, 1, True)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xsgpu.errors import InputError

__all__ = [
    "Frame", "make_frame", "PILATUS_GAP", "PILATUS_BAD",
    "ReaderError", "UnsupportedFormatError", "EmptyFileError", "CorruptFileError", "FrameShapeError",
    "DatasetNotFoundError", "FrameLimitError",
]

PILATUS_GAP = -1
PILATUS_BAD = -2


class ReaderError(InputError):
    """A file cannot be turned into frames; the message names the file, what was expected and a remedy.

    The class name of the concrete subclass is what ``errors.parquet`` stores as ``error_type``.
    """


class UnsupportedFormatError(ReaderError):
    """Neither the extension nor the first bytes of the file identify a supported format."""


class EmptyFileError(ReaderError):
    """The file has 0 bytes (or holds no frames)."""


class CorruptFileError(ReaderError):
    """The file claims a supported format but its reader fails (truncated, corrupt, unreadable)."""


class FrameShapeError(ReaderError):
    """The image data is not 2-D (H, W) or a stack of 2-D frames (N, H, W), or is not numeric."""


class DatasetNotFoundError(ReaderError):
    """No image dataset/variable/key could be found (or the one asked for does not exist)."""


class FrameLimitError(ReaderError):
    """The header declares frames larger, or more frames, than :class:`xsgpu.io.limits.FrameLimits` allow.

    Raised before any pixel is read, so a tiny file declaring a huge shape costs no memory.
    """


@dataclass
class Frame:
    """One detector frame.

    Attributes
    ----------
    data : ndarray of float32, shape (H, W)
        Intensities; 0.0 where ``mask`` is True.
    mask : ndarray of bool, shape (H, W)
        True where a pixel is invalid (module gap, bad pixel, NaN, detector pixel mask).
    metadata : dict
        Header fields of the file (str keys, JSON-friendly values) plus reader facts (``format``,
        ``dtype``, ``dataset`` for HDF5, mask counts).
    source_uri : str
        Absolute path of the file the frame came from.
    frame : int
        Index of the frame inside its file (0 for single-image files).
    quantitative : bool
        False for pictures (PNG, JPEG, 8-bit TIFF): their grey levels are not detector counts.
    """

    data: np.ndarray
    mask: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)
    source_uri: str = ""
    frame: int = 0
    quantitative: bool = True

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)`` of the frame."""
        return tuple(self.data.shape)  # type: ignore[return-value]

    def __repr__(self) -> str:
        return (f"Frame(source_uri={self.source_uri!r}, frame={self.frame}, shape={self.shape}, "
                f"masked={int(self.mask.sum())}, quantitative={self.quantitative})")


def make_frame(
    raw: Any,
    *,
    source_uri: str,
    frame: int = 0,
    metadata: dict[str, Any] | None = None,
    quantitative: bool = True,
    pixel_mask: Any = None,
    mask_max: bool = False,
) -> Frame:
    """Convert one raw 2-D array into a :class:`Frame`, masking sentinels (see the module docstring).

    Parameters
    ----------
    raw : array_like, shape (H, W)
        The frame as stored (any integer, float or bool dtype).
    source_uri : str
        The file it came from (used in error messages).
    frame : int
        Index of the frame in its file.
    metadata : dict, optional
        Header fields; copied, then the mask counts and ``dtype`` are added.
    quantitative : bool
        False for pictures; pictures are not masked for negative values (they have none).
    pixel_mask : array_like of shape (H, W), optional
        Detector mask, non-zero = invalid.
    mask_max : bool
        Also mask the largest value of an unsigned integer dtype (Eiger convention).

    Raises
    ------
    FrameShapeError
        If ``raw`` is not 2-D or is empty, or ``pixel_mask`` has another shape.
    """
    arr = np.asarray(raw)
    if arr.ndim != 2 or 0 in arr.shape:
        raise FrameShapeError(
            f"{source_uri}: frame {frame} must be a non-empty 2-D image (H, W); got an array of shape "
            f"{arr.shape}. Hint: pick the image dataset/key explicitly (--h5-dataset) or convert the file.")
    if arr.dtype.kind not in "biuf":
        raise FrameShapeError(f"{source_uri}: frame {frame} has non-numeric dtype {arr.dtype}; expected "
                              "integer or floating-point intensities.")
    meta = dict(metadata or {})
    meta.setdefault("dtype", str(arr.dtype))
    if arr.dtype.kind == "b":
        arr = arr.astype(np.uint8)
    mask = np.zeros(arr.shape, dtype=bool)
    if arr.dtype.kind == "i" and quantitative:
        neg = arr < 0
        if neg.any():
            meta["n_gap_pixels"] = int((arr == PILATUS_GAP).sum())
            meta["n_bad_pixels"] = int((arr == PILATUS_BAD).sum())
            meta["n_negative_pixels"] = int(neg.sum())
            mask |= neg
        else:
            meta["n_gap_pixels"] = meta["n_bad_pixels"] = 0
    elif arr.dtype.kind == "u" and arr.dtype.itemsize == 4 and quantitative:
        top = np.iinfo(arr.dtype).max
        sentinel = arr >= top - 1
        meta["n_gap_pixels"] = int((arr == top).sum())
        meta["n_bad_pixels"] = int((arr == top - 1).sum())
        mask |= sentinel
    elif arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        meta["n_nonfinite_pixels"] = int(bad.sum())
        mask |= bad
    if mask_max and arr.dtype.kind == "u" and arr.dtype.itemsize >= 2:
        top = arr == np.iinfo(arr.dtype).max
        meta["n_max_value_pixels"] = int(top.sum())
        mask |= top
    if pixel_mask is not None:
        pm = np.asarray(pixel_mask)
        if pm.shape != arr.shape:
            raise FrameShapeError(f"{source_uri}: the detector pixel mask has shape {pm.shape}, the frame "
                                  f"{arr.shape}; they must match.")
        mask |= pm != 0
    with np.errstate(over="ignore", invalid="ignore"):
        data = arr.astype(np.float32, copy=True)
    if arr.dtype.itemsize > 4 or arr.dtype.kind in "iu":
        over = ~np.isfinite(data) & ~mask  # finite float64 values beyond float32's range became inf
        if over.any():
            meta["n_overflow_pixels"] = int(over.sum())
            mask |= over
    data[mask] = 0.0
    meta["n_masked_pixels"] = int(mask.sum())
    return Frame(data=data, mask=mask, metadata=meta, source_uri=str(source_uri), frame=int(frame),
                 quantitative=bool(quantitative))
