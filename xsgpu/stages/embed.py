"""The embed stage: 2-D maps of ACT, FEA and PRD (wraps :func:`xsgpu.embed.embed_run`)."""
from __future__ import annotations

import os
from dataclasses import dataclass

from xsgpu.io.runstore import RunStore
from xsgpu.io.schema import (EMBEDDING, EMBEDDING_BY_METHOD, EMBEDDING_REFERENCE, FEA_REDUCED, FEATURES,
                             LAYER_OVERLAPS, PREDICTIONS, SAMPLES)
from xsgpu.stages.base import PartitionContext, Plan, Stage

__all__ = ["EmbedStage", "EmbedParams"]


@dataclass(frozen=True)
class EmbedParams:
    """Parameters of :func:`xsgpu.embed.embed_run` (``random_state`` the seed; ``reference`` an earlier run)."""

    method: str = "tsne"
    device: str = "auto"
    random_state: int | None = 0
    pca_dims: int = 50
    perplexity: float = 30.0
    reference: str | None = None
    n_jobs: int = -1
    quality: bool = True
    fit_sample: int | None = None


class EmbedStage(Stage):
    """Project the three spaces of a run to 2-D with one method; keep each method's table."""

    name = "embed"
    inputs = (SAMPLES, PREDICTIONS, FEATURES)
    outputs = (EMBEDDING, EMBEDDING_BY_METHOD, FEA_REDUCED, EMBEDDING_REFERENCE, LAYER_OVERLAPS)
    Params = EmbedParams
    partitioned = False
    lock = True  # fea_reduced and embedding stay one method's

    def is_done(self, run_path: str | os.PathLike, params: EmbedParams) -> tuple[bool, str]:
        from xsgpu.embed.run import embedding_is_current

        current, why = embedding_is_current(run_path, method=params.method, random_state=params.random_state,
                                            fit_sample=params.fit_sample, pca_dims=params.pca_dims,
                                            perplexity=params.perplexity)
        if not current:
            return False, why
        store = RunStore.open(run_path)
        have = store.read_metadata(EMBEDDING_BY_METHOD.named(method=params.method)).get("reference")
        want = None if params.reference is None else str(RunStore.open(params.reference).path)
        if have != want:
            return False, f"changed since the last embed: reference {have!r} -> {want!r}"
        from xsgpu.explain.layers import kept_layers

        if kept_layers(store) and not store.artifact(LAYER_OVERLAPS).exists():
            return False, "the run keeps layers but has no layer_overlaps yet"
        return True, f"{params.method} embedding {why}"

    def plan(self, run_path: str | os.PathLike, params: EmbedParams, *, progress: bool = False) -> Plan:
        RunStore.open(run_path)
        return Plan(parts=[0], params=params)

    def run_partition(self, run_path: str | os.PathLike, part: int, params: EmbedParams,
                      ctx: PartitionContext | None = None) -> dict:
        import xsgpu.embed

        ctx = ctx or PartitionContext()
        df = xsgpu.embed.embed_run(run_path, method=params.method, device=params.device,
                                   random_state=params.random_state, progress=ctx.progress, pca_dims=params.pca_dims,
                                   perplexity=params.perplexity, reference=params.reference, n_jobs=params.n_jobs,
                                   quality=params.quality, fit_sample=params.fit_sample, map_fn=ctx.inner_map)
        return {"rows": len(df)}
