"""Input limits: how large a frame and how many frames per file a reader accepts, checked from headers.

A few bytes of header can declare any shape: an HDF5 file of 3.4 KB can declare a (1, 20000, 20000)
dataset whose chunks were never written, a TIFF of 1.2 KB 100000 x 100000 pixels, a ``.npy`` header
10**12 elements. Every reader checks the declared shape against :class:`FrameLimits` *before* it
decodes or allocates anything, and raises :class:`~xsgpu.io.frame.FrameLimitError` naming the file, the
declared shape, the limit and the setting that changes it. In an ingest that is an error row and the
batch goes on.

Settings (``xsgpu.config.Settings``, ``XSGPU_*`` environment variables, ``xsgpu ingest`` options):

* ``max_frame_pixels`` (default 67,108,864 = 8192 x 8192; ``--max-frame-pixels``): H x W of one frame.
  The largest detectors in use (Eiger2 16M: 4148 x 4362, Rayonix MX340: 7680 x 7680 unbinned) fit.
  Reading a frame holds about 20 bytes per pixel (raw data, float32 copy, mask, log scale), so the
  default bounds one frame at ~1.3 GB.
* ``max_frames_per_file`` (default 100,000; ``--max-frames-per-file``): frames a single file may hold
  (one sample each).

Examples
--------
>>> from xsgpu.io.limits import FrameLimits
>>> limits = FrameLimits(max_frame_pixels=1000)
>>> limits.check_frame((20, 20), "/d/a.tif")
>>> limits.check_frame((100, 100), "/d/a.tif")
Traceback (most recent call last):
...
xsgpu.io.frame.FrameLimitError: /d/a.tif: declares frames of shape (100, 100) = 10,000 pixels, above the limit ...
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from xsgpu.io.frame import FrameLimitError

__all__ = ["FrameLimits", "DEFAULT_LIMITS", "DEFAULT_MAX_FRAME_PIXELS", "DEFAULT_MAX_FRAMES_PER_FILE"]

#: default ``max_frame_pixels``: 8192 x 8192
DEFAULT_MAX_FRAME_PIXELS = 8192 * 8192
#: default ``max_frames_per_file``
DEFAULT_MAX_FRAMES_PER_FILE = 100_000

_REMEDY = ("If the header is genuine, raise the limit (setting {name}, environment variable XSGPU_{env}, "
           "or `xsgpu ingest --{opt} N`); otherwise the file is corrupt: copy or export it again.")


def _remedy(name: str) -> str:
    return _REMEDY.format(name=name, env=name.upper(), opt=name.replace("_", "-"))


@dataclass(frozen=True)
class FrameLimits:
    """Bounds on what one input file may declare.

    Attributes
    ----------
    max_frame_pixels : int
        Largest H x W of a frame.
    max_frames_per_file : int
        Largest number of frames in one file.
    """

    max_frame_pixels: int = DEFAULT_MAX_FRAME_PIXELS
    max_frames_per_file: int = DEFAULT_MAX_FRAMES_PER_FILE

    def __post_init__(self) -> None:
        for name in ("max_frame_pixels", "max_frames_per_file"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"The {name!r} parameter of FrameLimits must be an int >= 1. Got {value!r} "
                                 "instead.")

    def check_frame(self, shape: Sequence[int], path: str, *, what: str = "frames") -> None:
        """Raise :class:`FrameLimitError` if a frame of ``shape`` (H, W) has too many pixels.

        Parameters
        ----------
        shape : sequence of int
            The declared (H, W) (extra leading axes are ignored).
        path : str
            The file, for the message.
        what : str
            What has that shape (``frames``, ``page 3``, ``variable 'x'``), for the message.
        """
        hw = tuple(int(s) for s in shape)[-2:]
        pixels = 1
        for s in hw:
            pixels *= max(s, 0)
        if pixels > self.max_frame_pixels:
            raise FrameLimitError(
                f"{path}: declares {what} of shape {hw} = {pixels:,} pixels, above the limit max_frame_pixels = "
                f"{self.max_frame_pixels:,}. {_remedy('max_frame_pixels')}")

    def check_count(self, n_frames: int, path: str, *, shape: Sequence[int] | None = None) -> None:
        """Raise :class:`FrameLimitError` if a file declares more than ``max_frames_per_file`` frames."""
        if int(n_frames) > self.max_frames_per_file:
            declared = f" (declared shape {tuple(int(s) for s in shape)})" if shape is not None else ""
            raise FrameLimitError(
                f"{path}: declares {int(n_frames):,} frames{declared}, above the limit max_frames_per_file = "
                f"{self.max_frames_per_file:,}. {_remedy('max_frames_per_file')}")

    def check_stack(self, shape: Sequence[int], n_frames: int, path: str, *, what: str = "frames") -> None:
        """:meth:`check_frame` on the frame shape, then :meth:`check_count` on ``n_frames``."""
        self.check_frame(shape, path, what=what)
        self.check_count(n_frames, path, shape=shape)


#: the limits used when a caller passes none
DEFAULT_LIMITS = FrameLimits()
