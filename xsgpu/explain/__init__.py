"""Why the model says what it says: attribute heatmaps, layers and neurons (issue 12, docs/explain.md).

* :mod:`xsgpu.explain.cam`: class activation maps and pooled block activations from the inference
  forward pass (stored by ``xsgpu infer`` as ``heatmaps.zarr`` and ``features_<layer>.zarr``);
* :mod:`xsgpu.explain.attribution`: Grad-CAM, Integrated Gradients, Gradient x Input (Captum);
* :mod:`xsgpu.explain.image`: :func:`explain_image`, one image and attribute of a run (``xsgpu explain``).

The submodules import torch; this package imports them on first use.
"""
from __future__ import annotations

import importlib
from typing import Any

__all__ = ["explain_image"]

_LAZY = {"explain_image": "xsgpu.explain.image"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'xsgpu.explain' has no attribute {name!r}")
