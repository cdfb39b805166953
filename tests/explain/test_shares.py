"""Heatmap shares on the beamstop/gaps and the image edge (issue 12.5), against a direct NumPy computation."""
from __future__ import annotations

import numpy as np
import pytest

from tests.app.conftest import make_app_run


def _direct(images: np.ndarray, cams: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Upsample each map to the image grid (nearest) and sum the positive mass pixel by pixel."""
    n, H, W = images.shape
    h, w = cams.shape[-2:]
    ri = np.floor(np.arange(H) * h / H).astype(int)
    ci = np.floor(np.arange(W) * w / W).astype(int)
    up = np.maximum(cams.astype(np.float64), 0)[:, :, ri][:, :, :, ci]  # (n, C, H, W)
    bh, bw = max(1, round(0.1 * H)), max(1, round(0.1 * W))
    yy, xx = np.mgrid[:H, :W]
    border = (yy < bh) | (yy >= H - bh) | (xx < bw) | (xx >= W - bw)
    zero = images == 0
    total = up.sum(axis=(2, 3))
    with np.errstate(invalid="ignore"):
        beam = (up * zero[:, None]).sum(axis=(2, 3)) / total
        edge = (up * border[None, None]).sum(axis=(2, 3)) / total
    return np.where(total > 0, beam, np.nan), np.where(total > 0, edge, np.nan)


@pytest.mark.parametrize("H,W,h,w", [(32, 32, 7, 7), (64, 48, 2, 3), (30, 30, 30, 30)])
def test_shares_block_matches_direct(H, W, h, w):
    from xsgpu.explain.shares import shares_block

    rng = np.random.default_rng(H + h)
    images = rng.random((5, H, W)).astype(np.float16)
    images[:, H // 2 - 3:H // 2 + 3, : W // 2] = 0  # a beamstop arm
    images[:, :, W - 2:] = 0  # a gap at the right edge
    cams = rng.normal(size=(5, 4, h, w)).astype(np.float16)
    cams[0, 1] = -1.0  # no positive mass: NaN
    beam, edge = shares_block(images, cams)
    want_b, want_e = _direct(images, cams)
    assert beam.dtype == np.float32 and beam.shape == (5, 4)
    np.testing.assert_allclose(beam, want_b, rtol=1e-5, atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(edge, want_e, rtol=1e-5, atol=1e-6, equal_nan=True)
    assert np.isnan(beam[0, 1]) and np.isnan(edge[0, 1])
    ok = np.isfinite(beam)
    assert ((beam[ok] >= 0) & (beam[ok] <= 1)).all() and ((edge[ok] >= 0) & (edge[ok] <= 1)).all()


def test_map_on_the_beamstop_and_on_the_edge():
    from xsgpu.explain.shares import shares_block

    images = np.ones((1, 20, 20), np.float32)
    images[0, 8:12, 8:12] = 0  # the beamstop: exactly the block of cell (2, 2) of a 5 x 5 map
    cams = np.zeros((1, 2, 5, 5), np.float32)
    cams[0, 0, 2, 2] = 3.0  # all mass on pixels 8..11 x 8..11: the beamstop
    cams[0, 1, 0, :] = 1.0  # all mass on rows 0..3 (80 px): the border holds rows 0..1 (40) and 2 x 4 px of rows 2..3
    beam, edge = shares_block(images, cams)
    assert beam[0, 0] == pytest.approx(1.0) and edge[0, 0] == pytest.approx(0.0)
    assert beam[0, 1] == pytest.approx(0.0) and edge[0, 1] == pytest.approx(48 / 80)


def test_evaluate_writes_heatmap_shares(tmp_path):
    from xsgpu.io.schema import HEATMAP_SHARES
    from xsgpu.metrics import evaluate_run
    from xsgpu.model.infer import ensure_output_array

    store = make_app_run(tmp_path / "run", n=40, partition_size=15, size=32, stages=False)
    evaluate_run(store.path, suspicious=False)
    assert not store.artifact(HEATMAP_SHARES).path.exists()  # no heatmaps: no table
    rng = np.random.default_rng(1)
    cams = rng.normal(size=(40, 17, 4, 4)).astype(np.float16)
    ensure_output_array(store, "heatmaps", (17, 4, 4), attrs={"weights_sha256": "x" * 64})[:] = cams
    evaluate_run(store.path, suspicious=False)
    df = store.read_table(HEATMAP_SHARES)
    slugs = store.vocabulary.slugs
    assert list(df["sample_id"]) == list(range(40))
    assert df[f"beamstop__{slugs[0]}"].dtype == np.float32
    want_b, want_e = _direct(np.asarray(store.images.open()[:]), cams)
    np.testing.assert_allclose(df[[f"beamstop__{s}" for s in slugs]].to_numpy(), want_b, atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(df[[f"edge__{s}" for s in slugs]].to_numpy(), want_e, atol=1e-6, equal_nan=True)
    assert store.artifact(HEATMAP_SHARES).metadata()["edge_fraction"] == 0.1


def test_evaluate_stage_reruns_for_missing_shares(tmp_path):
    from xsgpu.io.schema import HEATMAP_SHARES
    from xsgpu.model.infer import ensure_output_array
    from xsgpu.stages import get_stage, run_stage
    from xsgpu.stages.evaluate import EvaluateParams

    store = make_app_run(tmp_path / "run", n=30, partition_size=15, size=32, stages=False)
    evaluate, params = get_stage("evaluate"), EvaluateParams(suspicious=False)
    run_stage(evaluate, store.path, params, progress=False)
    assert evaluate.is_done(store.path, params)[0]  # no heatmaps: nothing missing
    ensure_output_array(store, "heatmaps", (17, 2, 2), attrs={})[:] = np.ones((30, 17, 2, 2), np.float16)
    done, why = evaluate.is_done(store.path, params)
    assert not done and "heatmaps without heatmap shares" in why
    assert run_stage(evaluate, store.path, params, progress=False).status == "done"
    assert store.artifact(HEATMAP_SHARES).exists() and evaluate.is_done(store.path, params)[0]
