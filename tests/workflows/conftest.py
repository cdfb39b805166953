"""Fixtures for the workflow tests: one small process-based LocalCluster shared by the session.

Functions defined in test modules are shipped to the worker processes by value
(``cloudpickle.register_pickle_by_value``), because the workers cannot import pytest's module names.
"""
from __future__ import annotations

import sys

import cloudpickle
import pytest


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A random resnet18 checkpoint for 32 px inputs (seed 0), as the pipeline and stage tests infer with."""
    from tests.model.conftest import save_random_resnet18

    return save_random_resnet18(tmp_path_factory.mktemp("model") / "r18", seed=0, input_size=32)


@pytest.fixture(scope="session")
def dask_client():
    """2 worker processes x 1 thread, no dashboard: the shape the issue asks the tests to use."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                           memory_limit="2GiB")
    client = Client(cluster)
    yield client
    client.close()
    _close_nannies(cluster, timeout=180.0)
    cluster.close()


def _close_nannies(cluster, *, timeout: float) -> None:
    """Close the worker nannies with a timeout a starved machine can meet.

    ``LocalCluster.close`` closes each nanny with Dask's fixed 5-s kill timeout; on a 2-core machine
    running other jobs (load average 12-14 seen here) a worker process needs longer to exit, and the
    session teardown then failed with ``TimeoutError`` after every test had passed.
    """
    import asyncio

    async def close_all() -> None:
        await asyncio.gather(*(w.close(timeout=timeout) for w in list(cluster.workers.values())))

    cluster.sync(close_all)


@pytest.fixture
def by_value(request):
    """Ship the requesting test module's functions to workers by value."""
    mod = sys.modules[request.module.__name__]
    cloudpickle.register_pickle_by_value(mod)
    yield mod
    cloudpickle.unregister_pickle_by_value(mod)


@pytest.fixture
def wait_for_replacement():
    """The function that waits for the nannies to replace killed workers (see :func:`_wait_for_replacement`)."""
    return _wait_for_replacement


def _wait_for_replacement(client, n_workers: int = 2, timeout: float = 240.0) -> None:
    """Wait until the nannies have replaced killed workers; on timeout, fail with each nanny's state.

    A replacement worker re-imports torch and reloads the model (PredictorPlugin), which on a loaded
    2-core CI machine can take over a minute; the generous timeout is for that, not for our code.
    """
    from distributed.exceptions import WorkerStartTimeoutError

    try:
        client.wait_for_workers(n_workers, timeout=timeout)
    except WorkerStartTimeoutError as exc:
        nannies = {name: (str(getattr(w, "status", "?")), getattr(w, "pid", None))
                   for name, w in getattr(client.cluster, "workers", {}).items()}
        raise AssertionError(f"killed worker not replaced within {timeout:.0f} s; nannies: {nannies}; "
                             f"scheduler workers: {list(client.scheduler_info()['workers'])}") from exc
