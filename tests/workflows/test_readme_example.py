"""The README's "Study your own model" example runs as written (every ``bash`` block but ``xsgpu serve``).

The blocks are taken from README.md itself and run in order by one bash process in an empty directory,
with this interpreter's environment first on PATH (``python`` and ``xsgpu`` as a fresh clone's
``. .venv/bin/activate`` gives them), so the README and the code cannot drift apart. The outputs the
text promises are then checked in the run store.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Study your own model"


def section_blocks(text: str, heading: str = SECTION) -> list[str]:
    """The ``bash`` code blocks of the README section under ``heading`` (up to the next ``## `` heading)."""
    start = text.index(heading + "\n")
    end = text.find("\n## ", start + len(heading))
    body = text[start:end if end >= 0 else len(text)]
    return re.findall(r"^```bash\n(.*?)^```", body, flags=re.S | re.M)


def runnable_script(blocks: list[str]) -> tuple[str, list[str]]:
    """One bash script of the blocks, without the ``xsgpu serve`` lines (returned apart: they never end)."""
    lines = "\n".join(blocks).splitlines()
    serve = [line for line in lines if line.lstrip().startswith("xsgpu serve")]
    kept = [line for line in lines if not line.lstrip().startswith("xsgpu serve")]
    return "set -euo pipefail\n" + "\n".join(kept) + "\n", serve


def test_the_section_has_the_steps_it_promises():
    blocks = section_blocks(README.read_text(encoding="utf-8"))
    script, serve = runnable_script(blocks)
    assert serve == ["xsgpu serve runs/own"]
    for step in ("torch.onnx.export", "xsgpu model inspect", "models/r18.spec.toml", "tifffile.imwrite", "h5py.File",
                 "labels.csv", "xsgpu ingest", "xsgpu infer runs/own --model models/r18.onnx", "xsgpu embed",
                 "xsgpu evaluate"):
        assert step in script, step


@pytest.mark.slow
def test_readme_example_runs_as_written(tmp_path):
    from xsgpu.io.runstore import RunStore

    script, _serve = runnable_script(section_blocks(README.read_text(encoding="utf-8")))
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.pop("PYTHONPATH", None)  # as on a fresh clone: the installed package only
    env.setdefault("OMP_NUM_THREADS", "2")
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=540)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert "spec models/r18.spec.toml: OK" in out
    assert "Ingested 40 samples (40 readable, 12 labelled) from 25 files" in out
    assert re.search(r"mAP \d\.\d{4} over 12 labelled samples of 40 \(28 unlabelled", out), out[-3000:]

    store = RunStore.open(tmp_path / "runs" / "own")
    samples = store.samples.read()
    assert len(samples) == 40 and int(samples["labelled"].sum()) == 12
    assert set(samples["format"]) == {"tiff", "eiger"}
    labelled = samples[samples["labelled"]]
    assert labelled["meta__sample"].notna().all() and samples.loc[~samples["labelled"], "meta__sample"].isna().all()
    tif = samples[samples["format"] == "tiff"]
    assert (tif["hdr__exposure_time"] == 0.1).all() and (tif["hdr__distance"] == 3.5).all()
    assert (samples.loc[samples["format"] == "eiger", "hdr__exposure_time"] == 0.5).all()
    assert len(store.read_table("predictions")) == 40
    assert store.table_path("embedding").exists() and store.table_path("metrics").exists()
