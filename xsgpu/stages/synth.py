"""The synth stage: a synthetic run store, partition by partition (wraps :mod:`xsgpu.synth.run`)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xsgpu.io.runstore import RunStore
from xsgpu.io.schema import IMAGES, SAMPLES, SYNTH_TAGS, THUMBS
from xsgpu.stages.base import PartitionContext, Plan, Stage, StageReport

__all__ = ["SynthStage", "SynthParams"]


@dataclass(frozen=True)
class SynthParams:
    """Parameters of :func:`xsgpu.synth.plan_synth_run` (``n`` images of ``size`` px) and the pixel ``device``."""

    n: int
    size: int = 256
    seed: int = 0
    partition_size: int = 4096
    images_per_run: int = 200
    device: str = "cpu"


def _recorded(params: SynthParams) -> dict[str, Any]:
    """The part of ``params.synth`` in the manifest these parameters fix (the generator's own keys aside)."""
    return {"n": params.n, "size": params.size, "seed": params.seed, "partition_size": params.partition_size,
            "images_per_run": params.images_per_run}


class SynthStage(Stage):
    """Generate ``n`` synthetic SAXS images with their labels into a new (or resumed) run."""

    name = "synth"
    inputs = ()
    outputs = (SAMPLES, IMAGES, THUMBS, SYNTH_TAGS)
    Params = SynthParams
    partitioned = True

    def is_done(self, run_path: str | os.PathLike, params: SynthParams) -> tuple[bool, str]:
        store = RunStore(Path(run_path))
        if not store.manifest_path.exists():
            return False, "no run yet"
        have = RunStore.open(run_path).manifest.get("params", {}).get("synth")
        if have is None:
            return False, "the run was not made by synth"
        want = json.loads(json.dumps(_recorded(params)))
        changed = {k: (have.get(k), v) for k, v in want.items() if have.get(k) != v}
        if changed:
            return False, "made with other parameters: " + ", ".join(
                f"{k} {a!r} -> {b!r}" for k, (a, b) in changed.items())
        pending = RunStore.open(run_path).samples.pending()
        if pending:
            return False, f"{len(pending)} partitions pending"
        return True, "every partition generated with these parameters"

    def plan(self, run_path: str | os.PathLike, params: SynthParams, *, progress: bool = False) -> Plan:
        from xsgpu.backend import get_backend
        from xsgpu.synth import plan_synth_run

        store = plan_synth_run(run_path, n=params.n, size=params.size, seed=params.seed,
                               partition_size=params.partition_size, images_per_run=params.images_per_run)
        # each partition resolves the device where it runs (a GPU worker behind a CPU login node)
        device = get_backend(params.device).device
        pending = store.samples.pending()
        store.set_stage(self.name, "running", device=device, pending=len(pending))
        return Plan(parts=pending, params=params, n_partitions=store.n_partitions, state=device)

    def run_partition(self, run_path: str | os.PathLike, part: int, params: SynthParams,
                      ctx: PartitionContext | None = None) -> int:
        from xsgpu.synth import synth_partition

        return synth_partition(run_path, part, device=params.device)

    def finish(self, run_path: str | os.PathLike, plan: Plan, report: StageReport) -> dict:
        store = RunStore.open(run_path)
        dt = report.seconds
        info = {"device": plan.state, "generated": report.rows, "seconds": round(dt, 3),
                "images_per_s": round(report.rows / dt, 1) if report.rows and dt > 0 else None}
        store.set_stage(self.name, "done", n_partitions_done=report.partitions_run,
                        n_partitions_skipped=report.partitions_skipped, **info)
        return info
