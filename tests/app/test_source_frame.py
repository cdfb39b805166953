"""The original frame in the detail view (issue 10.5): read from its source file (real TIFF and HDF5 files
written here) at full resolution, linear/log scaling, percentile contrast, a colour bar, the header
metadata; a clear message naming the path when the file is gone."""
from __future__ import annotations

import base64
import io
import re

import numpy as np
import pandas as pd
import pytest

from panel_app.data import RunData
from panel_app.panels.source_frame import (
    SourceFrameUnavailable, SourceFrameView, display_values, read_source_frame, render_frame_png,
)

H, W = 40, 50


@pytest.fixture
def files(tmp_path):
    import h5py
    import tifffile

    rng = np.random.default_rng(0)
    tif = rng.integers(0, 5000, (H, W)).astype(np.int32)
    tif[3, 4] = -1   # a Pilatus module gap: masked
    tif_path = tmp_path / "run1" / "img_0001.tif"
    tif_path.parent.mkdir()
    tifffile.imwrite(tif_path, tif, description="# Exposure_time 0.5 s\r\n# Wavelength 1.0 A")
    stack = rng.random((3, H, W)).astype(np.float32) * 100
    h5_path = tmp_path / "run1" / "scan.h5"
    with h5py.File(h5_path, "w") as f:
        f.create_dataset("entry/data/data", data=stack)
    return {"tif": (tif_path, tif), "h5": (h5_path, stack)}


def _data(files, tmp_path) -> RunData:
    uris = [str(files["tif"][0]), str(files["h5"][0]), str(files["h5"][0]), str(tmp_path / "gone.tif"), "mem://4"]
    n = len(uris)
    samples = pd.DataFrame({"sample_id": np.arange(n), "source_uri": uris, "frame": np.array([0, 2, 0, 0, 0]),
                            "run_id": "r", "split": "test", "labelled": True})
    rng = np.random.default_rng(1)
    return RunData.from_arrays(y_true=rng.random((n, 17)) < 0.3, y_prob=rng.random((n, 17)),
                               coords=rng.normal(size=(n, 6)), samples=samples)


def _png_shape(html_text: str) -> tuple[int, int]:
    from PIL import Image

    b64 = re.search(r'src="data:image/png;base64,([^"]+)"', html_text).group(1)
    return Image.open(io.BytesIO(base64.b64decode(b64))).size[::-1]


def test_reads_the_frame_at_full_resolution(files, tmp_path):
    data = _data(files, tmp_path)
    fr = read_source_frame(data, 0)
    tif = files["tif"][1]
    assert fr.data.shape == (H, W) and fr.mask[3, 4] and fr.mask.sum() == 1
    np.testing.assert_array_equal(fr.data[~fr.mask], tif[~fr.mask].astype(np.float32))
    fr2 = read_source_frame(data, 1)   # frame 2 of the HDF5 stack
    np.testing.assert_array_equal(fr2.data, files["h5"][1][2])
    np.testing.assert_array_equal(read_source_frame(data, 2).data, files["h5"][1][0])
    assert read_source_frame(data, 1) is fr2   # cached


def test_missing_or_generated_file_is_named(files, tmp_path):
    data = _data(files, tmp_path)
    with pytest.raises(SourceFrameUnavailable, match="not there any more: " + re.escape(str(tmp_path / "gone.tif"))):
        read_source_frame(data, 3)
    with pytest.raises(SourceFrameUnavailable, match="mem://4"):
        read_source_frame(data, 4)
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00garbage")
    samples = data.samples.copy()
    samples.loc[0, "source_uri"] = str(bad)
    d2 = RunData.from_arrays(y_true=data.y_true, y_prob=data.y_prob, coords=np.zeros((5, 6)), samples=samples)
    with pytest.raises(SourceFrameUnavailable, match=re.escape(str(bad)) + ".*cannot be read"):
        read_source_frame(d2, 0)


def test_scaling_and_percentile_contrast():
    rng = np.random.default_rng(2)
    a = rng.random((30, 30)).astype(np.float32) * 1000
    a[0, 0] = 0.0
    mask = np.zeros_like(a, bool)
    mask[1, 1] = True
    v, lo, hi = display_values(a, mask, scaling="linear", percentiles=(0.5, 99.5))
    valid = ~mask
    assert np.isnan(v[1, 1]) and v[0, 0] == 0.0
    assert (lo, hi) == pytest.approx(tuple(np.percentile(a[valid], [0.5, 99.5])))
    v, lo, hi = display_values(a, mask, scaling="log", percentiles=(0.0, 100.0))
    pos = valid & (a > 0)
    assert np.isnan(v[0, 0]) and np.isnan(v[1, 1])
    np.testing.assert_allclose(v[pos], np.log10(a[pos]), rtol=1e-6)
    assert (lo, hi) == pytest.approx((np.log10(a[pos]).min(), np.log10(a[pos]).max()), rel=1e-6)
    png = render_frame_png(v, lo, hi)
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(png)))
    assert img.shape == (30, 30, 3) and tuple(img[1, 1]) == (128, 128, 128)
    with pytest.raises(ValueError, match="'percentiles' parameter"):
        display_values(a, mask, percentiles=(60, 40))
    with pytest.raises(ValueError, match="'scaling' parameter"):
        display_values(a, mask, scaling="sqrt")


def test_view_shows_frame_colour_bar_and_header(files, tmp_path):
    from panel_app.views.more_filters import set_range

    data = _data(files, tmp_path)
    view = SourceFrameView(data=data, sample_id=0)
    assert not view.message.visible
    assert _png_shape(view.image.object) == (H, W) and f'data-shape="{H}x{W}"' in view.image.object
    assert "xsgpu-colour-bar" in view.colour_bar.object and "log10 intensity (counts)" in view.colour_bar.object
    meta = view.metadata.object
    assert str(files["tif"][0]) in meta and "masked pixels" in meta and "format" in meta
    log_range = view.range
    view.scaling.value = "linear"
    assert view.range[1] > 100 > log_range[1] and "intensity (counts)" in view.colour_bar.object
    wide = view.range
    set_range(view.percentiles, (10.0, 90.0))
    assert wide[0] < view.range[0] < view.range[1] < wide[1]
    gone = SourceFrameView(data=data, sample_id=3)
    assert gone.message.visible and str(tmp_path / "gone.tif") in gone.message.object and not gone.image.object


def test_detail_card_toggles_the_original_frame(files, tmp_path):
    from panel_app.panels.detail import DetailView
    from panel_app.state import AppState

    state = AppState(data=_data(files, tmp_path))
    dv = DetailView(state=state, n_neighbours=0)
    dv.show([1, 3])

    def frames():
        found = []
        for card in dv._strip.objects:
            found += [getattr(o, "xsgpu_view", None) for o in card.objects]
        found = [f for f in found if isinstance(f, SourceFrameView)]
        return found

    assert frames() == []
    assert dv.toggle_original(1) and [f.sample_id for f in frames()] == [1]
    assert dv._strip.objects[0].width >= 512   # the card widens to hold the frame
    dv.toggle_original(3)
    shown = {f.sample_id: f for f in frames()}
    assert set(shown) == {1, 3} and shown[3].message.visible and "gone.tif" in shown[3].message.object
    assert not dv.toggle_original(1) and [f.sample_id for f in frames()] == [3]
    dv.show([1])   # an image no longer shown forgets its toggle
    assert frames() == [] and dv._original == set()
