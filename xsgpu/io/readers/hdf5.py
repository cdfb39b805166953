"""HDF5 / NeXus (h5py + hdf5plugin): Eiger master and data files, NXdata, any image dataset.

Which dataset holds the frames (first rule that applies):

1. the one named by ``dataset`` (``--h5-dataset``), e.g. ``entry/instrument/detector/data``;
2. ``entry/data/data`` (Eiger data files, most NeXus writers);
3. ``entry/data/data_000001``, ``data_000002`` ... in order (an Eiger *master* file whose data live in
   externally linked files; the frames of all parts are concatenated);
4. the ``signal`` of the first ``NXdata`` group (NeXus ``NX_class`` attributes), visited in name order;
5. the only image-like dataset: numeric (integer or float), >= 2 dimensions, its name not containing
   ``mask`` (bool datasets and masks beside the image do not count); among several, the largest (a
   stack beside a dark or flat-field frame); several equally large ones are refused, listing them
   (name one with ``--h5-dataset``).

The standard header fields (exposure time, timestamp, sample name, wavelength/energy, distance, beam
centre; :mod:`xsgpu.io.readers.headers`) are read from the NeXus ``NXdetector``, ``NXmonochromator``,
``NXbeam``, ``NXsample`` and ``NXentry`` groups (their ``units`` attributes honoured) into
``metadata["hdr"]``.

A mask dataset beside the image (bool or integer, its name containing ``mask``, shaped like one frame
or like the whole stack; exactly one such) is applied with the detector convention that non-zero marks
an invalid pixel, as in :mod:`xsgpu.io.readers.arrays`; its path is in the frame metadata
(``mask_key``).

A 2-D dataset is one frame, a 3-D one a stack (N, H, W); anything else is a :class:`FrameShapeError`.
Eiger conventions are applied when the file has the Eiger layout (rule 2/3, or a
``detectorSpecific/pixel_mask``): the pixel mask (non-zero = invalid) is applied and the top value of
an unsigned dtype (2**16-1 / 2**32-1, Eiger's gap/dead marker) is masked. Importing ``hdf5plugin``
registers bitshuffle-LZ4 and the other filters Eiger files use.

Before any pixel is read, every part's declared frame shape and the total frame count are checked
against :class:`~xsgpu.io.limits.FrameLimits`, and a dataset that holds no data at all (storage size 0:
its chunks were never written, so every frame would read as the fill value) is a
:class:`~xsgpu.io.frame.CorruptFileError`; in a partly written dataset, each frame with an unwritten
chunk is one when it is read (the other frames are read).
"""
from __future__ import annotations

import os
import re
from typing import Any, Iterable, Iterator

import numpy as np

from xsgpu.io.frame import CorruptFileError, DatasetNotFoundError, Frame, make_frame
from xsgpu.io.limits import DEFAULT_LIMITS, FrameLimits
from xsgpu.io.readers._common import FileInfo, header_dict, is_mask_name, select_frames, stack_length, warn_if_inverted
from xsgpu.io.readers.headers import guarded_header, standard_header

__all__ = ["scan_hdf5", "read_hdf5", "find_image_datasets"]

_EIGER_PART = re.compile(r"^data_\d{6}$")
_PIXEL_MASK = ("entry/instrument/detector/detectorSpecific/pixel_mask", "entry/instrument/detector/pixel_mask")
_DETECTOR_FIELDS = {
    "x_pixel_size": "entry/instrument/detector/x_pixel_size",
    "y_pixel_size": "entry/instrument/detector/y_pixel_size",
    "detector_distance": "entry/instrument/detector/detector_distance",
    "beam_center_x": "entry/instrument/detector/beam_center_x",
    "beam_center_y": "entry/instrument/detector/beam_center_y",
    "count_time": "entry/instrument/detector/count_time",
    "description": "entry/instrument/detector/description",
    "wavelength": "entry/instrument/beam/incident_wavelength",
}


def _h5py():
    import h5py
    import hdf5plugin  # noqa: F401  (registers the bitshuffle/LZ4/... filters with HDF5)

    return h5py


def _is_image_dataset(h5py, obj: Any) -> bool:
    return isinstance(obj, h5py.Dataset) and obj.ndim >= 2 and obj.dtype.kind in "biuf"


def find_image_datasets(h5file: Any) -> list[str]:
    """All numeric datasets with >= 2 dimensions, largest first (used for rule 5 and in error hints)."""
    h5py = _h5py()
    found: list[tuple[int, str]] = []

    def visit(name: str, obj: Any) -> None:
        if _is_image_dataset(h5py, obj):
            found.append((int(np.prod(obj.shape, dtype=np.int64)), name))

    h5file.visititems(visit)
    return [name for _, name in sorted(found, key=lambda t: (-t[0], t[1]))]


def _nxdata_signal(h5py, f: Any) -> str | None:
    hits: list[str] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Group):
            cls = obj.attrs.get("NX_class")
            if isinstance(cls, bytes):
                cls = cls.decode()
            if cls == "NXdata":
                sig = obj.attrs.get("signal")
                if isinstance(sig, bytes):
                    sig = sig.decode()
                if isinstance(sig, str) and sig in obj and _is_image_dataset(h5py, obj[sig]):
                    hits.append(f"{name}/{sig}")

    f.visititems(visit)
    return sorted(hits)[0] if hits else None


def _locate(f: Any, path: str, dataset: str | None) -> tuple[list[str], bool]:
    """Return (dataset paths whose frames are concatenated, eiger_layout)."""
    h5py = _h5py()
    if dataset is not None:
        key = dataset.strip("/")
        if key not in f or not isinstance(f[key], h5py.Dataset):
            raise DatasetNotFoundError(
                f"{path}: the dataset {dataset!r} asked for with --h5-dataset does not exist (or is a group). "
                f"Image-like datasets in this file: {find_image_datasets(f)[:10] or 'none'}.")
        return [key], key.startswith("entry/data/")
    if "entry/data/data" in f and isinstance(f["entry/data/data"], h5py.Dataset):
        return ["entry/data/data"], True
    if "entry/data" in f and isinstance(f["entry/data"], h5py.Group):
        parts = sorted(k for k in f["entry/data"].keys() if _EIGER_PART.match(k))
        if parts:
            return [f"entry/data/{k}" for k in parts], True
    signal = _nxdata_signal(h5py, f)
    if signal is not None:
        return [signal], False
    candidates = find_image_datasets(f)
    if not candidates:
        raise DatasetNotFoundError(f"{path}: no numeric dataset with >= 2 dimensions in this HDF5 file; "
                                   "expected an image or a stack of images (e.g. entry/data/data).")
    images = [c for c in candidates if not is_mask_name(c) and f[c].dtype.kind in "iuf"]
    if not images:  # only masks / bool arrays: the largest of them is the image after all
        return [candidates[0]], False
    if len(images) > 1 and f[images[0]].size == f[images[1]].size:
        tied = [c for c in images if f[c].size == f[images[0]].size]
        raise DatasetNotFoundError(
            f"{path}: cannot tell which dataset holds the image: no entry/data/data and no NXdata signal, and "
            f"{len(tied)} equally large image-like (>= 2-D numeric, not a mask) datasets "
            f"{', '.join(f'{c} {tuple(f[c].shape)}' for c in tied[:10])}. Hint: name it with --h5-dataset PATH.")
    return [images[0]], False


def _pixel_mask(h5py, f: Any, hw: tuple[int, int]) -> np.ndarray | None:
    """The detector pixel mask, read only when its declared shape is the (already checked) frame shape."""
    for p in _PIXEL_MASK:
        if p in f and isinstance(f[p], h5py.Dataset) and tuple(f[p].shape) == tuple(hw):
            return f[p][()]
    return None


def _mask_beside(h5py, f: Any, key: str) -> str | None:
    """The one dataset named ``*mask*`` (bool/integer) shaped like a frame of ``key`` or like all of it."""
    shape = tuple(f[key].shape)
    found: list[str] = []

    def visit(name: str, obj: Any) -> None:
        if (name != key and isinstance(obj, h5py.Dataset) and is_mask_name(name) and obj.dtype.kind in "biu"
                and tuple(obj.shape) in (shape[-2:], shape)):
            found.append(name)

    f.visititems(visit)
    return found[0] if len(found) == 1 else None


def _check_written(ds: Any, path: str, key: str) -> None:
    """Refuse a dataset with no stored data (every chunk unallocated), unless it is virtual or external."""
    if ds.size == 0 or ds.is_virtual or ds.external:
        return
    if ds.id.get_storage_size() == 0:
        raise CorruptFileError(
            f"{path}: dataset {key!r} declares shape {tuple(ds.shape)} but holds no data (storage size 0: its "
            "chunks were never written), so every frame would read as the fill value. The acquisition was "
            "probably interrupted; copy the file again once it is complete.")


def _all_chunks_written(ds: Any) -> bool:
    """True when a chunked dataset stores every one of its chunks (or is not chunked / is virtual)."""
    if ds.chunks is None or ds.is_virtual or ds.size == 0:
        return True
    expected = 1
    for n, c in zip(ds.shape, ds.chunks):
        expected *= -(-int(n) // int(c))
    return int(ds.id.get_num_chunks()) >= expected


def _check_frame_chunks(ds: Any, local: int, path: str, key: str, frame: int) -> None:
    """Refuse a frame of a partly written dataset whose chunks were (in part) never written."""
    h, w = ds.shape[-2:]
    ch, cw = ds.chunks[-2:]
    lead = (local,) if ds.ndim == 3 else ()
    origins = [lead + (r, c) for r in range(0, h, ch) for c in range(0, w, cw)]
    missing = sum(ds.id.get_chunk_info_by_coord(o).byte_offset is None for o in origins)
    if missing:
        raise CorruptFileError(
            f"{path}: frame {frame} (dataset {key!r}, index {local}) has {missing} of {len(origins)} chunk(s) never "
            "written, so it would read as the fill value. The acquisition was probably interrupted; copy the "
            "file again once it is complete.")


def _layout(f: Any, path: str, dataset: str | None, limits: FrameLimits = DEFAULT_LIMITS,
            ) -> tuple[list[tuple[str, int]], bool, tuple[int, int]]:
    """Dataset paths with their frame counts, the Eiger flag and the frame shape (checked against ``limits``)."""
    keys, eiger = _locate(f, path, dataset)
    parts: list[tuple[str, int]] = []
    hw: tuple[int, int] | None = None
    for key in keys:
        ds = f[key]  # an external link to a missing file raises KeyError here
        n = stack_length(ds.shape, path, what=f"dataset {key!r}")
        limits.check_frame(ds.shape, path, what=f"frames (dataset {key!r}, shape {tuple(ds.shape)})")
        _check_written(ds, path, key)
        shape = tuple(ds.shape[-2:])
        if hw is not None and shape != hw:
            raise DatasetNotFoundError(f"{path}: the parts of the frame stack differ in frame shape "
                                       f"({hw} vs {shape} in {key!r}).")
        hw = shape  # type: ignore[assignment]
        parts.append((key, n))
    limits.check_count(sum(k for _, k in parts), path, shape=f[keys[0]].shape if len(keys) == 1 else None)
    return parts, eiger, hw  # type: ignore[return-value]


def scan_hdf5(path: str, *, dataset: str | None = None, limits: FrameLimits = DEFAULT_LIMITS) -> FileInfo:
    """Locate the frame dataset and count its frames (reads only metadata; shapes checked against ``limits``)."""
    h5py = _h5py()
    with h5py.File(path, "r") as f:
        parts, eiger, hw = _layout(f, path, dataset, limits)
        linked = []
        for key, _ in parts:
            link = f.get(key, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                linked.append(os.path.normpath(os.path.join(os.path.dirname(path), link.filename)))
    n = sum(k for _, k in parts)
    name = parts[0][0] if len(parts) == 1 else f"{parts[0][0]}..{parts[-1][0]}"
    return FileInfo(path=path, format="hdf5", n_frames=n, frame_shape=hw, dataset=name,
                    detail="eiger" if eiger else "hdf5", linked_files=tuple(dict.fromkeys(linked)))


#: NeXus groups whose scalar fields feed the standard header, by NX_class, and where they sit by convention
_NX_GROUPS = {"NXdetector": "entry/instrument/detector", "NXmonochromator": "entry/instrument/monochromator",
              "NXbeam": "entry/instrument/beam", "NXsample": "entry/sample", "NXentry": "entry"}


def _nx_class(obj: Any) -> str:
    cls = obj.attrs.get("NX_class", "")
    return cls.decode() if isinstance(cls, bytes) else str(cls)


def _nexus_header(h5py, f: Any) -> dict[str, Any]:
    """The standard header fields (:mod:`xsgpu.io.readers.headers`) from a file's NeXus groups.

    The scalar fields (and their ``units`` attributes) of every ``NXdetector``, ``NXmonochromator``,
    ``NXbeam``, ``NXsample`` and ``NXentry`` group, in that order, and of the groups at their
    conventional paths (``entry/instrument/detector`` ...) when a writer left out the ``NX_class``
    attributes; an ``NXsample``'s ``name`` is the sample name.
    """
    groups: dict[str, list[Any]] = {cls: [] for cls in _NX_GROUPS}

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Group) and _nx_class(obj) in groups:
            groups[_nx_class(obj)].append(obj)

    f.visititems(visit)
    for cls, conventional in _NX_GROUPS.items():
        if not groups[cls] and conventional in f and isinstance(f[conventional], h5py.Group):
            groups[cls].append(f[conventional])
    pairs: list[tuple[str, Any]] = []
    units: dict[str, str] = {}
    for cls, found in groups.items():
        for g in found:
            for key, ds in g.items():
                if not isinstance(ds, h5py.Dataset) or ds.size > 16:
                    continue
                name = "sample_name" if cls == "NXsample" and key == "name" else key
                if cls != "NXsample" and key == "name":
                    continue  # a detector's or an instrument's name, not the sample's
                value = header_dict([(name, ds[()])]).get(name)
                if value is None:
                    continue
                pairs.append((name, value))
                unit = ds.attrs.get("units")
                if unit is not None and name not in units:
                    units[name] = unit.decode() if isinstance(unit, bytes) else str(unit)
    return standard_header(pairs, units=units)


def _detector_metadata(h5py, f: Any) -> dict[str, Any]:
    pairs = []
    for key, p in _DETECTOR_FIELDS.items():
        if p in f and isinstance(f[p], h5py.Dataset) and f[p].size <= 16:
            pairs.append((key, f[p][()]))
    return header_dict(pairs)


def read_hdf5(path: str, *, dataset: str | None = None, frames: Iterable[int] | None = None,
              limits: FrameLimits = DEFAULT_LIMITS) -> Iterator[Frame]:
    """Yield the selected frames of the image dataset (all when ``frames`` is None)."""
    h5py = _h5py()
    with h5py.File(path, "r") as f:
        parts, eiger, hw = _layout(f, path, dataset, limits)
        total = sum(k for _, k in parts)
        chosen = select_frames(frames, total, path)
        pmask = _pixel_mask(h5py, f, hw)
        eiger = eiger or pmask is not None
        base = {"format": "hdf5", **_detector_metadata(h5py, f)}
        hdr = guarded_header(_nexus_header, h5py, f, path=path)
        if hdr:
            base["hdr"] = hdr
        if eiger:
            base["detector"] = "Eiger"
        side_key = _mask_beside(h5py, f, parts[0][0]) if not eiger and len(parts) == 1 else None
        side = f[side_key] if side_key is not None else None
        if side is not None:
            base["mask_key"] = side_key
            if side.ndim == 2:
                pmask = side[()]
        starts = np.cumsum([0] + [k for _, k in parts])
        complete: dict[str, bool] = {}
        for i in chosen:
            j = int(np.searchsorted(starts, i, side="right")) - 1
            key = parts[j][0]
            ds = f[key]
            local = i - int(starts[j])
            if key not in complete:
                complete[key] = _all_chunks_written(ds)
            if not complete[key]:
                _check_frame_chunks(ds, local, path, key, i)
            arr = ds[local] if ds.ndim == 3 else ds[()]
            meta = {**base, "dataset": key, "dataset_frame": local}
            frame_mask = side[local] if side is not None and side.ndim == 3 else pmask
            if side is not None:
                warn_if_inverted(path, side_key, np.asarray(frame_mask) != 0, i)  # type: ignore[arg-type]
            yield make_frame(arr, source_uri=path, frame=i, metadata=meta, pixel_mask=frame_mask, mask_max=eiger)
