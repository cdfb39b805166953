"""``run_pipeline`` / ``xsgpu pipeline`` with a model from elsewhere (ONNX + spec) on a partly labelled folder.

The reference is ``xsgpu ingest`` + ``xsgpu infer --model MODEL.onnx`` on the same folder: the pipeline's
predictions must equal them (same model, same frames; ONNX Runtime on CPU is deterministic, so 1e-6) and
its features too (float16 in both), with embed and evaluate done over the labelled images.

The pipeline takes model files since the stage-contract commit (97e746d, ``InferParams.spec``); before
it, it refused them (``checkpoint_exists`` wanted an xsgpu checkpoint directory).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from workflows.cli import main
from xsgpu.attributes import NAMES
from xsgpu.io.runstore import RunStore

SIZE = 32
SPEC = """
[input]
scale = "log"
normalize = "per_image"

[output]
kind = "logits"
attributes = [{names}]
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A ResNet-18 (17 outputs, random weights) as ONNX with its spec; 6 TIFFs + an HDF5 stack of 4; 4 labelled."""
    import h5py
    import tifffile
    import torch
    import torchvision

    from xsgpu.synth import generate_images

    root = tmp_path_factory.mktemp("foreign_pipeline")
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None, num_classes=17).eval()
    torch.onnx.export(net, (torch.zeros(1, 3, SIZE, SIZE),), str(root / "r18.onnx"), dynamo=False,
                      input_names=["image"], output_names=["logits"],
                      dynamic_axes={"image": {0: "n"}, "logits": {0: "n"}})
    (root / "r18.spec.toml").write_text(SPEC.format(names=", ".join(f'"{n}"' for n in NAMES)))
    batch = generate_images(10, size=SIZE, seed=3)
    counts = np.rint(batch.counts).astype(np.int32)
    (root / "data" / "run01").mkdir(parents=True)
    (root / "data" / "run02").mkdir()
    for i in range(6):
        tifffile.imwrite(root / "data" / "run01" / f"img_{i}.tif", counts[i], description="# Exposure_time 0.1 s\r\n")
    with h5py.File(root / "data" / "run02" / "scan.h5", "w") as f:
        f["entry/data/data"] = counts[6:]
    rows = [{"file": "run01/img_0.tif", "frame": None}, {"file": "run01/img_3.tif", "frame": None},
            {"file": "run02/scan.h5", "frame": 1}, {"file": "run02/scan.h5", "frame": 2}]
    labels = pd.DataFrame(rows).astype({"frame": "Int64"})
    labels[list(NAMES)] = batch.labels[[0, 3, 7, 8]].astype(int)
    labels.to_csv(root / "labels.csv", index=False)
    return root


def _cli(*args):
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res.output


@pytest.mark.slow
def test_pipeline_with_an_onnx_model_equals_ingest_plus_infer(folder, tmp_path, dask_client):
    from workflows.pipeline import run_pipeline

    serial = tmp_path / "serial"
    _cli("ingest", folder / "data", "--labels", folder / "labels.csv", "--size", SIZE, "--out", serial, "--no-progress")
    _cli("infer", serial, "--model", folder / "r18.onnx", "--device", "cpu", "--no-progress")

    res = run_pipeline(tmp_path / "pipe", ingest=[folder / "data"], labels=folder / "labels.csv", size=SIZE,
                       partition_size=4, model=folder / "r18.onnx", embed=True, embed_method="pca", evaluate=True,
                       device="cpu", client=dask_client, progress=False)
    pipe, ref = RunStore.open(res.run_path), RunStore.open(serial)
    a, b = pipe.read_table("predictions"), ref.read_table("predictions")
    assert a["sample_id"].tolist() == list(range(10))
    p = [c for c in a.columns if c.startswith("p__")]
    np.testing.assert_allclose(a[p].to_numpy(), b[p].to_numpy(), atol=1e-6)
    np.testing.assert_array_equal(np.asarray(pipe.open_array("features")[:]), np.asarray(ref.open_array("features")[:]))
    samples = pipe.samples.read()
    assert int(samples["labelled"].sum()) == 4 and (samples.loc[samples["format"] == "tiff", "hdr__exposure_time"] == 0.1).all()
    stages = pipe.reload().manifest["stages"]
    assert {s: stages[s]["status"] for s in ("ingest", "infer", "embed", "evaluate", "pipeline")} == dict.fromkeys(
        ("ingest", "infer", "embed", "evaluate", "pipeline"), "done")
    assert pipe.read_metadata("metrics").get("n_evaluated") == 4

