"""The per-run log file and its event lines."""
from __future__ import annotations

import logging

import pytest

from workflows.runlog import RunLog, list_logs, read_events


def test_events_and_records_go_to_the_run_log(tmp_path):
    with RunLog(tmp_path, name="pipeline") as rl:
        logging.getLogger("xsgpu.synth").info("generated %d images", 16)
        rl.event("partition_done", stage="infer", part=3, note="two words")
        rl.event("stage_end", stage="infer")
    logging.getLogger("xsgpu.synth").info("after close")  # not in the file any more
    text = rl.path.read_text()
    assert rl.path.parent == tmp_path / "logs" and rl.path.name.startswith("pipeline-")
    assert "generated 16 images" in text and "after close" not in text
    ev = read_events(rl.path)
    assert [e["event"] for e in ev] == ["partition_done", "stage_end"]
    assert ev[0]["part"] == "3" and ev[0]["note"] == "two words"
    assert read_events(rl.path, event="stage_end")[0]["stage"] == "infer"
    assert list_logs(tmp_path) == [rl.path]


def test_each_invocation_gets_its_own_file(tmp_path):
    with RunLog(tmp_path) as a:
        a.event("x")
    with RunLog(tmp_path) as b:
        b.event("y")
    assert a.path != b.path and list_logs(tmp_path) == [a.path, b.path]


def test_bad_event_name(tmp_path):
    with RunLog(tmp_path) as rl, pytest.raises(ValueError, match="The 'event' parameter of RunLog.event must be a word"):
        rl.event("two words")
