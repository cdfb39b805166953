"""``.mat`` and HDF5 files holding one image-like array (plus a same-shaped mask) are read without --h5-dataset.

The same rules as ``.npz`` (tests/io/test_npz_image_choice.py): masks (named ``*mask*``), logical arrays
and 1-D/scalar extras beside the image do not count as candidates; the mask is applied (non-zero =
invalid); several candidates are refused, listing them and naming ``--h5-dataset``.
"""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import scipy.io

from xsgpu.io import count_frames, read_any, scan_file
from xsgpu.io.frame import DatasetNotFoundError
from xsgpu.io.readers.examples import write_mat73

from tests.io.test_npz_image_choice import _saxs




# ------------------------------------------------------------------------------------------------ .mat
@pytest.mark.parametrize("version", ["v5", "v7.3"])
@pytest.mark.parametrize("mask_dtype", [bool, np.uint8])
def test_mat_image_beside_a_mask_is_read(tmp_path, version, mask_dtype):
    im, mask = _saxs()
    variables = {"im": im, "mask": mask.astype(mask_dtype), "q": np.linspace(0, 1, 5), "exposure": np.float64(0.5)}
    p = tmp_path / "frame.mat"
    if version == "v5":
        scipy.io.savemat(p, variables)
    else:
        write_mat73(p, variables)
    info = scan_file(p)
    assert (info.dataset, info.n_frames, info.frame_shape) == ("im", 1, (6, 5))
    (frame,) = list(read_any(p))
    assert frame.metadata["variable"] == "im" and frame.metadata["mask_key"] == "mask"
    assert frame.mask[0, 0] and frame.mask[2].all() and not frame.mask[3].any()
    assert frame.data[3, 1] == im[3, 1] and frame.data[0, 0] == 0


@pytest.mark.parametrize("version", ["v5", "v7.3"])
def test_mat_stack_with_a_per_frame_mask(tmp_path, version):
    stack = np.random.default_rng(0).random((4, 3, 2)) + 1  # MATLAB (H, W, N)
    mask = np.zeros((4, 3, 2), np.uint8)
    mask[1, 1, 1] = 1
    p = tmp_path / "stack.mat"
    (scipy.io.savemat if version == "v5" else write_mat73)(p, {"counts": stack, "pixel_mask": mask})
    first, second = read_any(p)
    assert not first.mask.any() and second.mask[1, 1] and second.mask.sum() == 1
    np.testing.assert_allclose(first.data, stack[:, :, 0].astype(np.float32))


@pytest.mark.parametrize("version", ["v5", "v7.3"])
def test_mat_two_image_like_variables_are_refused(tmp_path, version):
    im, mask = _saxs()
    p = tmp_path / "two.mat"
    (scipy.io.savemat if version == "v5" else write_mat73)(p, {"im": im, "background": im, "mask": mask})
    with pytest.raises(DatasetNotFoundError, match=r"no 'detector_image' among \['background', 'im', 'mask'\], and 2 "
                                                   r"image-like .* \['background', 'im'\]\. Hint: name it with "
                                                   r"--h5-dataset VARIABLE"):
        count_frames(p)
    (frame,) = read_any(p, h5_dataset="background")
    assert frame.metadata["mask_key"] == "mask"


# ------------------------------------------------------------------------------------------------ HDF5
@pytest.mark.parametrize("mask_dtype", [bool, np.uint8])
def test_hdf5_image_beside_a_same_shaped_mask(tmp_path, mask_dtype):
    """The mask is as large as the image and sorts first by name: it must still not be taken for it."""
    im, mask = _saxs((3, 6, 5))
    p = tmp_path / "frames.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("a_mask", data=mask.astype(mask_dtype))
        f.create_dataset("measurement/im", data=im)
        f.create_dataset("measurement/q", data=np.linspace(0, 1, 5))
    info = scan_file(p)
    assert (info.dataset, info.n_frames) == ("measurement/im", 3)
    frames = list(read_any(p))
    assert all(fr.metadata["mask_key"] == "a_mask" and fr.mask[0, 0] and fr.mask[2].all() for fr in frames)
    assert frames[1].data[3, 1] == im[1, 3, 1]


def test_hdf5_one_mask_for_every_frame(tmp_path):
    im, mask = _saxs((2, 6, 5))
    p = tmp_path / "shared.h5"
    with h5py.File(p, "w") as f:
        f["data"] = np.nan_to_num(im).astype(np.int32)
        f["detector/mask"] = mask[0].astype(np.uint8)
    assert [fr.mask[0, 0] and not fr.mask[1, 1] for fr in read_any(p)] == [True, True]


def test_hdf5_equally_large_candidates_are_refused(tmp_path):
    im, mask = _saxs()
    p = tmp_path / "two.h5"
    with h5py.File(p, "w") as f:
        f["im"] = im
        f["background"] = im
        f["mask"] = mask
    with pytest.raises(DatasetNotFoundError, match=r"2 equally large image-like .* datasets background \(6, 5\), "
                                                   r"im \(6, 5\)\. Hint: name it with --h5-dataset PATH"):
        count_frames(p)
    assert count_frames(p, h5_dataset="im") == 1


def test_hdf5_stack_beside_a_dark_frame_takes_the_stack(tmp_path):
    im, _ = _saxs((4, 6, 5))
    p = tmp_path / "stack_and_dark.h5"
    with h5py.File(p, "w") as f:
        f["entry/instrument/detector/dark"] = np.zeros((6, 5), np.float32)
        f["entry/measurement/frames"] = im
    assert scan_file(p).dataset == "entry/measurement/frames"
    assert "mask_key" not in next(read_any(p)).metadata


def test_hdf5_a_mask_hiding_most_of_the_frame_is_logged(tmp_path, caplog):
    im, _ = _saxs()
    p = tmp_path / "inverted.h5"
    with h5py.File(p, "w") as f:
        f["im"] = im
        f["valid_mask"] = np.ones(im.shape, bool)
    with caplog.at_level("WARNING", logger="xsgpu.io.readers._common"):
        (frame,) = list(read_any(p))
    assert frame.mask.all() and "invert it" in caplog.text
