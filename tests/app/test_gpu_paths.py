"""``--device gpu``: every GPU path of the app against its CPU twin on the same data.

Each test runs twice (``backend`` fixture): on real CuPy/cuDF (marker ``gpu``: skipped without CUDA) and on
the NumPy stand-in of :mod:`tests.app.fake_gpu` (runs everywhere: it checks the wiring, that no host array is
mixed into device arithmetic, and the numbers). Tolerances: counts, ids and every image but the mean colouring
are equal; mean-coloured images within 1 of 255 per channel (the GPU adds a pixel's values in another order);
metrics within 1e-6.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest

from panel_app.data import RunData

from . import fake_gpu

BACKENDS = [pytest.param("fake", id="fake-cupy"), pytest.param("cuda", id="cupy", marks=pytest.mark.gpu)]


@pytest.fixture(params=BACKENDS)
def cp(request, monkeypatch):
    """The array module of the device: the NumPy stand-in, or CuPy on a GPU."""
    from panel_app.device import clear_mirror
    from xsgpu.backend import gpu_status

    if request.param == "fake":
        fake_gpu.install(monkeypatch)
    clear_mirror()
    import cupy

    yield sys.modules["cupy"] if request.param == "fake" else cupy
    clear_mirror()
    gpu_status.cache_clear()


def _data(n: int = 20_000, seed: int = 0) -> RunData:
    """Six clusters per space; labels from prototypes with flips, probabilities = noisy labels."""
    rng = np.random.default_rng(seed)
    protos = rng.random((6, 17)) < 0.3
    proto = rng.integers(0, 6, n)
    y = protos[proto] ^ (rng.random((n, 17)) < 0.05)
    p = np.clip(np.where(y, 0.75, 0.2) + rng.normal(0, 0.2, (n, 17)), 0, 1).astype(np.float32)
    coords = np.empty((n, 6), np.float32)
    for s in range(3):
        ang = 2 * np.pi * (np.arange(6) + 0.5 * s) / 6
        centres = np.stack([np.cos(ang), np.sin(ang)], axis=1) * 20
        coords[:, 2 * s:2 * s + 2] = centres[proto] + rng.standard_normal((n, 2)) * 3
    return RunData.from_arrays(y_true=y, y_prob=p, coords=coords)


def _host(a):
    return a.get() if hasattr(a, "get") else np.asarray(a)


def _assert_source_equal(gpu: dict, cpu: dict, *, atol: int = 0) -> None:
    """Two Bokeh image sources: the same frame and counts; images equal (or within ``atol`` per RGBA channel)."""
    assert set(gpu) == set(cpu)
    for k in cpu:
        if k == "image" and atol:
            a, b = (np.asarray(v[0]).view(np.uint8).astype(int) for v in (gpu[k], cpu[k]))
            assert a.shape == b.shape and np.abs(a - b).max() <= atol, k
        elif k in ("image", "counts"):
            np.testing.assert_array_equal(np.asarray(gpu[k][0]), np.asarray(cpu[k][0]), err_msg=k)
        else:
            assert gpu[k] == cpu[k], k


def test_rasterize_on_the_device_matches_the_host(cp):
    from panel_app.views.raster import SELECTION_COLOUR, rasterize

    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, 30_000).astype(np.float32)
    y = rng.normal(0, 1, 30_000).astype(np.float32)
    m = rng.random(30_000) < 0.6
    err = rng.random(30_000).astype(np.float32)
    err[::7] = np.nan   # unlabelled: no value
    codes = rng.integers(0, 5, 30_000).astype(np.uint8)
    variants = [({"with_counts": True}, 0), ({"mask": m, "with_counts": True}, 0), ({"colour": SELECTION_COLOUR}, 0),
                ({"how": "mask", "mask": m}, 0), ({"how": "mean", "values": err, "mask": m, "with_counts": True}, 1),
                ({"how": "mean", "values": err, "value_span": (0.0, 1.0)}, 1),
                ({"how": "outcome", "values": codes, "mask": m, "with_counts": True}, 0),
                ({"how": "outcome", "values": codes}, 0)]
    for kw, atol in variants:
        frame = dict(x_range=(-2.5, 2.0), y_range=(-1.5, 2.5), width=120, height=90)
        cpu = rasterize(x, y, **frame, **kw)
        dkw = {k: cp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
        gpu = rasterize(cp.asarray(x), cp.asarray(y), **frame, **dkw)
        assert all(type(v[0]) is np.ndarray for k, v in gpu.items() if k in ("image", "counts")), kw
        _assert_source_equal(gpu, cpu, atol=atol)
    none = np.zeros(0, np.float32)   # an empty slab (a viewport over empty space)
    for kw in ({"with_counts": True}, {"how": "mean", "values": none, "mask": none > 0, "with_counts": True},
               {"how": "outcome", "values": none.astype(np.uint8), "with_counts": True}):
        frame = dict(x_range=(0, 1), y_range=(0, 1), width=20, height=10)
        dkw = {k: cp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
        _assert_source_equal(rasterize(cp.asarray(none), cp.asarray(none), **frame, **dkw),
                             rasterize(none, none, **frame, **kw))


def test_spatial_index_on_the_device_gives_the_same_ids(cp):
    from panel_app.views.index import SpatialIndex
    from panel_app.views.index_gpu import GPUSpatialIndex

    rng = np.random.default_rng(2)
    x = np.round(rng.normal(0, 5, 50_000), 1).astype(np.float32)   # rounded: many ties, points on box edges
    y = np.round(rng.normal(0, 5, 50_000), 1).astype(np.float32)
    host = SpatialIndex(x, y)
    dev = GPUSpatialIndex.from_host(host)
    assert dev.bounds == host.bounds and dev.n == host.n
    mask = rng.random(50_000) < 0.5
    dmask = cp.asarray(mask)
    for _ in range(20):
        x0, x1 = np.sort(rng.uniform(-12, 12, 2))
        y0, y1 = np.sort(rng.uniform(-12, 12, 2))
        for hm, dm in ((None, None), (mask, dmask)):
            ids = dev.ids_in_box(x0, x1, y0, y1, mask=dm)
            assert type(ids) is np.ndarray and ids.dtype == np.int64
            np.testing.assert_array_equal(ids, host.ids_in_box(x0, x1, y0, y1, mask=hm))
            assert dev.count_in_box(x0, x1, y0, y1, mask=dm, limit=100) == host.count_in_box(x0, x1, y0, y1, mask=hm)
        xs, ys, order = dev.slab(x0, x1)
        hxs, hys, horder = host.slab(x0, x1)
        for a, b in ((xs, hxs), (ys, hys), (order, horder)):
            np.testing.assert_array_equal(_host(a), b)
    for k in range(10):   # lassos: a star of 5..30 vertices
        m = 5 + 3 * k
        ang = np.sort(rng.uniform(0, 2 * np.pi, m))
        r = rng.uniform(2, 9, m)
        cx, cy = rng.uniform(-4, 4, 2)
        px, py = cx + r * np.cos(ang), cy + r * np.sin(ang)
        for hm, dm in ((None, None), (mask, dmask)):
            np.testing.assert_array_equal(dev.ids_in_polygon(px, py, mask=dm), host.ids_in_polygon(px, py, mask=hm))
    with pytest.raises(ValueError, match=">= 3 vertices"):
        dev.ids_in_polygon([0, 1], [0, 1])


def _states(data: RunData, **params):
    from panel_app.state import AppState

    return AppState(data=data, device="cpu", **params), AppState(data=data, device="gpu", **params)


def test_group_metrics_on_the_device_match_the_host(cp):
    from panel_app.panels.selection import SelectionManager

    data = _data()
    cpu, gpu = _states(data, cutoff=0.45)
    rng = np.random.default_rng(3)
    for frac in (0.01, 0.3, 0.7):   # the gather and the all-minus-rest paths of the scorer
        ids = np.flatnonzero(rng.random(data.n) < frac)
        cpu.select(ids)
        gpu.select(ids)
        mc = SelectionManager(state=cpu).group_metrics("(current selection)")
        mg = SelectionManager(state=gpu).group_metrics("(current selection)")
        np.testing.assert_allclose(mg.per_attribute.to_numpy(float), mc.per_attribute.to_numpy(float), atol=1e-6,
                                   equal_nan=True)
        assert mg.overall == pytest.approx(mc.overall, abs=1e-6, nan_ok=True)
    scorer = SelectionManager(state=gpu).scorer()
    assert scorer.xp is sys.modules["cupy"] and isinstance(scorer.true_codes, sys.modules["cupy"].ndarray)


def test_views_on_the_device_draw_and_select_what_the_host_does(cp):
    from panel_app.views.embedding import EmbeddingViews

    data = _data()
    cpu, gpu = _states(data, flower_threshold=300)
    vc, vg = EmbeddingViews(state=cpu, width=160, height=160), EmbeddingViews(state=gpu, width=160, height=160)
    fc, fg = vc.views["FEA"], vg.views["FEA"]
    assert isinstance(fg.index.xs, sys.modules["cupy"].ndarray) and fg.home == fc.home

    def same(atol: int = 0) -> None:
        assert fg.mode == fc.mode and fg.in_view == fc.in_view and fg.selected_in_view == fc.selected_in_view
        _assert_source_equal(fg.raster_src.data, fc.raster_src.data, atol=atol)
        _assert_source_equal(fg.sel_src.data, fc.sel_src.data)
        np.testing.assert_array_equal(np.asarray(fg.point_src.data["sample_id"]),
                                      np.asarray(fc.point_src.data["sample_id"]))

    hx0, hx1, hy0, hy1 = fc.home
    w, h = hx1 - hx0, hy1 - hy0
    viewports = [fc.home, (hx0 + 0.2 * w, hx0 + 0.6 * w, hy0 + 0.1 * h, hy0 + 0.5 * h)]
    for vp in viewports:
        fc.set_viewport(*vp)
        fg.set_viewport(*vp)
        same()
    box = {"type": "rect", "x0": hx0 + 0.3 * w, "x1": hx0 + 0.5 * w, "y0": hy0 + 0.2 * h, "y1": hy0 + 0.6 * h}
    np.testing.assert_array_equal(fg.select_geometry(box), fc.select_geometry(box))
    assert len(gpu.selection) > 100
    same()
    cx, cy, r = hx0 + 0.5 * w, hy0 + 0.5 * h, 0.3 * w
    ang = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    lasso = {"type": "poly", "x": list(cx + r * np.cos(ang)), "y": list(cy + r * np.sin(ang))}
    np.testing.assert_array_equal(fg.select_geometry(lasso), fc.select_geometry(lasso))
    same()
    slug = data.vocabulary.slugs[2]
    for params, atol in (({"filter_attributes": [slug]}, 0), ({"colour_by": "error_distance"}, 1),
                         ({"colour_by": data.vocabulary.slugs[0]}, 0)):
        cpu.param.update(**params)
        gpu.param.update(**params)
        same(atol)
    # zoomed in until the view draws glyphs: the ids in view come from the device index
    cx, cy = float(fc.x[0]), float(fc.y[0])   # in a cluster
    order = np.argsort(np.hypot(fc.x - cx, fc.y - cy))
    d = float(np.hypot(fc.x[order[100]] - cx, fc.y[order[100]] - cy))
    for v in (fc, fg):
        v.state.param.update(flower_crowding=None, filter_attributes=[])
        v.set_viewport(cx - d, cx + d, cy - d, cy + d)
    assert fc.mode != "raster"
    same()
    np.testing.assert_array_equal(fg.visible_ids(), fc.visible_ids())
    assert fg.pick(float(fc.x[order[0]]), float(fc.y[order[0]])) == fc.pick(float(fc.x[order[0]]), float(fc.y[order[0]]))


def test_warm_up_device_moves_the_run_once(cp):
    from panel_app.data import SPACES
    from panel_app.device import device_coords, device_index, device_labels, warm_up_device

    data = _data(5_000)
    out = warm_up_device(data)
    assert set(out) == {"copy_s", "kernels_s"}
    for space in SPACES:
        x, y = device_coords(data, space)
        assert isinstance(x, cp.ndarray) and device_coords(data, space)[0] is x
        np.testing.assert_array_equal(_host(x), data.coords(space)[0])
        assert device_index(data, space) is device_index(data, space)
    yt, yp = device_labels(data)
    np.testing.assert_array_equal(_host(yt), data.y_true)
    np.testing.assert_array_equal(_host(yp), data.y_prob)


def test_on_device_copies_once_per_live_host_array(cp):
    import gc

    from panel_app.device import _MIRROR, on_device

    a = np.arange(10)
    d = on_device(a)
    assert on_device(a) is d and on_device(d) is d
    np.testing.assert_array_equal(_host(d), a)
    n = len(_MIRROR._copies)
    del a
    gc.collect()
    assert len(_MIRROR._copies) == n - 1   # the copy goes with its host array
