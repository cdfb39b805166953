"""Label files: formats accepted, every malformed case refused with a message naming it."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from xsgpu.attributes import NAMES, SLUGS, label_columns
from xsgpu.io.labels import LabelsError, match_labels, read_labels

RING = NAMES.index("Ring")


def _row(key, ones=(), **extra):
    row = {"file": key, **{n: 0 for n in NAMES}}
    for n in ones:
        row[n] = 1
    row.update(extra)
    return row


def _write(tmp_path, rows, name="labels.csv", rename=None):
    df = pd.DataFrame(rows)
    if rename:
        df = df.rename(columns=rename)
    path = tmp_path / name
    if name.endswith(".parquet"):
        df.to_parquet(path)
    else:
        df.to_csv(path, index=False)
    return path


def test_display_names_slugs_and_values(tmp_path):
    path = _write(tmp_path, [_row("a.tif", ["Ring", "Halo"]), _row("b.tif")],
                  rename={"Halo": "halo", "BCC": "y__bcc"})
    text = path.read_text().replace("a.tif,0", "a.tif,false").replace("b.tif,0", "b.tif,FALSE")
    path.write_text(text.replace(",1,", ",True,", 1))
    t = read_labels(path)
    assert t.n_rows == 2 and t.keys == ["a.tif", "b.tif"]
    assert t.y[0, RING] and t.y[0, NAMES.index("Halo")] and t.y[0].sum() == 2 and not t.y[1].any()
    assert (t.frames == -1).all()


def test_parquet_booleans_and_frames(tmp_path):
    rows = [_row("s.h5", ["Ring"], frame=0), _row("s.h5", ["BCC"], frame=2)]
    df = pd.DataFrame(rows)
    df[list(NAMES)] = df[list(NAMES)].astype(bool)
    df.to_parquet(tmp_path / "l.parquet")
    t = read_labels(tmp_path / "l.parquet")
    assert t.frames.tolist() == [0, 2]
    a = match_labels(t, [tmp_path / "s.h5"])
    labelled, y = a.for_file(os.path.abspath(tmp_path / "s.h5"), 4)
    assert labelled.tolist() == [True, False, True, False]
    assert y[0, RING] and y[2, 0] and not y[1].any()


def test_export_labels_format_is_accepted(tmp_path):
    rows = [{"source_uri": str(tmp_path / "a.tif"), "frame": 0, "sample_id": 7, **{n: int(n == "Ring") for n in NAMES}}]
    path = _write(tmp_path, rows)
    a = match_labels(read_labels(path), [tmp_path / "a.tif"])
    assert a.for_file(str(tmp_path / "a.tif"), 1)[1][0, RING]


def test_misspelled_missing_and_duplicate_attribute_columns(tmp_path):
    with pytest.raises(LabelsError, match=r"column\(s\) 'Rings' \(did you mean 'Ring'\?\) look like misspelled "
                                          r"attribute columns\. Valid names: BCC"):
        read_labels(_write(tmp_path, [_row("a.tif", Rings="x", notes="x")]))
    with pytest.raises(LabelsError, match=r"'y__beam_of_image' \(did you mean 'Beam Off Image'\?\)"):
        read_labels(_write(tmp_path, [_row("a.tif", y__beam_of_image=1)]))
    with pytest.raises(LabelsError, match=r"missing attribute column\(s\) Halo, Ring; all 17 are required"):
        read_labels(_write(tmp_path, [{k: v for k, v in _row("a.tif").items() if k not in ("Ring", "Halo")}]))
    with pytest.raises(LabelsError, match=r"attribute\(s\) given by more than one column: \{'Ring': \['Ring', 'ring'\]\}"):
        read_labels(_write(tmp_path, [_row("a.tif", ring=0)]))


def test_bad_values_and_keys(tmp_path):
    with pytest.raises(LabelsError, match=r"column 'Ring' must hold 0/1/true/false; got row 3: 'maybe'"):
        read_labels(_write(tmp_path, [_row("a.tif"), _row("b.tif", Ring="maybe")]))
    with pytest.raises(LabelsError, match=r"column 'Ring' must hold 0/1/true/false; got row 2: ''"):
        read_labels(_write(tmp_path, [_row("a.tif", Ring="")]))
    with pytest.raises(LabelsError, match=r"column 'BCC' must hold 0/1/true/false; got row 2: '2'"):
        read_labels(_write(tmp_path, [_row("a.tif", BCC=2)]))
    with pytest.raises(LabelsError, match=r"column 'frame' must hold integers >= 0.*row 2: '-1'"):
        read_labels(_write(tmp_path, [_row("a.tif", frame=-1)]))
    with pytest.raises(LabelsError, match=r"needs exactly one key column .* found none"):
        read_labels(_write(tmp_path, [_row("a.tif")], rename={"file": "image"}))
    with pytest.raises(LabelsError, match=r"needs exactly one key column .* found \['file', 'path'\]"):
        read_labels(_write(tmp_path, [_row("a.tif", path="a.tif")]))
    with pytest.raises(LabelsError, match="does not exist"):
        read_labels(tmp_path / "nope.csv")
    (tmp_path / "l.json").write_text("{}")
    with pytest.raises(LabelsError, match="unsupported extension '.json'; expected .csv or .parquet"):
        read_labels(tmp_path / "l.json")


def test_duplicate_keys(tmp_path):
    with pytest.raises(LabelsError, match=r"duplicate keys: a.tif \(rows 2, 3: a row for all frames"):
        read_labels(_write(tmp_path, [_row("a.tif"), _row("a.tif", ["Ring"])]))
    with pytest.raises(LabelsError, match=r"duplicate keys: s.h5 frame\(s\) \[1\] \(rows 2, 3, 4\)"):
        read_labels(_write(tmp_path, [_row("s.h5", frame=1), _row("s.h5", frame=1), _row("s.h5", frame=0)]))
    # different spellings of the same file collide after matching
    t = read_labels(_write(tmp_path, [_row("a.tif"), _row(str(tmp_path / "a.tif"))]))
    with pytest.raises(LabelsError, match="duplicate keys: .*a.tif"):
        match_labels(t, [tmp_path / "a.tif"])


def test_matching_rules_and_unmatched_keys(tmp_path):
    (tmp_path / "r1").mkdir()
    (tmp_path / "r2").mkdir()
    files = [tmp_path / "r1" / "x.tif", tmp_path / "r2" / "x.tif", tmp_path / "r2" / "y.tif"]
    t = read_labels(_write(tmp_path, [_row("r1/x.tif", ["Ring"]), _row("y.tif"), _row(str(files[1]), ["BCC"])]))
    a = match_labels(t, files)
    assert a.n_files == 3
    assert a.for_file(str(files[0]), 1)[1][0, RING] and a.for_file(str(files[1]), 1)[1][0, 0]
    with pytest.raises(LabelsError, match=r"ambiguous keys: row 2: 'x.tif' matches 2 inputs"):
        match_labels(read_labels(_write(tmp_path, [_row("x.tif")])), files)
    with pytest.raises(LabelsError, match=r"keys matching no image among the 3 inputs: row 3: 'z.tif', row 4: 'r3/y.tif'"):
        match_labels(read_labels(_write(tmp_path, [_row("y.tif"), _row("z.tif"), _row("r3/y.tif")])), files)


def test_frame_beyond_file(tmp_path):
    t = read_labels(_write(tmp_path, [_row("s.h5", frame=5)]))
    a = match_labels(t, [tmp_path / "s.h5"])
    a.check_frames({})  # a file that failed its scan is not checked
    with pytest.raises(LabelsError, match=r"keys matching no image: row 2: .*s.h5 frame 5 \(the file has 3\)"):
        a.check_frames({os.path.abspath(tmp_path / "s.h5"): 3})


def test_slug_columns_only(tmp_path):
    rows = [{"path": "a.npy", **{s: int(s == "fcc") for s in SLUGS}}]
    t = read_labels(_write(tmp_path, rows, name="l.parquet"))
    assert np.flatnonzero(t.y[0]).tolist() == [label_columns().index("y__fcc")]


def test_extra_columns_are_kept_as_metadata(tmp_path, caplog):
    rows = [_row("a.tif", ["Ring"], run="run7", sample="AgBeh", notes="", tags="calib;ring"),
            _row("b.tif", run="run7", sample="7", notes="re-measured", tags="")]
    with caplog.at_level("INFO", logger="xsgpu.io.labels"):
        t = read_labels(_write(tmp_path, rows))
    assert t.n_rows == 2 and t.y[0, RING] and not t.y[1].any()
    assert list(t.metadata.columns) == ["run", "sample", "notes", "tags"]
    assert t.metadata["sample"].tolist() == ["AgBeh", "7"] and t.metadata["notes"].tolist() == ["", "re-measured"]
    assert "keeping non-attribute column(s) run, sample, notes, tags as metadata" in caplog.text


def test_zero_one_column_that_is_no_attribute_is_refused(tmp_path):
    with pytest.raises(LabelsError, match=r"'flagged' \(holds only 0/1 values, like an attribute\).*prefix it with "
                                          r"'meta__'"):
        read_labels(_write(tmp_path, [_row("a.tif", flagged=1), _row("b.tif", flagged=0)]))
    t = read_labels(_write(tmp_path, [_row("a.tif", meta__flagged=1), _row("b.tif", meta__flagged=0)]))
    assert t.metadata["meta__flagged"].tolist() == ["1", "0"]


def test_keys_relative_to_an_ingested_directory(tmp_path):
    data = tmp_path / "data"
    files = [data / "run7" / "img_0001.tif", data / "run7" / "img_0002.tif", data / "run8" / "img_0001.tif"]
    (tmp_path / "meta").mkdir()
    t = read_labels(_write(tmp_path / "meta", [_row("run7/img_0001.tif", ["Ring"]), _row("run8/img_0001.tif")]))
    a = match_labels(t, files)
    assert a.n_files == 2
    assert a.for_file(str(files[0]), 1)[1][0, RING] and a.for_file(str(files[2]), 1)[0][0]
    assert not a.for_file(str(files[1]), 1)[0].any()


def test_relative_key_ending_several_inputs_lists_the_candidates(tmp_path):
    files = [tmp_path / "data" / "run7" / "a.tif", tmp_path / "old" / "run7" / "a.tif"]
    (tmp_path / "meta").mkdir()
    t = read_labels(_write(tmp_path / "meta", [_row("run7/a.tif")]))
    with pytest.raises(LabelsError, match=r"ambiguous keys: row 2: 'run7/a.tif' matches 2 inputs \(.*data/run7/a.tif, "
                                          r".*old/run7/a.tif\)"):
        match_labels(t, files)
    # a longer key picks one; a partial component never matches
    assert match_labels(read_labels(_write(tmp_path / "meta", [_row("old/run7/a.tif")])), files).n_files == 1
    with pytest.raises(LabelsError, match="keys matching no image"):
        match_labels(read_labels(_write(tmp_path / "meta", [_row("un7/a.tif")])), files)
