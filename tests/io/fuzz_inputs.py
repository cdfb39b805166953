"""Seeded fuzzer of reader inputs, run by ``test_fuzz_readers.py`` in a child process under RLIMIT_AS.

``python tests/io/fuzz_inputs.py WORKDIR SEED`` writes malformed files of every supported format
(headers declaring huge or inconsistent shapes, truncations, flipped bytes, overwritten integers),
feeds each to :func:`xsgpu.io.scan_file` and :func:`xsgpu.io.read_any` with small
:class:`~xsgpu.io.limits.FrameLimits`, and prints one JSON object per case:
``{"case", "format", "kind", "outcome", "detail"}`` where outcome is ``frames`` (with the shapes read),
``reader_error`` (a :class:`~xsgpu.io.frame.ReaderError`; ``detail`` is its class), or a failure:
``unexpected`` (any other exception), ``memory`` (MemoryError: a huge allocation was attempted) or
``timeout``. The address-space limit is set after the imports, to what they use plus ``--budget-mib``.
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import random
import re
import resource
import signal
import struct
import sys
import zipfile
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

#: the limits the readers get here (small, so that "within the limit" frames are cheap)
MAX_FRAME_PIXELS = 2048 * 2048
MAX_FRAMES = 10_000
CASE_SECONDS = 10


# ------------------------------------------------------------------------------------------ base files
def tiff_bytes(rng: np.random.Generator, pages: int = 2) -> bytes:
    import tifffile

    buf = io.BytesIO()
    with tifffile.TiffWriter(buf) as tw:
        for _ in range(pages):
            tw.write(rng.integers(-2, 1000, (16, 12)).astype(np.int32), photometric="minisblack")
    return buf.getvalue()


def patch_tiff_tags(raw: bytes, values: dict[int, int]) -> bytes:
    """Set tags of the first IFD (classic little-endian TIFF) to LONG values."""
    buf = bytearray(raw)
    ifd = struct.unpack_from("<I", buf, 4)[0]
    (n,) = struct.unpack_from("<H", buf, ifd)
    for k in range(n):
        entry = ifd + 2 + 12 * k
        code = struct.unpack_from("<H", buf, entry)[0]
        if code in values:
            struct.pack_into("<HHII", buf, entry, code, 4, 1, values[code] & 0xFFFFFFFF)
    return bytes(buf)


def h5_file(path: Path, shape: tuple[int, ...], *, write: bool, chunks: bool = True, mat: bool = False) -> None:
    import h5py

    kw = {"userblock_size": 512} if mat else {}
    with h5py.File(path, "w", **kw) as f:
        name = "detector_image" if mat else "entry/data/data"
        ck = (1,) * (len(shape) - 2) + tuple(min(s, 64) for s in shape[-2:]) if chunks else None
        ds = f.create_dataset(name, shape=shape, dtype="uint16", chunks=ck)
        if write:  # one small corner of the first frame: a single chunk is stored
            ds[(0,) * (len(shape) - 2) + (slice(0, 4), slice(0, 4))] = 7
    if mat:
        with open(path, "r+b") as fh:
            fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 .".ljust(128, b" "))


def npy_header(shape: tuple[int, ...], descr: str = "<u2") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def npz_bytes(members: dict[str, bytes], compress: bool = True) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name + ".npy", data)
    return buf.getvalue()


def npz_bomb(path: Path, shape: tuple[int, int, int]) -> None:
    """An honest, highly compressed member: ``shape`` uint8 zeros (hundreds of MiB inflated, ~1 MiB on disk)."""
    head = npy_header(shape, "|u1")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("data.npy", "w", force_zip64=True) as fh:
            fh.write(head)
            block = bytes(1 << 24)
            left = int(np.prod(shape))
            while left:
                n = min(left, len(block))
                fh.write(block[:n])
                left -= n


def mat5_bytes(rng: np.random.Generator) -> bytes:
    import scipy.io

    buf = io.BytesIO()
    scipy.io.savemat(buf, {"detector_image": rng.random((12, 10))}, do_compression=False)
    return buf.getvalue()


def edf_bytes(dim1: int, dim2: int, payload: int, nframes_hdr: str = "") -> bytes:
    header = (f"{{\nHeaderID = EH:000001:000000:000000 ;\nImage = 1 ;\nByteOrder = LowByteFirst ;\n"
              f"DataType = UnsignedShort ;\nDim_1 = {dim1} ;\nDim_2 = {dim2} ;\nSize = {dim1 * dim2 * 2} ;\n"
              f"{nframes_hdr}").encode()
    return header.ljust(510, b" ") + b"}\n" + bytes(payload)


def cbf_bytes(rng: np.random.Generator, work: Path) -> bytes:
    import fabio.cbfimage

    path = work / "base.cbf"
    fabio.cbfimage.CbfImage(data=rng.integers(-2, 1000, (16, 12)).astype(np.int32)).write(str(path))
    return path.read_bytes()


def png_bytes(rng: np.random.Generator) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (16, 12), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def patch_png_size(raw: bytes, width: int, height: int) -> bytes:
    buf = bytearray(raw)
    struct.pack_into(">II", buf, 16, width & 0xFFFFFFFF, height & 0xFFFFFFFF)
    struct.pack_into(">I", buf, 29, zlib.crc32(bytes(buf[12:29])) & 0xFFFFFFFF)
    return bytes(buf)


# ------------------------------------------------------------------------------------------ mutations
def truncate(raw: bytes, rnd: random.Random) -> bytes:
    return raw[:rnd.randrange(1, len(raw))]


def flip(raw: bytes, rnd: random.Random, window: int = 512) -> bytes:
    buf = bytearray(raw)
    for _ in range(rnd.randint(1, 8)):
        i = rnd.randrange(min(window, len(buf)))
        buf[i] = rnd.randrange(256)
    return bytes(buf)


def big_int(raw: bytes, rnd: random.Random, window: int = 512) -> bytes:
    buf = bytearray(raw)
    for _ in range(rnd.randint(1, 3)):
        i = rnd.randrange(max(1, min(window, len(buf)) - 4))
        value = rnd.choice([2**16 - 1, 2**20, 2**24 + 3, 2**31 - 1, 2**32 - 1, rnd.randrange(2**32)])
        buf[i:i + 4] = struct.pack(rnd.choice(["<I", ">I"]), value)
    return bytes(buf)


RANDOM_MUTATIONS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "truncate": truncate, "flip": flip, "big_int": big_int}


# ------------------------------------------------------------------------------------------ cases
def build_cases(work: Path, seed: int, n_random: int) -> list[tuple[str, str, str, Path]]:
    """Write every case; returns (case id, format, kind, path)."""
    rng = np.random.default_rng(seed)
    rnd = random.Random(seed)
    cases: list[tuple[str, str, str, Path]] = []

    def add(fmt: str, kind: str, ext: str, data: bytes | None = None, writer: Callable[[Path], None] | None = None):
        path = work / f"c{len(cases):04d}_{fmt}_{kind}.{ext}"
        if writer is not None:
            writer(path)
        else:
            path.write_bytes(data)
        cases.append((path.stem, fmt, kind, path))

    huge = [(20000, 20000), (100000, 100000), (1, 2**31 - 1), (65535, 65535), (4096, 4096)]
    # TIFF
    base_tiff = tiff_bytes(rng)
    for w, h in huge:
        add("tiff", "declared_huge", "tif", patch_tiff_tags(base_tiff, {256: w, 257: h}))
    add("tiff", "huge_strip_count", "tif", patch_tiff_tags(base_tiff, {279: 2**31}))
    add("tiff", "strip_offset_past_end", "tif", patch_tiff_tags(base_tiff, {273: 2**31}))
    # HDF5 and MATLAB v7.3
    for shape in [(1, 20000, 20000), (10**6, 1000, 1000), (3, 65535, 65535), (2**31, 8, 8)]:
        add("hdf5", "declared_huge", "h5", writer=lambda p, s=shape: h5_file(p, s, write=False))
        add("hdf5", "declared_huge_partly_written", "h5", writer=lambda p, s=shape: h5_file(p, s, write=True))
    add("hdf5", "contiguous_unallocated", "h5",
        writer=lambda p: h5_file(p, (2, 30000, 30000), write=False, chunks=False))
    add("mat", "v73_declared_huge", "mat", writer=lambda p: h5_file(p, (30000, 30000), write=True, mat=True))
    # npy / npz
    for shape in [(10**6, 1000, 1000), (20000, 20000), (10**12,), (5, 3000, 3000), (2**40, 2, 2)]:
        add("npy", "declared_huge", "npy", npy_header(shape))
        add("npz", "declared_huge", "npz", npz_bytes({"data": npy_header(shape) + bytes(64)}))
    add("npz", "inflates_to_640MiB", "npz", writer=lambda p: npz_bomb(p, (160, 2048, 2048)))
    # MATLAB v5: the dimensions sub-element of the first variable sits at byte 160 (uncompressed)
    base_mat = mat5_bytes(rng)
    for a, b in [(30000, 30000), (2**31 - 1, 2), (100000, 100000)]:
        buf = bytearray(base_mat)
        struct.pack_into("<ii", buf, 160, a, b)
        add("mat", "v5_declared_huge", "mat", bytes(buf))
    # EDF / CBF (fabio)
    for d1, d2 in huge:
        add("fabio", "edf_declared_huge", "edf", edf_bytes(d1, d2, 512))
    add("fabio", "edf_many_frames", "edf", edf_bytes(16, 12, 384) * 3)
    base_cbf = cbf_bytes(rng, work)
    for w, h in huge:
        text = re.sub(rb"X-Binary-Size-Fastest-Dimension: *\d+", b"X-Binary-Size-Fastest-Dimension: %d" % w, base_cbf)
        text = re.sub(rb"X-Binary-Size-Second-Dimension: *\d+", b"X-Binary-Size-Second-Dimension: %d" % h, text)
        add("fabio", "cbf_declared_huge", "cbf", text)
    # pictures
    base_png = png_bytes(rng)
    for w, h in huge:
        add("picture", "png_declared_huge", "png", patch_png_size(base_png, w, h))

    bases = {"tiff": (base_tiff, "tif"), "npy": (npy_bytes(rng.integers(0, 9, (2, 16, 12)).astype(np.int32)), "npy"),
             "npz": (npz_bytes({"data": npy_bytes(rng.random((2, 16, 12)))}), "npz"), "mat": (base_mat, "mat"),
             "fabio": (base_cbf, "cbf"), "picture": (base_png, "png"),
             "edf": (edf_bytes(16, 12, 384), "edf")}
    h5_base = work / "base.h5"
    with __import__("h5py").File(h5_base, "w") as f:
        f.create_dataset("entry/data/data", data=rng.integers(0, 9, (2, 16, 12)).astype(np.uint16), chunks=(1, 16, 12))
    bases["hdf5"] = (h5_base.read_bytes(), "h5")
    for fmt, (raw, ext) in bases.items():
        for k in range(n_random):
            name = rnd.choice(sorted(RANDOM_MUTATIONS))
            add("fabio" if fmt == "edf" else fmt, f"random_{name}", ext, RANDOM_MUTATIONS[name](raw, rnd))
    return cases


# ------------------------------------------------------------------------------------------ run
class CaseTimeout(BaseException):
    """Raised by the alarm; a BaseException, so no ``except Exception`` in a reader can swallow it."""


def _timeout(signum, frame):  # noqa: ARG001 - signal handler signature
    raise CaseTimeout(f"case took more than {CASE_SECONDS} s")


def run_case(path: Path) -> tuple[str, str]:
    from xsgpu.io import read_any, scan_file
    from xsgpu.io.frame import ReaderError
    from xsgpu.io.limits import FrameLimits

    limits = FrameLimits(max_frame_pixels=MAX_FRAME_PIXELS, max_frames_per_file=MAX_FRAMES)
    signal.alarm(CASE_SECONDS)
    try:
        info = scan_file(path, limits=limits)
        frames = list(read_any(path, frames=range(min(info.n_frames, 2)), limits=limits))
        return "frames", json.dumps([list(f.shape) for f in frames])
    except ReaderError as exc:
        return "reader_error", type(exc).__name__
    except MemoryError as exc:
        return "memory", repr(exc)[:300]
    except CaseTimeout as exc:
        return "timeout", str(exc)
    except Exception as exc:  # noqa: BLE001 - what the fuzzer is looking for
        return "unexpected", f"{type(exc).__name__}: {exc}"[:300]
    finally:
        signal.alarm(0)


def _vm_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work", type=Path)
    ap.add_argument("seed", type=int)
    ap.add_argument("--random-per-format", type=int, default=12)
    ap.add_argument("--budget-mib", type=int, default=512)
    args = ap.parse_args(argv)
    logging.disable(logging.CRITICAL)  # fabio and tifffile log every malformed header
    import fabio  # noqa: F401 - import everything before measuring the address space
    import h5py  # noqa: F401
    import hdf5plugin  # noqa: F401
    import PIL.Image  # noqa: F401
    import scipy.io  # noqa: F401
    import tifffile  # noqa: F401

    import xsgpu.io.readers.arrays  # noqa: F401
    import xsgpu.io.readers.fabioformats  # noqa: F401
    import xsgpu.io.readers.hdf5  # noqa: F401
    import xsgpu.io.readers.matlab  # noqa: F401
    import xsgpu.io.readers.picture  # noqa: F401
    import xsgpu.io.readers.tiff  # noqa: F401

    args.work.mkdir(parents=True, exist_ok=True)
    cases = build_cases(args.work, args.seed, args.random_per_format)
    signal.signal(signal.SIGALRM, _timeout)
    limit = _vm_bytes() + args.budget_mib * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    for case, fmt, kind, path in cases:
        outcome, detail = run_case(path)
        print(json.dumps({"case": case, "format": fmt, "kind": kind, "outcome": outcome, "detail": detail}),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
