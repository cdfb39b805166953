"""The partition driver on a real process-based LocalCluster: exactly-once, retries, lost workers."""
from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workflows.pipeline import PipelineError, map_partitions
from workflows.runlog import RunLog, read_events
from xsgpu.io.runstore import RunStore
from xsgpu.io.schema import SAMPLES, fill_samples


def write_squares(run_path: str, part: int) -> int:
    """A stand-in stage: partition rows = sample_id**2; logs every invocation in calls/<part>."""
    store = RunStore.open(run_path)
    start, stop = store.partition_bounds(part)
    calls = Path(run_path) / "calls"
    calls.mkdir(exist_ok=True)
    with open(calls / f"{part}", "a") as fh:
        fh.write(f"{os.getpid()}\n")
    ids = np.arange(start, stop)
    store.write_partition(SAMPLES, part, fill_samples(pd.DataFrame({"sample_id": ids, "value": ids ** 2})))
    return stop - start


def fail_on_part_3(run_path: str, part: int) -> int:
    if part == 3:
        raise OSError(f"disk full while writing partition {part}")
    return write_squares(run_path, part)


def flaky_hook(markers: Path, stage: str, part: int) -> None:
    """Raise once per partition 1 (marker file), then succeed: exercises retries."""
    marker = markers / f"flaky-{stage}-{part}"
    if part == 1 and not marker.exists():
        marker.touch()
        raise RuntimeError("transient failure")


def kill_worker_hook(markers: Path, stage: str, part: int) -> None:
    """Kill this worker process (os._exit, no cleanup) the first time partition 2 starts."""
    marker = markers / f"killed-{stage}-{part}"
    if part == 2 and not marker.exists():
        marker.touch()
        os._exit(1)


def _store(tmp_path, n=100, ps=16) -> RunStore:
    return RunStore.create(tmp_path / "run", n_samples=n, partition_size=ps)


def _check_exactly_once(store: RunStore) -> pd.DataFrame:
    df = store.samples.read()
    assert df["sample_id"].tolist() == list(range(store.n_samples))
    assert (df["value"] == df["sample_id"] ** 2).all()
    return df


def _markers(tmp_path) -> Path:
    markers = tmp_path / "markers"
    markers.mkdir()
    return markers


def test_all_partitions_once_then_resume_skips(tmp_path, dask_client, by_value):
    store = _store(tmp_path)
    with RunLog(store.path) as rl:
        rep = map_partitions(dask_client, write_squares, store.path, store.samples.pending(),
                             stage="synth", progress=False, runlog=rl)
    assert (rep.partitions_run, rep.rows, rep.status) == (7, 100, "done")
    _check_exactly_once(store)
    done = read_events(rl.path, event="partition_done")
    assert sorted(int(e["part"]) for e in done) == list(range(7))
    assert {e["stage"] for e in done} == {"synth"}
    # a rerun has nothing pending and computes nothing
    assert store.samples.pending() == []
    rep2 = map_partitions(dask_client, write_squares, store.path, [], stage="synth", progress=False,
                          n_skipped=7)
    assert (rep2.partitions_run, rep2.partitions_skipped) == (0, 7)
    assert all(len((store.path / "calls" / str(p)).read_text().split()) == 1 for p in range(7))


def test_failed_partition_raises_after_others_finish(tmp_path, dask_client, by_value):
    store = _store(tmp_path)
    with pytest.raises(PipelineError, match=r"Stage 'synth': 1 of 7 partitions failed \(3\).*disk full.*rerun"):
        map_partitions(dask_client, fail_on_part_3, store.path, range(7), stage="synth", retries=1,
                       progress=False)
    assert store.samples.pending() == [3]
    # resume: only partition 3 runs
    rep = map_partitions(dask_client, write_squares, store.path, store.samples.pending(),
                         stage="synth", progress=False)
    assert rep.partitions_run == 1
    _check_exactly_once(store)


def test_retries_recover_a_transient_failure(tmp_path, dask_client, by_value):
    markers = _markers(tmp_path)
    store = _store(tmp_path, n=48)
    rep = map_partitions(dask_client, write_squares, store.path, range(3), stage="synth", retries=2,
                         progress=False, task_hook=partial(flaky_hook, markers))
    assert rep.partitions_run == 3 and (markers / "flaky-synth-1").exists()
    _check_exactly_once(store)


def test_lost_worker_every_row_exactly_once(tmp_path, dask_client, by_value,
                                            wait_for_replacement):
    markers = _markers(tmp_path)
    store = _store(tmp_path, n=96)
    pids_before = set(dask_client.run(os.getpid).values())
    rep = map_partitions(dask_client, write_squares, store.path, range(6), stage="synth", retries=2,
                         progress=False, task_hook=partial(kill_worker_hook, markers))
    assert (markers / "killed-synth-2").exists()
    assert rep.partitions_run == 6 and rep.rows == 96
    _check_exactly_once(store)
    # the nanny replaced the killed worker process
    wait_for_replacement(dask_client, 2)
    assert set(dask_client.run(os.getpid).values()) != pids_before


def test_bad_retries_message(tmp_path, dask_client):
    with pytest.raises(ValueError, match="The 'retries' parameter of map_partitions must be an int >= 0"):
        map_partitions(dask_client, write_squares, tmp_path, [0], stage="x", retries=-1)
