"""Child processes of the benchmarks: a Python snippet with its peak RSS sampled (the memory benchmarks), and
the free port and clean stop of a served app (bench_app, bench_browser)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_child_peak_rss(code: str, argv: list[str], *, period_s: float = 0.1) -> tuple[int, dict]:
    """Run ``python -c code *argv`` with the repository on PYTHONPATH; sample its RSS every ``period_s``.

    Returns
    -------
    peak_bytes : int
        The largest RSS seen.
    result : dict
        The child's last stdout line, parsed as JSON.

    Raises
    ------
    RuntimeError
        If the child exits with a non-zero status.
    """
    import psutil

    proc = subprocess.Popen([sys.executable, "-c", code, *argv], stdout=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    ps, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            peak = max(peak, ps.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(period_s)
    out = proc.communicate()[0].decode()
    if proc.returncode != 0:
        raise RuntimeError(f"the benchmark child failed with exit code {proc.returncode}")
    return peak, json.loads(out.strip().splitlines()[-1])


def free_port() -> int:
    """A localhost TCP port that is free now (for a child server)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_child(proc: subprocess.Popen, *, timeout_s: float = 20) -> None:
    """Terminate a child process; kill it when it has not exited within ``timeout_s``."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
