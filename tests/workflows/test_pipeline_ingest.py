"""Ingest through run_pipeline: partitions mapped on Dask give the same store as the serial ingest."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workflows.pipeline import PipelineError, run_pipeline
from workflows.runlog import read_events
from xsgpu.io.ingest import ingest_paths
from xsgpu.io.runstore import RunStore


@pytest.fixture
def beamtime(tmp_path):
    d = tmp_path / "beamtime" / "run7"
    d.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(3):
        np.save(d / f"stack{i}.npy", rng.integers(0, 1000, size=(3, 24, 24)).astype(np.int32))
    (d / "broken.tif").write_bytes(b"II*\x00" + b"\x00" * 20)
    return d


def test_ingest_on_dask_equals_serial_ingest(beamtime, tmp_path, dask_client):
    res = run_pipeline(tmp_path / "dask", ingest=[beamtime], size=8, partition_size=2, embed=False,
                       evaluate=False, client=dask_client, progress=False)
    serial = ingest_paths([beamtime], tmp_path / "serial", size=8, partition_size=2, progress=False)
    store = RunStore.open(res.run_path)
    a, b = store.samples.read(), serial.samples.read()
    assert a["sample_id"].tolist() == list(range(9))
    pd.testing.assert_frame_equal(a, b)
    for name in ("images", "thumbs"):
        np.testing.assert_array_equal(np.asarray(store.open_array(name)[:]), np.asarray(serial.open_array(name)[:]))
    ea, eb = store.read_errors(), serial.read_errors()
    assert len(ea) == 1 and ea["source_uri"].iloc[0].endswith("broken.tif")
    pd.testing.assert_frame_equal(ea.reset_index(drop=True), eb.reset_index(drop=True))
    man = store.reload().manifest["stages"]
    assert man["ingest"]["status"] == "done" and man["ingest"]["n_samples"] == 9
    assert man["pipeline"]["status"] == "done"
    assert res.stages["ingest"].partitions_run == 5 and res.stages["ingest"].rows == 9
    assert len(read_events(res.log_path, event="partition_done")) == 5

    again = run_pipeline(tmp_path / "dask", ingest=[beamtime], size=8, partition_size=2, embed=False,
                         evaluate=False, client=dask_client, progress=False)
    assert (again.stages["ingest"].partitions_run, again.stages["ingest"].partitions_skipped) == (0, 5)
    assert read_events(again.log_path, event="partition_done") == []


def test_nothing_readable(tmp_path, dask_client):
    d = tmp_path / "junk"
    d.mkdir()
    (d / "broken.tif").write_bytes(b"II*\x00" + b"\x00" * 20)
    with pytest.raises(PipelineError, match="gave a readable frame"):
        run_pipeline(tmp_path / "run", ingest=[d], size=8, partition_size=2, embed=False, evaluate=False,
                     client=dask_client, progress=False)
    assert RunStore.open(tmp_path / "run").manifest["stages"].get("pipeline", {}).get("status") != "done"


def test_pipeline_ingest_applies_the_frame_limit(beamtime, tmp_path, dask_client):
    """The header-checked frame limit reaches the pipeline's ingest (it used plan_ingest's defaults)."""
    np.save(beamtime / "single.npy", np.ones((1, 24, 24), np.int32))
    res = run_pipeline(tmp_path / "run", ingest=[beamtime], size=8, partition_size=2, embed=False,
                       evaluate=False, client=dask_client, progress=False, max_frames_per_file=2)
    assert RunStore.open(res.run_path).n_samples == 1
    errors = RunStore.open(res.run_path).read_errors()
    limited = errors[errors["error_type"] == "FrameLimitError"]
    assert len(limited) == 3 and limited["message"].str.contains("max_frames_per_file").all()
