"""The FEA view's layer switch (issue 12.3): another layer's map, still linked to the other views."""
from __future__ import annotations

import numpy as np
import pytest

from tests.app.conftest import make_app_run

pytest.importorskip("datashader")


@pytest.fixture
def layered_run(tmp_path):
    """A run whose t-SNE table also maps layer2 (fea_layer2_x/_y); its PCA table maps no layer."""
    from xsgpu.embed.run import method_table

    store = make_app_run(tmp_path / "run", n=400, partition_size=200, stages=False)
    emb = store.embedding.read()
    rng = np.random.default_rng(2)
    emb["fea_layer2_x"] = rng.normal(0, 5, len(emb)).astype(np.float32) + 100.0
    emb["fea_layer2_y"] = rng.normal(0, 5, len(emb)).astype(np.float32) - 50.0
    store.embedding.write(emb, metadata={"method": "tsne"})
    store.write_table(method_table("tsne"), emb, metadata={"method": "tsne"})
    pca = emb.drop(columns=["fea_layer2_x", "fea_layer2_y"])
    pca[["act_x", "fea_x", "prd_x"]] *= 2
    store.write_table(method_table("pca"), pca, metadata={"method": "pca"})
    return store, emb


def _views(path):
    from panel_app.data import load_run_data
    from panel_app.state import AppState
    from panel_app.views import EmbeddingViews

    st = AppState(data=load_run_data(path, use_cache=False), flower_threshold=50)
    return st, EmbeddingViews(state=st)


def test_switching_layer_changes_fea_and_keeps_the_selection(layered_run):
    store, emb = layered_run
    st, views = _views(store.path)
    fea, act = views.views["FEA"], views.views["ACT"]
    assert st.param.fea_layer.objects == ["fea", "layer2"] and st.fea_layer == "fea"
    assert fea.layer_select.visible and fea.layer_select.options == {"last block": "fea", "layer2": "layer2"}
    np.testing.assert_array_equal(fea.x, emb["fea_x"].to_numpy(np.float32))
    act_x = act.x.copy()
    st.selection = np.arange(10, 60, dtype=np.int64)
    st.detail_ids = [12]

    st.fea_layer = "layer2"
    np.testing.assert_array_equal(fea.x, emb["fea_layer2_x"].to_numpy(np.float32))
    np.testing.assert_array_equal(fea.y, emb["fea_layer2_y"].to_numpy(np.float32))
    assert fea.figure.title.text == "FEA layer2 (tsne)"
    assert fea.viewport[0] > 50 and fea.viewport[3] < 0  # the view moved to the layer's map
    np.testing.assert_array_equal(act.x, act_x)  # the other views keep their maps
    np.testing.assert_array_equal(st.selection, np.arange(10, 60))
    assert st.detail_ids == [12]
    assert fea.selected_in_view == 50  # the selection is drawn on the layer's map
    # a box on the layer's map selects by the layer's coordinates, and the ACT view shows that selection
    x, y = emb["fea_layer2_x"].to_numpy(), emb["fea_layer2_y"].to_numpy()
    box = {"type": "rect", "x0": 100.0, "x1": 120.0, "y0": -50.0, "y1": -30.0}
    got = fea.select_geometry(box)
    want = np.flatnonzero((x >= 100) & (x <= 120) & (y >= -50) & (y <= -30))
    np.testing.assert_array_equal(got, want)
    assert act.selected_in_view == len(want)
    # a tap picks from the layer's map
    i = int(want[0])
    fea.set_viewport(x[i] - 0.5, x[i] + 0.5, y[i] - 0.5, y[i] + 0.5)
    assert fea.pick(float(x[i]), float(y[i])) == i and st.detail_ids[0] == i

    st.fea_layer = "fea"
    np.testing.assert_array_equal(fea.x, emb["fea_x"].to_numpy(np.float32))
    assert fea.figure.title.text == "FEA (tsne)"


def test_a_method_without_layers_goes_back_to_the_last_block(layered_run):
    store, emb = layered_run
    st, views = _views(store.path)
    fea = views.views["FEA"]
    st.fea_layer = "layer2"
    st.method = "pca"
    assert st.fea_layer == "fea" and st.param.fea_layer.objects == ["fea"]
    assert not fea.layer_select.visible
    np.testing.assert_array_equal(fea.x, 2 * emb["fea_x"].to_numpy(np.float32))
    assert fea.figure.title.text == "FEA (pca)"
    st.method = "tsne"
    assert fea.layer_select.visible and st.param.fea_layer.objects == ["fea", "layer2"]


def test_no_switch_without_layer_maps(app_state):
    from panel_app.views import EmbeddingViews

    fea = EmbeddingViews(state=app_state).views["FEA"]
    assert app_state.param.fea_layer.objects == ["fea"] and not fea.layer_select.visible
