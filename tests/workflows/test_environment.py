"""environment.yml (conda, GPU/HPC nodes) stays consistent with pyproject.toml."""
from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _pip_section(env: dict) -> list[str]:
    for dep in env["dependencies"]:
        if isinstance(dep, dict) and "pip" in dep:
            return dep["pip"]
    raise AssertionError("environment.yml has no pip section")


def test_environment_yml_pins_match_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = _pip_section(env)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "-e ." in pip
    for wheel in project["optional-dependencies"]["gpu"]:
        assert wheel in pip, f"[gpu] extra {wheel} missing from environment.yml"
    assert "torch==2.14.1" in pip and not any("cu12" in p for p in pip)
    dask_pin = next(d for d in project["dependencies"] if d.startswith("dask[distributed]"))
    assert dask_pin in pip
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    assert any(d.startswith("pandas") and "<3.1" in d for d in conda)
    assert any(d.startswith("numba") and "<0.65" in d for d in conda)
