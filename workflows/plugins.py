"""Dask worker plugins: load the model once per worker, not once per task.

:class:`PredictorPlugin` is registered with ``client.register_plugin(PredictorPlugin(checkpoint))``;
every current and future worker (a restarted one too) builds one :class:`xsgpu.model.Predictor` in
``setup`` and keeps it. Tasks fetch it with :func:`get_predictor`.

Examples
--------
::

    client.register_plugin(PredictorPlugin("models/r18", device="auto", batch_size=64))
    futures = [client.submit(infer_task, run_path, p) for p in parts]

    def infer_task(run_path, part):
        return infer_partition(run_path, part, get_predictor())
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from distributed import WorkerPlugin, get_worker

__all__ = ["PredictorPlugin", "PLUGIN_NAME", "ensure_predictor", "get_predictor", "plugin_signature",
           "predictor_loads"]

log = logging.getLogger(__name__)

PLUGIN_NAME = "xsgpu-predictor"


class PredictorPlugin(WorkerPlugin):
    """Hold one :class:`xsgpu.model.Predictor` per Dask worker.

    Parameters
    ----------
    checkpoint : path
        A model checkpoint directory (``xsgpu train --out``), readable from every worker.
    device : {"auto", "cpu", "gpu"}
        Passed to ``Predictor.from_checkpoint``. On ``LocalCUDACluster`` each worker sees one GPU.
    batch_size : int, optional
        Inference batch size (``None``: the predictor's default).
    torch_threads : int, optional
        ``torch.set_num_threads`` on the worker (default: the worker's thread count, so that worker
        processes do not oversubscribe the cores).

    Attributes
    ----------
    predictor : xsgpu.model.Predictor
        Set in ``setup`` on the worker.
    n_loads : int
        How many times this worker loaded the model (1 in a healthy run).
    """

    name = PLUGIN_NAME
    idempotent = False

    def __init__(self, checkpoint: str | os.PathLike, *, device: str = "auto", batch_size: int | None = None,
                 torch_threads: int | None = None):
        self.checkpoint = os.fspath(checkpoint)
        self.device = device
        self.batch_size = batch_size
        self.torch_threads = torch_threads
        self.signature = plugin_signature(self.checkpoint, device=device, batch_size=batch_size,
                                          torch_threads=torch_threads)
        self.predictor: Any = None
        self.n_loads = 0
        self.load_seconds = 0.0

    def setup(self, worker: Any) -> None:
        """Load the checkpoint on ``worker`` (called once per worker by distributed)."""
        import torch

        from xsgpu.model import Predictor

        threads = self.torch_threads or max(1, int(getattr(worker.state, "nthreads", 1)))
        torch.set_num_threads(threads)
        t0 = time.perf_counter()
        kw: dict[str, Any] = {"device": self.device, "num_threads": threads}
        if self.batch_size is not None:
            kw["batch_size"] = self.batch_size
        self.predictor = Predictor.from_checkpoint(self.checkpoint, **kw)
        self.n_loads += 1
        self.load_seconds = time.perf_counter() - t0
        log.info("worker %s loaded %s in %.2f s (torch threads %d)", worker.address, self.checkpoint,
                 self.load_seconds, threads)

    def teardown(self, worker: Any) -> None:
        """Drop the model (frees GPU memory on worker shutdown)."""
        self.predictor = None


def plugin_signature(checkpoint: str | os.PathLike, *, device: str, batch_size: int | None,
                     torch_threads: int | None) -> str:
    """What identifies a loaded model: the checkpoint's weights hash (or path and mtime) and the options."""
    meta = Path(checkpoint) / "model.json"
    try:
        ident = json.loads(meta.read_text()).get("weights_sha256") or f"{meta}:{meta.stat().st_mtime_ns}"
    except (OSError, ValueError):
        ident = os.fspath(checkpoint)
    return f"{ident}|{device}|{batch_size}|{torch_threads}"


def _worker_signature(dask_worker: Any) -> str | None:
    plugin = dask_worker.plugins.get(PLUGIN_NAME)
    return None if plugin is None or getattr(plugin, "predictor", None) is None else plugin.signature


def ensure_predictor(client: Any, checkpoint: str | os.PathLike, *, device: str = "auto",
                     batch_size: int | None = None, torch_threads: int | None = None) -> bool:
    """Register :class:`PredictorPlugin` unless every worker already holds this very model.

    Returns
    -------
    bool
        True when the plugin was (re)registered, i.e. the workers (re)loaded the model.
    """
    sig = plugin_signature(checkpoint, device=device, batch_size=batch_size, torch_threads=torch_threads)
    have = client.run(_worker_signature)
    if have and all(v == sig for v in have.values()):
        log.info("every worker already holds %s; not reloading", checkpoint)
        return False
    client.register_plugin(PredictorPlugin(checkpoint, device=device, batch_size=batch_size,
                                           torch_threads=torch_threads))
    return True


def get_predictor() -> Any:
    """Return this worker's :class:`xsgpu.model.Predictor` (inside a Dask task).

    Raises
    ------
    RuntimeError
        Outside a worker, or when :class:`PredictorPlugin` was not registered.
    """
    try:
        worker = get_worker()
    except ValueError as exc:
        raise RuntimeError("get_predictor() must run inside a Dask task on a worker.") from exc
    plugin = worker.plugins.get(PLUGIN_NAME)
    if plugin is None or getattr(plugin, "predictor", None) is None:
        raise RuntimeError(f"No model on worker {worker.address}: register PredictorPlugin with "
                           "client.register_plugin(PredictorPlugin(checkpoint)) before submitting infer tasks.")
    return plugin.predictor


def predictor_loads(dask_worker: Any) -> int:
    """For ``client.run(predictor_loads)``: how many times this worker loaded the model (0: not registered)."""
    plugin = dask_worker.plugins.get(PLUGIN_NAME)
    return 0 if plugin is None else int(plugin.n_loads)
