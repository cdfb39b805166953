"""The infer stage: predictions (PRD) and features (FEA) of every image, partition by partition.

Wraps :mod:`xsgpu.model.infer`: :func:`~xsgpu.model.infer.plan_infer` (the one guard against mixing
two models' outputs, the resume of the extra outputs, the staging area of an overwrite),
:func:`~xsgpu.model.infer.infer_partition` and :func:`~xsgpu.model.infer.finish_infer`. The model is a
:class:`~xsgpu.stages.base.Resource`: loaded once per process or Dask worker.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from xsgpu.io.runstore import RunStore
from xsgpu.io.schema import FEATURES, HEATMAPS, IMAGES, LAYER_FEATURES, PREDICTIONS
from xsgpu.stages.base import PartitionContext, Plan, Resource, Stage, StageReport, load_resource

__all__ = ["InferStage", "InferParams", "model_signature"]


@dataclass(frozen=True)
class InferParams:
    """Parameters of :func:`xsgpu.model.infer_run`; ``model`` a checkpoint directory or a model file (+ ``spec``).

    ``heatmaps``/``layers`` ``None``: the default outputs, or on a resume what the finished partitions have.
    ``attribute_map``: model output -> run attribute (a dict or a file), for a model of other attributes.
    """

    model: str = ""
    spec: str | None = None
    device: str = "auto"
    batch_size: int = 256
    compile: bool = False
    num_threads: int | None = None
    overwrite: bool = False
    heatmaps: bool | None = None
    layers: tuple[str, ...] | None = None
    attribute_map: Any = None


def model_signature(model: str | os.PathLike, **options: Any) -> str:
    """What identifies a loaded model: the checkpoint's weights hash (or its path and mtime) and the options."""
    meta = Path(model) / "model.json"
    try:
        ident = json.loads(meta.read_text()).get("weights_sha256") or f"{meta}:{meta.stat().st_mtime_ns}"
    except (OSError, ValueError):
        p = Path(model)
        ident = f"{p.resolve()}:{p.stat().st_mtime_ns}" if p.exists() else os.fspath(model)
    return "|".join([ident] + [f"{k}={v}" for k, v in sorted(options.items())])


def _load_predictor(model: str, *, spec: str | None, device: str, batch_size: int, compile: bool,
                    num_threads: int | None, attribute_map: Any = None, threads: int | None = None) -> Any:
    from xsgpu.model.foreign import load_predictor

    predictor = load_predictor(model, spec=spec, device=device, batch_size=batch_size, compile=compile,
                               num_threads=num_threads or threads)
    if attribute_map is not None:
        from xsgpu.io.vocabulary import read_attribute_map

        predictor.set_attribute_map(attribute_map if isinstance(attribute_map, dict)
                                    else read_attribute_map(attribute_map))
    return predictor


def _configure(predictor: Any, params: InferParams) -> Any:
    """Set the predictor up for the extra outputs the plan resolved (once per predictor and choice)."""
    key = (bool(params.heatmaps), tuple(params.layers or ()))
    if getattr(predictor, "_stage_outputs", None) != key:
        predictor.set_outputs(heatmaps=key[0], layers=key[1])
        predictor._stage_outputs = key
    return predictor


class InferStage(Stage):
    """Run the model over the run's images: PRD, FEA and the extra outputs (heatmaps, pooled layers)."""

    name = "infer"
    inputs = (IMAGES,)
    outputs = (PREDICTIONS, FEATURES, HEATMAPS, LAYER_FEATURES)
    Params = InferParams
    partitioned = True
    lock = True  # one writer of predictions at a time

    def resource(self, params: InferParams) -> Resource:
        opts = {"spec": params.spec, "device": params.device, "batch_size": params.batch_size,
                "compile": params.compile, "num_threads": params.num_threads, "attribute_map": params.attribute_map}
        return Resource("predictor", model_signature(params.model, **opts),
                        partial(_load_predictor, os.fspath(params.model), **opts))

    def is_done(self, run_path: str | os.PathLike, params: InferParams) -> tuple[bool, str]:
        from xsgpu.model.infer import finished_models

        store = RunStore.open(run_path)
        if params.overwrite:
            return False, "overwrite asked"
        finished = finished_models(store)
        predictor = load_resource(self.resource(params))
        sha = predictor.meta["weights_sha256"]
        others = sorted({s for s, _ in finished.values() if s != sha})
        if others:
            return False, (f"partitions predicted by another model (weights_sha256 {others[0][:12]}...), "
                           f"this one is {sha[:12]}...")
        if len(finished) < store.n_partitions:
            return False, f"{store.n_partitions - len(finished)} of {store.n_partitions} partitions pending"
        outputs = {outs for _, outs in finished.values()}
        if params.heatmaps is not None:
            want = params.heatmaps and predictor.heatmap_support() is None
            if any((HEATMAPS.name in outs) != want for outs in outputs):
                return False, f"heatmaps {'asked' if want else 'not asked'}, the partitions differ"
        if params.layers is not None:
            want_layers = {LAYER_FEATURES.named(layer=name).name for name in params.layers}
            if any({o for o in outs if o != HEATMAPS.name} != want_layers for outs in outputs):
                return False, f"layers {sorted(params.layers)} asked, the partitions hold others"
        return True, f"every partition predicted by model {sha[:12]}..."

    def plan(self, run_path: str | os.PathLike, params: InferParams, *, progress: bool = False) -> Plan:
        from xsgpu.model.infer import plan_infer

        store = RunStore.open(run_path, require=[IMAGES])
        predictor = load_resource(self.resource(params))
        predictor.check_run(store)
        ip = plan_infer(store, predictor, overwrite=params.overwrite, heatmaps=params.heatmaps, layers=params.layers)
        predictor._stage_outputs = (bool(ip.heatmaps), tuple(ip.layers))
        store.set_stage(self.name, "running", model_id=predictor.meta["model_id"], pending=len(ip.pending))
        resolved = replace(params, heatmaps=ip.heatmaps, layers=tuple(ip.layers))
        return Plan(parts=ip.pending, params=resolved, n_partitions=store.n_partitions, state=(ip, predictor))

    def target(self, run_path: str | os.PathLike, plan: Plan) -> Path:
        return plan.state[0].target.path

    def run_partition(self, run_path: str | os.PathLike, part: int, params: InferParams,
                      ctx: PartitionContext | None = None) -> int:
        from xsgpu.model.infer import infer_partition

        predictor = ctx.resource if ctx is not None and ctx.resource is not None else load_resource(
            self.resource(params))
        return infer_partition(run_path, part, _configure(predictor, params))

    def finish(self, run_path: str | os.PathLike, plan: Plan, report: StageReport) -> dict:
        from xsgpu.model.infer import finish_infer

        ip, predictor = plan.state
        return finish_infer(RunStore.open(run_path), predictor, ip, n_images=report.rows, seconds=report.seconds)
