"""The stage contract: what every stage of a run declares and does, and one driver that runs any of them.

A :class:`Stage` states its ``inputs`` and ``outputs`` (schema artifacts), its parameters (a frozen
dataclass, ``Params``, with defaults) and whether it is ``partitioned``. It answers
:meth:`~Stage.is_done` ("is the run's output there, made with these parameters?"), makes a
:meth:`~Stage.plan` (setup: create arrays, check a resume, open a staging area; returns the partitions
to do), runs one partition (:meth:`~Stage.run_partition`, anywhere: in this process, in a process pool,
on a Dask worker) and :meth:`~Stage.finish`-es (record the stage in the manifest, swap staged outputs
in). A single-partition stage (train, embed, evaluate) plans partition 0 only.

:func:`run_stage` drives a stage: in this process by default, or over any mapping of partitions
(``map_fn``: :func:`process_map` here, ``workflows.pipeline``'s Dask mapping there). Neither the CLI nor
the pipeline holds a copy of a stage's logic.

What a stage's partitions share inside one process (a loaded model) is a :class:`Resource`: built
once per process (:func:`load_resource`) or once per Dask worker (``workflows.plugins``).

Examples
--------
::

    from xsgpu.stages import get_stage, run_stage
    embed = get_stage("embed")
    params = embed.Params(method="pca")
    embed.is_done("runs/demo", params)        # (False, 'no pca embedding yet')
    report = run_stage(embed, "runs/demo", params, progress=False)
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
from abc import ABC, abstractmethod
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

from xsgpu.errors import StageError
from xsgpu.io.schema import Artifact

__all__ = ["Stage", "Plan", "Resource", "StageReport", "StageFailed", "PartitionContext", "MapFn",
           "run_stage", "process_map", "load_resource", "rows_and_info", "param_names"]

log = logging.getLogger(__name__)


class StageFailed(StageError):
    """A stage could not finish (partitions failed, nothing to work on); what finished stays written."""


@dataclass(frozen=True)
class Resource:
    """What the partitions of a stage share inside one process, loaded once there (e.g. a model).

    Parameters
    ----------
    name : str
        What it is (``"predictor"``); one resource of a name is held per process.
    signature : str
        What identifies it (weights hash and options): a held resource with another signature is replaced.
    factory : callable
        ``factory(threads=None)`` builds it; picklable (a ``functools.partial`` of a module-level function),
        ``threads`` the CPU threads of the process or worker (``None``: its own default).
    """

    name: str
    signature: str
    factory: Callable[..., Any]

    def load(self, threads: int | None = None) -> Any:
        """Build the resource (no cache; see :func:`load_resource`)."""
        return self.factory(threads=threads)


#: resources held by this process: name -> (signature, object)
_HELD: dict[str, tuple[str, Any]] = {}


def load_resource(resource: Resource, *, threads: int | None = None) -> Any:
    """The process's copy of ``resource``, built on first use (and when its signature changes)."""
    held = _HELD.get(resource.name)
    if held is None or held[0] != resource.signature:
        _HELD.pop(resource.name, None)  # drop the old one first (frees GPU memory)
        _HELD[resource.name] = (resource.signature, resource.load(threads=threads))
    return _HELD[resource.name][1]


@dataclass
class PartitionContext:
    """What a partition run gets besides its parameters: the shared resource and how to map inner work."""

    resource: Any = None
    #: mapping of a stage's inner batches (``embed_run``'s ``map_fn``); None: in the process
    inner_map: Callable[..., Any] | None = None
    progress: bool = False


@dataclass
class Plan:
    """What :meth:`Stage.plan` decided: the partitions to run and the parameters to run them with.

    ``params`` may resolve what was left open (a device, the outputs a resume keeps); ``state`` is what
    :meth:`Stage.finish` needs in this process (never shipped to workers); ``n_partitions`` counts the
    stage's partitions, finished ones included.
    """

    parts: list[int]
    params: Any
    n_partitions: int = 1
    state: Any = None


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
        Stage-specific details (what :meth:`Stage.finish` returned, e.g. training metrics).
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


#: ``map_fn(stage, run_path, parts, params, resource) -> StageReport`` (rows, partitions_run of the parts run)
MapFn = Callable[["Stage", Path, Sequence[int], Any, "Resource | None"], StageReport]


class Stage(ABC):
    """One stage of a run: its declared inputs, outputs and parameters, and the five steps of the contract.

    Subclasses set the class attributes and implement :meth:`is_done`, :meth:`plan` and
    :meth:`run_partition`; :meth:`finish` and :meth:`resource` have defaults.

    Attributes
    ----------
    name : str
        Stage name (manifest ``stages`` key, lock name, run-log stage).
    inputs, outputs : tuple of Artifact
        Artifacts of the run read and written (``outputs_elsewhere`` names anything written outside it).
    Params : type
        A frozen dataclass of the parameters, with defaults (:func:`param_names`).
    partitioned : bool
        Partitions run independently (anywhere); otherwise the stage is partition 0 only.
    lock : bool
        Hold ``RUN/locks/<name>.lock`` from plan to finish (one writer of the outputs at a time).
    on_client : bool
        A single stage that runs where the driver runs (light work), not on a worker.
    """

    name: ClassVar[str]
    inputs: ClassVar[tuple[Artifact, ...]] = ()
    outputs: ClassVar[tuple[Artifact, ...]] = ()
    outputs_elsewhere: ClassVar[str] = ""
    Params: ClassVar[type]
    partitioned: ClassVar[bool] = True
    lock: ClassVar[bool] = False
    on_client: ClassVar[bool] = False

    @abstractmethod
    def is_done(self, run_path: str | os.PathLike, params: Any) -> tuple[bool, str]:
        """Whether the run holds this stage's outputs made with ``params``; and why (not), for the run log."""

    @abstractmethod
    def plan(self, run_path: str | os.PathLike, params: Any, *, progress: bool = False) -> Plan:
        """Set up (create or check the run, arrays, staging) and return the partitions still to run.

        ``progress``: show the setup's own progress bars (ingest's file scan).
        """

    @abstractmethod
    def run_partition(self, run_path: str | os.PathLike, part: int, params: Any,
                      ctx: PartitionContext | None = None) -> int | dict:
        """Run partition ``part`` (idempotent); return its rows, or ``{"rows": n, ...info}`` for a single stage."""

    def finish(self, run_path: str | os.PathLike, plan: Plan, report: StageReport) -> dict:
        """Record the finished stage (manifest, staged outputs); return details for the report.

        ``report`` holds the rows and partitions run now, and in ``seconds`` the partitions' wall time.
        """
        return {}

    def resource(self, params: Any) -> Resource | None:
        """What the partitions share in one process (a model), or None."""
        return None

    def target(self, run_path: str | os.PathLike, plan: Plan) -> Path:
        """Where the partitions write (the run, or a staging area of it)."""
        return Path(run_path)

    def __repr__(self) -> str:
        return f"<stage {self.name}>"

    def __reduce__(self):  # ship by name: workers rebuild the registered stage
        from xsgpu.stages import get_stage

        return get_stage, (self.name,)


def param_names(stage: Stage) -> list[str]:
    """The names of a stage's parameters, in declaration order."""
    return [f.name for f in fields(stage.Params)]


def rows_and_info(out: int | dict | None) -> tuple[int, dict]:
    """Split what :meth:`Stage.run_partition` returned into its row count and its details."""
    if isinstance(out, dict):
        info = dict(out)
        return int(info.pop("rows", 0) or 0), info
    return int(out or 0), {}


def _lock(stage: Stage, run_path: Path):
    if not stage.lock:
        return contextlib.nullcontext()
    from xsgpu.io.locks import stage_lock

    return stage_lock(run_path, stage.name)


def _in_process(stage: Stage, run_path: Path, parts: Sequence[int], params: Any, resource: Resource | None, *,
                progress: bool, inner_map: Callable[..., Any] | None) -> StageReport:
    """Run the partitions one after the other in this process (the default of :func:`run_stage`)."""
    from tqdm.auto import tqdm

    ctx = PartitionContext(resource=None if resource is None else load_resource(resource), inner_map=inner_map,
                           progress=progress)
    report = StageReport(stage.name)
    show = progress and stage.partitioned and bool(parts)
    size = _partition_sizes(run_path, parts) if show else {}
    with tqdm(total=sum(size.values()), desc=stage.name, unit="img", disable=not show) as bar:
        for p in parts:
            rows, info = rows_and_info(stage.run_partition(run_path, int(p), params, ctx))
            report.rows += rows
            report.partitions_run += 1
            report.info.update(info)
            bar.update(size.get(int(p), 0))
    return report


def _partition_sizes(run_path: Path, parts: Sequence[int]) -> dict[int, int]:
    """Images per partition (for a progress bar over images)."""
    from xsgpu.io.runstore import RunStore

    store = RunStore.open(run_path)
    return {int(p): b - a for p, (a, b) in ((p, store.partition_bounds(int(p))) for p in parts)}


def _pool_task(stage: Stage, run_path: str, part: int, params: Any, resource: Resource | None) -> int:
    ctx = PartitionContext(resource=None if resource is None else load_resource(resource, threads=1))
    return rows_and_info(stage.run_partition(run_path, part, params, ctx))[0]


def _pool_init(parent: int) -> None:
    from xsgpu.io.workers import watch_parent

    watch_parent(parent)  # pool processes end themselves when the driver dies (no orphans)
    try:  # one numba thread per process: the pool is the parallelism
        import numba

        numba.set_num_threads(1)
    except Exception:  # noqa: BLE001 - numba absent or already configured: its default is fine
        pass


def process_map(workers: int) -> MapFn | None:
    """A :data:`MapFn` running partitions in ``workers`` spawned processes (``None`` for 1: in this process).

    Spawned, not forked: a process holding HDF5/Zarr state, numba's OpenMP threads or CUDA must not fork.
    """
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"The 'workers' parameter of process_map must be an int >= 1. Got {workers!r} instead.")
    if workers == 1:
        return None

    def map_fn(stage: Stage, run_path: Path, parts: Sequence[int], params: Any,
               resource: Resource | None) -> StageReport:
        import multiprocessing

        report = StageReport(stage.name)
        if not parts:
            return report
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(workers, len(parts)), mp_context=ctx, initializer=_pool_init,
                                 initargs=(os.getpid(),)) as pool:
            futures = [pool.submit(_pool_task, stage, os.fspath(run_path), int(p), params, resource) for p in parts]
            for fut in as_completed(futures):
                report.rows += fut.result()
                report.partitions_run += 1
        return report

    return map_fn


def run_stage(stage: Stage, run_path: str | os.PathLike, params: Any = None, *, map_fn: MapFn | None = None,
              progress: bool = True, skip_done: bool = True, inner_map: Callable[..., Any] | None = None,
              on_event: Callable[..., None] | None = None) -> StageReport:
    """Run ``stage`` on a run: is it done? plan, run the pending partitions (mapped by ``map_fn``), finish.

    Parameters
    ----------
    stage : Stage
    run_path : path
        The run directory (its input; for synth and ingest, its output).
    params : Stage.Params, optional
        Default: ``stage.Params()`` (stages without required parameters).
    map_fn : MapFn, optional
        How the pending partitions run; ``None``: one after the other in this process.
    progress : bool
        tqdm bars (the stage's own, and the partitions' when run here).
    skip_done : bool
        A single stage that :meth:`~Stage.is_done` is skipped (status ``"skipped"``); a partitioned one
        always plans (the plan checks a resume) and runs nothing when nothing is pending. ``False``: run
        anyway (an explicit command recomputes).
    inner_map : callable, optional
        Passed to the partitions as :attr:`PartitionContext.inner_map` (in-process runs only).
    on_event : callable, optional
        ``on_event(event, **fields)`` for the run log: ``stage_skipped``, ``stage_reason``.

    Returns
    -------
    StageReport
    """
    run_path = Path(run_path)
    params = stage.Params() if params is None else params
    say = on_event or (lambda event, **kw: None)
    t0 = time.perf_counter()
    done, why = stage.is_done(run_path, params) if skip_done else (False, "asked to run")
    if done and not stage.partitioned:
        say("stage_skipped", stage=stage.name, reason=why)
        log.info("%s: skipped (%s)", stage.name, why)
        return StageReport(stage.name, status="skipped", partitions_skipped=1, info={"reason": why})
    if skip_done:
        say("stage_reason", stage=stage.name, reason=why)
    with _lock(stage, run_path):
        try:
            plan = stage.plan(run_path, params, progress=progress)
            resource = stage.resource(plan.params) if plan.parts else None
            target = stage.target(run_path, plan)
            t_map = time.perf_counter()
            if map_fn is None:
                ran = _in_process(stage, target, plan.parts, plan.params, resource, progress=progress,
                                  inner_map=inner_map)
            else:
                ran = map_fn(stage, target, plan.parts, plan.params, resource)
            report = replace(ran, name=stage.name, partitions_skipped=plan.n_partitions - len(plan.parts),
                             status="skipped" if done and not plan.parts else "done")
            report.seconds = time.perf_counter() - t_map  # what finish sees: the partitions' time (rates)
            report.info.update(stage.finish(run_path, plan, report) or {})
        except BaseException as exc:
            _record_failure(run_path, stage.name, exc)
            raise
    report.seconds = time.perf_counter() - t0
    return report


def _record_failure(run_path: Path, stage: str, exc: BaseException) -> None:
    """Record ``stage`` as failed in the run's manifest (when there is one); never masks ``exc``."""
    if not (run_path / "manifest.json").is_file():
        return
    try:
        from xsgpu.io.runstore import RunStore

        RunStore.open(run_path).set_stage(stage, "failed", error=f"{type(exc).__name__}: {exc}"[:500])
    except Exception:  # noqa: BLE001 - the original error is what matters
        log.debug("could not record the failure of %s in %s", stage, run_path, exc_info=True)
