"""Fixtures of the metrics tests: small seeded multi-label data and the array backends."""
from __future__ import annotations

import numpy as np
import pytest

#: Backends for NumPy-vs-CuPy parity tests; the CuPy one runs only with a GPU (marker ``gpu``).
BACKENDS = [pytest.param("numpy", id="numpy"), pytest.param("cupy", id="cupy", marks=pytest.mark.gpu)]


def to_backend(x, backend: str):
    """Return ``x`` as an array of the named backend (CuPy imported only when asked for)."""
    if backend == "numpy":
        return np.asarray(x)
    import cupy

    return cupy.asarray(x)


def make_multilabel(rng: np.random.Generator, n: int = 300, *, quantize: int | None = None,
                    prevalence: float = 0.3):
    """Labels (n, 17) and correlated probabilities (n, 17); ``quantize`` rounds scores to create ties."""
    y = rng.random((n, 17)) < prevalence
    p = np.clip(0.35 * y + rng.random((n, 17)) * 0.65, 0.0, 1.0).astype(np.float32)
    if quantize:
        p = (np.round(p * quantize) / quantize).astype(np.float32)
    return y, p


@pytest.fixture
def multilabel(rng):
    return make_multilabel(rng)
