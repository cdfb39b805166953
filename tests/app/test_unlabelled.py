"""Unlabelled images in the views (issue 10.3): flowers show PRD alone for images whose ``labelled`` is False
(no ACT fill, no false-positive dash, no error distance), in every flower mode; their dots carry no
outcome or error colour."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from panel_app.views.flowers import FP_DASH, flower_columns


def _case(k: int = 6, n_attr: int = 17):
    rng = np.random.default_rng(4)
    act = rng.random((k, n_attr)) < 0.4
    prob = rng.random((k, n_attr)).astype(np.float32)
    prob[:, 0] = 0.95   # a confident positive everywhere: a false positive wherever ACT lacks it
    act[:, 0] = False
    labelled = np.array([True, False, True, False, True, True])[:k]
    return act, prob, labelled


@pytest.mark.parametrize("mode", ["joint", "ACT", "PRD"])
def test_unlabelled_flowers_are_prd_alone(mode):
    act, prob, labelled = _case()
    ids = np.arange(10, 16)
    err = np.linspace(0.1, 0.9, 6)
    petals, centres = flower_columns(ids, np.zeros(6), np.zeros(6), act, prob, err=err, mode=mode, cutoff=0.5,
                                     labelled=labelled)
    prd, _ = flower_columns(ids, np.zeros(6), np.zeros(6), act, prob, err=err, mode="PRD", cutoff=0.5)
    ref, _ = flower_columns(ids, np.zeros(6), np.zeros(6), act, prob, err=err, mode=mode, cutoff=0.5)
    for sid, lab in zip(ids, labelled):
        mine = petals["sample_id"] == sid
        want = (prd if not lab else ref)["sample_id"] == sid
        src = prd if not lab else ref
        for col in ("outer", "fill_alpha", "line_dash", "line_width", "start", "fill_color"):
            np.testing.assert_array_equal(petals[col][mine], src[col][want], err_msg=f"{col} of {sid}")
    unl = np.isin(petals["sample_id"], ids[~labelled])
    assert not (petals["line_dash"][unl] == FP_DASH).any() and (petals["line_width"][unl] <= 1).all()
    assert np.isnan(centres["err"][~labelled]).all() and np.isfinite(centres["err"][labelled]).all()
    assert set(centres["act"][~labelled]) == {"(unlabelled)"} and "(unlabelled)" not in set(centres["act"][labelled])
    if mode == "joint":   # the labelled ones still show the false positive of attribute 0
        assert (ref["line_dash"] == FP_DASH).any() and (petals["line_dash"][~unl] == FP_DASH).any()


def test_all_labelled_is_unchanged():
    act, prob, _ = _case()
    args = (np.arange(6), np.zeros(6), np.zeros(6), act, prob)
    a, ca = flower_columns(*args, err=np.zeros(6), labelled=np.ones(6, bool))
    b, cb = flower_columns(*args, err=np.zeros(6))
    for col in a:
        np.testing.assert_array_equal(a[col], b[col])
    np.testing.assert_array_equal(ca["act"], cb["act"])


def test_view_draws_unlabelled_flowers_and_plain_dots():
    from panel_app.data import RunData
    from panel_app.state import AppState
    from panel_app.views import EmbeddingView
    from panel_app.views.embedding import _DOT_COLOUR

    n = 64
    g = np.arange(n)
    coords = np.repeat(np.stack([g % 8, g // 8], axis=1).astype(np.float32) * 10, 3, axis=1)
    act = np.random.default_rng(5).random((n, 17)) < 0.4
    prob = np.random.default_rng(6).random((n, 17)).astype(np.float32)
    labelled = g % 2 == 0
    act[~labelled] = False
    samples = pd.DataFrame({"sample_id": g, "source_uri": [f"/d/{i}.tif" for i in g], "frame": 0, "run_id": "r",
                            "split": "test", "labelled": labelled})
    state = AppState(data=RunData.from_arrays(y_true=act, y_prob=prob, coords=coords, samples=samples))
    view = EmbeddingView(state=state, space="FEA", width=440, height=440)
    assert view.mode == "flowers"
    c = view.point_src.data
    unl = ~labelled[np.asarray(c["sample_id"])]
    assert np.isnan(np.asarray(c["err"], float)[unl]).all() and not np.isnan(np.asarray(c["err"], float)[~unl]).any()
    state.colour_by = "ring"   # outcome colours: none for an unlabelled image
    state.glyph = "dots"
    c = view.point_src.data
    colours = np.asarray(c["color"], dtype=object)
    unl = ~labelled[np.asarray(c["sample_id"])]
    assert set(colours[unl]) == {_DOT_COLOUR} and _DOT_COLOUR not in set(colours[~unl])


def test_attribute_study_covers_labelled_images_and_says_so():
    from panel_app.data import RunData
    from panel_app.panels.study import AttributeStudyPanel
    from panel_app.state import AppState
    from xsgpu.metrics import attribute_study

    rng = np.random.default_rng(7)
    n = 200
    labelled = rng.random(n) < 0.3
    act = (rng.random((n, 17)) < 0.4) & labelled[:, None]   # unlabelled rows carry no label
    prob = rng.random((n, 17)).astype(np.float32)
    samples = pd.DataFrame({"sample_id": np.arange(n), "source_uri": [f"/d/{i}.tif" for i in range(n)], "frame": 0,
                            "run_id": "r", "split": "test", "labelled": labelled})
    state = AppState(data=RunData.from_arrays(y_true=act, y_prob=prob, coords=rng.normal(size=(n, 6)),
                                              samples=samples))
    panel = AttributeStudyPanel(state=state, measure="correlation")
    mats = panel.matrices()
    np.testing.assert_allclose(mats["ACT"], attribute_study(act[labelled], measure="correlation", n_attributes=17),
                               equal_nan=True)
    np.testing.assert_allclose(mats["PRD"], attribute_study(prob[labelled] > 0.5, measure="correlation",
                                                            n_attributes=17), equal_nan=True)
    panel._refresh()
    assert f"over {labelled.sum()} of {n} images (labelled)" in panel._caption.object


def test_dense_raster_gives_unlabelled_images_no_outcome_and_no_error_distance():
    """Zoomed out (raster mode): unlabelled images are their own light-blue outcome category and leave the
    mean error distance, but still count in the view."""
    from panel_app.data import RunData
    from panel_app.state import AppState
    from panel_app.views import EmbeddingView
    from panel_app.views.raster import (OUTCOME_COLOURS, UNLABELLED_CODE, UNLABELLED_COLOUR, outcome_codes,
                                        rasterize)

    n = 4000
    rng = np.random.default_rng(8)
    labelled = np.arange(n) % 4 != 0
    act = (rng.random((n, 17)) < 0.4) & labelled[:, None]
    prob = rng.random((n, 17)).astype(np.float32)
    codes = outcome_codes(act[:, 0], prob[:, 0], cutoff=0.5, labelled=labelled)
    assert (codes[~labelled] == UNLABELLED_CODE).all() and (codes[labelled] < UNLABELLED_CODE).all()
    # one pixel per group: the unlabelled pixel takes the unlabelled colour, the others never do
    x = np.where(labelled, 0.25, 0.75).astype(np.float32)
    img = rasterize(x, np.full(n, 0.5, np.float32), x_range=(0, 1), y_range=(0, 1), width=2, height=1,
                    how="outcome", values=codes)["image"][0]

    def rgb(word):
        return f"#{int(word) & 0xFF:02x}{(int(word) >> 8) & 0xFF:02x}{(int(word) >> 16) & 0xFF:02x}"

    assert rgb(img[0, 1]) == UNLABELLED_COLOUR and rgb(img[0, 0]) != UNLABELLED_COLOUR
    assert UNLABELLED_COLOUR not in OUTCOME_COLOURS.values()
    # the view: error distance of unlabelled images is NaN in the mean, and the count still includes them
    samples = pd.DataFrame({"sample_id": np.arange(n), "source_uri": [f"/d/{i}.tif" for i in range(n)], "frame": 0,
                            "run_id": "r", "split": "test", "labelled": labelled})
    coords = rng.normal(size=(n, 6)).astype(np.float32)
    state = AppState(data=RunData.from_arrays(y_true=act, y_prob=prob, coords=coords, samples=samples))
    view = EmbeddingView(state=state, space="FEA", width=200, height=200)
    assert view.mode == "raster"
    state.colour_by = "error_distance"
    assert view.in_view == n   # the unlabelled quarter has no error distance but is in view
    from panel_app.views.controls import ControlPanel
    assert "unlabelled" in ControlPanel(state=state)._layout.objects[-2].object
    mean = rasterize(view.x, view.y, x_range=view.viewport[:2], y_range=view.viewport[2:], width=200, height=200,
                     how="mean", values=np.where(labelled, state.error_distance(), np.nan).astype(np.float32),
                     with_counts=True)
    assert mean["count"] == n and int(np.asarray(mean["counts"][0]).sum()) == n
