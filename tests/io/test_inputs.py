"""Input discovery (issue 15 items 5, 6, 8): links, loops, duplicates, undecodable names, unreadable dirs."""
from __future__ import annotations

import os

import numpy as np
import pytest

from xsgpu.io.discovery import display_path, expand_inputs
from xsgpu.io.ingest import expand_paths, ingest_paths, plan_ingest


@pytest.fixture
def tree(tmp_path):
    """``data/run1/a.npy`` (2 frames), ``data/run2/b.npy``; ``run1/loop -> .`` and ``run1/alias.npy -> a.npy``."""
    data = tmp_path / "data"
    (data / "run1").mkdir(parents=True)
    (data / "run2").mkdir()
    np.save(data / "run1" / "a.npy", np.ones((2, 8, 8), np.float32))
    np.save(data / "run2" / "b.npy", np.ones((8, 8), np.float32))
    os.symlink(".", data / "run1" / "loop")
    os.symlink("a.npy", data / "run1" / "alias.npy")
    return data



@pytest.mark.parametrize("pattern", ["**", "*", "**/*.npy", "run*/*", "*/**"])
def test_globs_do_not_follow_a_link_to_dot(tree, pattern):
    found = expand_inputs([str(tree / pattern)])
    assert [os.path.relpath(f, tree) for f in found.files] == ["run1/a.npy", "run2/b.npy"]
    skipped = {os.path.relpath(r["source_uri"], tree): r["error_type"] for r in found.skipped}
    assert skipped == {"run1/loop": "SymlinkedDirectoryError", "run1/alias.npy": "DuplicateInputError"}


def test_ingest_of_a_glob_with_a_loop_gives_each_frame_once_in_one_run(tree, tmp_path):
    store = ingest_paths([str(tree / "**")], tmp_path / "out", size=8, partition_size=8, progress=False)
    samples = store.samples.read()
    assert len(samples) == 3  # a.npy (2 frames) and b.npy, once each
    assert sorted(samples["run_id"].unique()) == ["run1", "run2"]
    assert samples.groupby("source_uri")["frame"].apply(list).to_dict() == {
        str(tree / "run1" / "a.npy"): [0, 1], str(tree / "run2" / "b.npy"): [0]}
    errors = store.read_errors()
    assert sorted(errors["error_type"]) == ["DuplicateInputError", "SymlinkedDirectoryError"]
    loop = errors.set_index("error_type").loc["SymlinkedDirectoryError", "message"]
    assert str(tree / "run1" / "loop") in loop and "pass the target directory itself" in loop


def test_two_links_to_each_other_terminate(tree):
    os.symlink("../run2", tree / "run1" / "to2")
    os.symlink("../run1", tree / "run2" / "to1")
    for given in ([str(tree / "**")], [str(tree / "**" / "*.npy")], [tree]):
        found = expand_inputs(given)
        assert [os.path.relpath(f, tree) for f in found.files] == ["run1/a.npy", "run2/b.npy"]
        assert sorted(os.path.relpath(r["source_uri"], tree) for r in found.skipped) == [
            "run1/alias.npy", "run1/loop", "run1/to2", "run2/to1"]


def test_directory_walk_records_symlinked_subdirectories(tree):
    found = expand_inputs([tree])
    assert {os.path.basename(r["source_uri"]): r["error_type"] for r in found.skipped} == {
        "loop": "SymlinkedDirectoryError", "alias.npy": "DuplicateInputError"}
    # given explicitly, a link is followed; the same file through two explicit names is ingested once
    found = expand_inputs([tree / "run1" / "loop", tree / "run1"])
    assert [os.path.basename(f) for f in found.files] == ["a.npy"]


def test_hard_link_is_ingested_once(tmp_path):
    d = tmp_path / "run1"
    d.mkdir()
    np.save(d / "a.npy", np.ones((8, 8)))
    os.link(d / "a.npy", d / "b.npy")
    found = expand_inputs([d])
    assert [os.path.basename(f) for f in found.files] == ["a.npy"]
    assert found.skipped[0]["error_type"] == "DuplicateInputError" and str(d / "a.npy") in found.skipped[0]["message"]


def test_same_path_twice_is_listed_once_without_an_error_row(tree):
    files = expand_paths([tree / "run2" / "b.npy", str(tree / "run2" / "*.npy")])
    assert files == [str(tree / "run2" / "b.npy")]
    assert expand_inputs([tree / "run2" / "b.npy", str(tree / "run2" / "*.npy")]).skipped == []


def test_non_utf8_file_name_is_an_error_row_and_the_batch_goes_on(tmp_path):
    d = tmp_path / "run1"
    d.mkdir()
    np.save(d / "good.npy", np.ones((8, 8)))
    bad = os.path.join(os.fsencode(d), b"caf\xe9.npy")
    with open(bad, "wb") as fh:
        np.save(fh, np.ones((8, 8)))
    store = ingest_paths([d], tmp_path / "out", size=8, progress=False)
    assert store.samples.read()["source_uri"].tolist() == [str(d / "good.npy")]
    (row,) = store.read_errors().to_dict("records")
    assert row["error_type"] == "UndecodableNameError"
    assert row["source_uri"] == str(d) + "/caf\\xe9.npy" and "rename it to UTF-8" in row["message"]
    assert display_path(os.fsdecode(bad)) == row["source_uri"]


def test_non_utf8_directory_name_is_an_error_row(tmp_path):
    root = tmp_path / "data"
    (root / "ok").mkdir(parents=True)
    np.save(root / "ok" / "a.npy", np.ones((8, 8)))
    bad_dir = os.path.join(os.fsencode(root), b"r\xfcn")
    os.mkdir(bad_dir)
    np.save(os.fsdecode(os.path.join(bad_dir, b"x.npy")), np.ones((8, 8)))
    store = plan_ingest([str(root / "*")], tmp_path / "out", size=8, progress=False)
    assert store.n_samples == 1
    assert store.read_errors()["source_uri"].tolist() == [str(root) + "/r\\xfcn/x.npy"]


def test_unreadable_subdirectory_is_an_error_row(tree, tmp_path, monkeypatch):
    locked = tree / "run2"
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(locked))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    for given in ([tree], [str(tree / "**")]):
        found = expand_inputs(given)
        assert [os.path.relpath(f, tree) for f in found.files] == ["run1/a.npy"]
        rows = {os.path.relpath(r["source_uri"], tree): r for r in found.skipped}
        assert rows["run2"]["error_type"] == "UnreadableDirectoryError"
        assert "Permission denied" in rows["run2"]["message"] and "check its permissions" in rows["run2"]["message"]
    monkeypatch.undo()
    store = plan_ingest([tree], tmp_path / "out", size=8, progress=False)
    assert "UnreadableDirectoryError" not in set(store.read_errors()["error_type"])


@pytest.mark.skipif(os.geteuid() == 0, reason="root can list a mode-000 directory")
def test_mode_000_subdirectory_is_an_error_row(tree):
    os.chmod(tree / "run2", 0)
    try:
        found = expand_inputs([tree])
    finally:
        os.chmod(tree / "run2", 0o755)
    assert "UnreadableDirectoryError" in {r["error_type"] for r in found.skipped}
