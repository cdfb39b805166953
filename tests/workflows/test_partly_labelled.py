"""Real folders at 0 %, ~10 %, ~70 % and 100 % labelled: ingest -> infer -> embed -> evaluate through the CLI.

The label files key the images by paths relative to the ingested directory (``run07/pilatus.tif``),
the common layout; the metrics cover the labelled images and say how many; the suspicious-label audit
covers labelled images only.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from workflows.cli import main
from xsgpu.attributes import NAMES
from xsgpu.io.readers.examples import write_example_files
from xsgpu.io.runstore import RunStore
from xsgpu.metrics.evaluate import metrics_table
from xsgpu.model import build_resnet, save_checkpoint


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    write_example_files(root / "data" / "run07")
    save_checkpoint(root / "model", build_resnet("resnet18"), input_size=32)
    return root


def _cli(*args):
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res.output


def _label_file(path, samples: pd.DataFrame, pick: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for uri, frame in samples.loc[pick, ["source_uri", "frame"]].itertuples(index=False):
        rel = "/".join(uri.split("/")[-2:])  # run07/<file>: relative to the ingested directory data/
        rows.append({"file": rel, "frame": int(frame), "notes": "checked",
                     **{n: int(v) for n, v in zip(NAMES, rng.random(17) < 0.4)}})
    pd.DataFrame(rows).to_csv(path, index=False)


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.7, 1.0])
def test_partly_labelled_run_end_to_end(folder, tmp_path, fraction):
    data, model = folder / "data", folder / "model"
    probe = tmp_path / "probe"
    _cli("ingest", data, "--size", 32, "--out", probe, "--no-progress")
    samples = RunStore.open(probe).read_table("samples").sort_values("sample_id").reset_index(drop=True)
    n = len(samples)
    n_lab = int(round(fraction * n))
    pick = np.zeros(n, bool)
    pick[np.random.default_rng(1).choice(n, n_lab, replace=False)] = True
    run = tmp_path / "run"
    args = ["ingest", data, "--size", 32, "--out", run, "--no-progress"]
    if n_lab:
        _label_file(tmp_path / "labels.csv", samples, pick)
        args += ["--labels", tmp_path / "labels.csv"]
    assert f"{n_lab} labelled" in _cli(*args)
    _cli("infer", run, "--model", model, "--device", "cpu", "--threads", 1, "--no-progress")
    _cli("embed", run, "--method", "pca", "--device", "cpu")
    out = _cli("evaluate", run)
    store = RunStore.open(run)
    got = store.samples.read().sort_values("sample_id")
    assert int(got["labelled"].sum()) == n_lab
    _, model_metrics = metrics_table(store.metrics.read())
    assert model_metrics["n"] == n_lab and store.metrics.metadata()["n_samples"] == n
    if n_lab == 0:
        assert f"no labelled samples among the {n} images" in out
    elif n_lab < n:
        assert f"over {n_lab} labelled samples of {n} ({n - n_lab} unlabelled or unreadable, not evaluated)" in out
        if n_lab > 10:  # the audit needs more labelled images than FEA neighbours (k = 10)
            suspicious = pd.read_parquet(run / "suspicious.parquet")
            labelled_ids = set(got.loc[got["labelled"], "sample_id"])
            assert len(suspicious) and set(suspicious["sample_id"]) <= labelled_ids
            assert store.suspicious.metadata()["n_audited"] == n_lab
        else:
            assert not (run / "suspicious.parquet").exists()
    else:
        assert f"over {n} labelled samples (" in out
