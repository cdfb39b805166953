"""The multi-attribute ResNet: builders, checkpoints, training and batched inference.

``build_resnet(arch)`` -> :class:`XSResNet` (features + probabilities); checkpoints are safetensors +
JSON (:mod:`xsgpu.model.checkpoint`); :func:`train_model` trains on a run store;
:class:`Predictor` + :func:`infer_partition` / :func:`infer_run` write ``predictions`` and ``features``.
"""
from __future__ import annotations

from xsgpu.model.checkpoint import (
    CheckpointError, CheckpointMismatch, check_compatible, load_checkpoint, read_checkpoint_meta, save_checkpoint,
)
from xsgpu.model.infer import infer_partition, infer_run
from xsgpu.model.predictor import Predictor
from xsgpu.model.resnet import ARCHITECTURES, FEATURE_DIMS, XSResNet, build_resnet
from xsgpu.model.train import train_model

__all__ = [
    "ARCHITECTURES", "FEATURE_DIMS", "XSResNet", "build_resnet", "CheckpointError", "CheckpointMismatch",
    "check_compatible", "load_checkpoint", "read_checkpoint_meta", "save_checkpoint", "train_model",
    "Predictor", "infer_partition", "infer_run",
]
