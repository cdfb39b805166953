"""The stage contract: every stage answers is_done for its parameters, and changed parameters rerun it.

One tiny synthetic run (48 images of 32 px, 3 partitions) goes through synth -> infer -> embed ->
evaluate with :func:`xsgpu.stages.run_stage` in this process, as the CLI runs them.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from xsgpu.errors import StoreError
from xsgpu.io.runstore import RunStore
from tests.model.conftest import save_random_resnet18
from xsgpu.stages import (STAGES, EmbedParams, EvaluateParams, InferParams, IngestParams, SynthParams, TrainParams,
                          get_stage, param_names, run_stage)

N, SIZE, PART = 48, 32, 16


def _model(path, seed):
    return str(save_random_resnet18(path, seed=seed, input_size=SIZE))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    return _model(d / "a", 0), _model(d / "b", 1)


@pytest.fixture(scope="module")
def inferred(tmp_path_factory, models):
    """A synth run predicted by model a (no heatmaps: faster)."""
    run = tmp_path_factory.mktemp("contract") / "run"
    run_stage(get_stage("synth"), run, SynthParams(n=N, size=SIZE, seed=2, partition_size=PART), progress=False)
    run_stage(get_stage("infer"), run, InferParams(model=models[0], device="cpu", heatmaps=False), progress=False)
    return run


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_every_stage_states_its_contract():
    assert list(STAGES) == ["synth", "ingest", "train", "infer", "embed", "evaluate", "app_cache"]
    for stage in STAGES.values():
        assert stage.name and param_names(stage)
        assert stage.outputs or stage.outputs_elsewhere
        assert set(stage.inputs).isdisjoint(stage.outputs)
    assert [s.name for s in STAGES.values() if s.partitioned] == ["synth", "ingest", "infer"]
    with pytest.raises(KeyError, match=r"No stage 'nope'; the stages are \['synth'"):
        get_stage("nope")


def test_synth_is_done_flips_with_its_size(inferred, tmp_path):
    synth = get_stage("synth")
    same = SynthParams(n=N, size=SIZE, seed=2, partition_size=PART)
    assert synth.is_done(inferred, same)[0]
    done, why = synth.is_done(inferred, SynthParams(n=N, size=16, seed=2, partition_size=PART))
    assert not done and why == "made with other parameters: size 32 -> 16"
    assert not synth.is_done(inferred, SynthParams(n=N + 1, size=SIZE, seed=2, partition_size=PART))[0]
    assert synth.is_done(tmp_path / "none", same) == (False, "no run yet")
    # another size is refused (a run holds one size), not mixed in
    run = _copy(inferred, tmp_path / "run")
    with pytest.raises(StoreError, match=r"made with other parameters .*'size': \(32, 16\)"):
        run_stage(synth, run, SynthParams(n=N, size=16, seed=2, partition_size=PART), progress=False)
    # a lost partition is pending again, and only it is regenerated
    (run / "samples.parquet" / "part-00001.parquet").unlink()
    assert synth.is_done(run, same) == (False, "1 partitions pending")
    report = run_stage(synth, run, same, progress=False)
    assert (report.partitions_run, report.partitions_skipped, report.rows) == (1, 2, PART)
    assert synth.is_done(run, same)[0]


def test_infer_with_another_model_is_refused_then_overwrites(inferred, models, tmp_path):
    infer = get_stage("infer")
    run = _copy(inferred, tmp_path / "run")
    a, b = (InferParams(model=m, device="cpu", heatmaps=False) for m in models)
    assert infer.is_done(run, a) == (True, infer.is_done(run, a)[1])
    done, why = infer.is_done(run, b)
    assert not done and why.startswith("partitions predicted by another model")
    with pytest.raises(StoreError, match=r"holds partitions \[0, 1, 2\] from another model .*--overwrite"):
        run_stage(infer, run, b, progress=False)
    report = run_stage(infer, run, InferParams(model=models[1], device="cpu", heatmaps=False, overwrite=True),
                       progress=False)
    assert report.partitions_run == 3 and report.info["n_images"] == N
    assert infer.is_done(run, b)[0] and not infer.is_done(run, a)[0]
    # asking for heatmaps the partitions lack is not done either
    assert not infer.is_done(run, InferParams(model=models[1], device="cpu", heatmaps=True))[0]


def test_embed_reruns_for_another_method_or_seed(inferred, tmp_path):
    embed = get_stage("embed")
    run = _copy(inferred, tmp_path / "run")
    pca = EmbedParams(method="pca", device="cpu", quality=False)
    assert embed.is_done(run, pca) == (False, "no pca embedding yet")
    first = run_stage(embed, run, pca, progress=False)
    assert first.status == "done" and first.rows == N
    assert embed.is_done(run, pca)[0]
    again = run_stage(embed, run, pca, progress=False)
    assert again.status == "skipped" and again.rows == 0
    tsne = EmbedParams(method="tsne", device="cpu", quality=False, n_jobs=1)
    assert embed.is_done(run, tsne) == (False, "no tsne embedding yet")
    done, why = embed.is_done(run, EmbedParams(method="pca", device="cpu", random_state=1))
    assert not done and "random_state 0 -> 1" in why
    done, why = embed.is_done(run, EmbedParams(method="pca", device="cpu", pca_dims=20))
    assert not done and "pca_dims 50 -> 20" in why
    # placed onto another run's maps is another embedding
    done, why = embed.is_done(run, EmbedParams(method="pca", device="cpu", reference=str(inferred)))
    assert not done and why.startswith("changed since the last embed: reference None -> ")
    # an explicit command recomputes
    assert run_stage(embed, run, pca, progress=False, skip_done=False).status == "done"


def test_evaluate_reruns_for_another_cutoff(inferred, tmp_path):
    evaluate = get_stage("evaluate")
    run = _copy(inferred, tmp_path / "run")
    assert evaluate.is_done(run, EvaluateParams()) == (False, "no metrics yet")
    run_stage(evaluate, run, EvaluateParams(suspicious=False), progress=False)
    assert evaluate.is_done(run, EvaluateParams(cutoff=0.5))[0]
    done, why = evaluate.is_done(run, EvaluateParams(cutoff=0.4))
    assert not done and "cutoff 0.5 -> 0.4" in why
    assert run_stage(evaluate, run, EvaluateParams(cutoff=0.5), progress=False).status == "skipped"


def test_train_is_done_flips_with_the_architecture(inferred, models):
    train = get_stage("train")
    params = TrainParams(out=models[0], arch="resnet18", size=SIZE)
    assert train.is_done(inferred, params)[0]
    done, why = train.is_done(inferred, TrainParams(out=models[0], arch="resnet34", size=SIZE))
    assert not done and "arch 'resnet18' -> 'resnet34'" in why
    assert not train.is_done(inferred, TrainParams(out=models[0], arch="resnet18", size=64))[0]
    assert train.is_done(inferred, TrainParams(out=models[0] + "-none"))[0] is False


def test_ingest_is_done_flips_with_its_size(tmp_path):
    ingest = get_stage("ingest")
    (tmp_path / "in" / "run1").mkdir(parents=True)
    np.save(tmp_path / "in" / "run1" / "a.npy", np.ones((3, 16, 16)))
    params = IngestParams(paths=(str(tmp_path / "in"),), size=8, partition_size=2)
    report = run_stage(ingest, tmp_path / "run", params, progress=False)
    assert (report.partitions_run, report.rows) == (2, 3)
    assert ingest.is_done(tmp_path / "run", params)[0]
    done, why = ingest.is_done(tmp_path / "run", IngestParams(paths=params.paths, size=16, partition_size=2))
    assert not done and why == "made with other parameters: size 8 -> 16"
    again = run_stage(ingest, tmp_path / "run", params, progress=False)
    assert (again.status, again.partitions_run, again.partitions_skipped) == ("skipped", 0, 2)
    assert RunStore.open(tmp_path / "run").manifest["stages"]["ingest"]["status"] == "done"


def test_a_process_pool_writes_what_this_process_writes(inferred, tmp_path):
    """``xsgpu synth --workers 2``: the partitions run in spawned processes; the run is the same."""
    from xsgpu.stages import process_map

    params = SynthParams(n=N, size=SIZE, seed=2, partition_size=PART)
    report = run_stage(get_stage("synth"), tmp_path / "pool", params, map_fn=process_map(2), progress=False)
    assert (report.partitions_run, report.rows) == (3, N)
    a, b = RunStore.open(inferred), RunStore.open(tmp_path / "pool")
    assert a.samples.read().equals(b.samples.read())
    np.testing.assert_array_equal(np.asarray(a.images.open()[:]), np.asarray(b.images.open()[:]))
    assert process_map(1) is None
    with pytest.raises(ValueError, match="The 'workers' parameter of process_map must be an int >= 1"):
        process_map(0)
