"""The app_cache stage: the arrays ``xsgpu serve`` memory-maps at start, written once after the other stages.

The arrays and their keys are those of :mod:`panel_app.startcache` (labels, probabilities, coordinates,
each space's spatial-index order and sorted points, the per-attribute probability order); the stage
builds the missing or stale ones so that even the first start of the app parses and sorts nothing.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from xsgpu.io.runstore import RunStore
from xsgpu.io.schema import APP_CACHE, EMBEDDING, PREDICTIONS, SAMPLES
from xsgpu.stages.base import PartitionContext, Plan, Stage, StageReport

__all__ = ["AppCacheStage", "AppCacheParams"]


@dataclass(frozen=True)
class AppCacheParams:
    """Parameters of the app-cache stage: ``spaces`` whose spatial index is written (the app's three)."""

    spaces: tuple[str, ...] = ("ACT", "FEA", "PRD")


class AppCacheStage(Stage):
    """Write the app's start-up arrays (``app_cache/{name}``) from an embedded run."""

    name = "app_cache"
    inputs = (SAMPLES, PREDICTIONS, EMBEDDING)
    outputs = (APP_CACHE,)
    Params = AppCacheParams
    partitioned = False
    lock = True
    on_client = True

    def is_done(self, run_path: str | os.PathLike, params: AppCacheParams) -> tuple[bool, str]:
        from panel_app.startcache import stale_entries, start_entries

        stale = stale_entries(RunStore.open(run_path), start_entries(params.spaces))
        if stale:
            return False, f"app cache missing or older than its sources: {', '.join(stale)}"
        return True, "the app cache matches the run's samples, predictions and embedding"

    def plan(self, run_path: str | os.PathLike, params: AppCacheParams, *, progress: bool = False) -> Plan:
        RunStore.open(run_path, require=[SAMPLES, PREDICTIONS, EMBEDDING])
        return Plan(parts=[0], params=params)

    def run_partition(self, run_path: str | os.PathLike, part: int, params: AppCacheParams,
                      ctx: PartitionContext | None = None) -> dict:
        from panel_app.startcache import prepare_app_cache

        built = prepare_app_cache(run_path, spaces=params.spaces)
        return {"rows": RunStore.open(run_path).n_samples, "built": len(built)}

    def finish(self, run_path: str | os.PathLike, plan: Plan, report: StageReport) -> dict:
        RunStore.open(run_path).set_stage(self.name, "done", spaces=list(plan.params.spaces))
        return {}
