"""Class activation maps (CAM) and pooled layer activations from the inference forward pass.

For a network whose last block's maps ``A`` (N, K, h, w) are globally average-pooled into the features
``f_k = mean_hw A_k`` and then mapped by one linear layer (weights ``W`` (C, K), bias ``b``) to the
logits, the class activation map of attribute ``c`` (Zhou et al., 2016) is

    CAM_c = sum_k W_ck A_k        (h, w)

and, because pooling and the linear layer commute, ``mean_hw CAM_c + b_c == logit_c`` exactly. Every
ResNet built by :func:`xsgpu.model.build_resnet` has this structure, so the maps fall out of the same
forward pass: :class:`ExplainedForward` runs the torchvision trunk block by block, keeps the last
block's maps, and returns the usual features and probabilities together with the maps and, when asked,
the globally pooled activations of earlier blocks (``layer1`` .. ``layer3``).

Examples
--------
>>> import torch
>>> from xsgpu.model import build_resnet
>>> net = build_resnet("resnet18").eval()
>>> cam_support(net) is None
True
>>> fwd = ExplainedForward(net, heatmaps=True, layers=("layer2",))
>>> feats, probs, cams, l2 = fwd(torch.zeros(2, 1, 64, 64))
>>> tuple(cams.shape), tuple(l2.shape)
((2, 17, 2, 2), (2, 128))
"""
from __future__ import annotations

import logging
from typing import Sequence

import torch
from torch import nn

__all__ = ["cam_support", "ExplainedForward", "LAYERS", "KEEP_LAYERS", "layer_dims", "heatmap_shape"]

log = logging.getLogger(__name__)

#: the blocks of a torchvision ResNet whose pooled activations ``xsgpu infer --layers`` can keep
LAYERS: tuple[str, ...] = ("layer1", "layer2", "layer3", "layer4")
#: the blocks whose pooled activations are kept besides FEA (layer4 pooled *is* FEA)
KEEP_LAYERS: tuple[str, ...] = LAYERS[:-1]
_STEM = ("conv1", "bn1", "relu", "maxpool")


def cam_support(model: nn.Module) -> str | None:
    """``None`` if ``model`` ends in global average pooling + one linear layer, else the reason it does not.

    Parameters
    ----------
    model : nn.Module
        An :class:`~xsgpu.model.resnet.XSResNet` (a torchvision ResNet trunk with ``fc = Identity`` and a
        linear ``head``); anything else is described in the returned reason.
    """
    trunk = getattr(model, "trunk", None)
    head = getattr(model, "head", None)
    if trunk is None or not isinstance(head, nn.Linear):
        return (f"{type(model).__name__} is not an xsgpu ResNet (a trunk followed by one linear head), so its "
                "class activation maps are not defined")
    missing = [n for n in _STEM + LAYERS + ("avgpool", "fc") if not hasattr(trunk, n)]
    if missing:
        return f"the trunk ({type(trunk).__name__}) lacks {missing}: not a torchvision ResNet"
    pool = trunk.avgpool
    if not (isinstance(pool, nn.AdaptiveAvgPool2d) and pool.output_size in (1, (1, 1))):
        return f"the trunk pools with {pool!r}, not a global average pool"
    if not isinstance(trunk.fc, nn.Identity):
        return "the trunk's fc is not an identity: the features are not the pooled maps"
    return None


def layer_dims(model: nn.Module) -> dict[str, int]:
    """Channels of each block's output (``{"layer1": 64, ...}``) of a torchvision ResNet trunk."""
    out = {}
    for name in LAYERS:
        block = list(getattr(model.trunk, name).children())[-1]
        last_bn = [m for m in block.modules() if isinstance(m, nn.BatchNorm2d)][-1]
        out[name] = int(last_bn.num_features)
    return out


def heatmap_shape(input_size: int) -> tuple[int, int]:
    """Spatial size (h, w) of a torchvision ResNet's last block for a square input (stride 32, rounded up)."""
    s = int(input_size)
    for _ in range(5):  # conv1 (stride 2), maxpool (2), layer2..layer4 (2 each)
        s = (s + 1) // 2
    return s, s


class ExplainedForward(nn.Module):
    """The network's forward split by block: ``(features, probs[, cams][, pooled layer activations...])``.

    Parameters
    ----------
    model : XSResNet
        A network for which :func:`cam_support` returns ``None``.
    heatmaps : bool
        Also return the class activation maps (N, C, h, w) of every attribute.
    layers : sequence of str
        Blocks (of :data:`LAYERS`) whose globally average-pooled activations (N, K_layer) are returned,
        in this order, after the maps.
    """

    def __init__(self, model: nn.Module, *, heatmaps: bool = True, layers: Sequence[str] = ()):
        super().__init__()
        reason = cam_support(model)
        if reason is not None:
            raise ValueError(f"ExplainedForward needs a ResNet ending in global average pooling + linear: {reason}.")
        bad = [name for name in layers if name not in LAYERS]
        if bad:
            raise ValueError(f"The 'layers' parameter of ExplainedForward must name blocks of {list(LAYERS)}. "
                             f"Got {bad} instead.")
        self.model = model
        self.heatmaps = bool(heatmaps)
        self.layers = tuple(layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        trunk, head = self.model.trunk, self.model.head
        for name in _STEM:
            x = getattr(trunk, name)(x)
        pooled = {}
        for name in LAYERS:
            x = getattr(trunk, name)(x)
            if name in self.layers:
                pooled[name] = x.mean(dim=(2, 3))
        feats = torch.flatten(trunk.avgpool(x), 1)
        probs = torch.sigmoid(head(feats))
        out: list[torch.Tensor] = [feats, probs]
        if self.heatmaps:
            out.append(torch.einsum("ck,nkhw->nchw", head.weight.to(x.dtype), x))
        out.extend(pooled[name] for name in self.layers)
        return tuple(out)
