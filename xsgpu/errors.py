"""The project's exceptions: one base class, :class:`XsgpuError`, and one subclass per kind of problem.

Every error that xsgpu raises on purpose (a bad input, an incomplete or corrupt run store, a model that
does not fit the run, a GPU that cannot be used) derives from :class:`XsgpuError`, and its message names
the file or field, what is wrong and the remedy. The ``xsgpu`` command line turns any of them into one
line on stderr and exit status 2; anything else is a bug and keeps its traceback.

Each subclass also derives from the built-in exception that its callers caught before this hierarchy
existed (``ValueError`` or ``RuntimeError``), so ``except ValueError`` around a reader or
``except RuntimeError`` around a store keeps working.

==========================  =================  ====================================================
class                       also a             raised when
==========================  =================  ====================================================
:class:`XsgpuError`         Exception          (base; never raised itself)
:class:`InputError`         ValueError         an input file, label file or option value is wrong
:class:`StoreError`         RuntimeError       a run store is missing, incomplete or inconsistent
:class:`CorruptArtifact`    StoreError         stored rows are missing or unreadable (a chunk, a part)
:class:`StoreLocked`        StoreError         another process holds a stage's lock on the run
:class:`SchemaError`        StoreError         an artifact has the wrong columns, shape or version
:class:`ModelError`         RuntimeError       a checkpoint is missing, corrupt or out of bounds
:class:`ModelMismatch`      ValueError         a checkpoint does not fit the run or the request
:class:`BackendError`       RuntimeError       a requested device or library cannot be used
:class:`StageError`         RuntimeError       a stage or the pipeline cannot run as asked
==========================  =================  ====================================================

Examples
--------
>>> from xsgpu.errors import StoreError, XsgpuError
>>> isinstance(StoreError("RUN/manifest.json is missing"), (XsgpuError, RuntimeError))
True
"""
from __future__ import annotations

__all__ = [
    "XsgpuError", "InputError", "StoreError", "CorruptArtifact", "StoreLocked", "SchemaError",
    "ModelError", "ModelMismatch", "BackendError", "StageError",
]


class XsgpuError(Exception):
    """Base class of every error xsgpu raises on purpose; the message names the file or field and the remedy."""


class InputError(XsgpuError, ValueError):
    """An input (detector file, label file, option value) is wrong; the message names it and the remedy."""


class StoreError(XsgpuError, RuntimeError):
    """A run store is missing, incomplete, inconsistent or cannot be written; the message names the path."""


class CorruptArtifact(StoreError):
    """Stored rows of an artifact are missing or unreadable (a deleted or truncated chunk or part file)."""


class StoreLocked(StoreError):
    """Another process holds the lock of a stage on this run (the message names the holder's pid)."""


class SchemaError(StoreError):
    """An artifact has other columns, dtypes, shape or schema version than this xsgpu expects."""


class ModelError(XsgpuError, RuntimeError):
    """A checkpoint is missing, incomplete, corrupt, of an unknown format, or declares sizes out of bounds."""


class ModelMismatch(XsgpuError, ValueError):
    """A checkpoint does not fit the run or the request (attributes, input size, architecture)."""


class BackendError(XsgpuError, RuntimeError):
    """A requested device or library cannot be used here (the message gives the reason)."""


class StageError(XsgpuError, RuntimeError):
    """A stage or the pipeline cannot run as asked (missing source, model, or conflicting options)."""
