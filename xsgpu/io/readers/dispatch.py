"""One entry point for every format: :func:`read_any`, :func:`scan_file`, :func:`count_frames`.

The reader is chosen from the file's first bytes (magic numbers) AND its extension:

* content that identifies a format wins (a PNG saved as ``.tif`` is read as a PNG, with a logged
  warning), with two refinements: HDF5 content in a ``.mat`` file is MATLAB v7.3, and TIFF content
  with a fabio extension (``.mccd``: MarCCD is TIFF-based) goes to fabio;
* content without a known signature goes to the reader of its extension when that reader has no
  signature of its own to check (the fabio formats: EDF variants, ADSC ``.img``, Bruker ...);
* a known extension whose signature is absent (a ``.tif`` that does not start like a TIFF) is a
  :class:`~xsgpu.io.frame.CorruptFileError`, an empty file an :class:`~xsgpu.io.frame.EmptyFileError`
  and anything else an :class:`~xsgpu.io.frame.UnsupportedFormatError` listing what is supported.

Any failure inside a reader library (truncated TIFF, broken HDF5 chunk, bad zip) is re-raised as a
:class:`~xsgpu.io.frame.CorruptFileError` that names the file, the format tried and the cause.

Examples
--------
>>> import numpy as np, tempfile, os
>>> from xsgpu.io import read_any, count_frames
>>> path = os.path.join(tempfile.mkdtemp(), "stack.npy")
>>> np.save(path, np.ones((3, 4, 5), dtype=np.uint16))
>>> count_frames(path)
3
>>> [f.data.shape for f in read_any(path)]
[(4, 5), (4, 5), (4, 5)]
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable, Iterable, Iterator

from xsgpu.io.frame import CorruptFileError, EmptyFileError, Frame, ReaderError, UnsupportedFormatError
from xsgpu.io.limits import DEFAULT_LIMITS, FrameLimits
from xsgpu.io.readers._common import FileInfo

__all__ = ["read_any", "scan_file", "count_frames", "detect_format", "SUPPORTED_EXTENSIONS"]

log = logging.getLogger(__name__)

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_EXT_FORMAT: dict[str, str] = {
    "tif": "tiff", "tiff": "tiff",
    "h5": "hdf5", "hdf5": "hdf5", "hdf": "hdf5", "nxs": "hdf5", "nx5": "hdf5", "cxi": "hdf5",
    "mat": "mat",
    "npy": "npy", "npz": "npz",
    "png": "picture", "jpg": "picture", "jpeg": "picture", "bmp": "picture", "gif": "picture",
}


def _fabio_extensions() -> frozenset[str]:
    from xsgpu.io.readers.fabioformats import FABIO_EXTENSIONS

    return FABIO_EXTENSIONS


#: every extension :func:`read_any` knows (lower case, without the dot)
SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(sorted(set(_EXT_FORMAT) | _fabio_extensions()))

_DESCRIPTION = {
    "tiff": "a TIFF", "hdf5": "an HDF5/NeXus file", "mat": "a MATLAB .mat file", "npy": "a NumPy .npy file",
    "npz": "a NumPy .npz archive", "picture": "a PNG/JPEG/BMP/GIF picture", "fabio": "a fabio detector format",
}


def _extension(path: str) -> str:
    name = Path(path).name.lower()
    for comp in (".gz", ".bz2"):
        if name.endswith(comp):
            inner = Path(name[: -len(comp)]).suffix.lstrip(".")
            return inner if inner in _fabio_extensions() else comp.lstrip(".")
    return Path(name).suffix.lstrip(".")


def _sniff(head: bytes) -> str | None:
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head.startswith(b"MATLAB 7.3"):
        return "mat"
    if any(head[o:o + 8] == _HDF5_MAGIC for o in (0, 512, 1024, 2048)):
        return "hdf5"
    if head.startswith(b"MATLAB"):
        return "mat"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "npz"
    if (head.startswith(b"\x89PNG\r\n\x1a\n") or head.startswith(b"\xff\xd8\xff")
            or head[:6] in (b"GIF87a", b"GIF89a") or head[:2] == b"BM"):
        return "picture"
    if head.startswith(b"###CBF") or head.startswith(b"###_CRYSTAL"):
        return "fabio"
    stripped = head.lstrip()
    if stripped.startswith(b"{") and any(t in head for t in (b"EDF_", b"HeaderID", b"ByteOrder", b"DataType")):
        return "fabio"
    return None


def detect_format(path: str | os.PathLike) -> str:
    """Return the reader key (``tiff``, ``hdf5``, ``mat``, ``npy``, ``npz``, ``picture``, ``fabio``) for a file.

    Raises
    ------
    ReaderError
        :class:`EmptyFileError`, :class:`UnsupportedFormatError` or :class:`CorruptFileError` (see the
        module docstring); also for a path that is missing or not a regular file.
    """
    p = str(path)
    if not os.path.isfile(p):
        raise ReaderError(f"{p}: not a readable regular file (missing, a directory or a broken link).")
    try:
        size = os.path.getsize(p)
        with open(p, "rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        raise CorruptFileError(f"{p}: cannot open the file ({exc}). Check its permissions.") from exc
    if size == 0:
        raise EmptyFileError(f"{p}: the file is empty (0 bytes); expected an image. It may be an interrupted "
                             "copy: copy it again.")
    ext = _extension(p)
    by_ext = "fabio" if ext in _fabio_extensions() else _EXT_FORMAT.get(ext)
    by_magic = _sniff(head)
    if by_magic is None:
        if ext in ("gz", "bz2") or (head[:2] == b"\x1f\x8b" and by_ext != "fabio"):
            raise UnsupportedFormatError(f"{p}: a compressed file; only compressed fabio formats (.edf.gz, "
                                         ".cbf.bz2, ...) are read. Decompress it first.")
        if by_ext == "fabio":
            return "fabio"
        if by_ext is not None:
            raise CorruptFileError(
                f"{p}: the extension .{ext} says {_DESCRIPTION[by_ext]}, but the file does not start like one "
                f"(first bytes {head[:8]!r}). It is corrupt, truncated at the start or mislabelled; re-export it.")
        raise UnsupportedFormatError(
            f"{p}: unsupported file type (extension {'.' + ext if ext else 'none'}, first bytes {head[:8]!r}). "
            "Supported: TIFF, HDF5/NeXus, MATLAB .mat, .npy/.npz, PNG/JPEG and the fabio detector formats; "
            f"extensions {', '.join('.' + e for e in SUPPORTED_EXTENSIONS)}. Hint: convert the file, or move it "
            "out of the input directory.")
    if by_magic == "hdf5" and by_ext == "mat":
        return "mat"
    if by_magic == "tiff" and by_ext == "fabio":
        return "fabio"
    if by_ext is not None and by_ext != by_magic:
        log.warning("%s: the extension .%s says %s but the content is %s; reading it as the latter.",
                    p, ext, _DESCRIPTION[by_ext], _DESCRIPTION[by_magic])
    return by_magic


def _scanner(fmt: str) -> Callable[..., FileInfo]:
    from xsgpu.io.readers import arrays, fabioformats, hdf5, matlab, picture, tiff

    return {
        "tiff": lambda p, d, lim: tiff.scan_tiff(p, limits=lim),
        "hdf5": lambda p, d, lim: hdf5.scan_hdf5(p, dataset=d, limits=lim),
        "mat": lambda p, d, lim: matlab.scan_mat(p, dataset=d, limits=lim),
        "npy": lambda p, d, lim: arrays.scan_npy(p, limits=lim),
        "npz": lambda p, d, lim: arrays.scan_npz(p, dataset=d, limits=lim),
        "picture": lambda p, d, lim: picture.scan_picture(p, limits=lim),
        "fabio": lambda p, d, lim: fabioformats.scan_fabio(p, limits=lim),
    }[fmt]


def _reader(fmt: str) -> Callable[..., Iterator[Frame]]:
    from xsgpu.io.readers import arrays, fabioformats, hdf5, matlab, picture, tiff

    return {
        "tiff": lambda p, d, f, lim: tiff.read_tiff(p, frames=f, limits=lim),
        "hdf5": lambda p, d, f, lim: hdf5.read_hdf5(p, dataset=d, frames=f, limits=lim),
        "mat": lambda p, d, f, lim: matlab.read_mat(p, dataset=d, frames=f, limits=lim),
        "npy": lambda p, d, f, lim: arrays.read_npy(p, frames=f, limits=lim),
        "npz": lambda p, d, f, lim: arrays.read_npz(p, dataset=d, frames=f, limits=lim),
        "picture": lambda p, d, f, lim: picture.read_picture(p, frames=f, limits=lim),
        "fabio": lambda p, d, f, lim: fabioformats.read_fabio(p, frames=f, limits=lim),
    }[fmt]


def _corrupt(path: str, fmt: str, exc: BaseException) -> ReaderError:
    if "imagecodecs" in str(exc):  # tifffile: LZW, PackBits, JPEG ... TIFFs need the optional codec package
        return UnsupportedFormatError(
            f"{path}: {_DESCRIPTION[fmt]} compressed with a codec that needs the 'imagecodecs' package "
            f"({exc}). Hint: pip install imagecodecs.")
    return CorruptFileError(
        f"{path}: cannot read it as {_DESCRIPTION[fmt]} ({type(exc).__name__}: {exc}). The file is probably "
        "truncated or corrupt; check it with the detector software or copy it again.")


def _absolute(path: str | os.PathLike) -> str:
    return os.path.abspath(os.fspath(path))


def scan_file(path: str | os.PathLike, *, h5_dataset: str | None = None,
              limits: FrameLimits | None = None) -> FileInfo:
    """Identify a file and count its frames without decoding them (cheap; used to plan an ingest).

    Parameters
    ----------
    path : path
        The file.
    h5_dataset : str, optional
        HDF5 dataset path, MATLAB variable or ``.npz`` key holding the frames (auto-detected if None).
    limits : FrameLimits, optional
        Largest frame and frame count accepted, checked from the header (default
        :data:`xsgpu.io.limits.DEFAULT_LIMITS`); exceeding them raises
        :class:`~xsgpu.io.frame.FrameLimitError`.

    Returns
    -------
    FileInfo
        Format, frame count, first frame shape, quantitative flag, dataset.

    Raises
    ------
    ReaderError
        Unsupported, empty, corrupt or wrongly shaped files (subclass names the case).
    """
    p = _absolute(path)
    lim = DEFAULT_LIMITS if limits is None else limits
    fmt = detect_format(p)
    try:
        info = _scanner(fmt)(p, h5_dataset, lim)
    except ReaderError:
        raise
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:  # any library failure on a bad file
        raise _corrupt(p, fmt, exc) from exc
    if info.n_frames == 0:
        raise EmptyFileError(f"{p}: the {info.format} file holds 0 frames (dataset {info.dataset!r}); expected "
                             "at least one image.")
    lim.check_frame(info.frame_shape, p)
    lim.check_count(info.n_frames, p)
    return info


def count_frames(path: str | os.PathLike, *, h5_dataset: str | None = None,
                 limits: FrameLimits | None = None) -> int:
    """Number of frames :func:`read_any` will yield for ``path`` (reads headers only).

    Raises
    ------
    ReaderError
        As :func:`scan_file`.
    """
    return scan_file(path, h5_dataset=h5_dataset, limits=limits).n_frames


def read_any(path: str | os.PathLike, *, h5_dataset: str | None = None,
             frames: Iterable[int] | None = None, limits: FrameLimits | None = None) -> Iterator[Frame]:
    """Read any supported file as :class:`~xsgpu.io.frame.Frame` objects, one per frame.

    Parameters
    ----------
    path : path
        A detector file or picture (see the module docstring for how the format is chosen).
    h5_dataset : str, optional
        HDF5 dataset path (e.g. ``entry/instrument/detector/data``), MATLAB variable or ``.npz`` key;
        auto-detected when None.
    frames : iterable of int, optional
        Frame indices to read, in the order given (all frames when None); lets a job read part of a
        large multi-frame file.
    limits : FrameLimits, optional
        Largest frame and frame count accepted, checked from the header before each frame is decoded
        (default :data:`xsgpu.io.limits.DEFAULT_LIMITS`).

    Yields
    ------
    Frame
        ``data`` float32 (H, W), ``mask`` bool (H, W), ``metadata``, ``source_uri`` (absolute path),
        ``frame``, ``quantitative``.

    Raises
    ------
    ReaderError
        Unsupported, empty, corrupt or wrongly shaped files (raised when iteration starts or reaches
        the bad frame).
    """
    p = _absolute(path)
    fmt = detect_format(p)
    it = _reader(fmt)(p, h5_dataset, frames, DEFAULT_LIMITS if limits is None else limits)
    while True:
        try:
            frame = next(it)
        except StopIteration:
            return
        except ReaderError:
            raise
        except (MemoryError, KeyboardInterrupt):
            raise
        except Exception as exc:
            raise _corrupt(p, fmt, exc) from exc
        yield frame
