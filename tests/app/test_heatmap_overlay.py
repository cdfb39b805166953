"""The detail view's heatmap overlay (issue 12.5, minimal): a chosen attribute's CAM over the image."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.app.conftest import make_app_run


@pytest.fixture
def run_with_maps(tmp_path):
    from xsgpu.model.infer import ensure_output_array

    store = make_app_run(tmp_path / "run", n=40, partition_size=20, size=32, stages=False)
    cams = np.zeros((40, 17, 2, 2), np.float16)
    cams[:, 12, 0, 0], cams[:, 12, 1, 1] = 2.0, -2.0  # Ring: up in the top-left cell, down in the bottom-right
    arr = ensure_output_array(store, "heatmaps", (17, 2, 2), attrs={"weights_sha256": "x" * 64})
    arr[:] = cams
    return store


def _state(path):
    from panel_app.data import load_run_data
    from panel_app.state import AppState

    return AppState(data=load_run_data(path, use_cache=False))


def _png(dv):
    card = dv._strip.objects[0]
    return card.objects[1].objects[0].object, card.objects[1].objects


def test_overlay_shows_the_chosen_attribute(run_with_maps):
    from panel_app.panels import DetailView
    from panel_app.panels.heatmap import DIVERGING_LUT

    dv = DetailView(state=_state(run_with_maps.path))
    assert dv._heatmap.visible and dv._opacity.visible
    dv.show([3])
    plain, parts = _png(dv)
    assert len(parts) == 2  # image and intensity bar, no heatmap bar
    dv.set_heatmap("Ring", opacity=1.0)
    over, parts = _png(dv)
    assert over != plain and len(parts) == 3 and "Ring: class activation map" in parts[2].object
    rgb = np.asarray(Image.open(io.BytesIO(over)).convert("RGB")).astype(int)
    assert tuple(rgb[5, 5]) == tuple(DIVERGING_LUT[255]) and tuple(rgb[-5, -5]) == tuple(DIVERGING_LUT[0])
    assert rgb[5, 5, 0] > rgb[5, 5, 2] and rgb[-5, -5, 2] > rgb[-5, -5, 0]  # red where it raises "Ring", blue where not
    dv.set_heatmap("Ring", opacity=0.0)  # no opacity: the image alone, in grey
    grey = np.asarray(Image.open(io.BytesIO(_png(dv)[0])).convert("RGB")).astype(int)
    assert (grey[..., 0] == grey[..., 2]).all()
    dv.set_heatmap(None)
    assert _png(dv)[0] == plain


def test_no_overlay_control_without_heatmaps(tmp_path):
    from panel_app.panels import DetailView

    store = make_app_run(tmp_path / "run", n=40, partition_size=20, size=32, stages=False)
    dv = DetailView(state=_state(store.path))
    assert not dv._heatmap.visible
    dv.show([1])
    dv.set_heatmap("Ring")  # nothing to overlay: the plain image
    assert len(_png(dv)[1]) == 2


def test_tapping_a_petal_chooses_the_heatmap(run_with_maps):
    from types import SimpleNamespace

    from panel_app.panels import DetailView
    from panel_app.views import EmbeddingViews
    from panel_app.views.flowers import petal_angles

    st = _state(run_with_maps.path)
    st.flower_crowding = None
    dv = DetailView(state=st)
    view = EmbeddingViews(state=st).views["FEA"]
    i = 7
    cx, cy = float(view.x[i]), float(view.y[i])
    half = 1e-4
    view.set_viewport(cx - half, cx + half, cy - half, cy + half)
    assert view.mode == "flowers"
    shown = sorted(st.vocabulary.index(a) for a in st.flower_attributes)
    j = shown.index(st.vocabulary.index("Ring"))
    start, end = petal_angles(k=len(shown))
    theta, r = (start[j] + end[j]) / 2, 10.0  # the middle of Ring's petal, 10 px from the centre
    tap = SimpleNamespace(x=cx + r * np.cos(theta) * 2 * half / view.width,
                          y=cy + r * np.sin(theta) * 2 * half / view.height)
    view._on_tap(tap)
    assert st.detail_ids[0] == i and st.heatmap_attribute == "ring"
    assert dv._heatmap.value == "Ring" and "Ring: class activation map" in _png(dv)[1][2].object
    view._on_tap(SimpleNamespace(x=cx, y=cy))  # the centre dot: opens the image, keeps the heatmap
    assert st.heatmap_attribute == "ring"
    dv.set_heatmap(None)  # the detail view's own choice goes back to the session
    assert st.heatmap_attribute == ""
