"""The whole pipeline on a Dask cluster: synth | ingest -> (train) -> infer -> embed -> evaluate.

A thin driver over the stage registry (:mod:`xsgpu.stages`): it chooses the stages and their
parameters, then runs each with :func:`xsgpu.stages.run_stage`, the same driver the CLI uses, giving
it a Dask mapping. Partitioned stages (synth, ingest, infer) are mapped over their pending partitions
by :func:`map_partitions`: one task per partition, ``retries`` for failing tasks, a tqdm bar over
``as_completed``, one event line per finished partition in the run log; a stage's shared resource
(infer's model) is built once per worker (:mod:`workflows.plugins`). Single stages (train, embed,
evaluate) run as one call, on the client or on one worker (:func:`run_single`).

Resume and exactly-once rest on the run store (xsgpu.io.runstore) and the stages: a partition is
finished exactly when its Parquet part exists (Zarr rows first, the part renamed last), so a rerun maps
only the pending partitions and a task retried after a lost worker rewrites the same rows. A single
stage is skipped when it :meth:`~xsgpu.stages.Stage.is_done` for the parameters asked (an embedding of
another method, a checkpoint of another architecture, metrics at another cut-off rerun).

Examples
--------
::

    from workflows.pipeline import run_pipeline
    if __name__ == "__main__":                      # a process-based LocalCluster needs the guard
        result = run_pipeline("runs/small", synth=2000, size=128, train=True, epochs=2,
                              cluster="local", cluster_options={"n_workers": 2})
        print(result.stages["infer"].rows_per_second)
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from workflows.cluster import close_client, dashboard_link, make_client
from workflows.runlog import RunLog
from xsgpu.stages import (AppCacheParams, EmbedParams, EvaluateParams, InferParams, IngestParams, PartitionContext, Stage,
                          StageFailed, StageReport, SynthParams, TrainParams, checkpoint_exists, get_stage,
                          param_names, rows_and_info, run_stage)

if TYPE_CHECKING:  # pragma: no cover
    from distributed import Client

__all__ = ["PipelineError", "StageReport", "PipelineResult", "map_partitions", "run_single", "run_pipeline",
           "checkpoint_exists", "dask_map"]

log = logging.getLogger(__name__)

#: a stage failed; the message names the stage, the partitions and the first error. Rerun to resume.
PipelineError = StageFailed


@dataclass
class PipelineResult:
    """The outcome of :func:`run_pipeline`: the run, the model, per-stage reports, the log file."""

    run_path: Path
    model: Path | None
    stages: dict[str, StageReport]
    log_path: Path
    dashboard: str | None
    seconds: float

    def summary(self) -> dict:
        """A JSON-able dict of the result (written to the manifest's ``pipeline`` stage)."""
        return {"run_path": str(self.run_path), "model": None if self.model is None else str(self.model),
                "log": str(self.log_path), "seconds": round(self.seconds, 3),
                "stages": {k: {**asdict(v), "rows_per_second": v.rows_per_second} for k, v in self.stages.items()}}


# ---------------------------------------------------------------------------------------------- tasks
def _partition_task(fn: Callable, run_path: str, part: int, stage: str, fn_kwargs: dict,
                    hook: Callable[[str, int], None] | None) -> dict:
    """Run ``fn(run_path, part, **fn_kwargs)`` on a worker and report rows, seconds and where."""
    if hook is not None:
        hook(stage, part)
    t0 = time.perf_counter()
    rows = fn(run_path, part, **fn_kwargs)
    try:
        from distributed import get_worker
        where = get_worker().address
    except ValueError:
        where = "client"
    return {"part": part, "rows": int(rows or 0), "seconds": time.perf_counter() - t0, "worker": where,
            "pid": os.getpid()}


def stage_partition_task(run_path: str, part: int, *, stage: Stage, params: Any, resource: str | None) -> int:
    """One partition of ``stage`` on a worker, with the worker's copy of the stage's resource."""
    ctx = PartitionContext()
    if resource is not None:
        from workflows.plugins import get_resource

        ctx.resource = get_resource(resource)
    return rows_and_info(stage.run_partition(run_path, part, params, ctx))[0]


def _single_task(run_path: str, part: int, *, of: Stage, params: Any, progress: bool,
                 inner_map: Callable | None = None) -> Any:
    """A single stage's partition, on the client or a worker; returns what the stage returned."""
    return of.run_partition(run_path, part, params, PartitionContext(inner_map=inner_map, progress=progress))


def map_partitions(
    client: "Client",
    fn: Callable[..., int],
    run_path: str | os.PathLike,
    parts: Sequence[int],
    *,
    stage: str,
    fn_kwargs: dict | None = None,
    retries: int = 2,
    n_skipped: int = 0,
    progress: bool = True,
    runlog: RunLog | None = None,
    task_hook: Callable[[str, int], None] | None = None,
) -> StageReport:
    """Run ``fn(run_path, part, **fn_kwargs)`` for each partition on the cluster, one task per partition.

    Parameters
    ----------
    client : distributed.Client
    fn : callable
        A module-level function (workers import it) that writes partition ``part`` atomically and
        returns its row count.
    run_path : path
    parts : sequence of int
        The pending partitions (``RunStore.pending_partitions(table)``).
    stage : str
        Stage name for the progress bar, task keys and log events.
    retries : int
        Automatic retries of a task that raises (a lost worker is retried by the scheduler as well).
    n_skipped : int
        Partitions already finished before (reported only).
    task_hook : callable, optional
        ``hook(stage, part)`` run on the worker before each task (instrumentation, fault injection).

    Returns
    -------
    StageReport

    Raises
    ------
    PipelineError
        After all tasks settled, when any partition still failed; finished partitions stay written.
    """
    from distributed import as_completed
    from tqdm.auto import tqdm

    if not isinstance(retries, int) or retries < 0:
        raise ValueError(f"The 'retries' parameter of map_partitions must be an int >= 0. Got {retries!r} instead.")
    run_path = os.fspath(run_path)
    report = StageReport(stage, partitions_skipped=n_skipped)
    t0 = time.perf_counter()
    if runlog:
        runlog.event("stage_start", stage=stage, pending=len(parts), skipped=n_skipped)
    futures = [client.submit(_partition_task, fn, run_path, int(p), stage, fn_kwargs or {}, task_hook,
                             key=f"{stage}-{int(p):05d}-{os.getpid()}-{time.time_ns()}", retries=retries,
                             pure=False)
               for p in parts]
    part_of = {f.key: int(p) for f, p in zip(futures, parts)}
    failures: list[tuple[int, BaseException]] = []
    bar = tqdm(total=len(parts), desc=stage, unit="part", disable=not progress)
    try:
        for fut in as_completed(futures):
            try:
                res = fut.result()
            except Exception as exc:  # noqa: BLE001 - recorded and re-raised below as PipelineError
                part = part_of[fut.key]
                failures.append((part, exc))
                log.error("%s partition %d failed after %d retries: %r", stage, part, retries, exc)
                if runlog:
                    runlog.event("partition_failed", stage=stage, part=part, error=type(exc).__name__)
            else:
                report.rows += res["rows"]
                report.partitions_run += 1
                if runlog:
                    runlog.event("partition_done", stage=stage, part=res["part"], rows=res["rows"],
                                 seconds=f"{res['seconds']:.3f}", worker=res["worker"], pid=res["pid"])
            bar.update(1)
    finally:
        bar.close()
    report.seconds = time.perf_counter() - t0
    if runlog:
        runlog.event("stage_end", stage=stage, rows=report.rows, parts=report.partitions_run,
                     failed=len(failures), seconds=f"{report.seconds:.3f}")
    if failures:
        report.status = "failed"
        failures.sort(key=lambda f: f[0])
        parts_s = ", ".join(str(p) for p, _ in failures[:20])
        raise PipelineError(f"Stage {stage!r}: {len(failures)} of {len(parts)} partitions failed ({parts_s}); "
                            f"first error: {failures[0][1]!r}. Finished partitions are kept: fix the cause "
                            "and rerun the same command to resume.") from failures[0][1]
    return report


def run_single(client: "Client | None", fn: Callable[..., Any], *args: Any, stage: str, where: str = "client",
               runlog: RunLog | None = None, **kwargs: Any) -> Any:
    """Run one whole-run stage ``fn(*args, **kwargs)`` on the client process or on one worker.

    Parameters
    ----------
    where : {"client", "worker"}
        ``"worker"`` submits a single task (``retries=0``: a whole-run stage is expensive and
        re-running it is the rerun's job).
    """
    if where not in ("client", "worker"):
        raise ValueError(f"The 'where' parameter of run_single must be 'client' or 'worker'. Got {where!r} instead.")
    if runlog:
        runlog.event("stage_start", stage=stage, where=where)
    t0 = time.perf_counter()
    if where == "worker":
        if client is None:
            raise ValueError("run_single(where='worker') needs a client.")
        out = client.submit(fn, *args, key=f"{stage}-{os.getpid()}-{time.time_ns()}", pure=False, **kwargs).result()
    else:
        out = fn(*args, **kwargs)
    if runlog:
        runlog.event("stage_end", stage=stage, seconds=f"{time.perf_counter() - t0:.3f}")
    return out


def dask_map(client: "Client", *, where: str = "client", retries: int = 2, progress: bool = True,
             runlog: RunLog | None = None, task_hook: Callable[[str, int], None] | None = None,
             inner_map: Callable | None = None):
    """The :data:`xsgpu.stages.MapFn` of the pipeline: partitions as Dask tasks, single stages via :func:`run_single`.

    ``where`` places single stages (a stage marked ``on_client`` always runs on the client);
    ``inner_map`` is given to a single stage run on the client (embed's placement batches).
    """
    def map_fn(stage: Stage, run_path: Path, parts: Sequence[int], params: Any, resource: Any) -> StageReport:
        if stage.partitioned:
            if resource is not None and parts:
                from workflows.plugins import ensure_resource

                ensure_resource(client, resource)
            return map_partitions(client, stage_partition_task, run_path, parts, stage=stage.name,
                                  fn_kwargs={"stage": stage, "params": params,
                                             "resource": None if resource is None else resource.name},
                                  retries=retries, progress=progress, runlog=runlog, task_hook=task_hook)
        report = StageReport(stage.name)
        on = "client" if stage.on_client else where
        for p in parts:
            out = run_single(client, _single_task, os.fspath(run_path), int(p), stage=stage.name, where=on,
                             runlog=runlog, of=stage, params=params, progress=progress,
                             inner_map=inner_map if on == "client" else None)
            rows, info = rows_and_info(out)
            report.rows += rows
            report.partitions_run += 1
            report.info.update(info)
        return report

    return map_fn


def _check_int(name: str, value: Any, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"The '{name}' parameter of run_pipeline must be an int >= {low}. Got {value!r} instead.")


def run_pipeline(
    out: str | os.PathLike,
    *,
    synth: int | None = None,
    size: int = 256,
    seed: int = 0,
    images_per_run: int = 200,
    ingest: Sequence[str | os.PathLike] | None = None,
    labels: str | os.PathLike | None = None,
    h5_dataset: str | None = None,
    vocabulary: Any = None,
    train: bool = False,
    model: str | os.PathLike | None = None,
    spec: str | os.PathLike | None = None,
    arch: str = "resnet18",
    input_size: int = 64,
    epochs: int = 3,
    train_options: dict | None = None,
    overwrite: bool = False,
    embed: bool = True,
    embed_method: str = "tsne",
    embed_fit_sample: int | None = None,
    max_frame_pixels: int | None = None,
    max_frames_per_file: int | None = None,
    evaluate: bool = True,
    cutoff: float = 0.5,
    partition_size: int = 4096,
    batch_size: int | None = None,
    device: str = "auto",
    client: "Client | None" = None,
    cluster: str = "local",
    cluster_options: dict | None = None,
    single_stage_on: str = "auto",
    retries: int = 2,
    progress: bool = True,
    task_hook: Callable[[str, int], None] | None = None,
    announce: Callable[[str], None] | None = None,
) -> PipelineResult:
    """Run synth | ingest -> (train) -> infer -> embed -> evaluate into the run store ``out``.

    Every stage resumes: finished partitions are skipped, and a single stage (train, embed, evaluate)
    that is done for the parameters asked (:meth:`xsgpu.stages.Stage.is_done`), so rerunning the same
    call after a crash completes the run, and changing a stage's parameters reruns that stage.

    Parameters
    ----------
    out : path
        The run directory.
    synth : int, optional
        Generate this many synthetic images (``size`` px, ``seed``, ``images_per_run`` per run).
    ingest : sequence of paths, optional
        Detector files or directories to ingest instead (``labels``: a label table; ``h5_dataset``).
        With neither ``synth`` nor ``ingest`` the run must already hold its samples.
    vocabulary : Vocabulary or "from-labels", optional
        The ingested run's attributes (:func:`xsgpu.io.ingest.plan_ingest`); default the paper's 17.
    train : bool
        Train a model (``arch`` at ``input_size`` px for ``epochs``, extra ``train_options``: fields of
        :class:`xsgpu.stages.TrainParams`) into ``model`` (default ``RUN/model``); skipped when that
        checkpoint was trained so (arch, size, epochs, seed, run).
    model : path, optional
        Checkpoint for inference (and the training output when ``train``), or a model file from
        elsewhere (ONNX, TorchScript, a state dict) described by ``spec`` (default: the spec beside it).
    overwrite : bool
        Replace the run's predictions and features (another model's): infer's ``overwrite``.
    embed, evaluate : bool
        Run the embedding (``embed_method``) and the evaluation (``cutoff``). The embed stage reruns
        when the run holds no ``embed_method`` map made with this seed and ``embed_fit_sample`` from
        today's predictions.
    max_frame_pixels, max_frames_per_file : int, optional
        Ingest's header-checked limits (``xsgpu.io.ingest.plan_ingest``); ``None``: its defaults.
    embed_fit_sample : int, optional
        Fit each t-SNE map on a stratified sample of this many images and place the rest, in batches
        spread over the cluster's workers (:mod:`xsgpu.embed.sample_place`).
    partition_size : int
        Images per partition = per task (DESIGN: 1k-10k; small in tests). Fixed by the first run.
    batch_size : int, optional
        Inference batch size.
    device : {"auto", "cpu", "gpu"}
        Device of synth, inference and embedding.
    client : distributed.Client, optional
        Use this client (left open). Otherwise ``make_client(cluster, **cluster_options)``.
    cluster : {"local", "local-cuda", "slurm", "pbs", "address"}
    cluster_options : dict, optional
        Keyword arguments of :func:`workflows.cluster.make_client`.
    single_stage_on : {"auto", "client", "worker"}
        Where train/embed run (evaluate runs on the client); ``"auto"``: the client process for a local
        cluster started here (it may use every core), one worker otherwise.
    retries : int
        Retries of a failing partition task.
    progress : bool
        Show tqdm progress bars.
    task_hook : callable, optional
        ``hook(stage, part)`` run on the worker before each partition task (tests inject faults).
    announce : callable, optional
        Receives human-readable messages (dashboard address, log file), e.g. ``click.echo``.

    Returns
    -------
    PipelineResult

    Raises
    ------
    ValueError
        For contradictory or invalid parameters, naming them.
    PipelineError
        When a stage fails; what finished stays written and a rerun resumes.
    """
    from xsgpu.io.runstore import RunStore
    from xsgpu.io.schema import SAMPLES

    say = announce or (lambda msg: None)
    if synth is not None and ingest:
        raise ValueError("run_pipeline takes 'synth' or 'ingest', not both. Got synth="
                         f"{synth!r} and {len(ingest)} ingest path(s).")
    if synth is not None:
        _check_int("synth", synth, 1)
        _check_int("size", size, 8)
    _check_int("partition_size", partition_size, 1)
    _check_int("retries", retries, 0)
    if single_stage_on not in ("auto", "client", "worker"):
        raise ValueError("The 'single_stage_on' parameter of run_pipeline must be 'auto', 'client' or 'worker'. "
                         f"Got {single_stage_on!r} instead.")
    out = Path(out)
    if synth is None and not ingest and not (out / "manifest.json").exists():
        raise ValueError(f"run_pipeline needs a source: 'synth' (a number of images) or 'ingest' (paths), "
                         f"because {out} holds no run yet.")
    if (embed or evaluate) and model is None and not train:
        raise ValueError("run_pipeline needs a model for infer/embed/evaluate: pass 'model' (a checkpoint) or "
                         "train=True. Hint: xsgpu pipeline ... --train, or --model models/r18.")
    if train:
        _check_int("epochs", epochs, 1)
        _check_int("input_size", input_size, 8)
        unknown = sorted(set(train_options or {}) - set(param_names(get_stage("train"))))
        if unknown:
            raise ValueError(f"The 'train_options' parameter of run_pipeline holds unknown options {unknown}; "
                             f"choose among {param_names(get_stage('train'))}.")
    model_path = Path(model) if model is not None else (out / "model" if train else None)
    if model_path is not None and not train and not (checkpoint_exists(model_path) or model_path.is_file()):
        raise FileNotFoundError(f"The model checkpoint {model_path} does not exist or is incomplete. "
                                "Hint: train one with --train (or `xsgpu train`), or fix --model.")

    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    stages: dict[str, StageReport] = {}
    own_client = client is None
    with RunLog(out, name="pipeline") as runlog:
        say(f"log file: {runlog.path}")
        runlog.event("pipeline_start", out=out, synth=synth, ingest=len(ingest or []), train=train,
                     model=model_path, partition_size=partition_size, cluster=cluster if own_client else "given")
        if own_client:
            client = make_client(cluster, **(cluster_options or {}))
        where = single_stage_on
        if where == "auto":
            where = "client" if own_client and cluster in ("local", "local-cuda") else "worker"
        dashboard = dashboard_link(client)  # where it really listens (127.0.0.1 unless told otherwise)
        say(f"Dask dashboard: {dashboard}")
        log.info("Dask dashboard: %s (single stages on the %s)", dashboard, where)
        runlog.event("cluster", dashboard=dashboard, workers=len(client.scheduler_info().get("workers", {})))
        on_client = where == "client"
        source: list[tuple[str, Any]] = []
        if synth is not None:
            source.append(("synth", SynthParams(n=synth, size=size, seed=seed, partition_size=partition_size,
                                                images_per_run=images_per_run, device=device)))
        elif ingest:
            limits = {k: v for k, v in (("max_frame_pixels", max_frame_pixels),
                                        ("max_frames_per_file", max_frames_per_file)) if v is not None}
            source.append(("ingest", IngestParams(paths=tuple(os.fspath(p) for p in ingest),
                                                  labels=None if labels is None else os.fspath(labels), size=size,
                                                  partition_size=partition_size, h5_dataset=h5_dataset,
                                                  vocabulary=vocabulary, **limits)))
        later: list[tuple[str, Any]] = []
        if train:
            threads = None if on_client else (cluster_options or {}).get("threads_per_worker")
            later.append(("train", TrainParams(**{"out": os.fspath(model_path), "arch": arch, "size": input_size,
                                                  "epochs": epochs, "device": device, "seed": seed,
                                                  "num_threads": threads, **(train_options or {})})))
        if model_path is not None:
            later.append(("infer", InferParams(model=os.fspath(model_path),
                                               spec=None if spec is None else os.fspath(spec), device=device,
                                               batch_size=batch_size or InferParams.batch_size, overwrite=overwrite)))
        if embed:
            # on a worker, openTSNE gets the worker's threads: more threads than the worker owns made
            # a 96-image t-SNE run past 4 min on a busy 2-core node (1 thread: 65 s)
            n_jobs = -1 if on_client else max(1, min(client.nthreads().values(), default=1))
            later.append(("embed", EmbedParams(method=embed_method, device=device, random_state=seed,
                                               fit_sample=embed_fit_sample, n_jobs=n_jobs)))
        if evaluate:
            later.append(("evaluate", EvaluateParams(cutoff=cutoff)))
        if embed:  # the app's start-up arrays, written once here rather than by the first `xsgpu serve`
            later.append(("app_cache", AppCacheParams()))
        inner = None
        if embed_fit_sample and on_client:
            from workflows.placement import dask_map_fn

            inner = dask_map_fn(client)
        map_fn = dask_map(client, where=where, retries=retries, progress=progress, runlog=runlog,
                          task_hook=task_hook, inner_map=inner)
        store = None
        try:
            for name, params in source:
                stages[name] = run_stage(get_stage(name), out, params, map_fn=map_fn, progress=progress,
                                         on_event=runlog.event)
            store = RunStore.open(out, require=[SAMPLES])
            store.set_stage("pipeline", "running", pid=os.getpid())
            for name, params in later:
                stages[name] = run_stage(get_stage(name), out, params, map_fn=map_fn, progress=progress,
                                         on_event=runlog.event)
        except BaseException as exc:
            runlog.event("pipeline_failed", error=type(exc).__name__)
            if store is not None:
                try:
                    store.set_stage("pipeline", "failed", error=f"{type(exc).__name__}: {exc}"[:500])
                except Exception:  # noqa: BLE001 - never mask the original error
                    log.exception("could not record the failure in the manifest")
            raise
        finally:
            if own_client:
                close_client(client)
        result = PipelineResult(run_path=out, model=model_path, stages=stages, log_path=runlog.path,
                                dashboard=dashboard, seconds=time.perf_counter() - t_start)
        store.set_stage("pipeline", "done", **result.summary())
        runlog.event("pipeline_done", seconds=f"{result.seconds:.3f}")
    return result
