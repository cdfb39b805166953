"""The `xsgpu pipeline` and `xsgpu demo` command lines: help, and errors before any cluster starts."""
from __future__ import annotations

from click.testing import CliRunner

from workflows.cli import main


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
    assert res.exit_code == 1 and "needs a model" in res.output and "--train" in res.output


def test_missing_checkpoint(tmp_path):
    res = _run("pipeline", "--synth", "10", "--out", str(tmp_path / "r"), "--model", str(tmp_path / "nope"))
    assert res.exit_code == 1 and "does not exist or is incomplete" in res.output


def test_no_source_for_a_new_run(tmp_path):
    res = _run("pipeline", "--out", str(tmp_path / "r"), "--train")
    assert res.exit_code == 1 and "needs a source" in res.output
