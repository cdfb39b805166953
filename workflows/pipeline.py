"""The whole pipeline on a Dask cluster: synth | ingest -> (train) -> infer -> embed -> evaluate.

Partitioned stages (synth, infer) are mapped over the run store's partitions by :func:`map_partitions`:
one task per pending partition, ``retries`` for failing tasks, a tqdm bar over ``as_completed``, one
event line per finished partition in the run log. Single stages (ingest, train, embed, evaluate) run
as one call, on the client or on one worker (:func:`run_single`).

Resume and exactly-once rest on the run store (xsgpu.io.runstore): a partition is finished exactly
when its Parquet part exists, writers fill Zarr rows first and rename the Parquet part last. A rerun
therefore maps only the pending partitions; a task retried after a lost worker rewrites the same rows
(idempotent), never a second copy. Single stages are skipped when their output exists.

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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from workflows.cluster import close_client, dashboard_link, make_client
from workflows.runlog import RunLog
from xsgpu.errors import StageError
from xsgpu.io.schema import SAMPLES

if TYPE_CHECKING:  # pragma: no cover
    from distributed import Client

__all__ = ["PipelineError", "StageReport", "PipelineResult", "map_partitions", "run_single", "run_pipeline",
           "checkpoint_exists"]

log = logging.getLogger(__name__)


class PipelineError(StageError):
    """A stage failed; the message names the stage, the partitions and the first error. Rerun to resume."""


@dataclass
class StageReport:
    """What one stage did in this invocation.

    Attributes
    ----------
    name : str
    status : {"done", "skipped", "failed"}
    seconds : float
        Wall time of the stage in this invocation.
    rows : int
        Rows written in this invocation (partitioned stages) or produced (single stages).
    partitions_run, partitions_skipped : int
        Partitions computed now / already finished before (resume).
    info : dict
        Stage-specific details (e.g. training metrics, the model path).
    """

    name: str
    status: str = "done"
    seconds: float = 0.0
    rows: int = 0
    partitions_run: int = 0
    partitions_skipped: int = 0
    info: dict = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("nan")


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


def infer_partition_task(run_path: str, part: int) -> int:
    """Infer one partition with this worker's model (loaded once by :class:`~workflows.plugins.PredictorPlugin`)."""
    from xsgpu.model import infer_partition

    from workflows.plugins import get_predictor

    return infer_partition(run_path, part, get_predictor())


def ingest_partition_task(run_path: str, part: int) -> int:
    """Read, preprocess and write one planned ingest partition."""
    from xsgpu.io.ingest import ingest_partition

    return ingest_partition(run_path, part)


def synth_partition_task(run_path: str, part: int, *, device: str = "cpu") -> int:
    """Generate one partition of a planned synthetic run."""
    from xsgpu.synth import synth_partition

    return synth_partition(run_path, part, device=device)


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


def checkpoint_exists(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a finished model checkpoint, so training can be skipped.

    xsgpu.model writes ``model.json`` last (after the weights), and only at the end of training (epoch
    checkpoints live under ``OUT/epochs/``), so its presence means complete.
    """
    p = Path(path)
    return (p / "model.json").is_file() and (p / "model.safetensors").is_file()


def _mark_done(store: Any, report: StageReport, **info: Any) -> None:
    """Record a partitioned stage as done in the manifest (when it ran now; a skipped one already is)."""
    if report.partitions_run:
        store.set_stage(report.name, "done", n_partitions_done=report.partitions_run,
                        n_partitions_skipped=report.partitions_skipped, rows=report.rows,
                        rows_per_s=round(report.rows_per_second, 2), **info)


def _check_int(name: str, value: Any, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"The '{name}' parameter of run_pipeline must be an int >= {low}. Got {value!r} instead.")


def _train_task(run_path: str, *, out: str, threads: int | None, **kwargs: Any) -> dict:
    """Train (resuming after the last complete epoch checkpoint of an interrupted attempt)."""
    from xsgpu.model.train import latest_epoch_checkpoint, train_model

    resume = latest_epoch_checkpoint(out) is not None
    if resume:
        log.info("resuming training from %s", latest_epoch_checkpoint(out))
    return train_model(run_path, out=out, resume=resume, num_threads=threads, **kwargs)


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
    train: bool = False,
    model: str | os.PathLike | None = None,
    arch: str = "resnet18",
    input_size: int = 64,
    epochs: int = 3,
    train_options: dict | None = None,
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

    Every stage resumes: finished partitions and existing outputs (samples, model, predictions,
    embedding, metrics) are skipped, so rerunning the same call after a crash completes the run.

    Parameters
    ----------
    out : path
        The run directory.
    synth : int, optional
        Generate this many synthetic images (``size`` px, ``seed``, ``images_per_run`` per run).
    ingest : sequence of paths, optional
        Detector files or directories to ingest instead (``labels``: a label table; ``h5_dataset``).
        With neither ``synth`` nor ``ingest`` the run must already hold its samples.
    train : bool
        Train a model (``arch`` at ``input_size`` px for ``epochs``, extra ``train_options``) into
        ``model`` (default ``RUN/model``); skipped when that checkpoint exists.
    model : path, optional
        Checkpoint for inference (and the training output when ``train``).
    embed, evaluate : bool
        Run the embedding (``embed_method``) and the evaluation (``cutoff``). The embed stage reruns
        when the run holds no ``embed_method`` map made with this seed and ``embed_fit_sample`` from
        today's predictions (:func:`xsgpu.embed.run.embedding_is_current`).
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
        Where ingest/train/embed/evaluate run; ``"auto"``: the client process for a local cluster
        started here (it may use every core), one worker otherwise.
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
    model_path = Path(model) if model is not None else (out / "model" if train else None)
    if model_path is not None and not train and not checkpoint_exists(model_path):
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
        store = None
        try:
            # ------------------------------------------------------------------ source
            if synth is not None:
                from xsgpu.synth import plan_synth_run

                store = plan_synth_run(out, n=synth, size=size, seed=seed, partition_size=partition_size,
                                       images_per_run=images_per_run)
                pending = store.samples.pending()
                if pending:
                    store.set_stage("synth", "running", pending=len(pending))
                stages["synth"] = map_partitions(
                    client, synth_partition_task, out, pending, stage="synth", fn_kwargs={"device": device},
                    retries=retries, n_skipped=store.n_partitions - len(pending), progress=progress,
                    runlog=runlog, task_hook=task_hook)
                _mark_done(store, stages["synth"])
            elif ingest:
                from xsgpu.io.ingest import plan_ingest

                limits = {k: v for k, v in (("max_frame_pixels", max_frame_pixels),
                                            ("max_frames_per_file", max_frames_per_file)) if v is not None}
                store = plan_ingest([os.fspath(p) for p in ingest], out, labels=labels, size=size,
                                    partition_size=partition_size, h5_dataset=h5_dataset, progress=progress,
                                    **limits)
                if store.n_samples == 0:
                    raise PipelineError(f"None of the {len(ingest)} ingest input(s) gave a readable frame; see "
                                        f"{store.errors.path}. Nothing to run.")
                pending = store.samples.pending()
                stages["ingest"] = map_partitions(
                    client, ingest_partition_task, out, pending, stage="ingest", retries=retries,
                    n_skipped=store.n_partitions - len(pending), progress=progress, runlog=runlog,
                    task_hook=task_hook)
                from xsgpu.io.ingest import finish_ingest

                finish_ingest(store)
            store = RunStore.open(out, require=[SAMPLES])
            store.set_stage("pipeline", "running", pid=os.getpid())

            # ------------------------------------------------------------------ train
            if train:
                if checkpoint_exists(model_path):
                    stages["train"] = StageReport("train", status="skipped", info={"model": str(model_path)})
                    runlog.event("stage_skipped", stage="train", reason="checkpoint exists", model=model_path)
                else:
                    t0 = time.perf_counter()
                    threads = None if where == "client" else (cluster_options or {}).get("threads_per_worker")
                    info = run_single(client, _train_task, os.fspath(out), stage="train", where=where,
                                      runlog=runlog, threads=threads, arch=arch, size=input_size, epochs=epochs,
                                      out=os.fspath(model_path), device=device, seed=seed, progress=progress,
                                      **(train_options or {}))
                    stages["train"] = StageReport("train", seconds=time.perf_counter() - t0,
                                                  rows=store.n_samples * epochs,
                                                  info=info if isinstance(info, dict) else {})

            # ------------------------------------------------------------------ infer
            if model_path is not None:
                from workflows.plugins import ensure_predictor
                from xsgpu.io.locks import stage_lock

                # one writer of predictions at a time: a concurrent `xsgpu infer` is refused (StoreLocked)
                with stage_lock(store.path, "infer"):
                    pending = store.predictions.pending()
                    skipped = store.n_partitions - len(pending)
                    if pending:
                        _prepare_infer(store, model_path)
                        ensure_predictor(client, model_path, device=device, batch_size=batch_size)
                        store.set_stage("infer", "running", model=str(model_path), pending=len(pending))
                    stages["infer"] = map_partitions(
                        client, infer_partition_task, out, pending, stage="infer", retries=retries,
                        n_skipped=skipped, progress=progress, runlog=runlog, task_hook=task_hook)
                    _mark_done(store, stages["infer"], model=str(model_path))

            # ------------------------------------------------------------------ embed
            if embed:
                from xsgpu.embed.run import embed_run, embedding_is_current

                current, why = embedding_is_current(out, method=embed_method, random_state=seed,
                                                    fit_sample=embed_fit_sample)
                if current:
                    stages["embed"] = StageReport("embed", status="skipped")
                    runlog.event("stage_skipped", stage="embed", reason=f"{embed_method} embedding {why}")
                else:
                    from workflows.placement import dask_map_fn

                    runlog.event("stage_reason", stage="embed", reason=why)
                    place_on = dask_map_fn(client) if embed_fit_sample and where == "client" else None
                    # on a worker, openTSNE gets the worker's threads: more threads than the worker
                    # owns made a 96-image t-SNE run past 4 min on a busy 2-core node (1 thread: 65 s)
                    threads = -1 if where == "client" else max(1, min(client.nthreads().values(), default=1))
                    t0 = time.perf_counter()
                    df = run_single(client, embed_run, os.fspath(out), stage="embed", where=where, runlog=runlog,
                                    method=embed_method, device=device, random_state=seed, progress=progress,
                                    fit_sample=embed_fit_sample, map_fn=place_on, n_jobs=threads)
                    stages["embed"] = StageReport("embed", seconds=time.perf_counter() - t0, rows=len(df))

            # ------------------------------------------------------------------ evaluate
            if evaluate:
                if store.metrics.exists():
                    stages["evaluate"] = StageReport("evaluate", status="skipped")
                    runlog.event("stage_skipped", stage="evaluate", reason="metrics exist")
                else:
                    from xsgpu.metrics import evaluate_run

                    t0 = time.perf_counter()
                    df = run_single(client, evaluate_run, os.fspath(out), stage="evaluate", where="client",
                                    runlog=runlog, cutoff=cutoff)
                    stages["evaluate"] = StageReport("evaluate", seconds=time.perf_counter() - t0,
                                                     rows=store.n_samples, info={"metric_rows": len(df)})
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


def _prepare_infer(store: Any, model_path: Path) -> None:
    """Check the model against the run on the client before mapping infer (fail once, not per task).

    Refuses a checkpoint whose attributes or stored frame size do not fit the run, and a resume with
    a different model than the one that wrote the finished predictions partitions (mixing two models
    in one table would be silent corruption).
    """
    import json

    import pyarrow.parquet as pq

    from xsgpu.model.predictor import Predictor

    Predictor.from_checkpoint(model_path, device="cpu", batch_size=1, num_threads=1).check_run(store)
    done = sorted(store.predictions.finished())
    if not done:
        return
    cur = _checkpoint_sha(model_path)
    for p in done:
        meta = pq.read_schema(store.predictions.partition_path(p)).metadata or {}
        prev = json.loads(meta.get(b"xsgpu", b"{}")).get("weights_sha256")
        if prev and cur and prev != cur:
            raise PipelineError(
                f"{store.path}: predictions partition {p} was written by a model with weights_sha256 "
                f"{prev[:12]}..., but --model {model_path} has {cur[:12]}.... Hint: resume with the same model, "
                f"or delete {store.predictions.path} and {store.features.path} to re-infer with this one.")


def _checkpoint_sha(model_path: Path) -> str | None:
    """The weights' sha256 recorded in the checkpoint's ``model.json`` (None when not recorded)."""
    from xsgpu.model import read_checkpoint_meta

    return read_checkpoint_meta(model_path).get("weights_sha256")
