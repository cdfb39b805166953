"""GPU (CuPy) path of the generator: same labels as on CPU, same statistics. Skipped without CUDA."""
from __future__ import annotations

import numpy as np
import pytest

from xsgpu.synth import generate_images

pytestmark = pytest.mark.gpu


def test_cupy_batch_matches_cpu_labels_and_statistics():
    cupy = pytest.importorskip("cupy")
    g = generate_images(24, size=64, seed=3, images_per_run=6, xp=cupy)
    c = generate_images(24, size=64, seed=3, images_per_run=6)
    assert isinstance(g.counts, cupy.ndarray) and g.counts.dtype == cupy.float32
    np.testing.assert_array_equal(g.labels, c.labels)  # parameters and labels are drawn on the host
    gc = cupy.asnumpy(g.counts)
    # the noise streams differ, the expected counts do not: per-image means agree within Poisson noise
    m_g, m_c = gc.reshape(24, -1).mean(1), c.counts.reshape(24, -1).mean(1)
    np.testing.assert_allclose(m_g, m_c, rtol=0.05, atol=0.05)
    np.testing.assert_array_equal(cupy.asnumpy(g.mask), c.mask)


def test_gpu_stage_writes_a_store(tmp_path):
    pytest.importorskip("cupy")
    from xsgpu.synth import synthesize_run

    store = synthesize_run(tmp_path / "gpu", n=64, size=32, seed=1, partition_size=32, device="gpu",
                           progress=False)
    assert store.labels().shape == (64, 17)
    assert store.images.open().shape == (64, 32, 32)
