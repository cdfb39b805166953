"""Every reader of a run sees a deleted chunk as an error, not as zeros: the app's RunData and embed."""
from __future__ import annotations

import shutil

import pytest

from xsgpu.errors import CorruptArtifact
from xsgpu.io.runstore import RunStore

from tests.app.conftest import make_app_run


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    return make_app_run(tmp_path_factory.mktemp("chunks") / "run", n=40, partition_size=20, size=16, d=8)


def _delete_chunk(store: RunStore, name: str, block: int) -> None:
    arr = store.open_array(name)
    key = arr.metadata.encode_chunk_key((block,) + (0,) * (arr.ndim - 1))
    store.array_path(name).joinpath(*key.split("/")).unlink()


@pytest.fixture
def run_copy(small_run, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(small_run.path, dst)
    return RunStore.open(dst)


def test_app_thumbnail_of_a_deleted_chunk_is_an_error_not_a_blank_image(run_copy):
    from panel_app.data import load_run_data

    data = load_run_data(run_copy.path, use_cache=False)
    assert data.thumbnail(25).shape == (64, 64)
    _delete_chunk(run_copy, "thumbs", 1)
    with pytest.raises(CorruptArtifact, match=r"thumbs.zarr: rows 20..39 \(partition 1\) have no stored chunk"):
        data.thumbnail(25)
    assert data.thumbnail(5).shape == (64, 64)


def test_embed_inputs_with_a_deleted_feature_chunk_are_an_error(run_copy):
    from xsgpu.embed.run import load_inputs

    _delete_chunk(run_copy, "features", 0)
    with pytest.raises(CorruptArtifact, match=r"features.zarr: rows 0..19 \(partition 0\) .*xsgpu infer"):
        load_inputs(run_copy, pca_dims=4, device="cpu")
