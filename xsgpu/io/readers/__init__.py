"""Detector-format readers: every supported file becomes :class:`~xsgpu.io.frame.Frame` objects.

===========  ==========================================  ======================================
reader       formats                                      module
===========  ==========================================  ======================================
tiff         TIFF incl. Pilatus 32-bit, stacks, 8-bit     :mod:`xsgpu.io.readers.tiff`
hdf5         HDF5/NeXus incl. Eiger (bitshuffle-LZ4)      :mod:`xsgpu.io.readers.hdf5`
mat          MATLAB v5 (scipy.io) and v7.3 (HDF5)         :mod:`xsgpu.io.readers.matlab`
npy / npz    NumPy arrays                                 :mod:`xsgpu.io.readers.arrays`
picture      PNG/JPEG/BMP/GIF (quantitative=False)        :mod:`xsgpu.io.readers.picture`
fabio        EDF, CBF, MarCCD, Mar345, Bruker, ADSC ...   :mod:`xsgpu.io.readers.fabioformats`
===========  ==========================================  ======================================

Use :func:`read_any` / :func:`count_frames` / :func:`scan_file`; they pick the reader (see
:mod:`xsgpu.io.readers.dispatch`).
"""
from __future__ import annotations

from xsgpu.io.readers._common import FileInfo
from xsgpu.io.readers.dispatch import SUPPORTED_EXTENSIONS, count_frames, detect_format, read_any, scan_file

__all__ = ["read_any", "scan_file", "count_frames", "detect_format", "FileInfo", "SUPPORTED_EXTENSIONS"]
