"""The neuron panel (issue 12.4): top channels of the selection, their most activating images, r heatmap."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("holoviews")


def test_neuron_panel_ranks_the_selection_and_opens_images(app_state):
    from panel_app.panels.neurons import NeuronPanel
    from xsgpu.explain.neurons import attribute_channel_correlation, rank_channels, top_images

    panel = NeuronPanel(state=app_state, top=4, k=3)
    assert panel.ranked() is None and panel._channels.objects == []  # nothing selected yet
    assert "Select images" in panel._caption.object and len(panel._heatmap.objects) == 1

    ring = app_state.vocabulary.index("ring")
    sel = np.flatnonzero(app_state.y_act()[:, ring]).astype(np.int64)
    app_state.selection = sel
    path = app_state.data.store.path
    want = rank_channels(path, sel)
    got = panel.ranked()
    assert list(got["channel"]) == list(want["channel"])
    np.testing.assert_allclose(got["cohen_d"], want["cohen_d"])
    channels = [int(c) for c in want["channel"][:4]]

    rows = panel._channels.objects
    assert len(rows) == 4 and f"channel {channels[0]}" in rows[0].objects[0].object
    tops = top_images(path, channels, k=3)
    first = tops[tops["channel"] == channels[0]]["sample_id"].tolist()
    thumbs = rows[0].objects[1:]
    assert [t.objects[1].label for t in thumbs] == [f"#{i}" for i in first]
    assert all(t.objects[0].object.startswith("<img src='data:image/png;base64,") for t in thumbs)

    app_state.detail_ids = [7]
    thumbs[1].objects[1].clicks += 1  # clicking a thumbnail opens it first in the detail view
    assert app_state.detail_ids == [first[1], 7]

    hm = panel._heatmap.objects[0].object
    corr = attribute_channel_correlation(path, source="prd")
    data = hm.dframe()
    assert sorted(set(data["channel"])) == sorted(f"ch {c}" for c in channels)
    assert set(data["attribute"]) == set(app_state.vocabulary.names)
    r = data.set_index(["attribute", "channel"])["r"]
    name = app_state.vocabulary.names[ring]
    assert r[(name, f"ch {channels[0]}")] == pytest.approx(corr.at[name, channels[0]])
    opts = hm.opts.get().kwargs
    assert opts["colorbar"] is True and tuple(opts["clim"]) == (-1.0, 1.0)
    import holoviews as hv
    from bokeh.models import ColorBar

    fig = hv.render(hm, backend="bokeh")
    assert any(isinstance(m, ColorBar) for m in fig.right)

    panel.source = "act"
    assert "ACT x channel" in panel._heatmap.objects[0].object.opts.get().kwargs["title"]
    app_state.selection = np.zeros(0, np.int64)
    assert panel._channels.objects == []


def test_neuron_panel_without_features(tmp_path):
    import shutil

    from panel_app.data import load_run_data
    from panel_app.panels.neurons import NeuronPanel
    from panel_app.state import AppState
    from tests.app.conftest import make_app_run

    store = make_app_run(tmp_path / "run", n=60, partition_size=30, stages=False)
    st = AppState(data=load_run_data(store.path, use_cache=False))
    shutil.rmtree(store.features.path)
    panel = NeuronPanel(state=st)
    st.selection = np.arange(5, dtype=np.int64)
    assert "xsgpu infer" in panel._caption.object and panel._channels.objects == []


def test_a_hidden_neuron_tab_waits_until_shown(app_state):
    from panel_app.panels.neurons import NeuronPanel

    panel = NeuronPanel(state=app_state, top=2, k=2)
    panel.lazy.show(False)
    app_state.selection = np.arange(0, 300, dtype=np.int64)
    assert panel._channels.objects == []  # not computed while hidden
    panel.lazy.show(True)
    assert len(panel._channels.objects) == 2


def test_the_app_has_a_neurons_tab(app_run):
    import panel as pn

    from panel_app.app import build_app

    layout = build_app(app_run)
    tabs = [t for t in layout.select(pn.Tabs) if "Neurons" in t._names]
    assert len(tabs) == 1
    panel = tabs[0].objects[tabs[0]._names.index("Neurons")]
    assert "xsgpu-neurons" in panel.css_classes
