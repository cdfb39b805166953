"""Colouring the maps by the share of an attribute's heatmap on the beamstop / image edge (issue 12.5)."""
from __future__ import annotations

import numpy as np
import pytest

from tests.app.conftest import make_app_run

pytest.importorskip("datashader")


@pytest.fixture
def shares_run(tmp_path):
    from xsgpu.explain.shares import write_heatmap_shares
    from xsgpu.model.infer import ensure_output_array

    store = make_app_run(tmp_path / "run", n=300, partition_size=100, size=32, stages=False)
    rng = np.random.default_rng(5)
    cams = rng.normal(size=(300, 17, 4, 4)).astype(np.float16)
    ensure_output_array(store, "heatmaps", (17, 4, 4), attrs={"weights_sha256": "x" * 64})[:] = cams
    write_heatmap_shares(store)
    return store


def _state(path):
    from panel_app.data import load_run_data
    from panel_app.state import AppState

    return AppState(data=load_run_data(path, use_cache=False))


def test_colour_by_heatmap_share(shares_run):
    from panel_app.shares import share_values
    from panel_app.views import ControlPanel, EmbeddingViews
    from panel_app.views.legend import ERROR_PALETTE
    from xsgpu.explain.shares import heatmap_shares

    st = _state(shares_run.path)
    assert "beamstop__ring" in st.param.colour_by.objects and "edge__ring" in st.param.colour_by.objects
    options = ControlPanel(state=st).colour_by.options
    assert options["Heatmap on beamstop: Ring"] == "beamstop__ring" and options["Heatmap on edge: Ring"] == "edge__ring"
    direct = heatmap_shares(shares_run)["edge__ring"].to_numpy()
    np.testing.assert_array_equal(share_values(st.data, "edge__ring"), np.nan_to_num(direct, nan=0.0))

    st.flower_crowding, st.flower_threshold = None, 100  # 300 images: a raster first
    views = EmbeddingViews(state=st)
    view = views.views["FEA"]
    assert view.mode == "raster"
    before = view.raster_src.data["image"][0].copy()
    st.colour_by = "edge__ring"
    assert not np.array_equal(view.raster_src.data["image"][0], before)
    bar = view.colour_bar
    assert bar.visible and "ring heatmap on the edge" in bar.title
    assert (bar.color_mapper.low, bar.color_mapper.high) == (0.0, 1.0)

    st.glyph, st.flower_threshold = "dots", 300  # every image a dot, coloured by its own share
    assert view.mode == "dots" and "ring heatmap on the edge" in bar.title
    ids = np.asarray(view.point_src.data["sample_id"])
    share = np.nan_to_num(direct, nan=0.0)[ids]
    want = [ERROR_PALETTE[min(int(s * len(ERROR_PALETTE)), len(ERROR_PALETTE) - 1)] for s in share]
    assert list(view.point_src.data["color"]) == want
    st.glyph = "flowers"  # the flowers' centre dots too
    assert view.mode == "flowers" and bar.title == "share of the ring heatmap on the edge (centre dot)"
    ids = np.asarray(view.point_src.data["sample_id"])
    share = np.nan_to_num(direct, nan=0.0)[ids]
    assert list(view.point_src.data["color"]) == [
        ERROR_PALETTE[min(int(s * len(ERROR_PALETTE)), len(ERROR_PALETTE) - 1)] for s in share]


def test_no_share_choices_without_the_table(shares_run, tmp_path):
    from panel_app.views import ControlPanel
    from xsgpu.io.schema import HEATMAP_SHARES

    with_shares = _state(shares_run.path)
    shares_run.artifact(HEATMAP_SHARES).path.unlink()
    st = _state(shares_run.path)
    assert not any(k.startswith(("beamstop__", "edge__")) for k in st.param.colour_by.objects)
    assert not any(k.startswith("Heatmap on") for k in ControlPanel(state=st).colour_by.options)
    assert "beamstop__ring" in with_shares.param.colour_by.objects  # per session, not the class
