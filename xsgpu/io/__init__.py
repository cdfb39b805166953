"""Input/output: detector-format readers and the run store."""
from __future__ import annotations

from xsgpu.io.runstore import RunStore, RunStoreError

__all__ = ["RunStore", "RunStoreError"]
