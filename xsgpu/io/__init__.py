"""Input/output: detector-format readers, label files, ingest, and the run store."""
from __future__ import annotations

from xsgpu.io.frame import (
    CorruptFileError,
    DatasetNotFoundError,
    EmptyFileError,
    Frame,
    FrameShapeError,
    ReaderError,
    UnsupportedFormatError,
)
from xsgpu.io.readers import SUPPORTED_EXTENSIONS, FileInfo, count_frames, detect_format, read_any, scan_file
from xsgpu.io.runstore import RunStore, RunStoreError

__all__ = [
    "RunStore", "RunStoreError",
    "Frame", "FileInfo", "read_any", "scan_file", "count_frames", "detect_format", "SUPPORTED_EXTENSIONS",
    "ReaderError", "UnsupportedFormatError", "EmptyFileError", "CorruptFileError", "FrameShapeError",
    "DatasetNotFoundError",
]
