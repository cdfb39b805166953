"""A selection sends the browser only what changed: no restated stylesheets, no rebuilt table columns.

Each restated stylesheet list (new ``ImportedStyleSheet`` models) and each resent Tabulator configuration
made Chromium recalculate styles and rebuild the table: together most of a box selection's wait in
bench_browser (1.4-1.7 s for a 20-image selection at 3k images before, 0.3 s at 1M after). These tests
count the document changes, so they do not depend on the machine's speed.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("panel")


# ids of the Bokeh models whose css_classes hold any of the given classes
_JS_MODEL_IDS = """
(classes) => [...Bokeh.documents[0].all_models]
  .filter((m) => Array.isArray(m.css_classes) && m.css_classes.some((c) => classes.includes(c)))
  .map((m) => m.id)
"""


def _record_frames(page) -> list[str]:
    """The text frames the page receives over its websocket from now on (appended as they arrive)."""
    frames: list[str] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda p: frames.append(p) if isinstance(p, str) else None))
    return frames


def _patch_events(frames: list[str]) -> list[list[dict]]:
    """The document events of each JSON patch among ``frames`` (frames that are not JSON patches are skipped)."""
    import json

    out = []
    for p in frames:
        try:
            msg = json.loads(p)
        except ValueError:
            continue
        events = msg.get("events", []) if isinstance(msg, dict) else []
        out.append([e for e in events if isinstance(e, dict)])
    return out


def _changes(doc) -> list[tuple[str, str]]:
    """Record (model type, attribute) of every change of ``doc`` from now on."""
    seen: list[tuple[str, str]] = []

    def on_change(event) -> None:
        model, attr = getattr(event, "model", None), getattr(event, "attr", None)
        if model is not None and attr is not None:
            seen.append((type(model).__name__, attr))

    doc.on_change(on_change)
    return seen


def test_text_update_leaves_stylesheets_out():
    from bokeh.document import Document

    from panel_app.views.lean_panes import LeanHTML, LeanMarkdown

    doc = Document()
    panes = [LeanHTML("a"), LeanMarkdown("a")]
    roots = [p.get_root(doc) for p in panes]
    for r in roots:
        doc.add_root(r)
    seen = _changes(doc)
    for p in panes:
        p.object = "b <b>bold</b>"
    attrs = {a for _m, a in seen}
    assert "text" in attrs, "the new text is sent"
    assert "stylesheets" not in attrs, seen
    assert all("b" in r.text for r in roots)


def test_lean_pane_still_sends_stylesheets_that_differ():
    from bokeh.document import Document

    from panel_app.views.lean_panes import LeanHTML, same_stylesheets

    doc = Document()
    pane = LeanHTML("a")
    root = pane.get_root(doc)
    doc.add_root(root)
    root.stylesheets = []            # what the browser has differs from what the pane would send
    seen = _changes(doc)
    pane.object = "c"
    assert ("HTML", "stylesheets") in seen and len(root.stylesheets) > 0
    assert same_stylesheets(["x", "y"], ["x", "y"]) and not same_stylesheets(["x"], ["y"])
    assert not same_stylesheets(["x"], ["x", "y"]) and not same_stylesheets(None, [])


def test_selection_sends_rows_not_table_columns(app_state):
    """A first selection (from none) and a second one change the group table's rows only."""
    from bokeh.document import Document

    from panel_app.panels.selection import SelectionManager, empty_metrics_table

    sm = SelectionManager(state=app_state)
    doc = Document()
    doc.add_root(pn_root(sm, doc))
    table = sm._cards[0].objects[1]
    assert list(table.value.columns) == list(empty_metrics_table().columns)
    seen = _changes(doc)
    app_state.select(np.arange(30))
    app_state.select(np.arange(100, 160))
    table_attrs = {a for m, a in seen if m == "DataTabulator"}
    assert table_attrs, "the table's rows were sent"
    assert not table_attrs & {"columns", "configuration", "visible"}, table_attrs
    assert ("HTML", "stylesheets") not in seen and ("Markdown", "stylesheets") not in seen
    assert list(table.value.columns) == list(empty_metrics_table().columns)
    assert table.value.dtypes.to_dict() == empty_metrics_table().dtypes.to_dict()
    app_state.select(np.zeros(0, np.int64))
    assert len(table.value) == 0 and list(table.value.columns) == list(empty_metrics_table().columns)


def pn_root(viewer, doc):
    import panel as pn

    return pn.panel(viewer).get_root(doc)


@pytest.mark.browser
def test_box_selection_patch_restates_no_stylesheet_and_no_table_columns(served_app, page):
    """In a served session (where Panel's panes restate their stylesheets on every text update), the
    websocket frames of a box selection carry no ``stylesheets``, ``columns`` or ``configuration`` change."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("tbg", Path(__file__).with_name("test_browser_groups.py"))
    tbg = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tbg)
    frames = _record_frames(page)
    url, _run = served_app
    tbg._open(page, url, {"width": 1600, "height": 1000})
    page.wait_for_timeout(1500)
    frames.clear()
    # the models a selection changes at once: the views' status lines, the count, the group metrics table
    ids = set(page.evaluate(_JS_MODEL_IDS, ["xsgpu-view-status", "xsgpu-selection-count", "xsgpu-group-metrics"]))
    assert len(ids) >= 5, ids
    tbg._box_select_fea(page)
    tbg._tbv._wait_status(page, "FEA", "s.selected > 0")
    page.wait_for_timeout(1500)   # the panels that follow the selection, too
    changed = [e.get("attr") for events in _patch_events(frames) for e in events
               if isinstance(e.get("model"), dict) and e["model"].get("id") in ids]
    assert "text" in changed and "cell_styles" in changed, f"the status lines and the table were updated: {changed}"
    assert not {"stylesheets", "columns", "configuration"} & set(changed), changed


@pytest.mark.browser
def test_correction_message_is_one_patch(served_app, page):
    """"Recorded: ..." reaches the browser as one change of the line's text, kind included: not as three
    patches that each re-lay the page out, nor as a change of the pane's ``css_classes`` (a Panel Alert's
    kind: Chromium then rebuilt the pane and restyled the whole page, 250 ms at 1M images); the line is
    always shown (its visibility does not change) and its stylesheets are not restated."""
    from panel_app.views.lean_panes import MessageLine

    url, _run = served_app
    frames = _record_frames(page)
    page.set_default_timeout(120_000)
    page.goto(url)
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0")
    sid = 7
    ids_input = page.locator(".xsgpu-detail-ids input")
    ids_input.fill(str(sid))
    ids_input.press("Enter")
    page.locator(".xsgpu-detail-open button").click()
    page.locator(".xsgpu-detail-card").filter(has_text=f"#{sid}").first.wait_for(state="visible")
    page.wait_for_timeout(1000)
    frames.clear()
    page.locator(".xsgpu-record-correction button").click()
    page.locator(".xsgpu-detail-message", has_text=f"Recorded: image {sid}").wait_for(state="visible")
    page.wait_for_timeout(500)
    patches = [events for events in _patch_events(frames)
               if any("Recorded: image" in str(e.get("new", "")) for e in events)]
    with_message = [[e.get("attr") for e in events] for events in patches]
    assert len(with_message) == 1, with_message
    assert set(with_message[0]) == {"text"}, with_message
    assert "xsgpu-message-success" in str(patches[0])   # the kind travels inside the text
    assert issubclass(MessageLine, __import__("panel").pane.HTML)
