"""Fuzz the readers under a memory limit (issue 15): malformed headers give error rows or bounded frames.

``fuzz_inputs.py`` (same directory) runs in a child process whose address space is capped at what its
imports use plus 512 MiB (``RLIMIT_AS``), so any attempt at a huge allocation is a ``MemoryError``
there, never a machine swapping here. Every case of every format must end as a ``ReaderError`` (an
error row in an ingest) or as frames within the limits; a crash of the child, a ``MemoryError``, any
other exception or a case running past 10 s fails the test. Before the limits existed, seed 0 gave 21
``MemoryError`` cases (TIFF, HDF5, MATLAB v7.3, npz, EDF, CBF) and 2 hangs (truncated CBF).
"""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

FUZZER = Path(__file__).with_name("fuzz_inputs.py")
MAX_FRAME_PIXELS = 2048 * 2048  # fuzz_inputs.MAX_FRAME_PIXELS
FORMATS = {"tiff", "hdf5", "npy", "npz", "mat", "fabio", "picture"}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc/self/status")
def test_malformed_headers_of_every_format_give_errors_or_bounded_frames(tmp_path):
    proc = subprocess.run([sys.executable, str(FUZZER), str(tmp_path / "cases"), "0"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"the fuzzer crashed (rc {proc.returncode}):\n{proc.stderr[-3000:]}"
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(rows) > 100
    failures = [r for r in rows if r["outcome"] not in ("frames", "reader_error")]
    assert not failures, "\n".join(f"{r['case']}: {r['outcome']} {r['detail']}" for r in failures)
    for r in rows:
        if r["outcome"] == "frames":
            shapes = json.loads(r["detail"])
            assert 1 <= len(shapes) <= 2 and all(h * w <= MAX_FRAME_PIXELS for h, w in shapes), r
    assert {r["format"] for r in rows} == FORMATS
    per_format = Counter(r["format"] for r in rows if r["outcome"] == "reader_error")
    assert set(per_format) == FORMATS  # every format saw hostile input it refused
    declared = [r for r in rows if "declared_huge" in r["kind"]]
    assert declared and all(r["outcome"] == "reader_error" for r in declared), [
        r for r in declared if r["outcome"] != "reader_error"]
    assert {r["detail"] for r in declared} >= {"FrameLimitError"}
    (bomb,) = [r for r in rows if r["kind"] == "inflates_to_640MiB"]
    assert bomb["outcome"] == "frames" and json.loads(bomb["detail"]) == [[2048, 2048], [2048, 2048]]
