"""The model recorded with a run's predictions, found without importing torch.

The app asks for it when it builds a session's detail view (whether on-demand explanations are offered);
importing :mod:`xsgpu.explain.image` for it imported torch and captum inside the first session, 3.3 s of
its first paint at 1M images.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

from xsgpu.errors import InputError

if TYPE_CHECKING:
    from xsgpu.io.runstore import RunStore

__all__ = ["model_for_run"]


def model_for_run(store: "RunStore") -> str:
    """The model path recorded with the run's predictions (``model_path`` in their metadata).

    Raises
    ------
    xsgpu.errors.InputError
        When the predictions record none, or the recorded file no longer exists.
    """
    meta = store.predictions.metadata() if store.predictions.path.exists() else {}
    path = meta.get("model_path")
    if not path:
        raise InputError(f"{store.predictions.path}: no model_path in the predictions' metadata (inferred before "
                         "xsgpu recorded it, or not inferred yet). Hint: pass the model (--model MODEL).")
    if not os.path.exists(path):
        raise InputError(f"{store.predictions.path}: the recorded model {path} does not exist any more. "
                         "Hint: pass the model (--model MODEL).")
    return str(path)
