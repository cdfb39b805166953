"""The CLI and the pipeline run the same stages (xsgpu.stages), and the pipeline holds no stage logic.

* ``workflows/pipeline.py`` imports nothing of the stage modules (parsed, not grepped for strings only):
  from xsgpu only ``xsgpu.stages`` and the store/error modules, and it names no stage function.
* Each stage command calls ``run_stage(get_stage(<its stage>), ...)`` and none of the stage's functions.
* A tiny run made stage by stage with the CLI equals the one ``run_pipeline`` makes on Dask.
"""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from workflows.cli import main
from xsgpu.io.runstore import RunStore
from xsgpu.io.schema import APP_CACHE

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = ROOT / "workflows" / "pipeline.py"
#: xsgpu modules the pipeline may import: the stage registry, and the store and error types
ALLOWED_XSGPU = {"xsgpu.stages", "xsgpu.io.runstore", "xsgpu.io.schema", "xsgpu.errors"}
#: the stages' own functions (what the pipeline restated before the stage contract)
STAGE_FUNCTIONS = {"plan_synth_run", "synth_partition", "synthesize_run", "plan_ingest", "ingest_partition",
                   "finish_ingest", "ingest_paths", "train_model", "latest_epoch_checkpoint", "infer_partition",
                   "infer_run", "plan_infer", "finish_infer", "Predictor", "read_checkpoint_meta", "embed_run",
                   "embedding_is_current", "evaluate_run", "stage_lock", "prepare_app_cache"}
COMMANDS = {"synth": "synthesize_run", "ingest": "ingest_paths", "train": "train_model", "infer": "infer_run",
            "embed": "embed_run", "evaluate": "evaluate_run", "app_cache": "prepare_app_cache"}


def _imports(path: Path) -> set[str]:
    """Every module a file imports (``import a.b``, ``from a.b import c`` -> ``a.b``), at any depth."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def _names(path: Path) -> set[str]:
    """Every identifier and attribute name used in a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    names |= {a.name.split(".")[-1] for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
              for a in n.names}
    return names


def test_the_pipeline_imports_no_stage_internals():
    xsgpu = {m for m in _imports(PIPELINE) if m == "xsgpu" or m.startswith("xsgpu.")}
    assert "xsgpu.stages" in xsgpu
    assert xsgpu <= ALLOWED_XSGPU, f"workflows/pipeline.py imports stage internals: {sorted(xsgpu - ALLOWED_XSGPU)}"
    assert not _names(PIPELINE) & STAGE_FUNCTIONS, sorted(_names(PIPELINE) & STAGE_FUNCTIONS)


def test_the_import_check_catches_a_stage_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from xsgpu.model.infer import infer_partition\n    return infer_partition\n")
    assert {m for m in _imports(bad) if m.startswith("xsgpu.")} - ALLOWED_XSGPU == {"xsgpu.model.infer"}
    assert _names(bad) & STAGE_FUNCTIONS == {"infer_partition"}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_stage_command_runs_its_stage(name):
    path = ROOT / "workflows" / "commands" / f"{name}.py"
    src = path.read_text()
    assert f'run_stage(get_stage("{name}")' in src
    assert COMMANDS[name] not in _names(path)


N, SIZE, PART = 48, 32, 16


def _cli(*args):
    res = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def test_cli_and_pipeline_make_the_same_run(tmp_path, tiny_model, dask_client):
    from workflows.pipeline import run_pipeline

    cli = tmp_path / "cli"
    _cli("synth", "--n", N, "--size", SIZE, "--seed", 4, "--partition-size", PART, "--out", cli, "--no-progress")
    _cli("infer", cli, "--model", tiny_model, "--device", "cpu", "--no-progress")
    _cli("embed", cli, "--method", "pca", "--device", "cpu", "--seed", 4, "--no-progress")  # the pipeline's --seed
    _cli("evaluate", cli)
    res = run_pipeline(tmp_path / "pipe", synth=N, size=SIZE, seed=4, partition_size=PART, model=tiny_model,
                       embed_method="pca", device="cpu", client=dask_client, progress=False)
    stages = ("synth", "infer", "embed", "evaluate", "app_cache")
    assert {k: r.status for k, r in res.stages.items()} == dict.fromkeys(stages, "done")
    a, b = RunStore.open(cli), RunStore.open(res.run_path)
    pd.testing.assert_frame_equal(a.samples.read(), b.samples.read())
    pd.testing.assert_frame_equal(a.predictions.read(), b.predictions.read())
    for name in ("images", "thumbs", "features", "heatmaps"):
        np.testing.assert_array_equal(np.asarray(a.open_array(name)[:]), np.asarray(b.open_array(name)[:]))
    # equal inputs; the iterative float32 t-SNE may differ by a few ulps between the two processes' thread pools
    np.testing.assert_allclose(a.embedding.read().to_numpy(), b.embedding.read().to_numpy(), rtol=1e-5, atol=1e-5)
    pd.testing.assert_frame_equal(a.metrics.read(), b.metrics.read())
    for name in ("labels", "probabilities", "probability_order"):  # the app cache: from equal inputs, equal
        np.testing.assert_array_equal(a.load_npy(APP_CACHE.named(name=name)), b.load_npy(APP_CACHE.named(name=name)))
    for name in ("coords", "index_xs_fea", "index_ys_prd"):  # from the maps above, to the same tolerance
        a_xy, b_xy = (np.sort(np.asarray(s.load_npy(APP_CACHE.named(name=name))), axis=0) for s in (a, b))
        np.testing.assert_allclose(a_xy, b_xy, rtol=1e-5, atol=1e-5)
    for stage in stages:
        assert a.manifest["stages"][stage]["status"] == b.manifest["stages"][stage]["status"] == "done"
    # a rerun of the pipeline does nothing: every stage is done for these parameters
    again = run_pipeline(tmp_path / "pipe", synth=N, size=SIZE, seed=4, partition_size=PART, model=tiny_model,
                         embed_method="pca", device="cpu", client=dask_client, progress=False)
    assert {k: r.status for k, r in again.stages.items()} == dict.fromkeys(stages, "skipped")
