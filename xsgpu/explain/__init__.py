"""Why the model says what it says: attribute heatmaps, layers and neurons (issue 12, docs/explain.md).

* :mod:`xsgpu.explain.cam`: class activation maps and pooled block activations from the inference
  forward pass (stored by ``xsgpu infer`` as ``heatmaps.zarr`` and ``features_<layer>.zarr``);
"""
