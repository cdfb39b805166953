"""ResNet builders and the torch preprocessing/augmentation."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from xsgpu.model.resnet import build_resnet
from xsgpu.model.transforms import Augmentation, augment, to_model_input
from xsgpu.preprocess import to_model_input as np_model_input


@pytest.mark.parametrize("arch, dim", [("resnet18", 512), ("resnet34", 512), ("resnet50", 2048)])
def test_build_resnet_shapes(arch, dim):
    torch.manual_seed(0)
    net = build_resnet(arch).eval()
    conv1 = net.trunk.conv1
    assert conv1.in_channels == 1
    with torch.no_grad():
        feats, probs = net(torch.randn(2, 1, 32, 32))
        f2, logits = net.forward_logits(torch.randn(2, 1, 32, 32) * 0 + 1)
    assert feats.shape == (2, dim) and probs.shape == (2, 17) and net.feature_dim == dim
    assert torch.all((probs > 0) & (probs < 1))
    with torch.no_grad():
        _, p2 = net(torch.ones(2, 1, 32, 32))
    torch.testing.assert_close(p2, torch.sigmoid(logits))


def test_build_resnet_rejects_bad_arguments():
    with pytest.raises(ValueError, match="The 'arch' parameter must be one of resnet18, resnet34, resnet50. Got 'vgg16'"):
        build_resnet("vgg16")
    with pytest.raises(ValueError, match="The 'n_outputs' parameter of build_resnet must be a positive int. Got 0"):
        build_resnet("resnet18", n_outputs=0)


@pytest.mark.parametrize("h, size", [(64, 32), (40, 32), (256, 224), (32, 32), (96, 64)])
def test_torch_model_input_matches_numpy_preprocess(rng, h, size):
    x = (rng.random((3, h, h)) * 400).astype(np.float32)
    x[:, :5] = 0  # masked rows
    ours = to_model_input(torch.from_numpy(x), size).numpy()
    ref = np_model_input(x, size)
    assert ours.shape == ref.shape == (3, 1, size, size)
    np.testing.assert_allclose(ours, ref, atol=2e-4)
    # float16 input, as read from images.zarr
    ours16 = to_model_input(torch.from_numpy(x.astype(np.float16)), size).numpy()
    np.testing.assert_allclose(ours16, np_model_input(x.astype(np.float16).astype(np.float32), size), atol=2e-4)


def test_to_model_input_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"log_frames must have shape \(N, H, W\). Got shape \(4, 4\)"):
        to_model_input(torch.zeros(4, 4), 4)


def test_augment_keeps_labels_geometry(rng):
    """Augmentation only applies symmetries of the square + exposure + noise: the radial profile about
    the centre (where rings and the beam sit) is kept, and masked (zero) pixels stay a same-size set."""
    size = 32
    yy, xx = np.mgrid[0:size, 0:size]
    rad = np.hypot(yy - 15.5, xx - 15.5)
    frame = (100 + 50 * np.exp(-((rad - 9) ** 2) / 2)).astype(np.float32)
    frame[rad < 3] = 0  # beamstop: masked
    x = torch.from_numpy(np.repeat(frame[None], 16, axis=0))
    g = torch.Generator().manual_seed(0)
    out = augment(x, size, generator=g)[:, 0].numpy()
    assert out.shape == (16, size, size)
    ref = to_model_input(torch.from_numpy(frame[None]), size)[0, 0].numpy()
    beamstop = rad < 3
    for img in out:
        # the beamstop is still there, at the same place (the symmetric frame maps onto itself)
        assert np.all(img[beamstop] < img[~beamstop].mean() - 1.0)
        assert np.abs(img - ref).mean() < 0.1  # only noise and a small exposure change
    # deterministic for a seeded generator, different across calls
    again = augment(x, size, generator=torch.Generator().manual_seed(0))[:, 0].numpy()
    np.testing.assert_array_equal(out, again)


def test_augment_flips_move_beamstop_with_pattern():
    """An off-centre linear beamstop is flipped with the image, never cropped away."""
    size = 32
    frame = np.full((size, size), 200.0, np.float32)
    frame[16:, 14:18] = 0  # bar from the centre to the bottom edge
    x = torch.from_numpy(np.repeat(frame[None], 32, axis=0))
    out = augment(x, size, generator=torch.Generator().manual_seed(1), options=Augmentation(flips=True))[:, 0].numpy()
    assert len({img.tobytes() for img in out}) > 1  # flipped in several ways
    for img in out:
        dark = img < img.mean() - 1.0
        assert dark.sum() == (frame == 0).sum()  # same number of masked pixels: nothing cropped or added
        ys, xs = np.nonzero(dark)
        # the bar still touches an image edge and reaches the centre
        assert ys.min() == 0 or ys.max() == size - 1 or xs.min() == 0 or xs.max() == size - 1
        assert np.any((np.abs(ys - 15.5) < 2) & (np.abs(xs - 15.5) < 2))


def test_augment_shift_translates_with_zero_fill():
    """``shift`` moves the whole image by at most that many pixels and fills the vacated border with 0."""
    size, k = 32, 3
    frame = np.zeros((size, size), np.float32)
    frame[10, 20] = 50.0  # one bright pixel
    frame[:, 0] = 5.0  # a lit left column: shifted right, zeros come in
    x = torch.from_numpy(np.repeat(frame[None], 64, axis=0))
    opts = Augmentation(flips=False, noise_sigma=0.0, exposure=(1.0, 1.0), shift=k)
    out = augment(x, size, generator=torch.Generator().manual_seed(2), options=opts)[:, 0].numpy()
    moved = set()
    for img in out:
        y, xx = np.unravel_index(np.argmax(img), img.shape)
        assert abs(y - 10) <= k and abs(xx - 20) <= k
        moved.add((int(y) - 10, int(xx) - 20))
    assert len(moved) > 10  # the offsets vary between images


def test_augment_poisson_renoise_keeps_mean_counts():
    """Poisson re-noising at gain g re-draws counts as Poisson(g I) / g: same mean, variance I / g."""
    from xsgpu.preprocess import LOG_BASE

    size, counts = 32, 200.0
    x = torch.full((8, size, size), float(np.log(counts) / np.log(LOG_BASE)))
    opts = Augmentation(flips=False, noise_sigma=0.0, exposure=(1.0, 1.0), poisson=1.0, poisson_log10_gain=(-1.0, -1.0))
    from xsgpu.model.transforms import _poisson_renoise

    gen = torch.Generator().manual_seed(3)
    out = _poisson_renoise(x, opts, lambda *s: torch.rand(*s, generator=gen), gen)
    c = np.where(out.numpy() > 0, LOG_BASE ** out.numpy().astype(np.float64), 0.0)
    assert abs(c.mean() - counts) < 0.05 * counts
    assert abs(c.var() - counts / 0.1) < 0.15 * counts / 0.1
    none = Augmentation(poisson=0.0)
    np.testing.assert_array_equal(augment(x, size, generator=torch.Generator().manual_seed(0), options=none).numpy(),
                                  augment(x, size, generator=torch.Generator().manual_seed(0)).numpy())


def test_augmentation_parse_and_validation():
    a = Augmentation.parse("exposure=0.3:3,shift=2,poisson=0.5,flips=0")
    assert a.exposure == (0.3, 3.0) and a.shift == 2 and a.poisson == 0.5 and a.flips is False
    assert Augmentation.parse("") == Augmentation()
    with pytest.raises(ValueError, match="is not key=value with a key in"):
        Augmentation.parse("rotate=10")
    with pytest.raises(ValueError, match="The 'poisson' parameter of Augmentation must be a probability"):
        Augmentation(poisson=2.0)
