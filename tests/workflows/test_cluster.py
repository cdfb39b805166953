"""make_client: kinds, option mapping, and the errors that name the missing extra."""
from __future__ import annotations

import sys

import pytest

from workflows.cluster import JobQueueOptions, client_session, close_client, make_client


def test_unknown_kind():
    with pytest.raises(ValueError, match=r"The 'kind' parameter of make_client must be one of .*'slurm'.*Got 'k8s'"):
        make_client("k8s")


def test_bad_sizes():
    with pytest.raises(ValueError, match="The 'n_workers' parameter of make_client must be an int >= 1"):
        make_client("local", n_workers=0)
    with pytest.raises(ValueError, match="The 'threads_per_worker' parameter"):
        make_client("local", threads_per_worker="2")


def test_address_and_file_conflict(tmp_path):
    with pytest.raises(ValueError, match="at most one of 'scheduler_address' and 'scheduler_file'"):
        make_client(scheduler_address="tcp://127.0.0.1:8786", scheduler_file=tmp_path / "s.json")
    with pytest.raises(ValueError, match="needs 'scheduler_address'"):
        make_client("address")
    with pytest.raises(FileNotFoundError, match=r"s\.json does not exist.*dask scheduler --scheduler-file"):
        make_client(scheduler_file=tmp_path / "s.json")


def test_local_cuda_names_gpu_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask_cuda", None)  # makes `import dask_cuda` raise ImportError
    with pytest.raises(ImportError, match=r"needs dask-cuda.*pip install 'xsgpu\[gpu\]'"):
        make_client("local-cuda")


@pytest.mark.parametrize("kind", ["slurm", "pbs"])
def test_jobqueue_names_hpc_extra(monkeypatch, kind):
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)
    with pytest.raises(ImportError, match=rf"make_client\(kind='{kind}'\) needs dask-jobqueue.*xsgpu\[hpc\]"):
        make_client(kind)


def test_jobqueue_options_reach_the_job_script():
    dask_jobqueue = pytest.importorskip("dask_jobqueue")
    opts = JobQueueOptions(queue="gpu", account="m1234", walltime="02:00:00", cores=16, memory="64GB",
                           processes=2, job_extra_directives=("--gres=gpu:1",),
                           job_script_prologue=("module load cuda",))
    slurm = dask_jobqueue.SLURMCluster(**opts.cluster_kwargs(), scheduler_options={"dashboard_address": None})
    try:
        script = slurm.job_script()
    finally:
        slurm.close()
    for line in ("#SBATCH -p gpu", "#SBATCH -A m1234", "#SBATCH -t 02:00:00", "#SBATCH -n 1",
                 "#SBATCH --cpus-per-task=16", "#SBATCH --gres=gpu:1", "module load cuda", "--nworkers 2"):
        assert line in script, (line, script)
    pbs = dask_jobqueue.PBSCluster(**opts.cluster_kwargs(), scheduler_options={"dashboard_address": None})
    try:
        script = pbs.job_script()
    finally:
        pbs.close()
    for line in ("#PBS -q gpu", "#PBS -A m1234", "#PBS -l walltime=02:00:00"):
        assert line in script, (line, script)


def test_local_cluster_and_connect_by_address():
    with client_session("local", n_workers=1, threads_per_worker=1, dashboard_address=None) as client:
        assert len(client.scheduler_info()["workers"]) == 1
        cluster = client.cluster
        assert client.submit(sum, [1, 2, 3]).result() == 6
        # a second client connected by address leaves the cluster running when closed
        other = make_client(scheduler_address=client.scheduler.address)
        assert other.submit(max, [4, 5]).result() == 5
        close_client(other)
        assert cluster.status.name == "running"
    assert cluster.status.name == "closed"
