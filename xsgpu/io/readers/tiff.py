"""TIFF (tifffile): Pilatus 32-bit detector images, multi-page stacks, and 8-bit/RGB pictures.

* Every full-resolution page is a frame (a multi-page TIFF gives one frame per page); reduced-resolution
  pages (previews some writers add, NewSubfileType bit 0) are skipped.
* Pilatus writes signed 32-bit counts with ``-1`` in module gaps and ``-2`` at bad pixels, and its
  header as ``# key value`` lines in the ImageDescription tag; the lines are parsed into
  ``metadata["header"]`` and the sentinels masked by :func:`xsgpu.io.frame.make_frame`.
* 8-bit, bilevel, palette and RGB(A) TIFFs are pictures: RGB is converted to grey (ITU-R 601 luma) and
  the frame is flagged ``quantitative=False``.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Iterator

import numpy as np

from xsgpu.io.frame import CorruptFileError, Frame, FrameShapeError, make_frame
from xsgpu.io.readers._common import MAX_TEXT, FileInfo, select_frames

__all__ = ["scan_tiff", "read_tiff", "parse_pilatus_header"]

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_HEADER_LINE = re.compile(r"^#\s*([A-Za-z_][\w\-]*)[:\s]\s*(.*)$")


def parse_pilatus_header(text: str) -> dict[str, str]:
    """Parse Pilatus ``# Key value`` header lines (ImageDescription) into a dict.

    Examples
    --------
    >>> parse_pilatus_header("# Detector: PILATUS 300K\\r\\n# Exposure_time 0.097 s\\r\\n")
    {'Detector': 'PILATUS 300K', 'Exposure_time': '0.097 s'}
    """
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _HEADER_LINE.match(line.strip())
        if m:
            out[m.group(1)] = m.group(2).strip()[:MAX_TEXT]
    return out


def _is_picture(page: Any) -> bool:
    dtype = np.dtype(page.dtype)
    return dtype.itemsize == 1 or dtype.kind == "b" or page.samplesperpixel > 1 or int(page.photometric) == 3


def _page_hw(page: Any, path: str, index: int) -> tuple[int, int]:
    shape = tuple(page.shape)
    if len(shape) == 3 and page.samplesperpixel in (3, 4) and shape[-1] == page.samplesperpixel:
        shape = shape[:2]
    if len(shape) != 2 or 0 in shape:
        raise FrameShapeError(f"{path}: TIFF page {index} has shape {tuple(page.shape)}; expected a 2-D image "
                              "(H, W) or an RGB picture (H, W, 3). Hint: re-save each image as its own page.")
    return shape  # type: ignore[return-value]


def _frame_pages(tf: Any, path: str) -> list[int]:
    """Indices of the full-resolution pages (reduced-resolution previews are not frames)."""
    n = len(tf.pages)
    pages = [0] if n == 1 else [i for i in range(n) if not getattr(tf.pages[i], "is_reduced", False)]
    if not pages:
        raise CorruptFileError(f"{path}: the TIFF has no (full-resolution) pages; it is truncated or corrupt. "
                               "Copy or export it again.")
    return pages


def scan_tiff(path: str) -> FileInfo:
    """Count the pages and check the first one (cheap: no pixel data is decoded)."""
    import tifffile

    with tifffile.TiffFile(path) as tf:
        if len(tf.pages) == 0:
            raise CorruptFileError(f"{path}: the TIFF has no pages (no image directory); it is truncated or "
                                   "corrupt. Copy or export it again.")
        pages = _frame_pages(tf, path)
        n = len(pages)
        first = tf.pages[pages[0]]
        hw = _page_hw(first, path, 0)
        picture = _is_picture(first)
    return FileInfo(path=path, format="tiff", n_frames=n, frame_shape=hw, quantitative=not picture,
                    detail="tiff-picture" if picture else "tiff")


def read_tiff(path: str, *, frames: Iterable[int] | None = None) -> Iterator[Frame]:
    """Yield the selected pages of a TIFF as frames (all pages when ``frames`` is None)."""
    import tifffile

    with tifffile.TiffFile(path) as tf:
        pages = _frame_pages(tf, path)
        chosen = select_frames(frames, len(pages), path)
        for i in chosen:
            page = tf.pages[pages[i]]
            _page_hw(page, path, i)
            arr = page.asarray()
            picture = _is_picture(page)
            meta: dict[str, Any] = {"format": "tiff", "dtype": str(arr.dtype)}
            desc = page.description or ""
            if desc:
                meta["description"] = desc[:MAX_TEXT]
                header = parse_pilatus_header(desc)
                if header:
                    meta["header"] = header
                    if "pilatus" in desc.lower():
                        meta["detector"] = "Pilatus"
            if arr.ndim == 3:  # RGB(A) picture -> grey
                meta["converted_from"] = f"{arr.shape[-1]}-channel colour"
                arr = arr[..., :3].astype(np.float32) @ _LUMA
            yield make_frame(arr, source_uri=path, frame=i, metadata=meta, quantitative=not picture)
