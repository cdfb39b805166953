"""Input limits (issue 15 item 1): a tiny file declaring a huge shape is refused from its header.

Every check here runs on header reads only (scan, plan), so it is safe in the test process even where
the limit is missing; reading such frames is exercised under a memory limit in ``test_fuzz_readers.py``.
"""
from __future__ import annotations

import struct
import zipfile

import numpy as np
import pytest

from xsgpu.io import read_any, scan_file
from xsgpu.io.frame import CorruptFileError, FrameLimitError
from xsgpu.io.ingest import plan_ingest
from xsgpu.io.limits import DEFAULT_LIMITS, FrameLimits


def write_huge_h5(path, shape=(1, 20000, 20000)):
    """An HDF5 file of ~3.4 KB declaring ``shape`` with no chunk written (the issue's example)."""
    import h5py

    with h5py.File(path, "w") as f:
        f.create_dataset("entry/data/data", shape=shape, dtype="uint16",
                         chunks=(1,) + tuple(min(s, 256) for s in shape[1:]))


def patch_tiff_size(raw: bytes, width: int, height: int) -> bytes:
    """A little-endian classic TIFF with the first page's ImageWidth/ImageLength set to LONG values."""
    buf = bytearray(raw)
    assert buf[:4] == b"II*\x00"
    ifd = struct.unpack_from("<I", buf, 4)[0]
    (n,) = struct.unpack_from("<H", buf, ifd)
    for k in range(n):
        entry = ifd + 2 + 12 * k
        code = struct.unpack_from("<H", buf, entry)[0]
        if code in (256, 257):
            struct.pack_into("<HHII", buf, entry, code, 4, 1, width if code == 256 else height)
    return bytes(buf)


def write_huge_tiff(path, width=100_000, height=100_000):
    import tifffile

    small = path.with_suffix(".small.tif")
    tifffile.imwrite(small, np.ones((8, 8), np.int32))
    path.write_bytes(patch_tiff_size(small.read_bytes(), width, height))
    small.unlink()


def write_npy_header(path, shape, descr="<u1"):
    """A ``.npy`` that is a header only (a few hundred bytes) declaring ``shape``."""
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": descr, "fortran_order": False, "shape": tuple(shape)})


def test_limits_validate_their_parameters():
    with pytest.raises(ValueError, match="'max_frame_pixels' parameter of FrameLimits must be an int >= 1. Got 0"):
        FrameLimits(max_frame_pixels=0)
    assert DEFAULT_LIMITS.max_frame_pixels == 8192 * 8192 and DEFAULT_LIMITS.max_frames_per_file == 100_000


def test_tiny_hdf5_declaring_a_huge_frame_is_refused_from_its_header(tmp_path):
    p = tmp_path / "big.h5"
    write_huge_h5(p)
    assert p.stat().st_size < 8192
    with pytest.raises(FrameLimitError, match=r"big.h5: declares frames .*\(1, 20000, 20000\).* of shape "
                                              r"\(20000, 20000\) = 400,000,000 pixels.*max_frame_pixels = "
                                              r"67,108,864.*--max-frame-pixels"):
        scan_file(p)
    with pytest.raises(FrameLimitError, match="max_frame_pixels"):
        next(read_any(p))


def test_hdf5_with_no_chunk_written_is_corrupt_not_zeros(tmp_path):
    p = tmp_path / "unwritten.h5"
    write_huge_h5(p, shape=(2, 64, 64))
    with pytest.raises(CorruptFileError, match=r"unwritten.h5: dataset 'entry/data/data' declares shape "
                                               r"\(2, 64, 64\) but holds no data"):
        scan_file(p)


def test_tiff_header_claiming_100000_squared_is_refused(tmp_path):
    p = tmp_path / "claim.tif"
    write_huge_tiff(p)
    assert p.stat().st_size < 2048
    with pytest.raises(FrameLimitError, match=r"claim.tif: declares page 0 of shape \(100000, 100000\) = "
                                              r"10,000,000,000 pixels"):
        scan_file(p)
    with pytest.raises(FrameLimitError):
        next(read_any(p))


def test_npy_header_claiming_1e12_elements_plans_nothing(tmp_path):
    p = tmp_path / "claim.npy"
    write_npy_header(p, (1_000_000, 1000, 1000))
    assert p.stat().st_size < 256
    with pytest.raises(FrameLimitError, match=r"claim.npy: declares 1,000,000 frames \(declared shape "
                                              r"\(1000000, 1000, 1000\)\), above the limit max_frames_per_file"):
        scan_file(p)
    # within both limits, the header still declares far more bytes than the file holds
    q = tmp_path / "short.npy"
    write_npy_header(q, (10, 1000, 1000))
    with pytest.raises(CorruptFileError, match=r"short.npy: the array declares shape \(10, 1000, 1000\) of uint8 "
                                               r"\(10,000,000 bytes of data\), but only 0 bytes follow the header"):
        scan_file(q)


def test_npz_member_declaring_more_than_it_holds_is_corrupt(tmp_path):
    p = tmp_path / "claim.npz"
    head = tmp_path / "h.npy"
    write_npy_header(head, (4, 512, 512))
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("data.npy", head.read_bytes() + b"\x00" * 100)
    with pytest.raises(CorruptFileError, match=r"array 'data' declares shape \(4, 512, 512\)"):
        scan_file(p)


def test_limits_are_configurable_and_frames_within_them_read(tmp_path):
    p = tmp_path / "stack.npy"
    np.save(p, np.ones((3, 40, 50), np.uint16))
    assert scan_file(p).n_frames == 3
    with pytest.raises(FrameLimitError, match=r"\(40, 50\) = 2,000 pixels, above the limit max_frame_pixels = 1,999"):
        scan_file(p, limits=FrameLimits(max_frame_pixels=1999))
    with pytest.raises(FrameLimitError, match="declares 3 frames"):
        scan_file(p, limits=FrameLimits(max_frames_per_file=2))
    assert [f.shape for f in read_any(p, limits=FrameLimits(max_frame_pixels=2000))] == [(40, 50)] * 3


def test_npz_frames_are_streamed_one_at_a_time(tmp_path):
    p = tmp_path / "z.npz"
    stack = np.arange(5 * 6 * 7, dtype=np.int32).reshape(5, 6, 7)
    np.savez_compressed(p, data=stack, fortran=np.asfortranarray(stack[0]))
    got = [f.data for f in read_any(p, h5_dataset="data", frames=[4, 1, 2])]
    np.testing.assert_array_equal(np.stack(got), stack[[4, 1, 2]].astype(np.float32))
    np.testing.assert_array_equal(next(read_any(p, h5_dataset="fortran")).data, stack[0].astype(np.float32))


def test_ingest_records_an_error_row_naming_file_shape_and_setting(tmp_path):
    d = tmp_path / "run1"
    d.mkdir()
    write_huge_h5(d / "big.h5")
    write_huge_tiff(d / "claim.tif")
    write_npy_header(d / "claim.npy", (1_000_000, 1000, 1000))
    np.save(d / "good.npy", np.ones((2, 16, 16), np.float32))
    store = plan_ingest([d], tmp_path / "out", size=8, partition_size=4, progress=False)
    assert store.n_samples == 2  # the batch goes on: only good.npy is planned
    errors = store.read_errors().set_index("source_uri")
    assert set(errors.index) == {str(d / n) for n in ("big.h5", "claim.tif", "claim.npy")}
    assert set(errors["error_type"]) == {"FrameLimitError"}
    big = errors.loc[str(d / "big.h5"), "message"]
    assert "(20000, 20000)" in big and "max_frame_pixels" in big and str(d / "big.h5") in big
    assert store.manifest["params"]["ingest"]["max_frame_pixels"] == 8192 * 8192

    small = plan_ingest([d / "good.npy"], tmp_path / "out2", size=8, progress=False, max_frame_pixels=100)
    assert small.n_samples == 0 and small.read_errors()["error_type"].tolist() == ["FrameLimitError"]



def test_cli_option_sets_the_limit(tmp_path):
    from click.testing import CliRunner

    from workflows.cli import main

    d = tmp_path / "run1"
    d.mkdir()
    np.save(d / "a.npy", np.ones((16, 16), np.float32))
    np.save(d / "b.npy", np.ones((8, 8), np.float32))
    res = CliRunner().invoke(main, ["ingest", str(d), "--out", str(tmp_path / "out"), "--size", "8",
                                    "--max-frame-pixels", "100", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "Ingested 1 samples" in res.output and "1 error rows" in res.output
    assert "--max-frame-pixels" in CliRunner().invoke(main, ["ingest", "--help"]).output


def test_resume_refuses_other_limits_and_accepts_runs_planned_before_them(tmp_path):
    import json

    d = tmp_path / "run1"
    d.mkdir()
    np.save(d / "a.npy", np.ones((2, 16, 16), np.float32))
    store = plan_ingest([d], tmp_path / "out", size=8, partition_size=1, progress=False)
    with pytest.raises(Exception, match=r"other options .*'max_frame_pixels': \(67108864, 100\)"):
        plan_ingest([d], tmp_path / "out", size=8, partition_size=1, progress=False, max_frame_pixels=100)
    manifest = json.loads(store.manifest_path.read_text())
    for key in ("max_frame_pixels", "max_frames_per_file"):  # a run planned before the limits existed
        del manifest["params"]["ingest"][key]
    store.manifest_path.write_text(json.dumps(manifest))
    assert plan_ingest([d], tmp_path / "out", size=8, partition_size=1, progress=False).n_samples == 2


def test_frames_of_a_partly_written_hdf5_are_errors_not_zeros(tmp_path):
    import h5py

    p = tmp_path / "part.h5"
    with h5py.File(p, "w") as f:
        ds = f.create_dataset("entry/data/data", shape=(3, 64, 64), dtype="uint16", chunks=(1, 32, 64))
        ds[0] = 5
        ds[1, :32] = 3  # frame 1 half written, frame 2 never
    assert scan_file(p).n_frames == 3
    assert next(read_any(p, frames=[0])).data.max() == 5
    for frame, missing in ((1, "1 of 2"), (2, "2 of 2")):
        with pytest.raises(CorruptFileError, match=rf"part.h5: frame {frame} \(dataset 'entry/data/data', index "
                                                   rf"{frame}\) has {missing} chunk\(s\) never written"):
            next(read_any(p, frames=[frame]))
