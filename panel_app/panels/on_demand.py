"""On-demand explanations in the detail view (issue 12.2): Grad-CAM at a chosen layer, Integrated
Gradients or Gradient x Input of one attribute for one image, through :func:`xsgpu.explain.explain_image`.

The stored class activation maps (``heatmaps.zarr``) cost nothing to show; these are computed when asked,
with the model recorded in the run's predictions (``model_path``), loaded once per server process and run
on the CPU. Results are cached per (run, image, attribute, method, layer).
"""
from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np

__all__ = ["MAP_METHODS", "STORED", "run_model_path", "explained_map", "map_label"]

log = logging.getLogger(__name__)

#: the detail view's "Map" choices -> (method, layer) of :func:`xsgpu.explain.explain_image`
STORED = "stored CAM"
MAP_METHODS: dict[str, tuple[str, str | None]] = {
    STORED: ("cam", None),
    "Grad-CAM layer4": ("gradcam", "layer4"),
    "Grad-CAM layer3": ("gradcam", "layer3"),
    "Grad-CAM layer2": ("gradcam", "layer2"),
    "Integrated Gradients": ("ig", None),
    "Gradient x Input": ("gxi", None),
}
_LOCK = threading.Lock()
_PREDICTORS: dict[str, Any] = {}
_CACHE: dict[tuple, np.ndarray] = {}
_CACHE_MAX = 256


def run_model_path(store: Any) -> str | None:
    """The model recorded with the run's predictions when it still exists, else ``None`` (logged)."""
    if store is None:
        return None
    from xsgpu.errors import InputError
    from xsgpu.explain.model_path import model_for_run   # torch-free: a session's build imports no torch

    try:
        return model_for_run(store)
    except (InputError, OSError) as exc:
        log.info("on-demand explanations unavailable for %s: %s", getattr(store, "path", store), exc)
        return None


def _predictor(path: str) -> Any:
    with _LOCK:
        if path not in _PREDICTORS:
            from xsgpu.model.foreign import load_predictor

            _PREDICTORS[path] = load_predictor(path, device="cpu", batch_size=1, num_threads=None)
        return _PREDICTORS[path]


def explained_map(store: Any, sample_id: int, attribute: str | int, choice: str) -> np.ndarray:
    """The (S, S) float32 map of ``choice`` (a key of :data:`MAP_METHODS` other than :data:`STORED`).

    Raises
    ------
    xsgpu.errors.InputError
        When the run records no model, or the model cannot give that explanation (ONNX: no gradients).
    """
    from xsgpu.errors import InputError
    from xsgpu.explain import explain_image

    if choice not in MAP_METHODS or choice == STORED:
        raise ValueError(f"The 'choice' parameter of explained_map must be one of {list(MAP_METHODS)[1:]}. "
                         f"Got {choice!r} instead.")
    method, layer = MAP_METHODS[choice]
    path = run_model_path(store)
    if path is None:
        raise InputError(f"{store.path}: its predictions record no model that still exists; on-demand maps need "
                         "it (`xsgpu explain RUN --model MODEL` works from the command line).")
    key = (str(store.path), int(sample_id), str(attribute), method, layer, path)
    with _LOCK:
        hit = _CACHE.get(key)
    if hit is not None:
        return hit
    out = np.asarray(explain_image(store.path, int(sample_id), attribute, method=method, layer=layer,
                                   model=_predictor(path), device="cpu"), np.float32)
    with _LOCK:
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.clear()
        _CACHE[key] = out
    return out


def map_label(choice: str) -> str:
    """What the colour bar says the map is."""
    method, layer = MAP_METHODS[choice]
    return {"cam": "class activation map (logit contribution)", "gradcam": f"Grad-CAM at {layer}",
            "ig": "Integrated Gradients (logit)", "gxi": "Gradient x Input (logit)"}[method]
