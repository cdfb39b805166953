"""Readers: every format written here with its own library, read back through read_any / scan_file."""
from __future__ import annotations

import logging
import os

import h5py
import hdf5plugin
import numpy as np
import pytest
import scipy.io
import tifffile
from PIL import Image

from xsgpu.io import (
    CorruptFileError,
    DatasetNotFoundError,
    EmptyFileError,
    FrameShapeError,
    ReaderError,
    UnsupportedFormatError,
    count_frames,
    detect_format,
    read_any,
    scan_file,
)
from xsgpu.io.frame import make_frame
from xsgpu.io.readers.examples import write_example_files, write_mat73


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    return write_example_files(tmp_path_factory.mktemp("examples"), seed=3, shape=(20, 28))


def _names(examples):
    return [e.path.name for e in examples]


def test_every_format_roundtrips(examples):
    assert len(examples) == 13
    for ex in examples:
        assert detect_format(ex.path) == ex.format, ex.path
        info = scan_file(ex.path)
        assert (info.n_frames, info.frame_shape, info.quantitative) == (ex.n_frames, (20, 28), ex.quantitative)
        assert count_frames(ex.path) == ex.n_frames
        frames = list(read_any(ex.path))
        assert [f.frame for f in frames] == list(range(ex.n_frames))
        for k, fr in enumerate(frames):
            assert fr.source_uri == os.path.abspath(ex.path) and os.path.isabs(fr.source_uri)
            assert fr.data.dtype == np.float32 and fr.data.shape == (20, 28)
            assert fr.mask.dtype == bool and fr.quantitative == ex.quantitative
            np.testing.assert_array_equal(fr.mask, ex.mask[k], err_msg=ex.path.name)
            if ex.exact:
                np.testing.assert_allclose(fr.data, ex.data[k], rtol=1e-6, err_msg=ex.path.name)
            else:  # JPEG at quality 95
                assert np.abs(fr.data - ex.data[k]).mean() < 4.0
            assert not fr.data[fr.mask].any(), "masked pixels must hold 0, not the sentinel"


def test_pilatus_tiff_gaps_bad_pixels_and_header(examples):
    ex = next(e for e in examples if e.path.name == "pilatus.tif")
    (fr,) = read_any(ex.path)
    assert fr.metadata["n_gap_pixels"] == 28 and fr.metadata["n_bad_pixels"] == 1
    assert fr.metadata["header"]["Exposure_time"] == "0.0970000 s"
    assert fr.metadata["detector"] == "Pilatus" and fr.metadata["dtype"] == "int32"
    assert fr.mask.sum() == 29


def test_cbf_masks_like_pilatus_tiff(examples):
    ex = next(e for e in examples if e.path.name == "pilatus.cbf")
    (fr,) = read_any(ex.path)
    assert fr.metadata["format"] == "cbf" and fr.metadata["n_gap_pixels"] == 20
    assert fr.metadata["n_bad_pixels"] == 1


def test_eiger_file_is_bitshuffle_lz4_and_masks_pixel_mask_and_max(examples):
    ex = next(e for e in examples if e.path.name == "eiger_master.h5")
    with h5py.File(ex.path) as f:
        plist = f["entry/data/data"].id.get_create_plist()
        filters = [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]
        assert filters == [32008]  # the bitshuffle filter (its LZ4 mode is an option of it)
    frames = list(read_any(ex.path))
    assert frames[1].mask[0, 0] and frames[1].metadata["n_max_value_pixels"] == 1
    assert frames[0].metadata["detector"] == "Eiger" and frames[0].metadata["x_pixel_size"] == 75e-6
    assert all(f.mask[:, 28 // 3].all() for f in frames)


def test_frame_selection_order_and_range(examples):
    ex = next(e for e in examples if e.path.name == "eiger_master.h5")
    got = list(read_any(ex.path, frames=[2, 0]))
    assert [f.frame for f in got] == [2, 0]
    np.testing.assert_array_equal(got[0].data, ex.data[2])
    with pytest.raises(ReaderError, match=r"frame index\(es\) \[3\] out of range; the file has 3 frame"):
        list(read_any(ex.path, frames=[3]))


def test_eiger_master_with_external_data_files(tmp_path):
    parts = [np.full((2, 6, 7), i + 1, np.uint16) for i in range(2)]
    for i, p in enumerate(parts, start=1):
        with h5py.File(tmp_path / f"scan_data_{i:06d}.h5", "w") as f:
            f.create_dataset("entry/data/data", data=p, **hdf5plugin.Bitshuffle(cname="lz4"))
    with h5py.File(tmp_path / "scan_master.h5", "w") as f:
        g = f.create_group("entry/data")
        for i in (1, 2):
            g[f"data_{i:06d}"] = h5py.ExternalLink(f"scan_data_{i:06d}.h5", "entry/data/data")
    assert count_frames(tmp_path / "scan_master.h5") == 4
    vals = [float(f.data[0, 0]) for f in read_any(tmp_path / "scan_master.h5")]
    assert vals == [1, 1, 2, 2]
    os.remove(tmp_path / "scan_data_000002.h5")
    with pytest.raises(CorruptFileError, match="scan_master.h5: cannot read it as an HDF5/NeXus file"):
        count_frames(tmp_path / "scan_master.h5")


def test_hdf5_dataset_choice(tmp_path):
    p = tmp_path / "generic.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("small", data=np.ones((4, 4)))
        f.create_dataset("group/big", data=np.arange(3 * 8 * 8, dtype=np.float32).reshape(3, 8, 8))
        f.create_dataset("vector", data=np.ones(1000))
        f.create_dataset("bad4d", data=np.ones((2, 2, 3, 3)))
    info = scan_file(p)
    assert (info.dataset, info.n_frames) == ("group/big", 3)  # largest >= 2-D numeric dataset
    assert scan_file(p, h5_dataset="small").n_frames == 1
    assert count_frames(p, h5_dataset="/group/big") == 3
    with pytest.raises(DatasetNotFoundError, match=r"the dataset 'nope' asked for with --h5-dataset does not exist"):
        count_frames(p, h5_dataset="nope")
    with pytest.raises(FrameShapeError, match=r"dataset 'bad4d' has 4 dimension\(s\), shape \(2, 2, 3, 3\)"):
        count_frames(p, h5_dataset="bad4d")
    with pytest.raises(FrameShapeError, match="has 1 dimension"):
        count_frames(p, h5_dataset="vector")


def test_hdf5_largest_dataset_wins_when_no_convention(tmp_path):
    p = tmp_path / "generic.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("a", data=np.ones((4, 4)))
        f.create_dataset("b/c", data=np.ones((2, 9, 9)))
    assert scan_file(p).dataset == "b/c"
    q = tmp_path / "nothing.h5"
    with h5py.File(q, "w") as f:
        f.create_dataset("v", data=np.ones(5))
    with pytest.raises(DatasetNotFoundError, match="no numeric dataset with >= 2 dimensions"):
        scan_file(q)


def test_mat_v5_and_v73_stacks_agree(tmp_path):
    stack = np.random.default_rng(0).random((5, 6, 3))  # MATLAB (H, W, N)
    scipy.io.savemat(tmp_path / "v5.mat", {"detector_image": stack})
    write_mat73(tmp_path / "v73.mat", {"detector_image": stack})
    a = list(read_any(tmp_path / "v5.mat"))
    b = list(read_any(tmp_path / "v73.mat"))
    assert len(a) == len(b) == 3 and a[0].data.shape == (5, 6)
    for fa, fb, k in zip(a, b, range(3)):
        np.testing.assert_allclose(fa.data, stack[:, :, k].astype(np.float32))
        np.testing.assert_allclose(fb.data, stack[:, :, k].astype(np.float32))
    assert scan_file(tmp_path / "v73.mat").detail == "mat-v7.3"


def test_mat_variable_choice(tmp_path):
    scipy.io.savemat(tmp_path / "two.mat", {"img1": np.ones((4, 4)), "img2": np.ones((4, 4))})
    with pytest.raises(DatasetNotFoundError, match=r"no 'detector_image' among \['img1', 'img2'\], and 2 image-like"):
        count_frames(tmp_path / "two.mat")
    assert count_frames(tmp_path / "two.mat", h5_dataset="img2") == 1
    with pytest.raises(DatasetNotFoundError, match=r"variable 'img3' .* holds \['img1', 'img2'\]"):
        count_frames(tmp_path / "two.mat", h5_dataset="img3")


def test_npz_key_choice(tmp_path):
    np.savez(tmp_path / "two.npz", a=np.ones((3, 3)), b=np.ones((3, 3)))
    with pytest.raises(DatasetNotFoundError, match=r"none of \['detector_image', 'data'.*among \['a', 'b'\]"):
        count_frames(tmp_path / "two.npz")
    assert count_frames(tmp_path / "two.npz", h5_dataset="b") == 1
    np.savez(tmp_path / "one.npz", whatever=np.ones((2, 3, 3)))
    assert count_frames(tmp_path / "one.npz") == 2


@pytest.mark.parametrize("shape,ndim", [((10,), 1), ((2, 2, 3, 3), 4), ((), 0)])
def test_wrong_dimension_arrays(tmp_path, shape, ndim):
    np.save(tmp_path / "x.npy", np.ones(shape))
    with pytest.raises(FrameShapeError, match=rf"has {ndim} dimension\(s\).*expected a 2-D image \(H, W\)"):
        scan_file(tmp_path / "x.npy")


def test_bad_files_raise_clear_errors(tmp_path):
    (tmp_path / "empty.tif").write_bytes(b"")
    with pytest.raises(EmptyFileError, match=r"empty.tif: the file is empty \(0 bytes\)"):
        scan_file(tmp_path / "empty.tif")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UnsupportedFormatError, match=r"notes.txt: unsupported file type \(extension .txt.*Supported"):
        scan_file(tmp_path / "notes.txt")
    (tmp_path / "junk.tif").write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(CorruptFileError, match=r"junk.tif: the extension .tif says a TIFF, but the file does not"):
        scan_file(tmp_path / "junk.tif")
    with pytest.raises(ReaderError, match="not a readable regular file"):
        scan_file(tmp_path / "missing.tif")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DatasetNotFoundError, match="dtype object"):
        scan_file(tmp_path / "obj.npy")


def test_truncated_files(tmp_path):
    tifffile.imwrite(tmp_path / "full.tif", np.arange(64 * 64, dtype=np.int32).reshape(64, 64), metadata=None)
    raw = (tmp_path / "full.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CorruptFileError, match=r"cut.tif: cannot read it as a TIFF \(.*\)\. The file is probably truncated"):
        list(read_any(tmp_path / "cut.tif"))
    with h5py.File(tmp_path / "full.h5", "w") as f:
        f.create_dataset("entry/data/data", data=np.ones((4, 32, 32), np.uint32))
    raw = (tmp_path / "full.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(raw[:1500])
    with pytest.raises(CorruptFileError, match="cut.h5: cannot read it as an HDF5/NeXus file"):
        scan_file(tmp_path / "cut.h5")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(tmp_path / "p.jpg")
    raw = (tmp_path / "p.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(raw[: len(raw) // 2])
    assert count_frames(tmp_path / "cut.jpg") == 1  # the header is intact: the scan passes ...
    with pytest.raises(CorruptFileError, match="cut.jpg: cannot read it as a PNG/JPEG/BMP/GIF picture"):
        list(read_any(tmp_path / "cut.jpg"))  # ... decoding fails


def test_content_wins_over_extension(tmp_path, caplog):
    Image.fromarray(np.zeros((5, 6), np.uint8)).save(tmp_path / "really_png.png")
    os.rename(tmp_path / "really_png.png", tmp_path / "named.tif")
    with caplog.at_level(logging.WARNING, logger="xsgpu.io.readers.dispatch"):
        assert detect_format(tmp_path / "named.tif") == "picture"
    assert "extension .tif says a TIFF but the content is a PNG/JPEG/BMP/GIF picture" in caplog.text
    (fr,) = read_any(tmp_path / "named.tif")
    assert not fr.quantitative and fr.data.shape == (5, 6)


def test_tiff_rgb_picture_is_grey_and_not_quantitative(tmp_path):
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 100
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb", metadata=None)
    (fr,) = read_any(tmp_path / "rgb.tif")
    assert fr.data.shape == (4, 5) and not fr.quantitative
    np.testing.assert_allclose(fr.data, 29.9, rtol=1e-5)


def test_multiframe_edf(tmp_path):
    import fabio.edfimage

    a, b = np.ones((4, 5), np.float32), np.full((4, 5), 7, np.float32)
    img = fabio.edfimage.EdfImage(data=a)
    img.append_frame(data=b)
    img.write(str(tmp_path / "two.edf"))
    assert count_frames(tmp_path / "two.edf") == 2
    assert [float(f.data.max()) for f in read_any(tmp_path / "two.edf")] == [1.0, 7.0]


def test_unsigned_32bit_sentinels(tmp_path):
    a = np.full((3, 4), 9, np.uint32)
    a[0, 0], a[1, 1] = 2**32 - 1, 2**32 - 2  # -1 / -2 written unsigned
    tifffile.imwrite(tmp_path / "u32.tif", a, metadata=None)
    (fr,) = read_any(tmp_path / "u32.tif")
    assert fr.mask.sum() == 2 and fr.mask[0, 0] and fr.mask[1, 1] and fr.data.max() == 9
    assert (fr.metadata["n_gap_pixels"], fr.metadata["n_bad_pixels"]) == (1, 1)


def test_lzw_tiff_needs_imagecodecs(tmp_path):
    a = np.arange(12, dtype=np.int32).reshape(3, 4)
    a[0, 0] = -1
    tifffile.imwrite(tmp_path / "lzw.tif", a, compression="zlib", metadata=None)  # zlib: no extra codec
    np.testing.assert_array_equal(next(read_any(tmp_path / "lzw.tif")).mask, a < 0)
    try:
        tifffile.imwrite(tmp_path / "lzw.tif", a, compression="lzw", metadata=None)
    except (KeyError, ImportError, ValueError):  # writing LZW needs imagecodecs as well
        pytest.skip("imagecodecs is not installed: cannot write an LZW TIFF")
    (fr,) = read_any(tmp_path / "lzw.tif")
    np.testing.assert_array_equal(fr.data, np.where(a < 0, 0, a))


def test_tiff_reduced_resolution_pages_are_not_frames(tmp_path):
    with tifffile.TiffWriter(tmp_path / "prev.tif") as tw:
        tw.write(np.full((8, 10), 3, np.uint16), metadata=None)
        tw.write(np.zeros((4, 5), np.uint8), subfiletype=1, metadata=None)  # a reduced-resolution preview
        tw.write(np.full((8, 10), 4, np.uint16), metadata=None)
    assert count_frames(tmp_path / "prev.tif") == 2
    assert [float(f.data.max()) for f in read_any(tmp_path / "prev.tif")] == [3.0, 4.0]


def test_missing_codec_message(tmp_path, monkeypatch):
    tifffile.imwrite(tmp_path / "x.tif", np.ones((3, 4), np.int32), metadata=None)

    def no_codec(self, *a, **k):
        raise KeyError("<COMPRESSION.LZW: 5> requires the 'imagecodecs' package")

    monkeypatch.setattr(tifffile.TiffPage, "asarray", no_codec)
    with pytest.raises(UnsupportedFormatError, match=r"x.tif: a TIFF compressed with a codec that needs the "
                                                     r"'imagecodecs' package .*Hint: pip install imagecodecs"):
        list(read_any(tmp_path / "x.tif"))


def test_compressed_fabio_formats(tmp_path):
    import gzip

    import fabio.edfimage

    fabio.edfimage.EdfImage(data=np.full((3, 4), 5, np.float32)).write(str(tmp_path / "f.edf"))
    (tmp_path / "f.edf.gz").write_bytes(gzip.compress((tmp_path / "f.edf").read_bytes()))
    assert detect_format(tmp_path / "f.edf.gz") == "fabio"
    (fr,) = read_any(tmp_path / "f.edf.gz")
    assert fr.data.shape == (3, 4) and float(fr.data.max()) == 5.0
    (tmp_path / "f.tif.gz").write_bytes(gzip.compress(b"II*\x00"))
    with pytest.raises(UnsupportedFormatError, match="only compressed fabio formats"):
        detect_format(tmp_path / "f.tif.gz")


def test_make_frame_checks():
    with pytest.raises(FrameShapeError, match=r"/x.npy: frame 0 must be a non-empty 2-D image \(H, W\); got an array of shape \(3,\)"):
        make_frame(np.ones(3), source_uri="/x.npy")
    with pytest.raises(FrameShapeError, match="pixel mask has shape"):
        make_frame(np.ones((3, 3)), source_uri="/x", pixel_mask=np.zeros((2, 2)))
    with pytest.raises(FrameShapeError, match="non-numeric dtype"):
        make_frame(np.array([["a"]]), source_uri="/x")
    fr = make_frame(np.array([[np.inf, -3.0], [np.nan, 2.0]]), source_uri="/x")
    assert fr.mask.tolist() == [[True, False], [True, False]] and fr.data[0, 1] == -3.0


def _three_page_tiff(path):
    stack = np.arange(3 * 16 * 16, dtype=np.int32).reshape(3, 16, 16)
    with tifffile.TiffWriter(path) as tw:
        for page in stack:
            tw.write(page, photometric="minisblack")
    with tifffile.TiffFile(path) as tf:
        return stack, [p.offset for p in tf.pages], [p.dataoffsets[0] for p in tf.pages]


def test_truncated_multipage_tiff_does_not_lose_its_last_page_silently(tmp_path):
    from xsgpu.io.ingest import ingest_paths

    d = tmp_path / "run1"
    d.mkdir()
    whole = d / "whole.tif"
    stack, ifds, data = _three_page_tiff(whole)
    raw = whole.read_bytes()
    (d / "cut_ifd.tif").write_bytes(raw[:ifds[2]])  # the chain points past the end: tifffile sees 2 pages
    (d / "cut_data.tif").write_bytes(raw[:data[2] + 100])  # page 2's directory intact, its pixels cut
    with pytest.raises(CorruptFileError, match=r"cut_ifd.tif: the TIFF's page chain is broken after page 1: the "
                                               r"next-page pointer points to offset [\d,]+ \(the file has"):
        scan_file(d / "cut_ifd.tif")
    with pytest.raises(CorruptFileError, match="page chain is broken"):
        list(read_any(d / "cut_ifd.tif"))
    assert count_frames(d / "cut_data.tif") == 3
    store = ingest_paths([d], tmp_path / "out", size=8, partition_size=8, progress=False)
    samples = store.samples.read().set_index(["source_uri", "frame"])
    assert samples.loc[(str(d / "cut_data.tif"), 2), "valid"] == False  # noqa: E712 - a numpy bool
    assert samples.loc[(str(d / "cut_data.tif"), 1), "valid"] == True  # noqa: E712
    errors = store.read_errors().set_index("source_uri")
    assert errors.loc[str(d / "cut_ifd.tif"), "frame"] == -1
    assert errors.loc[str(d / "cut_data.tif"), "frame"] == 2
    assert str(d / "whole.tif") not in errors.index
    np.testing.assert_array_equal(np.stack([f.data for f in read_any(whole)]), stack.astype(np.float32))


def test_cbf_cut_before_its_binary_section_is_corrupt_not_a_hang(tmp_path):
    import fabio.cbfimage

    whole = tmp_path / "whole.cbf"
    fabio.cbfimage.CbfImage(data=np.arange(12 * 16, dtype=np.int32).reshape(12, 16)).write(str(whole))
    raw = whole.read_bytes()
    cut = tmp_path / "cut.cbf"
    cut.write_bytes(raw[:raw.index(b"\x0c\x1a\x04\xd5")])  # fabio would read past the end forever
    with pytest.raises(CorruptFileError, match="cut.cbf: a CBF file without its binary section"):
        scan_file(cut)
    with pytest.raises(CorruptFileError, match="without its binary section"):
        next(read_any(cut))
    assert count_frames(whole) == 1


def test_float64_beyond_float32_range_is_masked_not_inf():
    f = make_frame(np.array([[1.0, 1e300], [-1e300, 2.0]]), source_uri="/d/x.npy")
    assert f.mask.tolist() == [[False, True], [True, False]] and np.isfinite(f.data).all()
    assert f.metadata["n_overflow_pixels"] == 2
