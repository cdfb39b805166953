"""Grad-CAM, Integrated Gradients and Gradient x Input (Captum) against a hand computation in NumPy (issue 12.2).

The network: conv(1->2, 3x3) -> ReLU -> conv(2->3, 3x3) -> ReLU -> global average pool -> linear(3->2), on
an 8 x 8 input. Its forward pass and every gradient are written out with explicit sums in float64
(no autograd); the Captum results (float32) must agree to 1e-5 relative to the largest |value|.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from xsgpu.explain.attribution import grad_cam, gradient_x_input, integrated_gradients, upsample

RTOL = 1e-5


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 3)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(2, 3, 3)
        self.relu2 = nn.ReLU()
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        a2 = self.relu2(self.conv2(self.relu1(self.conv1(x))))
        return self.fc(a2.mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(4)
    net = Tiny().double().eval()
    with torch.no_grad():  # biases that keep part of each map positive and part negative
        net.conv1.bias.copy_(torch.tensor([0.1, -0.05]))
        net.conv2.bias.copy_(torch.tensor([0.05, 0.0, -0.02]))
    p = {k: v.detach().numpy().astype(np.float64) for k, v in net.state_dict().items()}
    return net.float(), p


def _corr(x, w, b):
    """Valid cross-correlation: x (Cin, H, W), w (Cout, Cin, 3, 3) -> (Cout, H-2, W-2)."""
    cout, cin, kh, kw = w.shape
    h, wd = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    out = np.zeros((cout, h, wd))
    for o in range(cout):
        for i in range(h):
            for j in range(wd):
                out[o, i, j] = np.sum(x[:, i:i + kh, j:j + kw] * w[o]) + b[o]
    return out


def _back(g, w, shape):
    """Gradient w.r.t. the input of a valid cross-correlation: g (Cout, h, w) -> (Cin, H, W)."""
    cout, cin, kh, kw = w.shape
    out = np.zeros(shape)
    for o in range(cout):
        for i in range(g.shape[1]):
            for j in range(g.shape[2]):
                out[:, i:i + kh, j:j + kw] += g[o, i, j] * w[o]
    return out


def hand(p, x, c):
    """Forward and all gradients of logit ``c`` by hand: dict with A1, A2, y, dA1, dA2, dx."""
    z1 = _corr(x, p["conv1.weight"], p["conv1.bias"])
    a1 = np.maximum(z1, 0)
    z2 = _corr(a1, p["conv2.weight"], p["conv2.bias"])
    a2 = np.maximum(z2, 0)
    y = p["fc.weight"] @ a2.mean(axis=(1, 2)) + p["fc.bias"]
    hw = a2.shape[1] * a2.shape[2]
    d_a2 = np.broadcast_to(p["fc.weight"][c][:, None, None] / hw, a2.shape).copy()
    d_a1 = _back(d_a2 * (z2 > 0), p["conv2.weight"], a1.shape)
    d_x = _back(d_a1 * (z1 > 0), p["conv1.weight"], x.shape)
    return {"a1": a1, "a2": a2, "y": y, "d_a1": d_a1, "d_a2": d_a2, "d_x": d_x}


def _gc(a, d):
    alpha = d.mean(axis=(1, 2))
    return np.maximum(np.tensordot(alpha, a, axes=1), 0)


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).normal(size=(1, 8, 8))


def _close(got, want):
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= RTOL * max(1e-12, np.abs(want).max()), np.abs(got - want).max()


@pytest.mark.parametrize("c", [0, 1])
def test_grad_cam_at_both_layers_equals_the_hand_computation(tiny, x, c):
    net, p = tiny
    h = hand(p, x, c)
    t = torch.from_numpy(x[None].astype(np.float32))
    assert np.abs(net(t).detach().numpy()[0] - h["y"]).max() < 1e-5  # the same network
    _close(grad_cam(net, net.relu2, t, target=c), _gc(h["a2"], h["d_a2"]))
    _close(grad_cam(net, net.relu1, t, target=c), _gc(h["a1"], h["d_a1"]))
    assert (_gc(h["a1"], h["d_a1"]) > 0).any() and (_gc(h["a1"], h["d_a1"]) == 0).any()  # the ReLU matters here
    signed = grad_cam(net, net.relu1, t, target=c, relu=False)
    _close(signed, np.tensordot(h["d_a1"].mean(axis=(1, 2)), h["a1"], axes=1))


def test_gradient_x_input_equals_the_hand_computation(tiny, x):
    net, p = tiny
    t = torch.from_numpy(x[None].astype(np.float32))
    _close(gradient_x_input(net, t, target=1), x * hand(p, x, 1)["d_x"])


def test_integrated_gradients_equals_the_hand_gauss_legendre_sum(tiny, x):
    net, p = tiny
    t = torch.from_numpy(x[None].astype(np.float32))
    n = 16
    got, delta = integrated_gradients(net, t, target=0, n_steps=n)
    nodes, weights = np.polynomial.legendre.leggauss(n)
    alphas, w = (nodes + 1) / 2, weights / 2
    want = x * sum(wi * hand(p, a * x, 0)["d_x"] for a, wi in zip(alphas, w))
    _close(got, want)
    # completeness: the attributions sum to logit(x) - logit(0), up to Captum's reported delta
    gap = hand(p, x, 0)["y"][0] - hand(p, np.zeros_like(x), 0)["y"][0]
    assert abs(got.sum() - gap) <= delta + 1e-5


def test_bad_inputs_are_refused(tiny):
    net, _ = tiny
    with pytest.raises(ValueError, match=r"\(1, channels, S, S\)"):
        grad_cam(net, net.relu1, torch.zeros(2, 1, 8, 8), target=0)
    with pytest.raises(ValueError, match="Grad-CAM needs a layer"):
        grad_cam(net, net.fc, torch.zeros(1, 1, 8, 8), target=0)
    assert upsample(np.ones((2, 2), np.float32), 8).shape == (8, 8)
