"""A killed ``ingest --workers 2`` leaves no worker running (issue 15 item 8)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

_PARENT = """
import sys
from pathlib import Path
import numpy as np
from xsgpu.io.ingest import ingest_paths

if __name__ == "__main__":  # the spawned workers import this module again
    d = Path(sys.argv[1])
    d.mkdir(parents=True)
    for i in range(40):
        np.save(d / f"s{i:02d}.npy", np.ones((4, 64, 64), np.float32))
    ingest_paths([d], sys.argv[2], size=16, partition_size=1, n_workers=2, progress=False)
"""


def _children(pid: int) -> list[int]:
    """Pids of the live pool workers (``spawn_main``) whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z" and b"spawn_main" in cmdline:
            found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow  # starts two spawned workers: ~20 s on the shared 2-core machine
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_exit_when_the_parent_is_killed(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(_PARENT)
    parent = subprocess.Popen([sys.executable, str(script), str(tmp_path / "data"), str(tmp_path / "out")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 180
        while len(workers) < 2 or not (tmp_path / "out" / "samples.parquet").is_dir():
            assert parent.poll() is None, "the ingest ended before its workers could be observed"
            assert time.monotonic() < deadline, "the two workers never started"
            workers = _children(parent.pid)
            time.sleep(0.1)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 30  # a liveness bound: the watchdog polls every 0.2 s
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [w for w in workers if _alive(w)], "worker processes outlived the killed ingest"
    finally:
        if parent.poll() is None:
            parent.kill()
        for w in workers:
            if _alive(w):
                os.kill(w, signal.SIGKILL)
