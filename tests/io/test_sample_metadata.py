"""Non-attribute columns of a label file become ``meta__<name>`` columns of ``samples.parquet``."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xsgpu.attributes import NAMES
from xsgpu.io.ingest import ingest_paths
from xsgpu.io.labels import LabelsError, read_labels, sample_metadata

RING = NAMES.index("Ring")


def _row(key, ones=(), **extra):
    return {"file": key, **{n: int(n in ones) for n in NAMES}, **extra}


def _inputs(tmp_path):
    run = tmp_path / "data" / "run7"
    run.mkdir(parents=True)
    for name in ("a", "b", "c"):
        np.save(run / f"{name}.npy", np.ones((8, 8), np.float32))
    np.save(run / "stack.npy", np.ones((3, 8, 8), np.float32))
    return tmp_path / "data"


def test_metadata_columns_are_written_typed_with_nulls(tmp_path):
    data = _inputs(tmp_path)
    rows = [_row("run7/a.npy", ["Ring"], **{"Sample Name": "AgBeh", "T (K)": "293", "dose": "1.5", "notes": "",
                                           "meta__flagged": "1", "batch": "007"}),
            _row("run7/b.npy", **{"Sample Name": "", "T (K)": "", "dose": "2", "notes": "re-measured",
                                  "meta__flagged": "0", "batch": "012"}),
            {**_row("run7/stack.npy"), "frame": "1", "Sample Name": "Si", "T (K)": "77", "dose": "0.25",
             "notes": "", "meta__flagged": "1", "batch": "3"}]
    pd.DataFrame(rows).to_csv(tmp_path / "labels.csv", index=False)
    store = ingest_paths([data], tmp_path / "out", labels=tmp_path / "labels.csv", size=8, progress=False)
    s = store.samples.read().set_index(store.samples.read()["source_uri"].str.rsplit("/", n=1).str[-1]
                                       + ":" + store.samples.read()["frame"].astype(str))
    meta = [c for c in s.columns if c.startswith("meta__")]
    assert meta == ["meta__sample_name", "meta__t_k", "meta__dose", "meta__notes", "meta__flagged", "meta__batch"]
    assert str(s["meta__t_k"].dtype) == "Int64" and s["meta__dose"].dtype == np.float64
    assert str(s["meta__sample_name"].dtype) in ("string", "object") and str(s["meta__flagged"].dtype) == "Int64"
    assert s.loc["a.npy:0", "meta__sample_name"] == "AgBeh" and s.loc["a.npy:0", "meta__t_k"] == 293
    assert s.loc["b.npy:0", "meta__notes"] == "re-measured" and pd.isna(s.loc["b.npy:0", "meta__sample_name"])
    assert pd.isna(s.loc["a.npy:0", "meta__notes"]) and s.loc["stack.npy:1", "meta__dose"] == 0.25
    assert s.loc["a.npy:0", "meta__batch"] == "007"  # a leading zero keeps an identifier text
    for unlabelled in ("c.npy:0", "stack.npy:0", "stack.npy:2"):
        assert not s.loc[unlabelled, "labelled"]
        assert s.loc[unlabelled, meta].isna().all(), unlabelled
    assert s.loc["a.npy:0", f"y__{'ring'}"] and s.loc["stack.npy:1", "labelled"]


def test_parquet_metadata_keeps_its_dtypes(tmp_path):
    rows = [_row("a.npy", tilt=1.5, shots=3, beamtime="2026-03", ok=True),
            _row("b.npy", tilt=None, shots=4, beamtime=None, ok=False)]
    df = pd.DataFrame(rows)
    df.to_parquet(tmp_path / "labels.parquet")
    # "ok" holds booleans only: refused as a likely attribute typo unless prefixed
    with pytest.raises(LabelsError, match=r"'ok' \(holds only 0/1 values, like an attribute\)"):
        read_labels(tmp_path / "labels.parquet")
    df.rename(columns={"ok": "meta__ok"}).to_parquet(tmp_path / "labels.parquet")
    m = sample_metadata(read_labels(tmp_path / "labels.parquet"))
    assert m["meta__tilt"].dtype == np.float64 and np.isnan(m["meta__tilt"][1])
    assert str(m["meta__shots"].dtype) == "Int64" and str(m["meta__ok"].dtype) == "boolean"
    assert m["meta__beamtime"].tolist()[0] == "2026-03" and pd.isna(m["meta__beamtime"][1])


def test_a_zero_one_column_that_is_no_attribute_is_still_refused(tmp_path):
    pd.DataFrame([_row("a.npy", flagged="1"), _row("b.npy", flagged="0")]).to_csv(tmp_path / "l.csv", index=False)
    with pytest.raises(LabelsError, match=r"'flagged' \(holds only 0/1 values, like an attribute\).*'meta__'"):
        read_labels(tmp_path / "l.csv")


def test_metadata_names_that_collide_are_refused(tmp_path):
    pd.DataFrame([_row("a.npy", Run="r1", run="r2")]).to_csv(tmp_path / "l.csv", index=False)
    with pytest.raises(LabelsError, match=r"metadata column\(s\) \['Run', 'run'\] would all be stored as "
                                          r"meta__run in samples.parquet"):
        read_labels(tmp_path / "l.csv")


def test_without_metadata_columns_samples_have_none(tmp_path):
    data = _inputs(tmp_path)
    pd.DataFrame([_row("a.npy", ["Ring"])]).to_csv(tmp_path / "labels.csv", index=False)
    s = ingest_paths([data], tmp_path / "out", labels=tmp_path / "labels.csv", size=8, progress=False).samples.read()
    assert not [c for c in s.columns if c.startswith("meta__")] and s["labelled"].sum() == 1
