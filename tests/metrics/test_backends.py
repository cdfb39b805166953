"""NumPy and CuPy give the same numbers, and outputs stay on the input's device (CuPy cases need a GPU)."""
from __future__ import annotations

import numpy as np
import pytest

from xsgpu.backend import to_host
from xsgpu.metrics import (
    attribute_metrics, attribute_study, average_precision, confusion_counts, cooccurrence_table, error_distance,
    selection_metrics, suspicious_labels,
)

from .conftest import BACKENDS, make_multilabel, to_backend


@pytest.fixture
def data(rng):
    return make_multilabel(rng, 500, quantize=10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_counts_and_distances(data, backend):
    y, p = data
    yb, pb = to_backend(y, backend), to_backend(p, backend)
    c = confusion_counts(yb, pb, cutoff=to_backend(np.linspace(0.2, 0.8, 17), backend))
    ref = confusion_counts(y, p, cutoff=np.linspace(0.2, 0.8, 17))
    for k in ref:
        assert type(c[k]) is type(yb)
        np.testing.assert_array_equal(to_host(c[k]), ref[k])
    for metric in ("cosine", "euclidean", "manhattan"):
        d = error_distance(yb, pb, metric=metric)
        assert type(d) is type(yb)
        np.testing.assert_allclose(to_host(d), error_distance(y, p, metric=metric), atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ap_selection_and_frames(data, backend):
    y, p = data
    yb, pb = to_backend(y, backend), to_backend(p, backend)
    ap = average_precision(yb, pb)
    assert type(ap) is type(yb)
    np.testing.assert_allclose(to_host(ap), average_precision(y, p), atol=1e-12)
    sel = np.arange(0, 500, 2)
    a = selection_metrics(yb, pb, to_backend(sel, backend), ap=True)
    b = selection_metrics(y, p, sel, ap=True)
    np.testing.assert_allclose(a.per_attribute.to_numpy(float), b.per_attribute.to_numpy(float), equal_nan=True)
    assert a.overall == pytest.approx(b.overall)
    for frac in (0.3, 0.8):  # gather path and all-minus-rest path of the scorer
        mask = np.arange(500) % 10 < frac * 10
        a = selection_metrics(yb, pb, to_backend(mask, backend))
        b = selection_metrics(y, p, mask)
        np.testing.assert_allclose(a.per_attribute.to_numpy(float), b.per_attribute.to_numpy(float), equal_nan=True)
        assert a.overall == pytest.approx(b.overall, nan_ok=True)
    np.testing.assert_allclose(attribute_metrics(yb, pb).to_numpy(float), attribute_metrics(y, p).to_numpy(float))
    assert cooccurrence_table(yb, pb).equals(cooccurrence_table(y, p))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("measure", ["mutual_information", "correlation", "conditional_entropy"])
def test_study(data, backend, measure):
    y, p = data
    m = attribute_study(to_backend(y, backend), measure=measure, other=to_backend(p, backend))
    assert type(m) is type(to_backend(y, backend))
    np.testing.assert_allclose(to_host(m), attribute_study(y, measure=measure, other=p), atol=1e-9, equal_nan=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_suspicious(data, backend, rng):
    y, p = data
    f = rng.normal(size=(500, 8)).astype(np.float32)
    a = suspicious_labels(to_backend(y, backend), to_backend(p, backend), to_backend(f, backend), k=5, top=50)
    b = suspicious_labels(y, p, f, k=5, top=50, device="cpu")
    np.testing.assert_allclose(a["score"], b["score"], atol=1e-6)
