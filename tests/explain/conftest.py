"""A small inferred run for the explanation tests: 24 easy synthetic images at 64 px, a random ResNet-18."""
from __future__ import annotations

import pytest

from xsgpu.model import infer_run, save_checkpoint
from xsgpu.model.checkpoint import default_preprocessing

from tests.model.conftest import make_easy_run, random_resnet18


@pytest.fixture(scope="session")
def explained_run(tmp_path_factory):
    """(run store inferred with heatmaps and layer1..layer3, checkpoint path, the network)."""
    net = random_resnet18(0)
    root = tmp_path_factory.mktemp("explain")
    save_checkpoint(root / "r18", net, input_size=64, preprocessing=default_preprocessing((64, 64)))
    store = make_easy_run(root / "run", n=48, size=64, partition_size=16, seed=3)
    infer_run(store.path, model=root / "r18", device="cpu", batch_size=16, num_threads=1, progress=False,
              layers=["layer1", "layer2", "layer3"])
    return store, root / "r18", net.eval()
