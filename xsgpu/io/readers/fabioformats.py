"""EDF, CBF and the other detector formats fabio reads (MarCCD, Mar345, Bruker, ADSC/d*TREK, ...).

Each frame of a multi-frame file (EDF stacks) is a frame. miniCBF from Pilatus holds signed counts
with ``-1``/``-2`` in gaps and bad pixels, masked by :func:`xsgpu.io.frame.make_frame`; NaN in float
EDF images is masked. The file header (key/value strings) goes to ``metadata["header"]``, its
standard fields (exposure time, timestamp, sample name, wavelength/energy, distance, beam centre;
:mod:`xsgpu.io.readers.headers`) to ``metadata["hdr"]``, per frame of a multi-frame EDF.
Portable anymap pictures (``.pnm``/``.pgm``/``.pbm``) are read by fabio but flagged
``quantitative=False``.

The frame shape and count are taken from fabio's header-only open and checked against
:class:`~xsgpu.io.limits.FrameLimits` before the pixel data is decoded (formats whose header fabio
cannot read alone are decoded first and checked after).
"""
from __future__ import annotations

import mmap
from typing import Any, Iterable, Iterator

import numpy as np

from xsgpu.io.frame import CorruptFileError, Frame, FrameShapeError, make_frame
from xsgpu.io.limits import DEFAULT_LIMITS, FrameLimits
from xsgpu.io.readers._common import FileInfo, header_dict, select_frames
from xsgpu.io.readers.headers import guarded_header, standard_header, text_header_pairs

__all__ = ["scan_fabio", "read_fabio", "FABIO_EXTENSIONS"]

#: extensions routed to fabio (formats the other readers do not cover); ``.gz``/``.bz2`` variants too
FABIO_EXTENSIONS = frozenset({
    "edf", "cor", "cbf", "img", "mccd", "mar2300", "mar1200", "mar1600", "mar2000", "mar3450", "mar3000",
    "mar2400", "mar1800", "sfrm", "gfrm", "dm3", "kcd", "spe", "f2d", "mrc", "esperanto", "esper", "msk",
    "spr", "pnm", "pgm", "pbm", "xsd", "mpa",
})
_PICTURE_CLASSES = {"PnmImage"}


#: the bytes that open the binary section of a CBF file (fabio's ``CbfImage.STARTER``)
_CBF_BINARY_START = b"\x0c\x1a\x04\xd5"


def _check_cbf(path: str) -> None:
    """Refuse an uncompressed CBF without a binary section (fabio reads such a file forever).

    fabio looks for the binary section by reading on past the end of the file, so a CBF truncated
    before it (or with the marker corrupted) hangs both ``fabio.openheader`` and ``fabio.open``.
    """
    with open(path, "rb") as fh:
        if not fh.read(6).startswith(b"###CBF") and not path.lower().endswith(".cbf"):
            return
        fh.seek(0)
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            if mm.find(_CBF_BINARY_START) < 0:
                raise CorruptFileError(
                    f"{path}: a CBF file without its binary section (no start marker); it is truncated or "
                    "corrupt. Copy or export it again.")


def fabio_header(header: Any) -> dict[str, Any]:
    """The standard header fields (:mod:`xsgpu.io.readers.headers`) of a fabio header dict.

    Its own keys first (EDF ``ExposureTime``, ``SampleDistance``, ``WaveLength``, ``Center_1``...),
    then the lines of multi-line values (CBF ``_array_data.header_contents``: Pilatus ``# key value``).
    """
    items = [(str(k), v) for k, v in dict(header).items()]
    pairs: list[tuple[str, Any]] = [(k, v) for k, v in items if "\n" not in str(v)]
    for _k, v in items:
        if "\n" in str(v):
            pairs += list(text_header_pairs(str(v)).items())
    return standard_header(pairs)


def _open(path: str):
    import fabio

    _check_cbf(path)
    return fabio.open(path)


def _fmt(img: Any) -> str:
    name = type(img).__name__
    return name[:-5].lower() if name.endswith("Image") else name.lower()


def _hw(data: Any, path: str, index: int) -> tuple[int, int]:
    shape = tuple(np.shape(data))
    if len(shape) != 2 or 0 in shape:
        raise FrameShapeError(f"{path}: frame {index} has shape {shape}; expected a 2-D image (H, W).")
    return shape  # type: ignore[return-value]


def _header_only(path: str):
    """fabio's header-only open (no pixel decoding), or None where it cannot give the frame shape."""
    import fabio

    _check_cbf(path)
    try:
        img = fabio.openheader(path)
    except Exception:  # noqa: BLE001 - fall back to a full open, which reports the real problem
        return None
    shape = getattr(img, "shape", None)
    if shape is None or len(shape) != 2 or 0 in shape:
        img.close()
        return None
    return img


def _check_header(path: str, limits: FrameLimits) -> None:
    """Check the shape and frame count of fabio's header-only open, where it gives them."""
    img = _header_only(path)
    if img is None:
        return
    try:
        limits.check_frame(img.shape, path)
        limits.check_count(int(getattr(img, "nframes", 1) or 1), path)
    finally:
        img.close()


def scan_fabio(path: str, *, limits: FrameLimits = DEFAULT_LIMITS) -> FileInfo:
    """Count the frames from the header (fabio ``openheader``), or open the file fully where needed."""
    img = _header_only(path)
    try:
        if img is None:
            img = _open(path)
            hw = _hw(img.data, path, 0)
        else:
            hw = tuple(int(v) for v in img.shape)
        limits.check_frame(hw, path)
        n = int(getattr(img, "nframes", 1) or 1)
        limits.check_count(n, path)
        fmt = _fmt(img)
        picture = type(img).__name__ in _PICTURE_CLASSES
    finally:
        if img is not None:
            img.close()
    return FileInfo(path=path, format="fabio", n_frames=n, frame_shape=hw, quantitative=not picture, detail=fmt)


def read_fabio(path: str, *, frames: Iterable[int] | None = None,
               limits: FrameLimits = DEFAULT_LIMITS) -> Iterator[Frame]:
    """Yield the selected frames of a fabio-readable file (header checked against ``limits`` first)."""
    _check_header(path, limits)
    img = _open(path)
    try:
        n = int(getattr(img, "nframes", 1) or 1)
        limits.check_count(n, path)
        picture = type(img).__name__ in _PICTURE_CLASSES
        for i in select_frames(frames, n, path):
            one = img if i == 0 else img.getframe(i)
            limits.check_frame(_hw(one.data, path, i), path, what=f"frame {i}")
            meta = {"format": _fmt(img), "header": header_dict((one.header or {}).items())}
            hdr = guarded_header(fabio_header, one.header or {}, path=path)
            if hdr:
                meta["hdr"] = hdr
            if "pilatus" in str(one.header or {}).lower():
                meta["detector"] = "Pilatus"
            yield make_frame(one.data, source_uri=path, frame=i, metadata=meta, quantitative=not picture)
    finally:
        img.close()
