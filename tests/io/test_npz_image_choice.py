"""``.npz`` archives holding one image-like array beside a mask and extras are read without --h5-dataset."""
from __future__ import annotations

import numpy as np
import pytest

from xsgpu.io import count_frames, read_any
from xsgpu.io.frame import DatasetNotFoundError


def _saxs(shape=(6, 5)):
    im = np.arange(np.prod(shape), dtype=np.float32).reshape(shape) + 1
    im[..., 2, :] = np.nan  # module gap
    mask = np.zeros(shape, dtype=bool)
    mask[..., 0, 0] = True
    return im, mask


def test_image_beside_a_bool_mask_is_read(tmp_path):
    im, mask = _saxs()
    np.savez(tmp_path / "frame.npz", im=im, mask=mask, q=np.linspace(0, 1, 5), exposure=np.float64(0.5))
    assert count_frames(tmp_path / "frame.npz") == 1
    (frame,) = list(read_any(tmp_path / "frame.npz"))
    assert frame.data.shape == (6, 5) and frame.metadata["key"] == "im"
    assert frame.mask[2].all() and not frame.mask[3].any() and frame.data[3, 0] == im[3, 0]


def test_integer_mask_named_mask_is_not_an_image(tmp_path):
    im, mask = _saxs((2, 6, 5))
    np.savez(tmp_path / "stack.npz", counts=np.nan_to_num(im).astype(np.int32), pixel_mask=mask[0].astype(np.uint8))
    assert count_frames(tmp_path / "stack.npz") == 2


def test_two_image_like_arrays_are_still_refused(tmp_path):
    im, mask = _saxs()
    np.savez(tmp_path / "two.npz", im=im, background=im, mask=mask)
    with pytest.raises(DatasetNotFoundError, match=r"among \['background', 'im', 'mask'\], and 2 image-like .* "
                                                   r"\['background', 'im'\]\. Hint: name it with --h5-dataset KEY"):
        count_frames(tmp_path / "two.npz")
    assert count_frames(tmp_path / "two.npz", h5_dataset="background") == 1


def test_the_mask_beside_the_image_is_applied(tmp_path):
    """Non-zero mask pixels are invalid (the fabio/pyFAI convention), one mask for all frames or one each."""
    im, mask = _saxs((2, 6, 5))
    np.savez(tmp_path / "shared.npz", im=im, mask=mask[0])
    frames = list(read_any(tmp_path / "shared.npz"))
    assert len(frames) == 2 and all(f.mask[0, 0] and not f.mask[1, 1] for f in frames)
    assert frames[0].metadata["mask_key"] == "mask"
    per = mask.copy()
    per[1, 4, 4] = True
    np.savez(tmp_path / "per_frame.npz", im=im, pixel_mask=per.astype(np.uint8))
    first, second = read_any(tmp_path / "per_frame.npz")
    assert not first.mask[4, 4] and second.mask[4, 4] and second.mask[0, 0]


def test_a_mask_hiding_most_of_the_frame_is_applied_and_logged(tmp_path, caplog):
    im, _ = _saxs()
    valid = np.ones(im.shape, bool)  # a mask of *valid* pixels: the other convention
    np.savez(tmp_path / "inverted.npz", im=im, mask=valid)
    with caplog.at_level("WARNING", logger="xsgpu.io.readers.arrays"):
        (frame,) = list(read_any(tmp_path / "inverted.npz"))
    assert frame.mask.all() and "invert it" in caplog.text
