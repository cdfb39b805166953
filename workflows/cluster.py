"""Make a Dask client for the pipeline: a local cluster, a local GPU cluster, SLURM/PBS, or an existing scheduler.

Kinds (``make_client(kind, ...)``):

``"local"``
    ``distributed.LocalCluster`` with worker *processes* (the default; CPU machines).
``"local-cuda"``
    ``dask_cuda.LocalCUDACluster``: one worker per visible GPU (needs the ``[gpu]`` extra).
``"slurm"`` / ``"pbs"``
    ``dask_jobqueue.SLURMCluster`` / ``PBSCluster``: each batch job runs one or more workers; ``jobs``
    jobs are submitted (needs the ``[hpc]`` extra and ``sbatch`` / ``qsub`` on the login node).
``"address"``
    Connect to a running scheduler (``scheduler_address="tcp://host:8786"`` or ``scheduler_file=...``).
    Passing either of those with any kind selects this mode.

The cluster this module creates belongs to the client: close both with :func:`close_client` (or use
:func:`client_session`, a context manager). A scheduler you connect to is left running.

Examples
--------
::

    from workflows.cluster import client_session
    if __name__ == "__main__":          # process-based clusters need the guard in scripts
        with client_session("local", n_workers=2, threads_per_worker=1) as client:
            print(client.dashboard_link)
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Literal

if TYPE_CHECKING:  # pragma: no cover
    from distributed import Client

__all__ = ["ClusterKind", "CLUSTER_KINDS", "make_client", "close_client", "client_session", "JobQueueOptions",
           "quiet_dask_logs", "dashboard_link"]

log = logging.getLogger(__name__)

ClusterKind = Literal["local", "local-cuda", "slurm", "pbs", "address"]
CLUSTER_KINDS: tuple[str, ...] = ("local", "local-cuda", "slurm", "pbs", "address")

#: clients whose cluster was created here (closed together with the client)
_OWNED: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class JobQueueOptions:
    """Options of a SLURM or PBS cluster (dask-jobqueue); ``None`` leaves dask-jobqueue's config default.

    Parameters
    ----------
    queue : str, optional
        Partition (SLURM ``-p``) or queue (PBS ``-q``).
    account : str, optional
        Account / project to charge (SLURM ``-A``, PBS ``-A``).
    walltime : str
        Wall-clock limit of each job, ``"HH:MM:SS"``.
    cores : int
        Cores per job (the job's Dask workers share them).
    memory : str
        Memory per job, e.g. ``"64GB"``.
    processes : int
        Dask worker processes per job (threads per worker = cores / processes).
    jobs : int
        Number of jobs to submit (``cluster.scale(jobs=...)``).
    job_extra_directives : tuple of str
        Extra ``#SBATCH`` / ``#PBS`` lines, e.g. ``("--gres=gpu:1",)``.
    job_script_prologue : tuple of str
        Shell lines run before the worker starts, e.g. ``("module load cuda", "conda activate xsgpu")``.
    local_directory : str, optional
        Node-local scratch for worker spill files.
    """

    queue: str | None = None
    account: str | None = None
    walltime: str = "01:00:00"
    cores: int = 8
    memory: str = "32GB"
    processes: int = 1
    jobs: int = 1
    job_extra_directives: tuple[str, ...] = ()
    job_script_prologue: tuple[str, ...] = ()
    local_directory: str | None = None

    def cluster_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``SLURMCluster`` / ``PBSCluster`` (without ``jobs``)."""
        kw: dict[str, Any] = {
            "cores": self.cores, "memory": self.memory, "processes": self.processes, "walltime": self.walltime,
            "job_extra_directives": list(self.job_extra_directives),
            "job_script_prologue": list(self.job_script_prologue),
        }
        if self.queue is not None:
            kw["queue"] = self.queue
        if self.account is not None:
            kw["account"] = self.account
        if self.local_directory is not None:
            kw["local_directory"] = self.local_directory
        return kw


def _check_positive(name: str, value: int | None, *, allow_zero: bool = False) -> None:
    if value is None:
        return
    low = 0 if allow_zero else 1
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"The '{name}' parameter of make_client must be an int >= {low} or None. "
                         f"Got {value!r} instead.")


def _loopback_dashboard(address: str | int | None) -> str | None:
    """``":8787"`` / ``8787`` -> ``"127.0.0.1:8787"``; an explicit host is kept (warned when it is every interface)."""
    if address is None:
        return None
    text = str(address).strip()
    host, sep, port = text.rpartition(":")
    if not sep:  # a bare port
        host, port = "", text
    if host in ("", "*"):
        return f"127.0.0.1:{port}"
    if host in ("0.0.0.0", "[::]", "::"):
        log.warning("the Dask dashboard will listen on every interface (%s): anyone who can reach this machine "
                    "sees the task graph and worker logs", text)
    return text


def dashboard_link(client: "Client") -> str | None:
    """The dashboard address of ``client``'s scheduler as it really listens (``None`` without a dashboard).

    For a cluster started by :func:`make_client` the scheduler runs in this process: the link is built
    from its HTTP server's bound socket (``http://127.0.0.1:PORT/status`` by default; Dask's own
    ``dashboard_link`` names the scheduler's host instead, whatever the dashboard is bound to). For a
    scheduler connected to by address, Dask's link.
    """
    cluster = _OWNED.get(client)
    server = getattr(getattr(cluster, "scheduler", None), "http_server", None)
    sockets = list(getattr(server, "_sockets", {}).values()) if server is not None else []
    if sockets:
        host, port = sockets[0].getsockname()[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/status"
    return getattr(client, "dashboard_link", None) or None


def make_client(
    kind: str = "local",
    *,
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    memory_limit: str | float | None = "auto",
    scheduler_address: str | None = None,
    scheduler_file: str | os.PathLike | None = None,
    jobqueue: JobQueueOptions | None = None,
    dashboard_address: str | None = ":0",
    local_directory: str | None = None,
    timeout: float = 60.0,
) -> "Client":
    """Start (or connect to) a Dask cluster and return a ``distributed.Client`` for it.

    Parameters
    ----------
    kind : {"local", "local-cuda", "slurm", "pbs", "address"}
        What to start; ``scheduler_address`` / ``scheduler_file`` imply ``"address"``.
    n_workers : int, optional
        Worker processes of a local cluster (default: one per core for ``"local"``, one per GPU for
        ``"local-cuda"``). For SLURM/PBS use ``jobqueue.jobs`` x ``jobqueue.processes``.
    threads_per_worker : int, optional
        Threads per local worker (default 1: the model and NumPy use their own threads).
    memory_limit : str or float, optional
        Per-worker memory limit of a local cluster (``"auto"``: total memory / workers).
    scheduler_address, scheduler_file : optional
        Connect to an existing scheduler instead of starting one.
    jobqueue : JobQueueOptions, optional
        Job options for ``"slurm"`` / ``"pbs"`` (queue, account, walltime, cores, memory, jobs).
    dashboard_address : str, optional
        Where a scheduler started here serves the dashboard (``":0"``: a free port; ``None``: no
        dashboard). A bare ``":PORT"`` binds 127.0.0.1 only (Dask's own default is every interface);
        name the interface to expose it (``"0.0.0.0:8787"``, logged as a warning). See
        :func:`dashboard_link` for the address it really listens on.
    local_directory : str, optional
        Scratch directory of local workers.
    timeout : float
        Seconds to wait for the scheduler connection.

    Returns
    -------
    distributed.Client
        Close it with :func:`close_client`, which also closes a cluster created here.

    Raises
    ------
    ValueError
        For an unknown ``kind`` or a bad size parameter, naming it.
    ImportError
        When the kind needs an extra that is not installed (``[gpu]`` for dask-cuda, ``[hpc]`` for
        dask-jobqueue), naming the extra.
    """
    from distributed import Client

    if scheduler_address is not None and scheduler_file is not None:
        raise ValueError("Pass at most one of 'scheduler_address' and 'scheduler_file' to make_client; got both.")
    if scheduler_address is not None or scheduler_file is not None:
        kind = "address"
    if kind not in CLUSTER_KINDS:
        raise ValueError(f"The 'kind' parameter of make_client must be one of {list(CLUSTER_KINDS)}. "
                         f"Got {kind!r} instead.")
    _check_positive("n_workers", n_workers)
    _check_positive("threads_per_worker", threads_per_worker)
    dashboard_address = _loopback_dashboard(dashboard_address)

    if kind == "address":
        if scheduler_address is None and scheduler_file is None:
            raise ValueError("make_client(kind='address') needs 'scheduler_address' (tcp://host:8786) or "
                             "'scheduler_file' (the JSON file `dask scheduler --scheduler-file F` writes).")
        if scheduler_file is not None and not os.path.exists(scheduler_file):
            raise FileNotFoundError(f"The scheduler file {scheduler_file} does not exist. Hint: start the "
                                    f"scheduler with `dask scheduler --scheduler-file {scheduler_file}` first.")
        log.info("connecting to scheduler %s", scheduler_address or scheduler_file)
        client = Client(address=scheduler_address, scheduler_file=None if scheduler_file is None
                        else os.fspath(scheduler_file), timeout=timeout)
        return client

    if kind == "local":
        from distributed import LocalCluster

        n = n_workers or max(1, (os.cpu_count() or 1) // (threads_per_worker or 1))
        cluster = LocalCluster(n_workers=n, threads_per_worker=threads_per_worker or 1, processes=True,
                               memory_limit=memory_limit, dashboard_address=dashboard_address,
                               local_directory=local_directory)
    elif kind == "local-cuda":
        try:
            from dask_cuda import LocalCUDACluster
        except ImportError as exc:
            raise ImportError(
                "make_client(kind='local-cuda') needs dask-cuda, which is not installed "
                f"({exc}). Install the GPU extra: pip install 'xsgpu[gpu]' (or use environment.yml)."
            ) from exc
        kw: dict[str, Any] = {"threads_per_worker": threads_per_worker or 1,
                              "dashboard_address": dashboard_address, "local_directory": local_directory}
        if n_workers is not None:
            kw["n_workers"] = n_workers
        if memory_limit is not None:
            kw["memory_limit"] = memory_limit
        cluster = LocalCUDACluster(**kw)
    else:  # slurm / pbs
        try:
            import dask_jobqueue
        except ImportError as exc:
            raise ImportError(
                f"make_client(kind={kind!r}) needs dask-jobqueue, which is not installed ({exc}). "
                "Install the HPC extra: pip install 'xsgpu[hpc]'."
            ) from exc
        opts = jobqueue or JobQueueOptions()
        _check_positive("jobqueue.jobs", opts.jobs)
        _check_positive("jobqueue.cores", opts.cores)
        _check_positive("jobqueue.processes", opts.processes)
        cls = dask_jobqueue.SLURMCluster if kind == "slurm" else dask_jobqueue.PBSCluster
        kw = opts.cluster_kwargs()
        if dashboard_address is not None:
            kw["scheduler_options"] = {"dashboard_address": dashboard_address}
        cluster = cls(**kw)
        log.info("%s job script:\n%s", kind, cluster.job_script())
        cluster.scale(jobs=opts.jobs)
    client = Client(cluster, timeout=timeout)
    _OWNED[client] = cluster
    return client


def close_client(client: "Client") -> None:
    """Close ``client`` and, when :func:`make_client` created it, its cluster (workers and jobs)."""
    cluster = _OWNED.pop(client, None)
    try:
        client.close()
    finally:
        if cluster is not None:
            try:
                cluster.close(timeout=60)
            except (TimeoutError, asyncio.TimeoutError) as exc:
                # the nanny SIGKILLs a worker that does not exit in time; the work is already written,
                # so a slow shutdown on a loaded machine must not turn a finished run into a failure
                log.warning("closing the %s timed out (%r); worker processes were killed", type(cluster).__name__, exc)


@contextlib.contextmanager
def client_session(kind: str = "local", *, client: "Client | None" = None, **kwargs: Any) -> Iterator["Client"]:
    """Context manager around :func:`make_client` / :func:`close_client`.

    With ``client=`` given, yield it unchanged and leave it open (the caller owns it).
    """
    if client is not None:
        yield client
        return
    c = make_client(kind, **kwargs)
    try:
        yield c
    finally:
        close_client(c)


def quiet_dask_logs() -> None:
    """Dask's INFO records (worker start/stop) drown the progress bars; keep them for -vv."""
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:  # worker processes read it at start
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    import distributed  # noqa: F401 - its import sets its loggers to INFO; override after it

    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        for name in ("distributed", "bokeh", "tornado"):
            logging.getLogger(name).setLevel(logging.WARNING)
