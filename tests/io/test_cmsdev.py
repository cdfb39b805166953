"""cms-dev (600 images by the original generator) through ``xsgpu ingest`` with its label file.

Three formats (MATLAB .mat, int32 TIFF, HDF5 stacks), 600 labelled frames, no error row, the stored
frames equal the files' counts log-scaled, and the per-attribute label counts of its README.
Skipped where the set is not present (set XSGPU_CMSDEV to its folder).
"""
from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.io
import tifffile
from click.testing import CliRunner

from xsgpu.attributes import NAMES, SLUGS, label_columns
from xsgpu.io import RunStore
from xsgpu.preprocess import log_scale, resize_batch
from xsgpu.synth.reference import (CMSDEV_COUNTS, CMSDEV_N, CMSDEV_RUNS, find_cmsdev, run_directories,
                                   write_ingest_labels)

ROOT = find_cmsdev()
pytestmark = pytest.mark.skipif(ROOT is None, reason="cms-dev not found (set XSGPU_CMSDEV)")
SIZE = 64


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    from workflows.cli import main

    tmp = tmp_path_factory.mktemp("cmsdev")
    labels = write_ingest_labels(ROOT, tmp / "labels17.csv")
    args = ["ingest", *map(str, run_directories(ROOT)), "--labels", str(labels), "--out", str(tmp / "run"),
            "--size", str(SIZE), "--partition-size", "256", "--no-progress"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    return RunStore.open(tmp / "run"), res.output


def test_ingest_three_formats_600_labelled_no_errors(ingested):
    store, output = ingested
    assert f"Ingested {CMSDEV_N} samples ({CMSDEV_N} readable, {CMSDEV_N} labelled) from 410 files" in output
    assert "0 error rows" in output
    samples = store.samples.read()
    assert len(samples) == CMSDEV_N
    assert samples["valid"].all() and samples["labelled"].all() and samples["quantitative"].all()
    assert not samples["is_synthetic"].any()
    assert store.read_errors().empty
    assert samples["format"].value_counts().to_dict() == {"mat-v5": 200, "tiff": 200, "eiger": 200}
    assert samples["run_id"].nunique() == CMSDEV_RUNS
    assert (samples.groupby("run_id")["split"].nunique() == 1).all()  # split by run
    h5 = samples[samples["format"] == "eiger"]
    assert sorted(h5["frame"].unique()) == list(range(20))
    assert (samples[samples["format"] != "eiger"]["frame"] == 0).all()


def test_labels_match_the_label_file_row_by_row(ingested):
    store, _ = ingested
    samples = store.samples.read()
    truth = pd.read_csv(ROOT / "labels.csv")
    truth["source_uri"] = [str(ROOT / f) for f in truth["file"]]
    merged = samples.merge(truth, on=["source_uri", "frame"], how="inner", validate="one_to_one")
    assert len(merged) == CMSDEV_N
    for name, col in zip(NAMES, label_columns()):
        np.testing.assert_array_equal(merged[col].to_numpy(), merged[name].to_numpy().astype(bool), err_msg=name)


def test_label_frequencies(ingested):
    store, _ = ingested
    y = store.samples.read()[label_columns()].to_numpy()
    counts = dict(zip(SLUGS, y.sum(axis=0).tolist()))
    assert counts == CMSDEV_COUNTS
    assert y.sum() == 2070  # 3.450 labels per image
    assert y.any(axis=1).all()  # no all-zero label vector
    # every image has exactly one of the four run-level beamstop attributes
    beam = y[:, [SLUGS.index(s) for s in ("beam_off", "circular_beamstop", "linear_beamstop", "wedge_beamstop")]]
    assert (beam.sum(axis=1) == 1).all()


def _raw(path, frame):
    if path.endswith(".mat"):
        return scipy.io.loadmat(path)["detector_image"]
    if path.endswith(".tif"):
        return tifffile.imread(path)
    with h5py.File(path, "r") as fh:
        return fh["entry/data/data"][frame]


def test_stored_frames_are_the_files_counts(ingested):
    store, _ = ingested
    samples = store.samples.read()
    images = store.images.open()
    for fmt in ("mat-v5", "tiff", "eiger"):
        row = samples[samples["format"] == fmt].iloc[7]
        raw = _raw(row["source_uri"], int(row["frame"]))
        assert raw.shape == (256, 256) and raw.dtype in (np.uint32, np.int32) and raw.max() > 0
        want = resize_batch(log_scale(raw[None].astype(np.float64)), SIZE)[0]
        got = np.asarray(images[int(row["sample_id"])], dtype=np.float32)
        np.testing.assert_allclose(got, want, rtol=2e-3, atol=0.05, err_msg=fmt)
