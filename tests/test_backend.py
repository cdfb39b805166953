import numpy as np
import pytest

from xsgpu.backend import GPUUnavailable, get_backend, gpu_status, namespace_of, resolve_device, to_host


def test_cpu_backend():
    b = get_backend("cpu")
    assert b.xp is np and b.xdf.__name__ == "pandas" and b.torch_device == "cpu"


def test_bad_device_message():
    with pytest.raises(ValueError, match="'device' parameter must be 'auto', 'cpu' or 'gpu'. Got 'tpu'"):
        resolve_device("tpu")


def test_explicit_gpu_without_gpu_raises_with_reason():
    ok, reason = gpu_status()
    if ok:
        pytest.skip("a GPU is present")
    with pytest.raises(GPUUnavailable, match="device='gpu' was requested but"):
        resolve_device("gpu")
    assert resolve_device("auto") == "cpu"


def test_namespace_and_host():
    a = np.ones(3)
    assert namespace_of(a, None) is np
    assert to_host(a) is a


@pytest.mark.gpu
def test_cupy_namespace():
    cp = pytest.importorskip("cupy")
    x = cp.ones(3)
    assert namespace_of(x) is cp
    assert isinstance(to_host(x), np.ndarray)
    with pytest.raises(TypeError, match="mix NumPy and CuPy"):
        namespace_of(x, np.ones(3))
