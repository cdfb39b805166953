"""Fixtures for the workflow tests: one small process-based LocalCluster shared by the session.

Functions defined in test modules are shipped to the worker processes by value
(``cloudpickle.register_pickle_by_value``), because the workers cannot import pytest's module names.
"""
from __future__ import annotations

import sys

import cloudpickle
import pytest


@pytest.fixture(scope="session")
def dask_client():
    """2 worker processes x 1 thread, no dashboard: the shape the issue asks the tests to use."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                           memory_limit="2GiB")
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.fixture
def by_value(request):
    """Ship the requesting test module's functions to workers by value."""
    mod = sys.modules[request.module.__name__]
    cloudpickle.register_pickle_by_value(mod)
    yield mod
    cloudpickle.unregister_pickle_by_value(mod)
