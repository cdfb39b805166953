import numpy as np

from xsgpu.preprocess import LOG_BASE, log_scale, make_thumbnails, resize_batch, standardise, to_model_input


def test_log_scale_masks_and_nonpositive():
    f = np.array([[[LOG_BASE**10, 0.0], [-1.0, np.nan]]], dtype=np.float32)
    mask = np.array([[[False, False], [False, False]]])
    out = log_scale(f, mask)
    np.testing.assert_allclose(out, [[[10.0, 0.0], [0.0, 0.0]]], atol=1e-4)
    out2 = log_scale(f, np.array([[[True, False], [False, False]]]))
    assert out2[0, 0, 0] == 0


def test_resize_preserves_constant_and_shape():
    b = np.full((3, 256, 256), 7.0, dtype=np.float32)
    for size in (224, 128, 64, 300):
        r = resize_batch(b, size)
        assert r.shape == (3, size, size) and r.dtype == np.float32
        np.testing.assert_allclose(r, 7.0, rtol=1e-5)


def test_resize_linear_ramp_is_exact_in_interior():
    ramp = np.tile(np.arange(10, dtype=np.float32), (1, 10, 1))
    r = resize_batch(ramp, 19)
    assert np.all(np.diff(r[0, 0]) >= 0)
    assert abs(r[0, 0, 9] - 4.5) < 0.3


def test_standardise_and_model_input(rng):
    b = rng.normal(5, 3, size=(4, 32, 32)).astype(np.float32)
    s = standardise(b)
    np.testing.assert_allclose(s.mean(axis=(1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(s.std(axis=(1, 2)), 1, atol=1e-3)
    assert to_model_input(b, 16).shape == (4, 1, 16, 16)


def test_thumbnails_uint8_range(rng):
    t = make_thumbnails(rng.random((2, 128, 128)).astype(np.float32) * 300, size=64)
    assert t.shape == (2, 64, 64) and t.dtype == np.uint8 and t.max() == 255 and t.min() == 0
