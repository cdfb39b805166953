"""The stages of a run, each behind one contract (:class:`~xsgpu.stages.base.Stage`), and their registry.

:data:`STAGES` lists them in pipeline order; :func:`get_stage` finds one by name; :func:`run_stage`
runs one (in this process, or over a mapping of its partitions). The CLI and the pipeline both go
through these; neither holds a copy of a stage's logic.
"""
from __future__ import annotations

from xsgpu.stages.base import (MapFn, PartitionContext, Plan, Resource, Stage, StageFailed, StageReport,
                               load_resource, param_names, process_map, rows_and_info, run_stage)
from xsgpu.stages.app_cache import AppCacheParams, AppCacheStage
from xsgpu.stages.embed import EmbedParams, EmbedStage
from xsgpu.stages.evaluate import EvaluateParams, EvaluateStage
from xsgpu.stages.infer import InferParams, InferStage
from xsgpu.stages.ingest import IngestParams, IngestStage, NothingReadable
from xsgpu.stages.synth import SynthParams, SynthStage
from xsgpu.stages.train import TrainParams, TrainStage, checkpoint_exists

__all__ = ["STAGES", "get_stage", "Stage", "Plan", "Resource", "StageReport", "StageFailed", "PartitionContext",
           "MapFn", "run_stage", "process_map", "load_resource", "rows_and_info", "param_names", "checkpoint_exists",
           "NothingReadable", "SynthParams", "IngestParams", "TrainParams", "InferParams", "EmbedParams",
           "EvaluateParams", "AppCacheParams", "contract_table"]

#: every stage, in pipeline order (synth and ingest are the two sources of a run)
STAGES: dict[str, Stage] = {s.name: s for s in (SynthStage(), IngestStage(), TrainStage(), InferStage(),
                                                EmbedStage(), EvaluateStage(), AppCacheStage())}


def get_stage(name: str) -> Stage:
    """The registered stage called ``name``.

    Raises
    ------
    KeyError
        Naming the stages there are.
    """
    try:
        return STAGES[name]
    except KeyError:
        raise KeyError(f"No stage {name!r}; the stages are {list(STAGES)}.") from None


def contract_table() -> str:
    """The stage contract as a Markdown table.

    docs/architecture.md holds it; tests/test_architecture_doc.py compares the two.
    """
    from dataclasses import MISSING, fields

    def params(stage: Stage) -> str:
        out = []
        for f in fields(stage.Params):
            out.append(f.name if f.default is MISSING else f"{f.name}={f.default!r}")
        return ", ".join(out)

    rows = ["| stage | inputs | outputs | parameters | partitioned |", "|---|---|---|---|---|"]
    for stage in STAGES.values():
        ins = ", ".join(f"`{a.name}`" for a in stage.inputs) or "-"
        outs = [f"`{a.name}`" for a in stage.outputs] + ([stage.outputs_elsewhere] if stage.outputs_elsewhere else [])
        outs = ", ".join(outs)
        rows.append(f"| {stage.name} | {ins} | {outs} | {params(stage)} | {'yes' if stage.partitioned else 'no'} |")
    return "\n".join(rows)
