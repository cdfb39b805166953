"""The `xsgpu pipeline` and `xsgpu demo` command lines: help, and errors before any cluster starts."""
from __future__ import annotations

from click.testing import CliRunner

from workflows.cli import main
from xsgpu.io.schema import SAMPLES, fill_samples


def _run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_help_has_worked_examples():
    res = _run("pipeline", "--help")
    assert res.exit_code == 0
    for s in ("--synth 100000", "--cluster local-cuda", "--cluster slurm", "--scheduler-file", "resumes"):
        assert s in res.output
    res = _run("demo", "--help")
    assert res.exit_code == 0 and "--no-serve" in res.output and "make demo" in res.output


def test_ingest_flag_needs_paths(tmp_path):
    res = _run("pipeline", "--ingest", "--out", str(tmp_path / "r"), "--model", str(tmp_path))
    assert res.exit_code == 2 and "--ingest needs one or more PATHS" in res.output


def test_paths_need_ingest_flag(tmp_path):
    res = _run("pipeline", str(tmp_path), "--out", str(tmp_path / "r"))
    assert res.exit_code == 2 and "without --ingest" in res.output


def test_synth_and_ingest_conflict(tmp_path):
    res = _run("pipeline", "--synth", "10", "--ingest", str(tmp_path), "--out", str(tmp_path / "r"))
    assert res.exit_code == 2 and "not both" in res.output


def test_model_required(tmp_path):
    res = _run("pipeline", "--synth", "10", "--out", str(tmp_path / "r"))
    assert res.exit_code == 2 and "needs a model" in res.output and "--train" in res.output


def test_missing_checkpoint(tmp_path):
    res = _run("pipeline", "--synth", "10", "--out", str(tmp_path / "r"), "--model", str(tmp_path / "nope"))
    assert res.exit_code == 2 and "does not exist or is incomplete" in res.output


def test_no_source_for_a_new_run(tmp_path):
    res = _run("pipeline", "--out", str(tmp_path / "r"), "--train")
    assert res.exit_code == 2 and "needs a source" in res.output


# ---------------------------------------------------------------- one error policy for every subcommand
def test_project_error_is_one_line_exit_2(tmp_path):
    res = CliRunner().invoke(main, ["embed", str(tmp_path / "nowhere")], catch_exceptions=False)
    assert res.exit_code == 2 and "Traceback" not in res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert lines == [lines[0]] and lines[0].startswith("Error: No run store at") and "xsgpu synth" in lines[0]


def test_permission_error_on_the_store_is_one_line(tmp_path, monkeypatch):
    import errno
    import tempfile

    def denied(*args, dir=None, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(dir))

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    res = CliRunner().invoke(main, ["synth", "--n", "4", "--size", "16", "--partition-size", "4",
                                    "--out", str(tmp_path / "run"), "--device", "cpu", "--no-progress"],
                             catch_exceptions=False)
    assert res.exit_code == 2 and "Traceback" not in res.output
    manifest = tmp_path / "run" / "manifest.json"
    assert f"Error: {manifest}: Permission denied. Hint: the run directory (or --out) must be writable" in res.output


def test_unexpected_errors_keep_their_traceback(tmp_path, monkeypatch):
    import numpy as np
    import pytest

    import xsgpu.embed
    from xsgpu.io.runstore import RunStore

    run = str(RunStore.create(tmp_path / "run", n_samples=2, partition_size=2).path)

    def bug(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(xsgpu.embed, "embed_run", bug)
    with pytest.raises(ZeroDivisionError, match="a bug"):
        CliRunner().invoke(main, ["embed", run], catch_exceptions=False)

    def library_value_error(*args, **kwargs):
        np.zeros(2) + np.zeros(3)  # a ValueError raised inside NumPy, not by xsgpu's checks: a bug

    monkeypatch.setattr(xsgpu.embed, "embed_run", library_value_error)
    with pytest.raises(ValueError, match="could not be broadcast"):
        CliRunner().invoke(main, ["embed", run], catch_exceptions=False)


def test_own_value_error_is_a_message(tmp_path):
    import numpy as np
    import pandas as pd

    from xsgpu.attributes import label_columns
    from xsgpu.io.runstore import RunStore

    store = RunStore.create(tmp_path / "run", n_samples=2, partition_size=2)
    df = pd.DataFrame({"sample_id": np.arange(2), "source_uri": ["a", "b"], "frame": [0, 0]})
    for c in label_columns():
        df[c] = False
    store.write_partition(SAMPLES, 0, fill_samples(df))
    res = CliRunner().invoke(main, ["export-labels", str(store.path), "--out", str(tmp_path / "labels.txt")],
                             catch_exceptions=False)
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "Error: The 'out_path' parameter of export_labels must end in .csv or .parquet" in res.output


def _as_unprivileged(argv):
    """Run ``xsgpu ARGV`` in a child process that file permissions apply to (root is mapped to nobody)."""
    import os
    import shutil
    import subprocess
    import sys

    import pytest

    prefix = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: permissions cannot be exercised")
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    env = {**os.environ, "HOME": "/tmp", "NUMBA_CACHE_DIR": "/tmp"}
    if prefix:  # a checkout inside a 0700 directory (mktemp -d) is unreadable to that user
        probe = subprocess.run(prefix + [sys.executable, "-c", "import workflows.cli"], capture_output=True,
                               text=True, env=env, timeout=300, cwd="/")
        if probe.returncode != 0:
            pytest.skip("user nobody cannot import this checkout (a parent directory is private): "
                        + probe.stderr.strip().splitlines()[-1][:200])
    return subprocess.run(prefix + [sys.executable, "-m", "workflows.cli", *argv], capture_output=True, text=True,
                          env=env, timeout=300, cwd="/")


def test_read_only_run_and_unwritable_out_are_one_line(tmp_path):
    """A real permission failure (not a mock): a read-only run directory and an unwritable --out."""
    import os
    import tempfile

    import numpy as np
    import pandas as pd

    from xsgpu.attributes import label_columns
    from xsgpu.io.runstore import RunStore

    base = tempfile.mkdtemp(prefix="xsgpu-ro-", dir="/tmp")
    try:
        store = RunStore.create(f"{base}/run", n_samples=2, partition_size=2)
        df = pd.DataFrame({"sample_id": np.arange(2), "source_uri": ["a", "b"], "frame": [0, 0]})
        for c in label_columns():
            df[c] = False
        store.write_partition(SAMPLES, 0, fill_samples(df))
        for root, dirs, files in os.walk(base):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o555)
        os.chmod(base, 0o555)
        res = _as_unprivileged(["export-labels", str(store.path)])  # writes RUN/labels_corrected.csv
        assert res.returncode == 2, res.stderr
        assert "Traceback" not in res.stderr and res.stderr.count("\n") == 1
        target = store.path / "labels_corrected.csv"
        assert res.stderr.startswith(f"Error: {target}: Permission denied. Hint: the run directory")
        res = _as_unprivileged(["synth", "--n", "2", "--size", "8", "--partition-size", "2", "--device", "cpu",
                                "--no-progress", "--out", f"{base}/new"])
        assert res.returncode == 2 and "Traceback" not in res.stderr and res.stderr.count("\n") == 1
        assert res.stderr.startswith(f"Error: {base}/new: Permission denied. Hint:")
    finally:
        for root, dirs, files in os.walk(base):
            os.chmod(root, 0o755)
        import shutil

        shutil.rmtree(base, ignore_errors=True)


def test_embed_and_evaluate_refuse_a_second_run_of_the_stage(tmp_path):
    import os

    from xsgpu.io.locks import stage_lock
    from xsgpu.io.runstore import RunStore

    store = RunStore.create(tmp_path / "run", n_samples=2, partition_size=2)
    for stage in ("embed", "evaluate"):
        with stage_lock(store.path, stage):
            res = CliRunner().invoke(main, [stage, str(store.path)], catch_exceptions=False)
        assert res.exit_code == 2 and "Traceback" not in res.output
        assert f"stage {stage!r} is already running here, held by pid {os.getpid()} " in res.output


def test_demo_refuses_a_set_without_a_validation_experiment(tmp_path):
    # 600 images at 100 per experiment are 6 experiments, none of them in 'val': said before any work starts
    res = _run("demo", "--n", "600", "--out", str(tmp_path / "demo"), "--no-serve")
    assert res.exit_code == 2
    assert "6 experiments" in res.output and "'val'" in res.output and "--images-per-run 20" in res.output
    assert not (tmp_path / "demo").exists()
