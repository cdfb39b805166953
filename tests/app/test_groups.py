"""Groups: stored in the run store (xsgpu.io.groups), reloaded by a new session, renamed, recoloured and
deleted through AppState and the selection manager, and drawn on the three maps in their colours."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xsgpu.io.groups import (
    GROUPS_COLUMNS, delete_group, read_groups, recolour_group, rename_group, save_group,
)
from xsgpu.io.runstore import RunStore, RunStoreError


@pytest.fixture
def store(tmp_path):
    return RunStore.create(tmp_path / "run", n_samples=50, partition_size=25)


def _new_session(state):
    from panel_app.data import load_run_data
    from panel_app.state import AppState

    return AppState(data=load_run_data(state.data.store.path, use_cache=False))


# ---------------------------------------------------------------------- xsgpu.io.groups
def test_save_read_rename_recolour_delete(store):
    a = save_group(store, name="rings", colour="#E41A1C", ids=np.array([9, 3, 3, 40]))
    b = save_group(store, name="halo", colour="#377eb8", ids=[1])
    got = read_groups(store)
    assert [(g.name, g.colour, g.ids.tolist()) for g in got] == [("rings", "#e41a1c", [3, 9, 40]),
                                                                  ("halo", "#377eb8", [1])]
    part = store.groups.path / f"{a.group_id}.parquet"
    df = pd.read_parquet(part)
    assert list(df.columns) == GROUPS_COLUMNS and df["sample_id"].tolist() == [3, 9, 40]
    rename_group(store, a.group_id, name="weak rings")
    recolour_group(store, a.group_id, colour="#4daf4a")
    got = {g.group_id: g for g in read_groups(store)}
    assert (got[a.group_id].name, got[a.group_id].colour) == ("weak rings", "#4daf4a")
    assert got[a.group_id].ids.tolist() == [3, 9, 40] and got[b.group_id].name == "halo"
    delete_group(store, a.group_id)
    delete_group(store, a.group_id)  # already gone (another session): not an error
    assert [g.name for g in read_groups(store)] == ["halo"]
    # no temporary files left behind by the atomic writes
    assert sorted(p.name for p in store.groups.path.iterdir()) == [f"{b.group_id}.parquet"]


def test_group_input_is_validated(store):
    save_group(store, name="rings", colour="#e41a1c", ids=[1])
    with pytest.raises(ValueError, match="must be new; a group 'rings' exists"):
        save_group(store, name="rings", colour="#e41a1c", ids=[2])
    with pytest.raises(ValueError, match="'colour' parameter of save_group must be a hex colour"):
        save_group(store, name="x", colour="red", ids=[2])
    with pytest.raises(ValueError, match=r"sample ids in 0..49 \(the run has 50 samples\). Got 50"):
        save_group(store, name="x", colour="#000000", ids=[50])
    with pytest.raises(ValueError, match="at least one sample id"):
        save_group(store, name="x", colour="#000000", ids=[])
    with pytest.raises(ValueError, match="non-empty string"):
        save_group(store, name="  ", colour="#000000", ids=[1])
    with pytest.raises(ValueError, match="32 hex digits"):
        rename_group(store, "../samples", name="y")
    with pytest.raises(KeyError, match="no group"):
        recolour_group(store, "0" * 32, colour="#000000")


def test_foreign_file_is_reported(store):
    d = store.groups.path
    d.mkdir(parents=True)
    pd.DataFrame({"a": [1]}).to_parquet(d / "other.parquet")
    with pytest.raises(RunStoreError, match="not written by xsgpu"):
        read_groups(store)


# ---------------------------------------------------------------------- sessions
def test_groups_persist_and_are_reloaded_by_a_new_session(app_state):
    app_state.select([5, 1, 7])
    g1 = app_state.add_group(name="first")
    g2 = app_state.add_group(name="second", ids=[10, 11])
    assert g1.group_id and g2.group_id and g1.colour != g2.colour
    other = _new_session(app_state)
    assert [(g.name, g.colour, g.ids.tolist()) for g in other.groups] == [
        ("first", g1.colour, [1, 5, 7]), ("second", g2.colour, [10, 11])]
    app_state.rename_group("first", "rings")
    app_state.recolour_group("rings", "#123456")
    app_state.remove_group("second")
    again = _new_session(app_state)
    assert [(g.name, g.colour) for g in again.groups] == [("rings", "#123456")]
    with pytest.raises(ValueError, match="a group 'rings' exists"):
        app_state.add_group(name="rings", ids=[3])
    with pytest.raises(ValueError, match="hex colour"):
        app_state.recolour_group("rings", "blue")
    with pytest.raises(KeyError, match="no group named 'nope'"):
        app_state.rename_group("nope", "x")


def test_selection_manager_rename_recolour_delete(app_state):
    from panel_app.panels import SelectionManager

    sm = SelectionManager(state=app_state)
    app_state.select(np.arange(20, 30))
    sm._name.value = "mine"
    sm._on_save()
    assert sm._left.value == "(current selection)" and sm._manage.value == "mine"
    assert sm._colour.value == app_state.groups[0].colour
    sm._new_name.value = "renamed"
    sm._on_rename()
    assert [g.name for g in app_state.groups] == ["renamed"] and "Renamed" in sm._message.object
    sm._colour.value = "#00ff00"
    assert app_state.groups[0].colour == "#00ff00"
    assert "#00ff00" in sm._groups_view.object and "renamed" in sm._groups_view.object
    assert [(g.name, g.colour) for g in _new_session(app_state).groups] == [("renamed", "#00ff00")]
    sm._on_delete()
    assert app_state.groups == [] and _new_session(app_state).groups == []
    # metrics of the next selection still show after a save (Group A stays on the current selection)
    app_state.select(np.arange(100, 160))
    sm.save_group("g")
    app_state.select(np.arange(300, 310))
    assert "(10 images)" in sm._cards[0].objects[0].object


def test_group_table_shows_precision_recall_f1_accuracy(app_state):
    from panel_app.panels import SelectionManager

    sm = SelectionManager(state=app_state)
    app_state.select(np.arange(0, 200))
    _, table = sm.metrics_table("(current selection)")
    assert list(table.columns[:5]) == ["attribute", "precision", "recall", "f1", "accuracy"]
    y, p = app_state.y_act()[:200], app_state.data.y_prob[:200] > app_state.cutoff
    tp = (y & p).sum(0)
    rec = np.where(y.sum(0) > 0, tp / np.maximum(y.sum(0), 1), 0)
    np.testing.assert_allclose(table["recall"].to_numpy(), np.round(rec, 3), atol=1e-9)


# ---------------------------------------------------------------------- drawn on the maps
def _rgb(word):
    w = int(word)
    return f"#{w & 255:02x}{w >> 8 & 255:02x}{w >> 16 & 255:02x}"


def test_groups_are_drawn_on_all_three_maps(app_state):
    from panel_app.views import EmbeddingViews

    pytest.importorskip("datashader")
    app_state.flower_threshold = 120
    views = EmbeddingViews(state=app_state)
    red = app_state.add_group(name="red", ids=np.arange(0, 300), colour="#e41a1c")
    blue = app_state.add_group(name="blue", ids=np.arange(1000, 1100), colour="#377eb8")
    for space, view in views.views.items():
        assert view.mode == "raster" and view.group_r.visible
        img = view.group_src.data["image"][0]
        assert img.shape == (view.height, view.width)
        colours = {_rgb(w) for w in np.unique(img[img != 0])}
        assert colours == {"#e41a1c", "#377eb8"}, space
        # the red pixels are where the red group's images fall (datashader's binning of the same viewport)
        x0, x1, y0, y1 = view.viewport
        gx = np.clip(((view.x[red.ids] - x0) / (x1 - x0) * view.width).astype(int), 0, view.width - 1)
        gy = np.clip(((view.y[red.ids] - y0) / (y1 - y0) * view.height).astype(int), 0, view.height - 1)
        hit = img[gy, gx]
        assert np.mean([_rgb(w) in ("#e41a1c", "#377eb8") for w in hit]) > 0.95
    # recolour: every map follows at once
    app_state.recolour_group("blue", "#4daf4a")
    img = views.views["PRD"].group_src.data["image"][0]
    assert {_rgb(w) for w in np.unique(img[img != 0])} == {"#e41a1c", "#4daf4a"}
    # glyph mode: one ring per visible member, in the group's colour
    view = views.views["FEA"]
    cx, cy = float(view.x[5]), float(view.y[5])
    half = 8.0
    while True:
        view.set_viewport(cx - half, cx + half, cy - half, cy + half)
        if view.mode != "raster":
            break
        half /= 1.5
    vis = view.visible_ids()
    rings = view.ring_src.data
    exp_red = np.intersect1d(vis, red.ids)
    got_red = np.asarray(rings["sample_id"])[np.asarray(rings["color"]) == "#e41a1c"]
    assert len(exp_red) > 0 and sorted(got_red.tolist()) == exp_red.tolist()
    assert view.ring_r.visible and not view.group_r.visible
    app_state.remove_group("red")
    app_state.remove_group("blue")
    assert len(view.ring_src.data["x"]) == 0
    assert views.views["ACT"].group_src.data["image"][0].shape == (1, 1)
