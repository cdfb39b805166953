"""Write tiny example files in every supported format, with the frames a reader must return.

Used by the tests, the docs' worked example and anyone checking an installation
(``python -m xsgpu.io.readers.examples DIR``). Every file is a few kilobytes.

Examples
--------
>>> import tempfile
>>> from xsgpu.io.readers.examples import write_example_files
>>> files = write_example_files(tempfile.mkdtemp())
>>> sorted({f.format for f in files})
['fabio', 'hdf5', 'mat', 'npy', 'npz', 'picture', 'tiff']
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["ExampleFile", "write_example_files", "write_mat73"]


@dataclass
class ExampleFile:
    """One written file and what reading it must give.

    Attributes
    ----------
    path : Path
    format : str
        Reader key expected from :func:`xsgpu.io.detect_format`.
    data : ndarray of float32, shape (n_frames, H, W)
        Expected ``Frame.data`` (0 at masked pixels); approximate for JPEG.
    mask : ndarray of bool, shape (n_frames, H, W)
        Expected ``Frame.mask``.
    quantitative : bool
    exact : bool
        False where the format is lossy (JPEG).
    """

    path: Path
    format: str
    data: np.ndarray
    mask: np.ndarray
    quantitative: bool = True
    exact: bool = True

    @property
    def n_frames(self) -> int:
        return int(self.data.shape[0])


def _expect(raw: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = np.asarray(raw, dtype=np.float32).copy()
    out[mask] = 0
    return out


def write_mat73(path: str | os.PathLike, variables: dict[str, np.ndarray]) -> None:
    """Write a MATLAB v7.3-style file: 512-byte text header, then HDF5 with column-major (reversed) arrays."""
    import h5py

    with h5py.File(path, "w", userblock_size=512) as f:
        for name, arr in variables.items():
            ds = f.create_dataset(name, data=np.ascontiguousarray(np.asarray(arr).T))
            ds.attrs["MATLAB_class"] = np.bytes_("double" if np.asarray(arr).dtype.kind == "f" else "uint32")
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Thu Jan  1 00:00:00 2026 HDF5 schema 1.00 ."
    with open(path, "r+b") as fh:
        fh.write(header.ljust(128, b" "))


def write_example_files(directory: str | os.PathLike, *, seed: int = 0,
                        shape: tuple[int, int] = (24, 32)) -> list[ExampleFile]:
    """Write one small file per supported format (and variant) into ``directory``.

    Parameters
    ----------
    directory : path
        Created if missing.
    seed : int
        Seed of the random counts.
    shape : (H, W)
        Frame shape (H >= 4, W >= 4).

    Returns
    -------
    list of ExampleFile
        Pilatus int32 TIFF (gaps -1, bad pixel -2), a 2-page uint16 TIFF, an 8-bit TIFF picture, an Eiger
        HDF5 with 3 bitshuffle-LZ4 frames and a pixel mask, a NeXus NXdata file with NaN, EDF, miniCBF,
        .npy, .npz, MATLAB v5 and v7.3, PNG and JPEG.
    """
    import fabio.cbfimage
    import fabio.edfimage
    import h5py
    import hdf5plugin
    import scipy.io
    import tifffile
    from PIL import Image

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    h, w = shape
    out: list[ExampleFile] = []
    none = np.zeros((1, h, w), dtype=bool)

    def counts(n: int = 1, hi: int = 1000, dtype=np.int32) -> np.ndarray:
        return rng.integers(0, hi, size=(n, h, w)).astype(dtype)

    # Pilatus 32-bit TIFF: a gap row (-1) and a bad pixel (-2), header in ImageDescription
    pil = counts()
    pil[0, h // 2, :] = -1
    pil[0, 1, 2] = -2
    desc = ("# Detector: PILATUS 300K, S/N 3-0101\r\n# Pixel_size 172e-6 m x 172e-6 m\r\n"
            "# Exposure_time 0.0970000 s\r\n")
    tifffile.imwrite(d / "pilatus.tif", pil[0], description=desc, metadata=None)
    out.append(ExampleFile(d / "pilatus.tif", "tiff", _expect(pil, pil < 0), pil < 0))

    stack = counts(2, 60000, np.uint16)
    tifffile.imwrite(d / "stack.tif", stack, metadata=None)
    out.append(ExampleFile(d / "stack.tif", "tiff", _expect(stack, np.zeros_like(stack, bool)),
                           np.zeros_like(stack, bool)))

    pic8 = counts(1, 255, np.uint8)
    tifffile.imwrite(d / "picture8.tif", pic8[0], metadata=None)
    out.append(ExampleFile(d / "picture8.tif", "tiff", _expect(pic8, none), none, quantitative=False))

    # Eiger: entry/data/data (3, H, W) uint32, bitshuffle-LZ4, pixel mask, a 2**32-1 dead pixel
    eig = counts(3, 5000, np.uint32)
    eig[1, 0, 0] = np.iinfo(np.uint32).max
    pmask = np.zeros((h, w), dtype=np.uint32)
    pmask[:, w // 3] = 1
    emask = np.broadcast_to(pmask != 0, eig.shape).copy()
    emask[1, 0, 0] = True
    with h5py.File(d / "eiger_master.h5", "w") as f:
        f.create_dataset("entry/data/data", data=eig, chunks=(1, h, w), **hdf5plugin.Bitshuffle(cname="lz4"))
        f.create_dataset("entry/instrument/detector/detectorSpecific/pixel_mask", data=pmask)
        f.create_dataset("entry/instrument/detector/x_pixel_size", data=75e-6)
    out.append(ExampleFile(d / "eiger_master.h5", "hdf5", _expect(eig, emask), emask))

    # NeXus NXdata with a signal attribute, float32 with a NaN
    nx = rng.random((1, h, w)).astype(np.float32) * 100
    nx[0, 2, 3] = np.nan
    with h5py.File(d / "saxs.nxs", "w") as f:
        g = f.create_group("scan/plot")
        g.attrs["NX_class"] = "NXdata"
        g.attrs["signal"] = "counts"
        g.create_dataset("counts", data=nx[0])
        f.create_dataset("scan/monitor", data=np.arange(10.0))
    out.append(ExampleFile(d / "saxs.nxs", "hdf5", _expect(nx, np.isnan(nx)), np.isnan(nx)))

    edf = (rng.random((1, h, w)) * 1e4).astype(np.float32)
    fabio.edfimage.EdfImage(data=edf[0], header={"Title": "example", "ExposureTime": "1.0"}).write(
        str(d / "frame.edf"))
    out.append(ExampleFile(d / "frame.edf", "fabio", _expect(edf, none), none))

    cbf = counts()
    cbf[0, :, 0] = -1
    cbf[0, 3, 3] = -2
    fabio.cbfimage.CbfImage(data=cbf[0]).write(str(d / "pilatus.cbf"))
    out.append(ExampleFile(d / "pilatus.cbf", "fabio", _expect(cbf, cbf < 0), cbf < 0))

    npy = rng.random((1, h, w)) * 50
    np.save(d / "image.npy", npy[0])
    out.append(ExampleFile(d / "image.npy", "npy", _expect(npy, none), none))

    npz = counts(2, 100, np.uint16)
    np.savez(d / "stack.npz", data=npz, energy_kev=np.float64(8.9))
    out.append(ExampleFile(d / "stack.npz", "npz", _expect(npz, np.zeros_like(npz, bool)),
                           np.zeros_like(npz, bool)))

    mat5 = counts(1, 2**20, np.float64)
    scipy.io.savemat(d / "synthetic_v5.mat", {"detector_image": mat5[0], "labels": np.ones((1, 17))})
    out.append(ExampleFile(d / "synthetic_v5.mat", "mat", _expect(mat5, none), none))

    mat73 = counts(1, 2**20, np.float64)
    write_mat73(d / "synthetic_v73.mat", {"detector_image": mat73[0]})
    out.append(ExampleFile(d / "synthetic_v73.mat", "mat", _expect(mat73, none), none))

    png = counts(1, 255, np.uint8)
    Image.fromarray(png[0]).save(d / "picture.png")
    out.append(ExampleFile(d / "picture.png", "picture", _expect(png, none), none, quantitative=False))

    rgb = np.repeat(counts(1, 255, np.uint8)[0][..., None], 3, axis=2)
    Image.fromarray(rgb).save(d / "photo.jpg", quality=95)
    out.append(ExampleFile(d / "photo.jpg", "picture", _expect(rgb[None, ..., 0], none), none,
                           quantitative=False, exact=False))
    return out


if __name__ == "__main__":  # pragma: no cover
    target = sys.argv[1] if len(sys.argv) > 1 else "example_files"
    for ex in write_example_files(target):
        sys.stdout.write(f"{ex.path}  {ex.format}  {ex.n_frames} frame(s)\n")
