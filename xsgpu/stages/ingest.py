"""The ingest stage: detector files into a run store, partition by partition (wraps :mod:`xsgpu.io.ingest`)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xsgpu.io.ingest import IngestError
from xsgpu.io.limits import DEFAULT_MAX_FRAME_PIXELS, DEFAULT_MAX_FRAMES_PER_FILE
from xsgpu.io.runstore import RunStore
from xsgpu.io.schema import ERRORS, IMAGES, INGEST_FILES, INGEST_PLAN, SAMPLES, THUMBS
from xsgpu.stages.base import PartitionContext, Plan, Stage, StageFailed, StageReport

__all__ = ["IngestStage", "IngestParams", "NothingReadable"]


class NothingReadable(IngestError, StageFailed):
    """None of the ingest inputs gave a readable frame (the error rows say why)."""


@dataclass(frozen=True)
class IngestParams:
    """Parameters of :func:`xsgpu.io.ingest.plan_ingest`: the inputs (files, directories, globs) and options.

    ``scan_workers`` threads scan the files' headers (the result does not depend on it); ``vocabulary``
    is passed on only when set.
    """

    paths: tuple[str, ...] = ()
    labels: str | None = None
    size: int = 256
    partition_size: int = 4096
    h5_dataset: str | None = None
    max_frame_pixels: int = DEFAULT_MAX_FRAME_PIXELS
    max_frames_per_file: int = DEFAULT_MAX_FRAMES_PER_FILE
    vocabulary: Any = None
    scan_workers: int = 1


class IngestStage(Stage):
    """Scan and plan the inputs (labels matched), then read, preprocess and write each partition."""

    name = "ingest"
    inputs = ()
    outputs = (SAMPLES, IMAGES, THUMBS, INGEST_PLAN, INGEST_FILES, ERRORS)
    Params = IngestParams
    partitioned = True

    def is_done(self, run_path: str | os.PathLike, params: IngestParams) -> tuple[bool, str]:
        from xsgpu.io.discovery import display_path

        if not RunStore(Path(run_path)).manifest_path.exists():
            return False, "no run yet"
        store = RunStore.open(run_path)
        have = store.manifest.get("params", {}).get(self.name)
        if have is None:
            return False, "the run was not made by ingest"
        want = {"inputs": [display_path(os.fspath(p)) for p in params.paths], "size": params.size,
                "partition_size": params.partition_size, "h5_dataset": params.h5_dataset,
                "labels": os.path.abspath(params.labels) if params.labels is not None else None,
                "max_frame_pixels": params.max_frame_pixels, "max_frames_per_file": params.max_frames_per_file}
        defaults = {"max_frame_pixels": DEFAULT_MAX_FRAME_PIXELS, "max_frames_per_file": DEFAULT_MAX_FRAMES_PER_FILE}
        changed = {k: (have.get(k, defaults.get(k)), v) for k, v in want.items() if have.get(k, defaults.get(k)) != v}
        if changed:
            return False, "made with other parameters: " + ", ".join(
                f"{k} {a!r} -> {b!r}" for k, (a, b) in changed.items())
        if store.manifest.get("stages", {}).get(self.name, {}).get("status") != "done":
            return False, f"{len(store.samples.pending())} partitions pending"
        return True, "every partition ingested with these parameters"

    def plan(self, run_path: str | os.PathLike, params: IngestParams, *, progress: bool = False) -> Plan:
        from xsgpu.io.ingest import plan_ingest

        extra = {} if params.vocabulary is None else {"vocabulary": params.vocabulary}
        store = plan_ingest([os.fspath(p) for p in params.paths], run_path, labels=params.labels, size=params.size,
                            partition_size=params.partition_size, h5_dataset=params.h5_dataset,
                            n_workers=params.scan_workers, progress=progress,
                            max_frame_pixels=params.max_frame_pixels, max_frames_per_file=params.max_frames_per_file,
                            **extra)
        if store.n_samples == 0:
            store.set_stage(self.name, "failed", reason="no readable frames")
            raise NothingReadable(f"None of the {len(params.paths)} ingest input(s) gave a readable frame "
                                  f"({len(store.read_errors())} error rows in {store.errors.path}); nothing to ingest.")
        return Plan(parts=store.samples.pending(), params=params, n_partitions=store.n_partitions)

    def run_partition(self, run_path: str | os.PathLike, part: int, params: IngestParams,
                      ctx: PartitionContext | None = None) -> int:
        from xsgpu.io.ingest import ingest_partition

        return ingest_partition(run_path, part)

    def finish(self, run_path: str | os.PathLike, plan: Plan, report: StageReport) -> dict:
        from xsgpu.io.ingest import finish_ingest

        return finish_ingest(RunStore.open(run_path))
