"""Header metadata every detector file may carry, in one vocabulary and in fixed units.

Readers collect the header fields of their format (Pilatus ``# key value`` lines in a TIFF
ImageDescription or a CBF ``_array_data.header_contents``, the TIFF ``DateTime`` tag, EDF/CBF
key/value headers through fabio, NeXus fields of ``NXdetector``/``NXsample``/``NXmonochromator``/``NXbeam``
groups in HDF5) and :func:`standard_header` maps them onto these fields (``Frame.metadata["hdr"]``),
which ingest writes per sample as the ``hdr__<field>`` columns of ``samples.parquet``:

==================  =======  ==========================================================================
field               unit     taken from (first match, keys compared case- and punctuation-blind)
==================  =======  ==========================================================================
``exposure_time``   s        ``Exposure_time``, ``ExposureTime``, ``count_time``, ``acq_expo_time``,
                             ``exposure``, ``integration_time``
``timestamp``       text     ``timestamp``, ``start_time``, ``DateTime``, ``Date``, ``time``, the
                             Pilatus date line (``# 2011-07-06T15:02:37.000``); kept as written
``sample_name``     text     ``sample_name``, ``SampleName``, ``Sample``, ``Title``, NXsample ``name``
``wavelength``      Å        ``Wavelength``, ``WaveLength``, ``incident_wavelength``, ``lambda``;
                             derived from ``energy`` when only that is given
``energy``          keV      ``energy``, ``photon_energy``, ``incident_energy``, ``xray_energy``;
                             derived from ``wavelength`` when only that is given
``distance``        m        ``Detector_distance``, ``SampleDistance``, ``distance``, ``dist``
``beam_center_x``   pixels   ``beam_center_x``, ``beam_centre_x``, ``Center_1``, ``BeamCenterX``,
                             the first value of Pilatus ``Beam_xy``
``beam_center_y``   pixels   ``beam_center_y``, ``beam_centre_y``, ``Center_2``, ``BeamCenterY``,
                             the second value of Pilatus ``Beam_xy``
==================  =======  ==========================================================================

Units written after a value (``0.097 s``, ``1.0332 A``, ``150 mm``, ``12.4 keV``) or in an HDF5
``units`` attribute are converted; a value without a unit is taken to be in the unit above, except a
wavelength below 1e-3 (metres: ESRF EDF ``WaveLength`` 1e-10) and an energy above 200 (eV). A field
whose value cannot be parsed, or has a unit of the wrong kind, is left out (null) and logged at debug
level: header metadata never makes a frame unreadable (a reader's header step that fails is logged
and skipped, :func:`guarded_header`); text fields are cut at 256 characters.

Examples
--------
>>> standard_header({"Exposure_time": "0.097 s", "Wavelength": "1.0332 A", "Beam_xy": "(271.00, 355.00) pixels"})
{'exposure_time': 0.097, 'wavelength': 1.0332, 'energy': 12.000019, 'beam_center_x': 271.0, 'beam_center_y': 355.0}
"""
from __future__ import annotations

import logging
import re
from typing import Any, Callable, Iterable, Mapping

__all__ = ["HEADER_FIELDS", "HEADER_PREFIX", "header_columns", "standard_header", "text_header_pairs",
           "HC_KEV_ANGSTROM", "guarded_header", "is_header_candidate"]

log = logging.getLogger(__name__)

#: prefix of the header columns in ``samples.parquet``
HEADER_PREFIX = "hdr__"
#: field -> (dtype family, unit) in the order the columns are written
HEADER_FIELDS: dict[str, tuple[str, str]] = {
    "exposure_time": ("float", "s"),
    "timestamp": ("str", ""),
    "sample_name": ("str", ""),
    "wavelength": ("float", "angstrom"),
    "energy": ("float", "keV"),
    "distance": ("float", "m"),
    "beam_center_x": ("float", "pixel"),
    "beam_center_y": ("float", "pixel"),
}
#: h * c in keV * angstrom (E[keV] = HC / lambda[angstrom])
HC_KEV_ANGSTROM = 12.398419843320026

_ALIASES: dict[str, tuple[str, ...]] = {
    "exposure_time": ("exposuretime", "counttime", "acqexpotime", "exposure", "integrationtime", "exptime"),
    "timestamp": ("timestamp", "starttime", "datetime", "date", "time", "pilatusdate"),
    "sample_name": ("samplename", "sample", "title", "nxsamplename"),
    "wavelength": ("wavelength", "incidentwavelength", "lambda"),
    "energy": ("energy", "photonenergy", "incidentenergy", "xrayenergy", "beamenergy"),
    "distance": ("detectordistance", "sampledistance", "sampledetectordistance", "distance", "dist"),
    "beam_center_x": ("beamcenterx", "beamcentrex", "center1", "beamx", "xbeam"),
    "beam_center_y": ("beamcentery", "beamcentrey", "center2", "beamy", "ybeam"),
}
_UNITS: dict[str, dict[str, float]] = {
    "exposure_time": {"s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6,
                      "ns": 1e-9, "min": 60.0},
    "wavelength": {"a": 1.0, "å": 1.0, "angstrom": 1.0, "angstroms": 1.0, "nm": 10.0, "m": 1e10, "pm": 1e-2},
    "energy": {"kev": 1.0, "ev": 1e-3, "mev": 1e3},
    "distance": {"m": 1.0, "mm": 1e-3, "cm": 1e-2, "um": 1e-6, "µm": 1e-6},
    "beam_center_x": {"pixel": 1.0, "pixels": 1.0, "px": 1.0, "pix": 1.0},
    "beam_center_y": {"pixel": 1.0, "pixels": 1.0, "px": 1.0, "pix": 1.0},
}
_KNOWN_KEYS = frozenset(a for aliases in _ALIASES.values() for a in aliases) | {"beamxy"}
_NUMBER = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([^\d\s,()]*)\s*$")
_PAIR = re.compile(r"^\s*\(?\s*([-+]?[\d.eE+-]+)\s*[,\s]\s*([-+]?[\d.eE+-]+)\s*\)?\s*([A-Za-z]*)\s*$")
_ISO_DATE = re.compile(r"^\s*#?\s*(\d{4}[-/:]\d{2}[-/:]\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)\s*$")
#: longest text kept for a string field
MAX_FIELD_TEXT = 256
_TEXT_LINE = re.compile(r"^\s*#?\s*([A-Za-z_][\w.\-]*)\s*(?:[:=]\s*|\s+)(.+?)\s*;?\s*$")


def header_columns() -> list[str]:
    """The ``hdr__<field>`` column names, in :data:`HEADER_FIELDS` order."""
    return [HEADER_PREFIX + f for f in HEADER_FIELDS]


def _norm(key: Any) -> str:
    return re.sub(r"[^a-z0-9]", "", str(key).lower())


def text_header_pairs(text: str) -> dict[str, str]:
    """``{key: value}`` from header text: Pilatus ``# key value`` lines, ``key: value`` or ``key=value`` lines.

    A line holding only a date (the Pilatus timestamp line) is kept under ``pilatus_date``.

    Examples
    --------
    >>> text_header_pairs("# Detector: PILATUS 300K\\r\\n# 2011-07-06T15:02:37.000\\r\\nexposure=0.5")
    {'Detector': 'PILATUS 300K', 'pilatus_date': '2011-07-06T15:02:37.000', 'exposure': '0.5'}
    """
    out: dict[str, str] = {}
    for line in str(text).splitlines():
        date = _ISO_DATE.match(line)
        if date:
            out.setdefault("pilatus_date", date.group(1))
            continue
        m = _TEXT_LINE.match(line)
        if m:
            out.setdefault(m.group(1), m.group(2))
    return out


def _number(field: str, value: Any, unit: str | None) -> float | None:
    """``value`` (number or "0.097 s") in the unit of ``field``, or None when it does not parse."""
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number, written = float(value), (unit or "")
    else:
        m = _NUMBER.match(str(value))
        if not m:
            return None
        number, written = float(m.group(1)), (m.group(2) or unit or "")
    written = written.strip().lower().rstrip(".")
    table = _UNITS.get(field)
    if table is None:
        return number
    if not written:
        if field == "wavelength" and 0 < number < 1e-3:
            return number * 1e10  # metres
        if field == "energy" and number > 200:
            return number * 1e-3  # eV
        return number
    if written not in table:
        log.debug("header field %s: unit %r not understood (value %r); left out", field, written, value)
        return None
    return number * table[written]


def _text(value: Any) -> str | None:
    if isinstance(value, (list, tuple)):
        value = value[0] if len(value) == 1 else None
    if value is None or isinstance(value, bool):
        return None
    s = str(value).strip()[:MAX_FIELD_TEXT]
    return s or None


def is_header_candidate(name: str, shape: tuple[int, ...], kind: str) -> bool:
    """Whether an array beside the image (``.npz`` member, MATLAB variable) may be a header field.

    A scalar (any shape of size 1) number or a short string, named like one of the fields' keys
    (``exposure``, ``wavelength``, ``sample_name`` ...): such arrays are read (tiny) and mapped by
    :func:`standard_header`; anything else is never loaded.
    """
    size = 1
    for n in shape:
        size *= int(n)
    if _norm(name) not in _KNOWN_KEYS:
        return False
    return (kind in "iuf" and size == 1) or (kind in "US" and size <= 1) or (kind == "char" and size <= MAX_FIELD_TEXT)


def guarded_header(read: Callable[..., dict[str, Any]], *args: Any, path: str) -> dict[str, Any]:
    """``read(*args)``, or ``{}`` (logged) if it fails: header metadata never makes a frame unreadable."""
    try:
        return read(*args)
    except Exception as exc:  # noqa: BLE001 - a broken header field must not cost the frame
        log.warning("%s: header metadata not read (%s: %s); the frame is read without it", path,
                    type(exc).__name__, exc)
        return {}


def standard_header(pairs: Mapping[str, Any] | Iterable[tuple[str, Any]], *,
                    units: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Map header ``{key: value}`` pairs onto :data:`HEADER_FIELDS` (see the module docstring).

    Parameters
    ----------
    pairs : mapping or iterable of (key, value)
        Header fields as read (strings, numbers, 1-element lists); earlier pairs win.
    units : mapping, optional
        ``{key: unit}`` for values whose unit is stored apart (HDF5 ``units`` attributes).

    Returns
    -------
    dict
        Only the fields found, with floats in the documented units and strings as written.
    """
    items = list(pairs.items()) if isinstance(pairs, Mapping) else list(pairs)
    units = {_norm(k): v for k, v in (units or {}).items()}
    by_key: dict[str, tuple[Any, str | None]] = {}
    for k, v in items:
        by_key.setdefault(_norm(k), (v, units.get(_norm(k))))
    out: dict[str, Any] = {}
    for field, aliases in _ALIASES.items():
        for alias in aliases:
            if alias not in by_key:
                continue
            value, unit = by_key[alias]
            got = _text(value) if HEADER_FIELDS[field][0] == "str" else _number(field, value, unit)
            if got is not None:
                out[field] = got
                break
    if "beam_center_x" not in out and "beamxy" in by_key:
        m = _PAIR.match(str(by_key["beamxy"][0]))
        if m:
            out["beam_center_x"], out["beam_center_y"] = float(m.group(1)), float(m.group(2))
    if "wavelength" in out and "energy" not in out and out["wavelength"] > 0:
        out["energy"] = round(HC_KEV_ANGSTROM / out["wavelength"], 6)
    elif "energy" in out and "wavelength" not in out and out["energy"] > 0:
        out["wavelength"] = round(HC_KEV_ANGSTROM / out["energy"], 6)
    return {f: out[f] for f in HEADER_FIELDS if f in out}
