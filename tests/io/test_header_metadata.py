"""Header metadata of real detector files (written by tifffile, fabio, h5py) kept per sample as ``hdr__*``."""
from __future__ import annotations

import fabio
import h5py
import numpy as np
import pandas as pd
import pytest
import tifffile
from fabio.cbfimage import CbfImage
from fabio.edfimage import EdfImage

from xsgpu.io import read_any, scan_file
from xsgpu.io.ingest import ingest_paths
from xsgpu.io.readers.headers import HC_KEV_ANGSTROM, header_columns, standard_header

PILATUS = ("# Detector: PILATUS 300K, S/N 3-0104\r\n# 2011-07-06T15:02:37.000\r\n# Pixel_size 172e-6 m x 172e-6 m\r\n"
           "# Silicon sensor, thickness 0.000320 m\r\n# Exposure_time 0.097000 s\r\n# Exposure_period 0.100000 s\r\n"
           "# Tau = 383.8e-09 s\r\n# Count_cutoff 1048575 counts\r\n# Threshold_setting: 6000 eV\r\n"
           "# Wavelength 1.0332 A\r\n# Detector_distance 0.15000 m\r\n# Beam_xy (271.00, 355.00) pixels\r\n"
           "# Energy_range (0, 0) eV\r\n")
PILATUS_HDR = {"exposure_time": 0.097, "timestamp": "2011-07-06T15:02:37.000", "wavelength": 1.0332,
               "energy": pytest.approx(HC_KEV_ANGSTROM / 1.0332, abs=1e-6), "distance": 0.15,
               "beam_center_x": 271.0, "beam_center_y": 355.0}


def _counts(shape=(12, 10), dtype=np.int32):
    return (np.arange(np.prod(shape)).reshape(shape) % 50).astype(dtype)


def _pilatus_tiff(path):
    tifffile.imwrite(path, _counts(), description=PILATUS, metadata=None)


def _json_tiff(path):
    tifffile.imwrite(path, np.stack([_counts(dtype=np.uint16)] * 2),
                     metadata={"exposure_time": "250 ms", "sample_name": "AgBeh", "energy": 12.4},
                     datetime="2026:03:07 10:11:12")


def _pilatus_cbf(path):
    img = CbfImage(data=_counts())
    img.header["_array_data.header_convention"] = "PILATUS_1.2"
    img.header["_array_data.header_contents"] = PILATUS
    img.write(str(path))


def _esrf_edf(path):
    img = EdfImage(data=_counts().astype(np.float32),
                   header={"ExposureTime": "0.5", "SampleDistance": "1.2", "WaveLength": "1e-10", "Center_1": "3.5",
                           "Center_2": "4", "Title": "AgBeh", "Date": "Sat Mar 07 10:11:12 2026"})
    img.append_frame(data=_counts().astype(np.float32), header={"ExposureTime": "2.0", "Title": "water"})
    img.write(str(path))


def _nexus(path):
    with h5py.File(path, "w") as f:
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        entry["start_time"] = "2026-03-07T10:11:12Z"
        entry["title"] = "scan 12"
        det = f.create_group("entry/instrument/pilatus")
        det.attrs["NX_class"] = "NXdetector"
        det["name"] = "PILATUS3 1M"
        det["count_time"] = 100.0
        det["count_time"].attrs["units"] = "ms"
        det["distance"] = 3500.0
        det["distance"].attrs["units"] = "mm"
        det["beam_center_x"] = 512.5
        det["beam_center_y"] = 300.0
        det["data"] = np.stack([_counts()] * 2)
        mono = f.create_group("entry/instrument/mono")
        mono.attrs["NX_class"] = "NXmonochromator"
        mono["energy"] = 8.0
        mono["energy"].attrs["units"] = "keV"
        sample = f.create_group("entry/sample")
        sample.attrs["NX_class"] = "NXsample"
        sample["name"] = "lysozyme 5 mg/ml"


def _eiger_without_nx_class(path):
    with h5py.File(path, "w") as f:
        f["entry/data/data"] = np.stack([_counts(dtype=np.uint16)] * 2)
        f["entry/instrument/detector/count_time"] = 0.01
        f["entry/instrument/detector/detector_distance"] = 0.2
        f["entry/instrument/detector/beam_center_x"] = 5.0
        f["entry/instrument/detector/beam_center_y"] = 6.0
        f["entry/instrument/beam/incident_wavelength"] = 0.9793
        f["entry/instrument/beam/incident_wavelength"].attrs["units"] = b"angstrom"


CASES = {
    "pilatus.tif": (_pilatus_tiff, PILATUS_HDR),
    "described.tif": (_json_tiff, {"exposure_time": 0.25, "timestamp": "2026:03:07 10:11:12", "sample_name": "AgBeh",
                                   "energy": 12.4, "wavelength": pytest.approx(HC_KEV_ANGSTROM / 12.4, abs=1e-6)}),
    "pilatus.cbf": (_pilatus_cbf, PILATUS_HDR),
    "esrf.edf": (_esrf_edf, {"exposure_time": 0.5, "timestamp": "Sat Mar 07 10:11:12 2026", "sample_name": "AgBeh",
                             "wavelength": pytest.approx(1.0), "energy": pytest.approx(HC_KEV_ANGSTROM, abs=1e-5),
                             "distance": 1.2, "beam_center_x": 3.5, "beam_center_y": 4.0}),
    "saxs.nxs": (_nexus, {"exposure_time": pytest.approx(0.1), "timestamp": "2026-03-07T10:11:12Z",
                          "sample_name": "lysozyme 5 mg/ml", "energy": 8.0,
                          "wavelength": pytest.approx(HC_KEV_ANGSTROM / 8, abs=1e-6), "distance": pytest.approx(3.5),
                          "beam_center_x": 512.5, "beam_center_y": 300.0}),
    "eiger.h5": (_eiger_without_nx_class, {"exposure_time": 0.01, "wavelength": 0.9793,
                                           "energy": pytest.approx(HC_KEV_ANGSTROM / 0.9793, abs=1e-6),
                                           "distance": 0.2, "beam_center_x": 5.0, "beam_center_y": 6.0}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_reader_header_fields(tmp_path, name):
    write, expected = CASES[name]
    write(tmp_path / name)
    frames = list(read_any(tmp_path / name))
    assert frames[0].metadata["hdr"] == expected
    if name == "esrf.edf":  # each EDF frame has its own header
        assert frames[1].metadata["hdr"] == {"exposure_time": 2.0, "sample_name": "water"}
    if name == "described.tif":  # the description is on the first page only
        assert frames[1].metadata["hdr"] == expected


def test_units_and_unparsable_values():
    assert standard_header({"exposure": "2 min", "distance": "150 mm", "energy": "8000 eV"}) == {
        "exposure_time": 120.0, "energy": 8.0, "wavelength": pytest.approx(HC_KEV_ANGSTROM / 8, abs=1e-6),
        "distance": pytest.approx(0.15)}
    assert standard_header({"energy": 9000.0}) == {"energy": 9.0, "wavelength": pytest.approx(1.377602, abs=1e-6)}
    assert standard_header({"Exposure_time": "n/a", "Detector_distance": "0.2 furlong", "Date": ""}) == {}
    assert standard_header({"Energy_range": "(0, 0) eV", "Threshold_setting": "6000 eV"}) == {}


def test_ingest_writes_the_header_columns(tmp_path):
    run = tmp_path / "data" / "run1"
    run.mkdir(parents=True)
    for name, (write, _expected) in CASES.items():
        write(run / name)
    np.save(run / "plain.npy", _counts().astype(np.float32))  # no header at all
    store = ingest_paths([tmp_path / "data"], tmp_path / "out", size=8, progress=False)
    s = store.samples.read()
    assert [c for c in s.columns if c.startswith("hdr__")] == header_columns()
    assert s["hdr__exposure_time"].dtype == np.float64 and str(s["hdr__timestamp"].dtype) in ("string", "object")
    s["name"] = s["source_uri"].str.rsplit("/", n=1).str[-1]
    by = s.groupby("name")
    assert by.size().to_dict() == {"pilatus.tif": 1, "described.tif": 2, "pilatus.cbf": 1, "esrf.edf": 2,
                                   "saxs.nxs": 2, "eiger.h5": 2, "plain.npy": 1}
    plain = s[s["name"] == "plain.npy"].iloc[0]
    assert plain[header_columns()].isna().all()
    edf = s[s["name"] == "esrf.edf"].sort_values("frame")
    assert edf["hdr__exposure_time"].tolist() == [0.5, 2.0] and pd.isna(edf["hdr__distance"].iloc[1])
    nxs = s[s["name"] == "saxs.nxs"]
    assert nxs["hdr__sample_name"].tolist() == ["lysozyme 5 mg/ml"] * 2 and nxs["hdr__distance"].tolist() == [3.5] * 2
    cbf = s[s["name"] == "pilatus.cbf"].iloc[0]
    assert (cbf["hdr__beam_center_x"], cbf["hdr__beam_center_y"], cbf["hdr__timestamp"]) == (
        271.0, 355.0, "2011-07-06T15:02:37.000")


def test_a_failing_header_step_costs_the_header_not_the_frame(tmp_path, monkeypatch, caplog):
    import xsgpu.io.readers.hdf5 as hdf5_reader

    _nexus(tmp_path / "saxs.nxs")

    def broken(h5py, f):
        raise KeyError("unable to open a dangling external link")

    monkeypatch.setattr(hdf5_reader, "_nexus_header", broken)
    with caplog.at_level("WARNING", logger="xsgpu.io.readers.headers"):
        frames = list(read_any(tmp_path / "saxs.nxs"))
    assert len(frames) == 2 and "hdr" not in frames[0].metadata
    assert "header metadata not read (KeyError" in caplog.text


def test_long_text_fields_are_cut():
    assert len(standard_header({"Title": "x" * 5000})["sample_name"]) == 256


@pytest.mark.parametrize("fmt", ["npz", "mat-v5", "mat-v7.3"])
def test_scalar_arrays_named_like_header_fields(tmp_path, fmt):
    """``.npz``/``.mat`` files often keep exposure, energy and the sample beside the image."""
    import scipy.io

    from xsgpu.io.readers.examples import write_mat73

    im = _counts().astype(np.float32)
    fields = {"exposure": np.float64(0.5), "energy": np.float64(12.0), "sample_name": "AgBeh", "gain_mode": 2.0,
              "q": np.linspace(0, 1, 10), "frame_ids": np.arange(3)}
    if fmt == "npz":
        np.savez(tmp_path / "f.npz", im=im, **{k: np.asarray(v) for k, v in fields.items()})
        path = tmp_path / "f.npz"
    elif fmt == "mat-v5":
        scipy.io.savemat(tmp_path / "f.mat", {"im": im, **fields})
        path = tmp_path / "f.mat"
    else:
        import h5py

        write_mat73(tmp_path / "f.mat", {"im": im, "exposure": np.float64(0.5), "energy": np.float64(12.0)})
        with h5py.File(tmp_path / "f.mat", "a") as f:  # MATLAB stores char arrays as uint16 codes
            f["sample_name"] = np.array([[ord(c)] for c in "AgBeh"], np.uint16)
            f["sample_name"].attrs["MATLAB_class"] = np.bytes_("char")
        path = tmp_path / "f.mat"
    (frame,) = list(read_any(path))
    assert frame.metadata["hdr"] == {"exposure_time": 0.5, "sample_name": "AgBeh", "energy": 12.0,
                                     "wavelength": pytest.approx(HC_KEV_ANGSTROM / 12, abs=1e-6)}
    assert scan_file(path).dataset == "im"  # the scalars are no image candidates
