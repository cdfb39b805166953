"""PNG / JPEG / BMP / GIF pictures (Pillow): grey levels, flagged ``quantitative=False``.

A picture of a scattering pattern (a screenshot, a figure, a JPEG export) has lost the detector counts:
its grey levels are display values. Such frames are ingested so they can be browsed and classified, but
``quantitative`` is False in the samples table. Colour pictures are converted to grey (Pillow's ``L``
mode, ITU-R 601 luma); 16-bit and 32-bit grey modes keep their values. Animated files give one frame
per image. The declared size is checked against :class:`~xsgpu.io.limits.FrameLimits` before
decoding (Pillow's own decompression-bomb check applies as well).
"""
from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from xsgpu.io.frame import Frame, make_frame
from xsgpu.io.limits import DEFAULT_LIMITS, FrameLimits
from xsgpu.io.readers._common import FileInfo, select_frames

__all__ = ["scan_picture", "read_picture"]

_GREY_MODES = {"L", "I;16", "I;16B", "I;16L", "I", "F", "1"}


def scan_picture(path: str, *, limits: FrameLimits = DEFAULT_LIMITS) -> FileInfo:
    """Read the picture header (size, frame count; checked against ``limits``); no pixel data is decoded."""
    from PIL import Image

    with Image.open(path) as im:
        w, h = im.size
        limits.check_frame((h, w), path)
        n = int(getattr(im, "n_frames", 1))
        limits.check_count(n, path)
        fmt = (im.format or "picture").lower()
    return FileInfo(path=path, format="picture", n_frames=n, frame_shape=(h, w), quantitative=False, detail=fmt)


def read_picture(path: str, *, frames: Iterable[int] | None = None,
                 limits: FrameLimits = DEFAULT_LIMITS) -> Iterator[Frame]:
    """Yield the selected images of a picture file as grey frames (``quantitative=False``)."""
    from PIL import Image

    with Image.open(path) as im:
        limits.check_frame(im.size[::-1], path)
        n = int(getattr(im, "n_frames", 1))
        limits.check_count(n, path)
        fmt = (im.format or "picture").lower()
        for i in select_frames(frames, n, path):
            im.seek(i)
            limits.check_frame(im.size[::-1], path, what=f"image {i}")
            meta = {"format": fmt, "mode": im.mode}
            if im.mode in _GREY_MODES:
                arr = np.asarray(im.convert("L") if im.mode == "1" else im)
            else:
                meta["converted_from"] = im.mode
                arr = np.asarray(im.convert("L"))
            yield make_frame(arr, source_uri=path, frame=i, metadata=meta, quantitative=False)
