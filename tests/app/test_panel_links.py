"""Clicks that link the panels (issue 11.7), without a browser: a suspicious-label row fills the correction
form with its image and attribute; a co-occurrence row selects the images with exactly that combination."""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from xsgpu.attributes import SLUGS, resolve_attribute

_spec = importlib.util.spec_from_file_location("conftest_panels", Path(__file__).with_name("conftest_panels.py"))
_cp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cp)


@pytest.fixture(scope="module")
def run_path(tmp_path_factory):
    return _cp.make_panel_run(tmp_path_factory.mktemp("links") / "run").path


@pytest.fixture
def state(run_path, tmp_path):
    from panel_app.data import load_run_data
    from panel_app.state import AppState

    copy = tmp_path / "run"
    shutil.copytree(run_path, copy)
    return AppState(data=load_run_data(copy, use_cache=False))


def test_suspicious_row_fills_the_correction_form(state):
    from panel_app.panels import DetailView, SuspiciousPanel

    dv = DetailView(state=state)
    sp = SuspiciousPanel(state=state, limit=30)
    sp.param.watch(lambda e: dv.prefill(*e.new), "opened", onlychanged=False)   # as the app wires them
    r = sp.ranking()
    state.show_details([int(r["sample_id"].iloc[0]), 5])   # the form starts on another image
    for row in (3, 0, 3):   # the same row twice fills the form again
        dv._c_attr.value = "Halo" if r["attribute"].iloc[row] != "Halo" else "Ring"
        sp.open_row(row)
        sid, name = int(r["sample_id"].iloc[row]), r["attribute"].iloc[row]
        assert sp.opened == (sid, name)
        assert dv._c_sample.value == sid and dv._c_attr.value == name
        act = bool(state.y_act()[sid, resolve_attribute(name).index])
        assert dv._c_value.value == ("absent" if act else "present")


def test_prefill_opens_the_image_and_checks_its_input(state):
    from panel_app.panels import DetailView

    dv = DetailView(state=state)
    dv.prefill(7, "ring")
    assert state.detail_ids[0] == 7 and dv._c_sample.value == 7 and dv._c_attr.value == "Ring"
    with pytest.raises(ValueError):
        dv.prefill(10_000, "Ring")
    with pytest.raises(KeyError, match="Unknown attribute"):
        dv.prefill(7, "no such attribute")


def test_cooccurrence_row_selects_its_images(state):
    from panel.models.tabulator import CellClickEvent

    from panel_app.panels import CooccurrencePanel

    cp = CooccurrencePanel(state=state, top=5)
    t = cp.table()
    y = state.y_act()
    for row in range(len(t)):
        want = np.isin(np.array(SLUGS), list(t["attributes"].iloc[row]))
        expected = np.flatnonzero((y == want).all(axis=1))
        assert len(expected) == t["n_true"].iloc[row]
        ids = cp.select_row(row)
        assert np.array_equal(ids, expected) and np.array_equal(state.selection, expected)
    # the table's click handler goes through the same path, in the current selection mode
    state.selection_mode = "add"
    cp._table._process_event(CellClickEvent(model=None, column="combination", row=0, value=None))
    first = np.flatnonzero((y == np.isin(np.array(SLUGS), list(t["attributes"].iloc[0]))).all(axis=1))
    assert np.array_equal(state.selection, np.union1d(expected, first))
    with pytest.raises(IndexError, match="out of range"):
        cp.select_row(len(t))
