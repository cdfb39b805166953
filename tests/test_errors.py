"""One error hierarchy: every exception xsgpu raises on purpose derives from XsgpuError, and keeps the
built-in base its callers caught before (so old ``except ValueError`` / ``except RuntimeError`` sites hold)."""
from __future__ import annotations

import pytest

from xsgpu import errors
from xsgpu.backend import GPUUnavailable, UnsupportedOnGPU
from xsgpu.embed._base import NotFittedError
from xsgpu.io.frame import CorruptFileError, ReaderError
from xsgpu.io.ingest import IngestError
from xsgpu.io.labels import LabelsError
from xsgpu.io.runstore import RunStoreError
from xsgpu.model.checkpoint import CheckpointError, CheckpointMismatch
from workflows.pipeline import PipelineError


@pytest.mark.parametrize("cls, kind, builtin", [
    (RunStoreError, errors.StoreError, RuntimeError),
    (CheckpointError, errors.ModelError, RuntimeError),
    (CheckpointMismatch, errors.ModelMismatch, ValueError),
    (GPUUnavailable, errors.BackendError, RuntimeError),
    (UnsupportedOnGPU, errors.XsgpuError, ValueError),
    (ReaderError, errors.InputError, ValueError),
    (CorruptFileError, errors.InputError, ValueError),
    (IngestError, errors.InputError, ValueError),
    (LabelsError, errors.InputError, ValueError),
    (PipelineError, errors.StageError, RuntimeError),
    (NotFittedError, errors.XsgpuError, RuntimeError),
])
def test_project_errors_share_one_base_and_keep_their_builtin(cls, kind, builtin):
    assert issubclass(cls, kind) and issubclass(cls, errors.XsgpuError) and issubclass(cls, builtin)
    with pytest.raises(builtin, match="names the file"):
        raise cls("names the file")


def test_store_subclasses_are_store_errors():
    for cls in (errors.CorruptArtifact, errors.StoreLocked, errors.SchemaError):
        assert issubclass(cls, errors.StoreError) and issubclass(cls, RuntimeError)
    assert set(errors.__all__) == {n for n in dir(errors) if isinstance(getattr(errors, n), type)}
