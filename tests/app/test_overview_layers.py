"""The model overview's "Neighbourhoods across layers" table (issue 12.3): the stored rows, or nothing."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from xsgpu.io.runstore import RunStore
from xsgpu.io.schema import LAYER_OVERLAPS

from tests.explain.conftest import explained_run  # noqa: F401 - the inferred run with layer1..layer3

pytest.importorskip("holoviews")


@pytest.fixture(scope="module")
def embedded_run(explained_run, tmp_path_factory):  # noqa: F811
    """The explained run with thumbnails and a PCA embedding (which writes layer_overlaps)."""
    from xsgpu.embed import embed_run
    from xsgpu.preprocess import make_thumbnails

    store, _, _ = explained_run
    run = tmp_path_factory.mktemp("overview_layers") / "run"
    shutil.copytree(store.path, run)
    copy = RunStore.open(run)
    copy.thumbs.create((copy.n_samples, 64, 64), np.uint8)[:] = make_thumbnails(
        np.asarray(copy.images.open()[:], np.float32))
    embed_run(run, method="pca", device="cpu", progress=False, quality=False)
    return run


def _overview(run):
    from panel_app.data import load_run_data
    from panel_app.panels import ModelOverview
    from panel_app.state import AppState

    return ModelOverview(state=AppState(data=load_run_data(run, use_cache=False)))


def _texts(viewable) -> list[str]:
    return [o.object for o in viewable.select(lambda o: hasattr(o, "object") and isinstance(o.object, str))]


def test_the_overview_shows_the_stored_overlaps(embedded_run):
    import panel as pn

    stored = RunStore.open(embedded_run).artifact(LAYER_OVERLAPS).read()
    mo = _overview(embedded_run)
    assert mo.layers is not None and mo.layers in list(mo.__panel__())
    table = mo.layers.select(pn.widgets.Tabulator)[0].value
    assert table["neighbourhoods in"].tolist() == ["layer1", "layer2", "layer3",
                                                   "layer1", "layer2", "layer3", "FEA (last block)"]
    assert table["compared with"].tolist() == ["layer2", "layer3", "FEA (last block)"] + ["PRD"] * 4
    np.testing.assert_allclose(table["overlap"].to_numpy(), stored["overlap"].to_numpy(), atol=5e-4)
    n = int(stored["n"].iloc[0])
    assert any(t.startswith(f"**Neighbourhoods across layers** (k-NN overlap, k=10, on all {n} images)")
               for t in _texts(mo.layers))


def test_a_sampled_table_says_how_many_images(embedded_run):
    from panel_app.panels.overview_layers import overlap_title

    stored = RunStore.open(embedded_run).artifact(LAYER_OVERLAPS).read()
    title = overlap_title(stored.assign(n=5000), 1_000_000)
    assert "(k-NN overlap, k=10, on 5,000 sampled images)" in title and "about 0.002 unrelated" in title


def test_no_table_no_section(embedded_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(embedded_run, run)
    handle = RunStore.open(run).artifact(LAYER_OVERLAPS)
    df, meta = handle.read(), handle.metadata()
    # made from another model's predictions than the embedding's: not shown
    handle.write(df, metadata={**meta, "predictions": "another-model"})
    mo = _overview(run)
    assert mo.layers is None
    assert not any("Neighbourhoods across layers" in t for t in _texts(mo.__panel__()))
    # no table at all: nothing either (the app never computes it)
    handle.path.unlink()
    assert _overview(run).layers is None and not handle.path.exists()
    assert isinstance(df, pd.DataFrame) and len(df) == 7
