"""Inference: predictions.parquet + features.zarr, consistency with Predictor, resume, mismatches."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from xsgpu.attributes import prob_columns
from xsgpu.errors import CorruptArtifact, StoreLocked
from xsgpu.io.runstore import RunStore, RunStoreError
from xsgpu.model import Predictor, build_resnet, infer_partition, infer_run, save_checkpoint
from xsgpu.model.checkpoint import CheckpointMismatch
from xsgpu.model.scoring import mean_ap, prevalence_map

from .conftest import make_easy_run


@pytest.fixture
def run_copy(easy_run, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(easy_run.path, dst, ignore=shutil.ignore_patterns("predictions.parquet", "features.zarr"))
    return RunStore.open(dst)


def test_infer_run_writes_predictions_and_features(run_copy, trained_model):
    model, report = trained_model
    s = infer_run(run_copy.path, model=model, device="cpu", batch_size=32, num_threads=1, progress=False)
    assert s["n_images"] == run_copy.n_samples and s["n_partitions_done"] == run_copy.n_partitions
    pred = run_copy.predictions.read()
    assert list(pred.columns) == ["sample_id"] + prob_columns()
    assert pred["sample_id"].tolist() == list(range(run_copy.n_samples))
    assert all(pred[c].dtype == np.float32 for c in prob_columns())
    meta = run_copy.predictions.metadata()
    assert meta["arch"] == "resnet18" and meta["input_size"] == 32 and meta["model_id"] == report["model_id"]
    assert len(meta["weights_sha256"]) == 64
    feats = run_copy.features.open()
    assert feats.shape == (run_copy.n_samples, 512) and feats.dtype == np.float16
    # the stored outputs equal a direct Predictor pass over the stored frames
    p = Predictor.from_checkpoint(model, device="cpu", batch_size=50, num_threads=1)
    f, probs = p.predict(run_copy.images.open()[:])
    np.testing.assert_allclose(pred[prob_columns()].to_numpy(), probs, atol=1e-5)
    np.testing.assert_allclose(feats[:].astype(np.float32), f, rtol=2e-3, atol=2e-3)
    # and they are good predictions on the test runs
    samples = run_copy.samples.read()
    test = (samples["split"] == "test").to_numpy()
    y = run_copy.labels()
    assert mean_ap(y[test], probs[test]) > prevalence_map(y[test], y[~test].mean(0)) + 0.2
    assert run_copy.stage_status()["infer"] == "done"


def test_infer_resumes_after_partial_run(run_copy, trained_model):
    model, _ = trained_model
    p = Predictor.from_checkpoint(model, device="cpu", batch_size=32, num_threads=1)
    assert infer_partition(run_copy.path, 1, p) == 80
    # a killed job: features rows of partition 2 written, its predictions part missing
    run_copy.features.open(mode="r+")[160:240] = np.full((80, 512), -7, np.float16)  # pooled ReLU features are >= 0
    s = infer_run(run_copy.path, model=p, progress=False)
    assert s["n_partitions_skipped"] == 1 and s["n_partitions_done"] == 2 and s["n_images"] == 160
    assert sorted(run_copy.predictions.finished()) == [0, 1, 2]
    assert not np.any(run_copy.features.open()[160:240] == -7)
    s2 = infer_run(run_copy.path, model=p, progress=False)
    assert s2["n_images"] == 0 and s2["n_partitions_skipped"] == 3


def test_infer_refuses_other_models_outputs(run_copy, trained_model, tmp_path):
    model, _ = trained_model
    infer_partition(run_copy.path, 0, Predictor.from_checkpoint(model, device="cpu", num_threads=1))
    torch.manual_seed(1)
    save_checkpoint(tmp_path / "other", build_resnet("resnet18"), input_size=32,
                    preprocessing={"source_size": [32, 32]})
    with pytest.raises(RunStoreError, match=r"holds partitions \[0\] from another model .*Hint: pass --overwrite"):
        infer_run(run_copy.path, model=tmp_path / "other", device="cpu", num_threads=1, progress=False)
    s = infer_run(run_copy.path, model=tmp_path / "other", device="cpu", num_threads=1, progress=False, overwrite=True)
    assert s["n_partitions_done"] == 3


def test_infer_refuses_mismatched_run_or_model(tmp_path, trained_model):
    model, _ = trained_model
    big = make_easy_run(tmp_path / "big", n=20, size=64, partition_size=20)
    p = Predictor.from_checkpoint(model, device="cpu", num_threads=1)
    with pytest.raises(CheckpointMismatch, match=r"trained on frames stored at 32x32 \(input size 32\), but run .*big "
                                                 r"stores 64x64. Hint: ingest the run with --size 32"):
        infer_partition(big.path, 0, p)
    # a checkpoint whose attribute list differs from the run's
    bad = tmp_path / "bad"
    shutil.copytree(model, bad, ignore=shutil.ignore_patterns("epochs"))
    meta = json.loads((bad / "model.json").read_text())
    meta["attributes"] = meta["attributes"][:16] + ["Nanowire"]
    (bad / "model.json").write_text(json.dumps(meta))
    small = make_easy_run(tmp_path / "small", n=20, size=32, partition_size=20)
    with pytest.raises(CheckpointMismatch, match=r"was trained on attributes .*'Nanowire'\] \(17\), but run .*small has "
                                                 r".*'Wedge beamstop'.*#16: 'Nanowire' vs 'Wedge beamstop'"):
        infer_run(small.path, model=bad, device="cpu", num_threads=1, progress=False)
    assert not small.predictions.path.exists()


def test_predictor_validates_input(trained_model):
    model, _ = trained_model
    with pytest.raises(ValueError, match="The 'batch_size' parameter of Predictor must be a positive int. Got 0"):
        Predictor.from_checkpoint(model, device="cpu", batch_size=0, num_threads=1)
    p = Predictor.from_checkpoint(model, device="cpu", num_threads=1)
    with pytest.raises(ValueError, match=r"log frames must have shape \(N, H, W\). Got shape \(2, 1, 32, 32\)"):
        p.predict(np.zeros((2, 1, 32, 32), np.float32))
    f, pr = p.predict(np.zeros((0, 32, 32), np.float32))
    assert f.shape == (0, 512) and pr.shape == (0, 17)
    assert p.meta["weights_sha256"] and p.meta["device"] == "cpu" and "resnet18" in repr(p)


@pytest.mark.parametrize("start, stop, bs", [(0, 80, 32), (80, 160, 7), (160, 240, 100), (10, 75, 16)])
def test_read_batches_recuts_chunk_blocks(easy_run, start, stop, bs):
    from xsgpu.model.infer import read_batches

    images = easy_run.images.open()
    out = list(read_batches(images, start, stop, bs, workers=2))
    assert all(len(b) == bs for b in out[:-1]) and 0 < len(out[-1]) <= bs
    np.testing.assert_array_equal(np.concatenate(out), images[start:stop])


# ---------------------------------------------------------------- hardening (issue 15.2, 15.3, 15.8)
def _other_model(tmp_path):
    torch.manual_seed(1)
    save_checkpoint(tmp_path / "other", build_resnet("resnet18"), input_size=32,
                    preprocessing={"source_size": [32, 32]})
    return tmp_path / "other"


def test_overwrite_keeps_old_outputs_until_the_new_ones_are_complete(run_copy, trained_model, tmp_path,
                                                                     monkeypatch):
    import xsgpu.model.infer as infer_mod

    model, _ = trained_model
    infer_run(run_copy.path, model=model, device="cpu", num_threads=1, progress=False)
    old_pred = run_copy.predictions.read()
    old_sha = run_copy.predictions.metadata()["weights_sha256"]
    old_feats = run_copy.features.open()[:]
    real = infer_mod.infer_partition

    def fails_on_partition_1(run_path, part, predictor, **kw):
        if part == 1:
            raise PermissionError(13, "Permission denied", str(run_path))
        return real(run_path, part, predictor, **kw)

    monkeypatch.setattr(infer_mod, "infer_partition", fails_on_partition_1)
    other = _other_model(tmp_path)
    with pytest.raises(PermissionError):
        infer_run(run_copy.path, model=other, device="cpu", num_threads=1, progress=False, overwrite=True)
    # the old outputs are all there, unchanged, and nothing of the new model leaked into them
    assert sorted(run_copy.predictions.finished()) == [0, 1, 2]
    assert run_copy.predictions.read().equals(old_pred)
    assert run_copy.predictions.metadata()["weights_sha256"] == old_sha
    np.testing.assert_array_equal(run_copy.features.open()[:], old_feats)
    assert run_copy.stage_status()["infer"] == "failed"
    # a rerun resumes the staged partition and swaps the complete new outputs in
    monkeypatch.setattr(infer_mod, "infer_partition", real)
    s = infer_run(run_copy.path, model=other, device="cpu", num_threads=1, progress=False, overwrite=True)
    assert s["n_partitions_skipped"] == 1 and s["n_partitions_done"] == 2
    shas = {json.loads(pq.read_schema(f).metadata[b"xsgpu"])["weights_sha256"]
            for f in run_copy.predictions.path.glob("part-*.parquet")}
    assert shas == {Predictor.from_checkpoint(other, device="cpu", num_threads=1).meta["weights_sha256"]}
    assert not (run_copy.path / ".staging").exists()
    assert not np.array_equal(run_copy.features.open()[:], old_feats)


def test_second_infer_on_a_run_is_refused_naming_the_holder(run_copy, trained_model, stage_lock_holder):
    model, _ = trained_model
    holder = stage_lock_holder(run_copy.path, "infer")
    with pytest.raises(StoreLocked, match=rf"stage 'infer' is already running here, held by pid {holder.pid} "):
        infer_run(run_copy.path, model=model, device="cpu", num_threads=1, progress=False)
    assert not run_copy.predictions.path.exists()
    holder.kill()
    holder.wait()
    s = infer_run(run_copy.path, model=model, device="cpu", num_threads=1, progress=False)  # lock freed on exit
    assert s["n_partitions_done"] == run_copy.n_partitions


def test_infer_refuses_a_deleted_image_chunk(run_copy, trained_model):
    model, _ = trained_model
    images = run_copy.images.open()
    key = images.metadata.encode_chunk_key((1, 0, 0))
    run_copy.images.path.joinpath(*key.split("/")).unlink()
    with pytest.raises(CorruptArtifact, match=r"images.zarr: rows 80..159 \(partition 1\) have no stored chunk"):
        infer_run(run_copy.path, model=model, device="cpu", num_threads=1, progress=False)
    assert run_copy.predictions.finished() == {0}


def test_overwrite_killed_with_sigkill_leaves_the_old_outputs(run_copy, trained_model, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    model, _ = trained_model
    infer_run(run_copy.path, model=model, device="cpu", num_threads=1, progress=False)
    old_pred = run_copy.predictions.read()
    old_feats = run_copy.features.open()[:]
    other = _other_model(tmp_path)
    child = (  # partition 0 is staged, then the process hangs in partition 1 until it is killed
        "import time, xsgpu.model.infer as m\n"
        "real = m.infer_partition\n"
        "def slow(run, part, predictor, **kw):\n"
        "    if part == 1:\n"
        "        time.sleep(600)\n"
        "    return real(run, part, predictor, **kw)\n"
        "m.infer_partition = slow\n"
        f"m.infer_run({str(run_copy.path)!r}, model={str(other)!r}, device='cpu', num_threads=1, progress=False, "
        "overwrite=True)\n")
    proc = subprocess.Popen([sys.executable, "-c", child])
    staged = run_copy.path / ".staging" / "infer" / "predictions.parquet" / "part-00000.parquet"
    try:
        deadline = time.monotonic() + 300
        while not staged.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the child ended before staging partition 0"
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert run_copy.predictions.read().equals(old_pred)
    np.testing.assert_array_equal(run_copy.features.open()[:], old_feats)
    s = infer_run(run_copy.path, model=other, device="cpu", num_threads=1, progress=False, overwrite=True)
    assert s["n_partitions_skipped"] == 1 and sorted(run_copy.predictions.finished()) == [0, 1, 2]
    assert not run_copy.predictions.read().equals(old_pred)
