"""Resume and exactly-once of the whole pipeline on a real process-based LocalCluster.

* SIGKILL the whole `xsgpu pipeline` process group at a random point, rerun: the store equals an
  uninterrupted run's, and finished partitions are not recomputed (mtimes + the run logs' events).
* A worker killed mid-run (a task kills its own process on first attempt): every row exactly once.
* The model is loaded once per worker (PredictorPlugin), not per task.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workflows.pipeline import run_pipeline
from workflows.plugins import predictor_loads
from workflows.runlog import list_logs, read_events
from xsgpu.io.runstore import RunStore

N, SIZE, PART = 96, 32, 16          # 6 partitions per stage
N_PARTS = N // PART


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_model, dask_client):
    out = tmp_path_factory.mktemp("ref") / "run"
    res = run_pipeline(out, synth=N, size=SIZE, seed=3, model=tiny_model, partition_size=PART, embed=False,
                       evaluate=True, client=dask_client, progress=False)
    return res


def _tables(path):
    store = RunStore.open(path)
    return (store.samples.read(), store.predictions.read(),
            np.asarray(store.features.open()[:]), np.asarray(store.images.open()[:]))


def assert_same_store(path, ref_path):
    s, p, f, im = _tables(path)
    rs, rp, rf, rim = _tables(ref_path)
    assert s["sample_id"].tolist() == list(range(N)) and s["sample_id"].is_unique
    assert p["sample_id"].tolist() == list(range(N)) and p["sample_id"].is_unique
    pd.testing.assert_frame_equal(s.drop(columns=[c for c in ("source_uri",) if c in s]),
                                  rs.drop(columns=[c for c in ("source_uri",) if c in rs]))
    pd.testing.assert_frame_equal(p, rp)
    np.testing.assert_array_equal(f, rf)
    np.testing.assert_array_equal(im, rim)


def kill_worker_once(markers: Path, stage: str, part: int) -> None:
    """os._exit this worker the first time infer partition 2 starts (marker file: once only)."""
    marker = markers / f"{stage}-{part}"
    if stage == "infer" and part == 2 and not marker.exists():
        marker.touch()
        os._exit(1)


def test_reference_run_and_one_model_load_per_worker(reference, dask_client):
    store = RunStore.open(reference.run_path, require=["samples", "predictions", "metrics"])
    assert store.predictions.read()["sample_id"].tolist() == list(range(N))
    assert reference.stages["infer"].partitions_run == N_PARTS
    loads = dask_client.run(predictor_loads)
    assert sorted(loads.values()) == [1, 1], loads    # 6 infer tasks, 2 workers, 2 loads
    workers = {e["worker"] for e in read_events(reference.log_path, event="partition_done") if e["stage"] == "infer"}
    assert len(workers) >= 1


def _copy_without_inference(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    for name in ("predictions.parquet", "features.zarr", "metrics.parquet", "logs"):
        p = dst / name
        shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    return dst


def test_lost_worker_mid_infer_every_row_once(tmp_path, reference, tiny_model, dask_client, by_value,
                                              wait_for_replacement):
    markers = tmp_path / "markers"
    markers.mkdir()
    run = _copy_without_inference(reference.run_path, tmp_path / "run")   # synth done; infer to do
    pids = set(dask_client.run(os.getpid).values())
    res = run_pipeline(run, model=tiny_model, partition_size=PART, embed=False, evaluate=True,
                       client=dask_client, progress=False, task_hook=partial(kill_worker_once, markers))
    assert (markers / "infer-2").exists()
    assert res.stages["infer"].partitions_run == N_PARTS
    assert_same_store(res.run_path, reference.run_path)
    wait_for_replacement(dask_client, 2)
    assert set(dask_client.run(os.getpid).values()) != pids        # one worker process was replaced
    assert sorted(dask_client.run(predictor_loads).values()) == [1, 1]  # the new one loaded the model once


def test_resume_with_another_model_is_refused(tmp_path, reference, tiny_model, dask_client):
    import shutil

    import torch

    from xsgpu.errors import StoreError
    from xsgpu.model import build_resnet, read_checkpoint_meta, save_checkpoint

    run = tmp_path / "run"
    shutil.copytree(reference.run_path, run)
    for f in list((run / "predictions.parquet").glob("part-0000[3-5].parquet")):
        f.unlink()
    (run / "metrics.parquet").unlink()
    torch.manual_seed(1)
    save_checkpoint(tmp_path / "other", build_resnet("resnet18"), input_size=SIZE)
    # the one guard of the infer stage (xsgpu.model.infer.plan_infer), as `xsgpu infer` has it
    with pytest.raises(StoreError, match=r"partitions \[0, 1, 2\] from another model \(weights_sha256 .*--overwrite"):
        run_pipeline(run, model=tmp_path / "other", partition_size=PART, embed=False, client=dask_client,
                     progress=False)
    assert RunStore.open(run).finished_partitions("predictions") == {0, 1, 2}
    # overwrite: the other model's predictions replace the old ones, every partition
    res = run_pipeline(run, model=tmp_path / "other", overwrite=True, partition_size=PART, embed=False,
                       evaluate=False, client=dask_client, progress=False)
    assert res.stages["infer"].partitions_run == N_PARTS
    store = RunStore.open(run)
    assert store.predictions.metadata()["weights_sha256"] == read_checkpoint_meta(tmp_path / "other")["weights_sha256"]


_CLI = [sys.executable, "-m", "workflows.cli", "pipeline"]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [7])
def test_sigkill_at_a_random_point_then_resume(tmp_path, reference, tiny_model, dask_client, seed):
    rng = np.random.default_rng(seed)
    kill_after = int(rng.integers(2, 2 * N_PARTS - 1))   # finished partitions (synth + infer) before the kill
    out = tmp_path / "killed"
    args = ["--synth", str(N), "--size", str(SIZE), "--seed", "3", "--out", str(out), "--model", str(tiny_model),
            "--partition-size", str(PART), "--n-workers", "2", "--threads-per-worker", "1", "--skip-embed",
            "--no-progress", "--dashboard-address", ":0"]
    proc = subprocess.Popen(_CLI + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                            cwd=Path(__file__).resolve().parents[2])
    deadline = time.monotonic() + 240
    try:
        while True:
            logs = list_logs(out)
            done = read_events(logs, event="partition_done") if logs else []
            if len(done) >= kill_after:
                break
            assert proc.poll() is None, proc.communicate()[0].decode()[-3000:]
            assert time.monotonic() < deadline, "the pipeline made no progress"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the client, its scheduler and the worker processes
        proc.wait()
    store = RunStore.open(out)
    before = {t: store.finished_partitions(t) for t in ("samples", "predictions")}
    assert sum(len(v) for v in before.values()) >= kill_after
    mtimes = {(t, p): (store.table_path(t) / f"part-{p:05d}.parquet").stat().st_mtime_ns
              for t, parts in before.items() for p in parts}

    res = run_pipeline(out, synth=N, size=SIZE, seed=3, model=tiny_model, partition_size=PART, embed=False,
                       evaluate=True, client=dask_client, progress=False)
    assert_same_store(out, reference.run_path)
    # finished partitions were not recomputed: same files, and the second log wrote only the others
    for (t, p), m in mtimes.items():
        assert (store.table_path(t) / f"part-{p:05d}.parquet").stat().st_mtime_ns == m, (t, p)
    second = read_events(res.log_path, event="partition_done")
    stage_table = {"synth": "samples", "infer": "predictions"}
    rewritten = {(stage_table[e["stage"]], int(e["part"])) for e in second}
    assert not rewritten & set(mtimes), rewritten & set(mtimes)
    assert len(rewritten) + len(mtimes) == 2 * N_PARTS
    assert res.stages["infer"].partitions_skipped == len(before["predictions"])


def test_embed_reruns_when_its_parameters_change(tmp_path, reference, tiny_model, dask_client):
    """After a PCA embed a t-SNE pipeline embeds (it skipped before: any embedding counted as done)."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(reference.run_path, run)
    common = dict(model=tiny_model, partition_size=PART, evaluate=False, client=dask_client, progress=False)
    first = run_pipeline(run, embed_method="pca", **common)
    assert first.stages["embed"].status != "skipped"
    again = run_pipeline(run, embed_method="pca", **common)
    assert again.stages["embed"].status == "skipped"
    tsne = run_pipeline(run, embed_method="tsne", **common)
    assert tsne.stages["embed"].status != "skipped"
    store = RunStore.open(run)
    assert store.embedding.metadata()["method"] == "tsne"
    sampled = run_pipeline(run, embed_method="tsne", embed_fit_sample=40, **common)
    assert sampled.stages["embed"].status != "skipped"
    meta = RunStore.open(run).read_metadata("embedding")
    assert meta["fit_sample"] == 40 and meta["spaces"]["prd"]["placed"] == N - 40


def test_pipeline_infer_takes_the_stage_lock(tmp_path, reference, tiny_model, dask_client, stage_lock_holder):
    """The pipeline's infer and a concurrent `xsgpu infer` exclude each other (RUN/locks/infer.lock)."""
    from xsgpu.errors import StoreLocked

    run = _copy_without_inference(reference.run_path, tmp_path / "run")
    holder = stage_lock_holder(run, "infer")
    with pytest.raises(StoreLocked, match=rf"'infer' is already running here, held by pid {holder.pid}"):
        run_pipeline(run, model=tiny_model, partition_size=PART, embed=False, evaluate=False,
                     client=dask_client, progress=False)
    assert not RunStore.open(run).finished_partitions("predictions")
