"""The evaluate stage: metrics of the predictions against the labels (wraps :mod:`xsgpu.metrics.evaluate`)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from xsgpu.io.runstore import RunStore
from xsgpu.io.schema import FEA_REDUCED, HEATMAP_SHARES, METRICS, PREDICTIONS, SAMPLES, SUSPICIOUS
from xsgpu.stages.base import PartitionContext, Plan, Stage, StageReport

__all__ = ["EvaluateStage", "EvaluateParams"]


@dataclass(frozen=True)
class EvaluateParams:
    """Parameters of :func:`xsgpu.metrics.evaluate_run`: ``cutoff`` a float or one per attribute."""

    cutoff: Any = 0.5
    suspicious: bool = True
    suspicious_top: int = 10_000


def _cutoff_key(cutoff: Any) -> Any:
    """The cut-off as ``evaluate_run`` records it in the metadata (a float or a list of floats)."""
    if isinstance(cutoff, (list, tuple)) or getattr(cutoff, "shape", ()) != ():
        return [float(c) for c in cutoff]
    return float(cutoff)


class EvaluateStage(Stage):
    """Per-attribute and model metrics of the labelled samples; the suspicious-label audit when embedded."""

    name = "evaluate"
    inputs = (SAMPLES, PREDICTIONS, FEA_REDUCED)
    outputs = (METRICS, SUSPICIOUS, HEATMAP_SHARES)
    Params = EvaluateParams
    partitioned = False
    lock = True
    on_client = True

    def is_done(self, run_path: str | os.PathLike, params: EvaluateParams) -> tuple[bool, str]:
        store = RunStore.open(run_path)
        if not store.metrics.exists():
            return False, "no metrics yet"
        meta = store.metrics.metadata()
        pmeta = store.predictions.metadata() if store.predictions.exists() else {}
        changed = []
        if meta.get("cutoff") != _cutoff_key(params.cutoff):
            changed.append(f"cutoff {meta.get('cutoff')!r} -> {_cutoff_key(params.cutoff)!r}")
        if meta.get("weights_sha256") != pmeta.get("weights_sha256"):
            changed.append("the predictions (another model)")
        if store.heatmaps.path.exists() and not store.artifact(HEATMAP_SHARES).exists():
            changed.append("heatmaps without heatmap shares")
        if changed:
            return False, "changed since the last evaluate: " + ", ".join(changed)
        return True, "metrics exist for these predictions and this cut-off"

    def plan(self, run_path: str | os.PathLike, params: EvaluateParams, *, progress: bool = False) -> Plan:
        RunStore.open(run_path, require=[SAMPLES])
        return Plan(parts=[0], params=params)

    def run_partition(self, run_path: str | os.PathLike, part: int, params: EvaluateParams,
                      ctx: PartitionContext | None = None) -> dict:
        from xsgpu.metrics import evaluate as evaluate_mod

        long = evaluate_mod.evaluate_run(run_path, cutoff=params.cutoff, suspicious=params.suspicious,
                                         suspicious_top=params.suspicious_top)
        return {"rows": RunStore.open(run_path).n_samples, "metric_rows": len(long)}

    def finish(self, run_path: str | os.PathLike, plan: Plan, report: StageReport) -> dict:
        return {}
