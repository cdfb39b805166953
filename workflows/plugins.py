"""Dask worker plugins: build a stage's shared resource (a model) once per worker, not once per task.

A stage names what its partitions share in one process as an :class:`xsgpu.stages.Resource` (the
infer stage: its predictor). :func:`ensure_resource` registers a :class:`ResourcePlugin` for it unless
every worker already holds that very resource; every current and future worker (a restarted one too)
builds it once in ``setup`` and keeps it. Tasks fetch it with :func:`get_resource`.

Examples
--------
::

    from xsgpu.stages import InferParams, get_stage
    infer = get_stage("infer")
    ensure_resource(client, infer.resource(InferParams(model="models/r18")))
    # in a task on a worker:
    predictor = get_resource("predictor")
"""
from __future__ import annotations

import logging
import time
from typing import Any

from distributed import WorkerPlugin, get_worker

__all__ = ["ResourcePlugin", "PLUGIN_NAME", "plugin_name", "ensure_resource", "get_resource", "predictor_loads"]

log = logging.getLogger(__name__)


def plugin_name(resource_name: str) -> str:
    """The worker plugin's name for a resource called ``resource_name``."""
    return f"xsgpu-{resource_name}"


#: the plugin holding the infer stage's predictor
PLUGIN_NAME = plugin_name("predictor")


class ResourcePlugin(WorkerPlugin):
    """Hold one stage resource (:class:`xsgpu.stages.Resource`) per Dask worker.

    Parameters
    ----------
    resource : xsgpu.stages.Resource
        Built in ``setup`` with the worker's thread count (so that worker processes do not oversubscribe
        the cores); on ``LocalCUDACluster`` each worker sees one GPU.

    Attributes
    ----------
    value : object
        The built resource, set in ``setup`` on the worker.
    n_loads : int
        How many times this worker built it (1 in a healthy run).
    """

    idempotent = False

    def __init__(self, resource: Any):
        self.resource = resource
        self.name = plugin_name(resource.name)
        self.signature = resource.signature
        self.value: Any = None
        self.n_loads = 0
        self.load_seconds = 0.0

    def setup(self, worker: Any) -> None:
        """Build the resource on ``worker`` (called once per worker by distributed)."""
        threads = max(1, int(getattr(worker.state, "nthreads", 1)))
        t0 = time.perf_counter()
        self.value = self.resource.load(threads=threads)
        self.n_loads += 1
        self.load_seconds = time.perf_counter() - t0
        log.info("worker %s built %s in %.2f s (%d threads)", worker.address, self.resource.name, self.load_seconds,
                 threads)

    def teardown(self, worker: Any) -> None:
        """Drop the resource (frees GPU memory on worker shutdown)."""
        self.value = None


def _worker_signature(dask_worker: Any, name: str) -> str | None:
    plugin = dask_worker.plugins.get(name)
    return None if plugin is None or getattr(plugin, "value", None) is None else plugin.signature


def ensure_resource(client: Any, resource: Any) -> bool:
    """Register a :class:`ResourcePlugin` for ``resource`` unless every worker already holds this very one.

    Returns
    -------
    bool
        True when the plugin was (re)registered, i.e. the workers (re)built the resource.
    """
    have = client.run(_worker_signature, name=plugin_name(resource.name))
    if have and all(v == resource.signature for v in have.values()):
        log.info("every worker already holds %s (%s); not rebuilding", resource.name, resource.signature)
        return False
    client.register_plugin(ResourcePlugin(resource))
    return True


def get_resource(name: str) -> Any:
    """This worker's resource called ``name`` (inside a Dask task).

    Raises
    ------
    RuntimeError
        Outside a worker, or when no :class:`ResourcePlugin` for it was registered.
    """
    try:
        worker = get_worker()
    except ValueError as exc:
        raise RuntimeError("get_resource() must run inside a Dask task on a worker.") from exc
    plugin = worker.plugins.get(plugin_name(name))
    if plugin is None or getattr(plugin, "value", None) is None:
        raise RuntimeError(f"No {name} on worker {worker.address}: register it with ensure_resource(client, "
                           "resource) before submitting the stage's tasks.")
    return plugin.value


def predictor_loads(dask_worker: Any) -> int:
    """For ``client.run(predictor_loads)``: how many times this worker loaded the model (0: not registered)."""
    plugin = dask_worker.plugins.get(PLUGIN_NAME)
    return 0 if plugin is None else int(plugin.n_loads)
