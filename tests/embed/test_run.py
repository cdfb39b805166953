import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from xsgpu.embed import EMBEDDING_COLUMNS, embed_run
from xsgpu.embed.reference import SpaceReference
from xsgpu.io.runstore import RunStore, RunStoreError

from .conftest import write_run

FAST = {"n_iter": 250, "early_exaggeration_iter": 100}


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    root = tmp_path_factory.mktemp("embed")
    store, cluster = write_run(root / "day1", 400, seed=0)
    df = embed_run(store.path, method="tsne", device="cpu", random_state=0, progress=False, pca_dims=20,
                   n_jobs=1, projector_params=FAST)
    return root, store, cluster, df


def test_embed_run_writes_the_table(embedded):
    _, store, _, df = embedded
    back = store.embedding.read()
    assert list(back.columns) == EMBEDDING_COLUMNS
    pd.testing.assert_frame_equal(back, df)
    assert back.sample_id.tolist() == list(range(400))
    for c in EMBEDDING_COLUMNS[1:]:
        assert back[c].dtype == np.float32
    assert np.isfinite(back[EMBEDDING_COLUMNS[1:]].to_numpy()).all()
    meta = store.embedding.metadata()
    assert meta["method"] == "tsne" and set(meta["params"]) == {"act", "fea", "prd"}
    assert meta["params"]["fea"]["perplexity"] == 30.0 and meta["params"]["fea"]["random_state"] == 0
    assert meta["spaces"]["fea"]["pca_dims"] == 20 and meta["spaces"]["fea"]["backend"] == "cpu"
    assert meta["spaces"]["act"]["n_unique"] < 400
    assert store.stage_status()["embed"] == "done"

    from xsgpu.embed.run import load_inputs

    reduced = store.fea_reduced.load()              # the PCA copy the t-SNE saw, for the app and evaluate
    assert reduced.shape == (400, 20) and reduced.dtype == np.float32 and store.fea_reduced.exists()
    np.testing.assert_allclose(reduced, load_inputs(store, pca_dims=20)[0]["fea"], rtol=1e-5, atol=1e-5)


def test_trustworthiness_of_fea_and_prd(embedded):
    _, store, _, _ = embedded
    spaces = store.embedding.metadata()["spaces"]
    assert spaces["fea"]["trustworthiness_k10"] >= 0.90
    assert spaces["prd"]["trustworthiness_k10"] >= 0.90


def test_reference_files_are_plain_arrays(embedded):
    _, store, _, _ = embedded
    for space in ("act", "fea", "prd"):
        ref = SpaceReference.load(store.path, space)  # np.load(allow_pickle=False) inside
        assert ref.method == "tsne" and ref.coords.shape[1] == 2
    fea = SpaceReference.load(store.path, "fea")
    assert fea.arrays["pca_components"].shape == (20, 96) and fea.inputs.shape == (400, 20)


def test_todays_images_onto_yesterdays_map(embedded):
    root, store, cluster, day1 = embedded
    new, new_cluster = write_run(root / "day2", 120, seed=5)
    df = embed_run(new.path, method="tsne", device="cpu", random_state=0, progress=False, reference=store.path,
                   n_jobs=1)
    assert df.shape == (120, 7) and np.isfinite(df.iloc[:, 1:].to_numpy()).all()
    meta = new.embedding.metadata()
    assert meta["reference"] == str(store.path)
    for space in ("fea", "prd", "act"):
        old = day1[[f"{space}_x", f"{space}_y"]].to_numpy()
        placed = df[[f"{space}_x", f"{space}_y"]].to_numpy()
        d = np.linalg.norm(placed[:, None, :] - old[None], axis=2)
        agree = (cluster[np.argmin(d, axis=1)] == new_cluster).mean()
        assert agree >= 0.85, (space, agree)


def test_reference_method_mismatch_is_named(embedded):
    root, store, _, _ = embedded
    other, _ = write_run(root / "other", 50, seed=9)
    with pytest.raises(ValueError, match="holds 'tsne' maps. Hint: pass method='tsne'"):
        embed_run(other.path, method="pca", reference=store.path, progress=False)


def test_missing_predictions_is_a_clear_error(make_run):
    store, _ = make_run("nopred", n=50, predictions=False)
    with pytest.raises(RunStoreError, match=r"embed needs predictions.parquet \(PRD, from `xsgpu infer RUN --model MODEL`\)"):
        embed_run(store.path, progress=False)
    assert not store.embedding.path.exists()


def test_missing_features_and_nan_predictions(make_run):
    store, _ = make_run("nofea", n=50, features=False)
    with pytest.raises(RunStoreError, match=r"features.zarr \(FEA"):
        embed_run(store.path, progress=False)
    store, _ = make_run("nan", n=50)
    df = store.predictions.read()
    df.loc[7, "p__ring"] = np.nan
    # as a tool other than xsgpu could write it: RunStore's own writes refuse NaN probabilities
    pq.write_table(pa.Table.from_pandas(df.iloc[:50], preserve_index=False), store.predictions.partition_path(0))
    with pytest.raises(RunStoreError, match=r"sample_id \[7\] hold NaN/inf probabilities"):
        embed_run(store.path, method="pca", progress=False)
    assert store.stage_status()["embed"] == "failed"


def test_pca_embedding_is_deterministic_and_a_reference(make_run):
    store, cluster = make_run("pca", n=200)
    a = embed_run(store.path, method="pca", random_state=3, progress=False)
    b = embed_run(store.path, method="pca", random_state=3, progress=False)
    pd.testing.assert_frame_equal(a, b)
    new, _ = make_run("pca2", n=200, seed=0)  # same data: placed exactly where it was
    c = embed_run(new.path, method="pca", reference=store.path, random_state=3, progress=False)
    assert np.allclose(c[["fea_x", "fea_y", "prd_x", "prd_y"]], a[["fea_x", "fea_y", "prd_x", "prd_y"]], atol=1e-3)
    assert np.allclose(c[["act_x", "act_y"]], a[["act_x", "act_y"]], atol=1e-4)



def test_each_method_keeps_its_table(embedded):
    """A PCA embed after the t-SNE one: embedding.parquet is the latest, both stay in embeddings/."""
    import shutil

    from xsgpu.embed.run import method_table, stored_methods

    root, store, _, tsne = embedded
    run = root / "two_methods"
    shutil.copytree(store.path, run)
    two = RunStore.open(run)
    assert stored_methods(two) == ["tsne"]
    pca = embed_run(run, method="pca", random_state=0, progress=False, pca_dims=20)
    assert stored_methods(two) == ["tsne", "pca"]
    pd.testing.assert_frame_equal(two.embedding.read(), pca)
    pd.testing.assert_frame_equal(two.read_table(method_table("tsne")), tsne)
    assert two.read_metadata(method_table("pca"))["method"] == "pca"
    with pytest.raises(ValueError, match=r"'method' parameter of method_table must be one of"):
        method_table("mds")


def test_tsne_embed_run_same_seed_same_table(make_run):
    store, _ = make_run("det", n=120)
    kw = dict(method="tsne", device="cpu", random_state=1, progress=False, n_jobs=1, quality=False,
              projector_params={"n_iter": 100, "early_exaggeration_iter": 50})
    pd.testing.assert_frame_equal(embed_run(store.path, **kw), embed_run(store.path, **kw))


def test_bad_arguments(make_run):
    store, _ = make_run("args", n=30)
    with pytest.raises(ValueError, match="The 'method' parameter of embed_run must be one of"):
        embed_run(store.path, method="mds")
    with pytest.raises(ValueError, match="The 'pca_dims' parameter of embed_run must be an int >= 2. Got 1"):
        embed_run(store.path, pca_dims=1)
    with pytest.raises(FileNotFoundError, match="has no stored act map"):
        embed_run(store.path, method="pca", reference=store.path, progress=False)


def test_cli_embed(make_run):
    from workflows.cli import main

    store, _ = make_run("cli", n=80)
    result = CliRunner().invoke(main, ["embed", str(store.path), "--method", "pca", "--seed", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "embedding.parquet" in result.output and "fea" in result.output
    assert RunStore.open(store.path).has("embedding")
    result = CliRunner().invoke(main, ["embed", "--help"])
    assert "--reference" in result.output and "xsgpu embed runs/today --reference runs/yesterday" in result.output
    result = CliRunner().invoke(main, ["embed", str(store.path), "--method", "mds"])
    assert result.exit_code != 0 and "mds" in result.output


def test_gpu_maps_are_references_for_cpu_placement(make_run, fake_gpu):
    """device="auto" on a (fake) GPU node: cuML makes the maps, openTSNE later places new images on them."""
    store, cluster = make_run("gpu", n=300)
    df = embed_run(store.path, method="tsne", device="auto", progress=False, pca_dims=20, n_jobs=1)
    spaces = store.embedding.metadata()["spaces"]
    assert {spaces[s]["backend"] for s in ("act", "fea", "prd")} == {"gpu"}
    assert spaces["fea"]["library"] == "cuml.TSNE"
    new, new_cluster = make_run("gpu_day2", n=60, seed=4)
    placed = embed_run(new.path, method="tsne", reference=store.path, progress=False, n_jobs=1)
    old = df[["fea_x", "fea_y"]].to_numpy()
    d = np.linalg.norm(placed[["fea_x", "fea_y"]].to_numpy()[:, None, :] - old[None], axis=2)
    assert (cluster[np.argmin(d, axis=1)] == new_cluster).mean() >= 0.85
