"""TIFF (tifffile): Pilatus 32-bit detector images, multi-page stacks, and 8-bit/RGB pictures.

* Every full-resolution page is a frame (a multi-page TIFF gives one frame per page); reduced-resolution
  pages (previews some writers add, NewSubfileType bit 0) are skipped.
* Pilatus writes signed 32-bit counts with ``-1`` in module gaps and ``-2`` at bad pixels, and its
  header as ``# key value`` lines in the ImageDescription tag; the lines are parsed into
  ``metadata["header"]`` and the sentinels masked by :func:`xsgpu.io.frame.make_frame`.
* The standard header fields (exposure time, timestamp, sample name, wavelength/energy, distance,
  beam centre; :mod:`xsgpu.io.readers.headers`) are read from the ImageDescription (Pilatus lines,
  a JSON object, ``key=value`` lines) and the DateTime tag into ``metadata["hdr"]`` (a page without
  a description of its own gets the first page's).
* 8-bit, bilevel, palette and RGB(A) TIFFs are pictures: RGB is converted to grey (ITU-R 601 luma) and
  the frame is flagged ``quantitative=False``.
* Every page's declared shape is checked against :class:`~xsgpu.io.limits.FrameLimits` before its
  pixels are decoded; a page chain that points past the end of the file (a truncated multi-page TIFF,
  which tifffile would silently shorten) is a :class:`~xsgpu.io.frame.CorruptFileError`.
"""
from __future__ import annotations

import json
import os
import re
import struct
from typing import Any, Iterable, Iterator

import numpy as np

from xsgpu.io.frame import CorruptFileError, Frame, FrameShapeError, make_frame
from xsgpu.io.limits import DEFAULT_LIMITS, FrameLimits
from xsgpu.io.readers._common import MAX_TEXT, FileInfo, select_frames
from xsgpu.io.readers.headers import guarded_header, standard_header, text_header_pairs

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


def tiff_header(page: Any) -> dict[str, Any]:
    """The standard header fields (:mod:`xsgpu.io.readers.headers`) of one TIFF page.

    From the ImageDescription tag (a JSON object as tifffile writes ``metadata=``, Pilatus ``# key
    value`` lines, or ``key=value`` / ``key: value`` lines as ImageJ and others write) and the
    ``DateTime`` tag (timestamp when the description has none).
    """
    pairs: list[tuple[str, Any]] = []
    desc = page.description or ""
    text = desc.strip()
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            pairs += [(str(k), v) for k, v in parsed.items() if not isinstance(v, (dict, list)) or len(v) == 1]
    elif text:
        pairs += list(text_header_pairs(text).items())
    tag = page.tags.get("DateTime")
    if tag is not None and tag.value:
        pairs.append(("DateTime", str(tag.value)))
    return standard_header(pairs)


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


def _check_chain(tf: Any, path: str, n: int) -> None:
    """Raise if the last page's next-IFD offset is not 0: the chain goes on past what could be read.

    tifffile logs such a broken chain (an offset beyond the end of the file, a corrupted tag list) and
    returns the pages before it, so a truncated multi-page TIFF would otherwise lose its last pages.
    """
    fmt = tf.tiff
    fh = tf.filehandle
    last = int(tf.pages[n - 1].offset)
    size = os.path.getsize(path)
    try:
        fh.seek(last)
        tagno = struct.unpack(fmt.tagnoformat, fh.read(fmt.tagnosize))[0]
        fh.seek(last + fmt.tagnosize + tagno * fmt.tagsize)
        raw = fh.read(fmt.offsetsize)
        nxt = int(struct.unpack(fmt.offsetformat, raw)[0]) if len(raw) == fmt.offsetsize else -1
    except (struct.error, OSError, ValueError):
        nxt = -1
    if nxt != 0:
        where = "is cut off" if nxt < 0 else f"points to offset {nxt:,} (the file has {size:,} bytes)"
        raise CorruptFileError(
            f"{path}: the TIFF's page chain is broken after page {n - 1}: the next-page pointer {where}, so "
            f"pages after the {n} readable one(s) are lost. The file is truncated or corrupt; copy or export "
            "it again.")


def _frame_pages(tf: Any, path: str) -> list[int]:
    """Indices of the full-resolution pages (reduced-resolution previews are not frames)."""
    tf.pages.cache = True  # pages are visited more than once (chain, limits, frames): parse each once
    n = len(tf.pages)
    if n:
        _check_chain(tf, path, n)
    pages = [0] if n == 1 else [i for i in range(n) if not getattr(tf.pages[i], "is_reduced", False)]
    if not pages:
        raise CorruptFileError(f"{path}: the TIFF has no (full-resolution) pages; it is truncated or corrupt. "
                               "Copy or export it again.")
    return pages


def scan_tiff(path: str, *, limits: FrameLimits = DEFAULT_LIMITS) -> FileInfo:
    """Count the pages and check every page's declared shape (cheap: no pixel data is decoded).

    Raises
    ------
    FrameLimitError
        A page larger than ``limits.max_frame_pixels``, or more pages than ``limits.max_frames_per_file``.
    CorruptFileError
        No pages, or a broken page chain (truncated file).
    """
    import tifffile

    with tifffile.TiffFile(path) as tf:
        if len(tf.pages) == 0:
            raise CorruptFileError(f"{path}: the TIFF has no pages (no image directory); it is truncated or "
                                   "corrupt. Copy or export it again.")
        pages = _frame_pages(tf, path)
        n = len(pages)
        limits.check_count(n, path)
        for k, index in enumerate(pages):
            limits.check_frame(_page_hw(tf.pages[index], path, k), path, what=f"page {k}")
        first = tf.pages[pages[0]]
        hw = _page_hw(first, path, 0)
        picture = _is_picture(first)
    return FileInfo(path=path, format="tiff", n_frames=n, frame_shape=hw, quantitative=not picture,
                    detail="tiff-picture" if picture else "tiff")


def read_tiff(path: str, *, frames: Iterable[int] | None = None,
              limits: FrameLimits = DEFAULT_LIMITS) -> Iterator[Frame]:
    """Yield the selected pages of a TIFF as frames (all pages when ``frames`` is None).

    Each page's declared shape is checked against ``limits`` before it is decoded.
    """
    import tifffile

    with tifffile.TiffFile(path) as tf:
        pages = _frame_pages(tf, path)
        limits.check_count(len(pages), path)
        chosen = select_frames(frames, len(pages), path)
        first_hdr = guarded_header(tiff_header, tf.pages[pages[0]], path=path)  # writers often describe a stack on its first page only
        for i in chosen:
            page = tf.pages[pages[i]]
            limits.check_frame(_page_hw(page, path, i), path, what=f"page {i}")
            arr = page.asarray()
            picture = _is_picture(page)
            meta: dict[str, Any] = {"format": "tiff", "dtype": str(arr.dtype)}
            hdr = first_hdr if pages[i] == pages[0] else (guarded_header(tiff_header, page, path=path) or first_hdr)
            if hdr:
                meta["hdr"] = hdr
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
