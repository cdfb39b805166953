"""A run of 5 attributes in a real browser (Playwright + Debian chromium; issue 9.3): the page loads without
an error, the flower legend lists the 5 names, the attribute filter offers the 5, and zooming in draws
flowers of 5 petals (checked on the petal glyph data of the Bokeh document)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from .conftest import VOCAB_5, make_app_run, start_server, stop_server

pytestmark = pytest.mark.browser

_spec = importlib.util.spec_from_file_location("tbv", Path(__file__).with_name("test_browser_views.py"))
_tbv = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_tbv)

TIMEOUT_MS = 120_000

# the options of every Bokeh widget titled `title`, as text
_JS_OPTIONS = """
(title) => {
  const out = [];
  for (const m of Bokeh.documents[0].all_models) {
    if (m.title === title && m.options !== undefined) {
      out.push(...[...m.options].map((o) => Array.isArray(o) ? String(o[1]) : String(o)));
    }
  }
  return out;
}
"""
# start angles and sample ids of the petals drawn in a view
_JS_PETAL_DATA = """
(name) => {
  const fig = Bokeh.documents[0].get_model_by_name(name);
  const r = fig.renderers.find((r) => r.name === "petals");
  const d = r.data_source.data;
  return [r.visible, Array.from(d.start), Array.from(d.sample_id)];
}
"""


@pytest.fixture(scope="module")
def served_5(tmp_path_factory):
    """``xsgpu serve`` over a fresh 5-attribute run; yields ``(url, run_path)``."""
    run_path = make_app_run(tmp_path_factory.mktemp("served5") / "run", vocabulary=VOCAB_5).path
    proc, url = start_server(run_path)
    try:
        yield url, run_path
    finally:
        stop_server(proc)


def test_a_five_attribute_run_in_the_browser(served_5, page):
    url, run_path = served_5
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(TIMEOUT_MS)
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(url)
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=TIMEOUT_MS)
    _tbv._wait_status(page, "FEA", "s.inView > 0")

    # the flower legend lists the run's 5 names (and none of the paper's other 16)
    legend = page.locator(".xsgpu-flower-legend", has_text="Petal outcome").first
    legend.wait_for(state="attached")
    text = legend.inner_text()
    assert all(name in text for name in VOCAB_5.names), text
    assert "Wedge beamstop" not in text and "BCC" not in text
    assert page.get_by_role("button", name="All 5").count() >= 1

    # the attribute filter and the petal picker offer the 5
    assert sorted(page.evaluate(_JS_OPTIONS, "Attributes")) == sorted(VOCAB_5.names)
    assert sorted(set(page.evaluate(_JS_OPTIONS, "Petals shown (Ctrl / Shift + click for several)"))) \
        == sorted(VOCAB_5.names)

    # zoom into the FEA view until it draws flowers: 5 petals each, 5 petal angles in all
    emb = pd.read_parquet(Path(run_path) / "embedding.parquet").sort_values("sample_id")
    fx, fy = emb["fea_x"].to_numpy(np.float64), emb["fea_y"].to_numpy(np.float64)
    near = np.hypot(fx - fx[0], fy - fy[0]) < 5
    cx, cy = float(np.median(fx[near])), float(np.median(fy[near]))
    _tbv.zoom_fea_into_flowers(page, cx, cy)
    page.wait_for_function(f"() => ({_JS_PETAL_DATA})('xsgpu-fea')[1].length > 0", timeout=TIMEOUT_MS)
    visible, start, ids = page.evaluate(_JS_PETAL_DATA, "xsgpu-fea")
    assert visible
    angles = np.unique(np.round(np.mod(start, 2 * np.pi), 6))
    assert len(angles) == 5, angles
    np.testing.assert_allclose(np.diff(angles), 2 * np.pi / 5, atol=1e-5)
    per_flower = np.bincount(np.asarray(ids, np.int64))
    assert per_flower.max() == 5
    assert not errors, errors
