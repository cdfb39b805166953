"""The detail view computes Grad-CAM, Integrated Gradients and Gradient x Input on demand (issue 12.2),
with the model recorded in the run's predictions, and shows them like the stored maps."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from xsgpu.explain import explain_image


@pytest.fixture
def served_run(explained_run, tmp_path):
    from xsgpu.embed import embed_run

    store, model, _ = explained_run
    copy = tmp_path / "run"
    shutil.copytree(store.path, copy)
    embed_run(copy, method="pca", device="cpu", progress=False, quality=False)
    from xsgpu.io.runstore import RunStore
    from xsgpu.preprocess import make_thumbnails

    run = RunStore.open(copy)  # the easy fixture run has no previews; the app wants them
    thumbs = run.thumbs.create((run.n_samples, 64, 64), np.uint8)
    thumbs[:] = make_thumbnails(np.asarray(run.images.open()[:], np.float32), size=64)
    return copy, model


def _card_parts(dv):
    return dv._strip.objects[0].objects[1].objects


def test_grad_cam_ig_and_gxi_on_demand_in_the_detail_view(served_run):
    from panel_app.data import load_run_data
    from panel_app.panels import DetailView
    from panel_app.panels import on_demand
    from panel_app.state import AppState

    run, model = served_run
    dv = DetailView(state=AppState(data=load_run_data(run, use_cache=False)))
    assert dv._heatmap.visible and dv._map_method.visible
    assert dv._map_method.options[0] == on_demand.STORED and "Grad-CAM layer3" in dv._map_method.options
    dv.show([5])
    plain = _card_parts(dv)[0].object
    dv.set_heatmap("Ring", opacity=1.0)
    stored = _card_parts(dv)[0].object
    assert stored != plain and "class activation map" in _card_parts(dv)[2].object
    for choice, method, layer in (("Grad-CAM layer3", "gradcam", "layer3"), ("Integrated Gradients", "ig", None),
                                  ("Gradient x Input", "gxi", None)):
        dv.set_map_method(choice)
        parts = _card_parts(dv)
        assert len(parts) == 3 and on_demand.map_label(choice) in parts[2].object, choice
        assert parts[0].object not in (plain, stored), choice
        # the map shown is explain_image's own, for this image and attribute
        want = explain_image(run, 5, "Ring", method=method, layer=layer, model=model, device="cpu")
        got = on_demand.explained_map(dv.state.data.store, 5, "Ring", choice)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="must be one of"):
        dv.set_map_method("SHAP")


def test_a_run_whose_model_is_gone_offers_only_the_stored_maps(served_run, tmp_path):
    from panel_app.data import load_run_data
    from panel_app.panels import DetailView
    from panel_app.panels.on_demand import STORED
    from panel_app.state import AppState

    run, model = served_run
    moved = tmp_path / "moved-model"
    shutil.move(str(model), moved)
    try:
        dv = DetailView(state=AppState(data=load_run_data(run, use_cache=False)))
        assert dv._map_method.options == [STORED]
    finally:
        shutil.move(str(moved), model)
