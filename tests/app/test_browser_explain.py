"""Browser test of the explanations (issue 12.6; Playwright + Debian chromium): open an image, choose "Ring"
in the detail view's Heatmap choice, see the overlay and its colour bar; switch the FEA view to layer2."""
from __future__ import annotations

import time

import numpy as np
import pytest

from tests.app.conftest import make_app_run, start_server, stop_server

pytestmark = pytest.mark.browser

TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def served_explained(tmp_path_factory):
    """``xsgpu serve`` over a run with heatmaps (Ring raised in the top-left cell) and a layer2 map."""
    from xsgpu.embed.run import method_table
    from xsgpu.model.infer import ensure_output_array

    store = make_app_run(tmp_path_factory.mktemp("explained") / "run", n=300, partition_size=150)
    cams = np.zeros((300, 17, 2, 2), np.float16)
    ring = store.vocabulary.index("Ring")
    cams[:, ring, 0, 0], cams[:, ring, 1, 1] = 2.0, -2.0
    ensure_output_array(store, "heatmaps", (17, 2, 2), attrs={"weights_sha256": "x" * 64})[:] = cams
    emb = store.embedding.read()
    rng = np.random.default_rng(0)
    emb["fea_layer2_x"] = rng.normal(0, 5, len(emb)).astype(np.float32) + 100
    emb["fea_layer2_y"] = rng.normal(0, 5, len(emb)).astype(np.float32)
    store.embedding.write(emb, metadata={"method": "tsne"})
    store.write_table(method_table("tsne"), emb, metadata={"method": "tsne"})
    proc, url = start_server(store.path)
    try:
        yield url, store.path
    finally:
        stop_server(proc)


def test_choose_ring_shows_the_overlay_and_fea_switches_to_layer2(served_explained, page):
    url, _ = served_explained
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0", timeout=TIMEOUT_MS)
    ids_input = page.locator(".xsgpu-detail-ids input")
    ids_input.fill("37")
    ids_input.press("Enter")
    page.locator(".xsgpu-detail-open button").click()
    img = page.locator(".xsgpu-detail-image img").first
    img.wait_for(state="visible")
    plain = img.get_attribute("src")
    assert page.get_by_text("Ring: class activation map").count() == 0

    page.locator(".xsgpu-detail-heatmap select").select_option("Ring")
    page.get_by_text("Ring: class activation map").first.wait_for(state="visible")
    deadline = time.monotonic() + 60  # the image under the overlay is another PNG (Panel's shadow DOM: poll)
    while page.locator(".xsgpu-detail-image img").first.get_attribute("src") == plain:
        assert time.monotonic() < deadline, "the image did not change when the Ring heatmap was chosen"
        time.sleep(0.2)

    page.locator(".xsgpu-fea-layer select").select_option("layer2")
    page.wait_for_function("() => [...Bokeh.documents[0].all_models].some(m => m.text === 'FEA layer2 (tsne)')")
