"""The pipeline's Dask dashboard listens on 127.0.0.1 unless told otherwise, and the log says where it listens."""
from __future__ import annotations

import logging

import pytest

from workflows.cluster import _loopback_dashboard, client_session, dashboard_link


def test_bare_port_binds_loopback_and_explicit_hosts_are_kept(caplog):
    assert _loopback_dashboard(":8787") == "127.0.0.1:8787"
    assert _loopback_dashboard(":0") == "127.0.0.1:0"
    assert _loopback_dashboard(8787) == "127.0.0.1:8787"
    assert _loopback_dashboard(None) is None
    assert _loopback_dashboard("10.1.2.3:8787") == "10.1.2.3:8787"
    with caplog.at_level(logging.WARNING, logger="workflows.cluster"):
        assert _loopback_dashboard("0.0.0.0:8787") == "0.0.0.0:8787"
    assert "every interface" in caplog.text


@pytest.mark.slow  # starts a one-worker process cluster
def test_local_cluster_dashboard_listens_on_loopback_and_link_tells_the_truth():
    # ":0" is what `xsgpu demo` passes and ":8787" the pipeline's default: Dask binds both to 0.0.0.0
    with client_session("local", n_workers=1, threads_per_worker=1, dashboard_address=":0") as client:
        sockets = list(client.cluster.scheduler.http_server._sockets.values())
        bound = {s.getsockname()[0] for s in sockets}
        assert bound == {"127.0.0.1"}
        port = sockets[0].getsockname()[1]
        assert dashboard_link(client) == f"http://127.0.0.1:{port}/status"
