"""ResNet builders: torchvision ResNet-18/34/50 with a one-channel stem and 17 sigmoid outputs.

The network follows the original multi-attribute model (DOMAIN.md, Wang et al.): a standard
torchvision ResNet whose first convolution takes one channel (the log-scaled, standardised frame) and
whose classifier gives one logit per attribute. :class:`XSResNet.forward` returns the pooled features
(FEA, ``D`` = 512 for ResNet-18/34, 2048 for ResNet-50) and the sigmoid probabilities (PRD); the logits
stay reachable through :meth:`XSResNet.forward_logits` for the loss. Weights are always randomly
initialised here (``weights=None``): nothing is downloaded.

Examples
--------
>>> import torch
>>> from xsgpu.model.resnet import build_resnet
>>> net = build_resnet("resnet18").eval()
>>> feats, probs = net(torch.zeros(2, 1, 32, 32))
>>> tuple(feats.shape), tuple(probs.shape), net.feature_dim
((2, 512), (2, 17), 512)
"""
from __future__ import annotations

import logging
from typing import Literal

import torch
from torch import nn

from xsgpu.attributes import N_ATTRIBUTES

__all__ = ["ARCHITECTURES", "FEATURE_DIMS", "Arch", "XSResNet", "build_resnet", "check_arch"]

log = logging.getLogger(__name__)

Arch = Literal["resnet18", "resnet34", "resnet50"]
#: Supported architectures and their pooled feature dimension D.
FEATURE_DIMS: dict[str, int] = {"resnet18": 512, "resnet34": 512, "resnet50": 2048}
ARCHITECTURES: tuple[str, ...] = tuple(FEATURE_DIMS)


def check_arch(arch: str) -> str:
    """Return ``arch`` if it is supported, else raise ``ValueError`` naming the valid choices."""
    if arch not in FEATURE_DIMS:
        raise ValueError(f"The 'arch' parameter must be one of {', '.join(ARCHITECTURES)}. Got {arch!r} instead.")
    return arch


class XSResNet(nn.Module):
    """A torchvision ResNet trunk with a C-channel stem (C = 1 for the log image) and a multi-label head.

    Parameters
    ----------
    trunk : torchvision.models.ResNet
        The backbone; its ``conv1`` takes the C input channels and its ``fc`` is replaced by ``nn.Identity``.
    feature_dim : int
        D, the size of the pooled features.
    n_outputs : int
        Number of attributes (logits).
    arch : str
        Architecture name, kept for checkpoint metadata.
    """

    def __init__(self, trunk: nn.Module, *, feature_dim: int, n_outputs: int, arch: str):
        super().__init__()
        self.trunk = trunk
        self.head = nn.Linear(feature_dim, n_outputs)
        self.feature_dim = int(feature_dim)
        self.n_outputs = int(n_outputs)
        self.arch = arch

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features, shape (N, D), for input (N, C, S, S)."""
        return self.trunk(x)

    def forward_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(features (N, D), logits (N, n_outputs))`` for input (N, C, S, S)."""
        feats = self.trunk(x)
        return feats, self.head(feats)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(features (N, D), probabilities (N, n_outputs))`` for input (N, C, S, S)."""
        feats, logits = self.forward_logits(x)
        return feats, torch.sigmoid(logits)


def build_resnet(arch: str = "resnet50", *, n_outputs: int = N_ATTRIBUTES, in_channels: int = 1) -> XSResNet:
    """Build a randomly initialised ResNet for ``in_channels``-channel input and ``n_outputs`` attributes.

    Parameters
    ----------
    arch : {"resnet18", "resnet34", "resnet50"}
        torchvision architecture ([2,2,2,2] / [3,4,6,3] basic blocks, [3,4,6,3] bottlenecks).
    n_outputs : int
        Number of logits (17 attributes by default).
    in_channels : int
        Input channels of ``conv1``: 1 for the log image; more for the views and pixel folding of
        :func:`xsgpu.model.transforms.input_channels`.

    Returns
    -------
    XSResNet
        ``forward(x (N,in_channels,S,S)) -> (features (N,D), probabilities (N,n_outputs))``; any S >= 32 works.
    """
    import torchvision.models as tvm

    check_arch(arch)
    if not isinstance(n_outputs, int) or isinstance(n_outputs, bool) or n_outputs < 1:
        raise ValueError(f"The 'n_outputs' parameter of build_resnet must be a positive int. Got {n_outputs!r} instead.")
    if not isinstance(in_channels, int) or isinstance(in_channels, bool) or not 1 <= in_channels <= 256:
        raise ValueError(f"The 'in_channels' parameter of build_resnet must be an int in 1..256. Got {in_channels!r} instead.")
    trunk = getattr(tvm, arch)(weights=None)
    trunk.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    nn.init.kaiming_normal_(trunk.conv1.weight, mode="fan_out", nonlinearity="relu")
    trunk.fc = nn.Identity()
    model = XSResNet(trunk, feature_dim=FEATURE_DIMS[arch], n_outputs=n_outputs, arch=arch)
    # start every attribute near a low prior (sigmoid(-2) ~ 0.12) so early training is not dominated
    # by the flood of negatives on rare attributes
    nn.init.constant_(model.head.bias, -2.0)
    return model
