"""Settings: defaults < ``xsgpu.toml`` < ``XSGPU_*`` environment variables < arguments.

Only ``workflows/`` and ``panel_app/`` read settings; the library takes explicit arguments.

Examples
--------
>>> from xsgpu.config import load_settings
>>> s = load_settings(overrides={"partition_size": 2048})
>>> s.partition_size
2048
"""
from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

__all__ = ["Settings", "load_settings"]


@dataclass(frozen=True)
class Settings:
    """All tunables of workflows and the app, with their defaults."""

    partition_size: int = 4096
    batch_size: int = 64
    device: str = "auto"
    flower_threshold: int = 2000
    cutoff: float = 0.5
    address: str = "127.0.0.1"
    port: int = 5006
    n_workers: int = 0  # 0: one per core
    threads_per_worker: int = 1
    max_frame_pixels: int = 8192 * 8192  # largest H x W of an input frame (xsgpu.io.limits)
    max_frames_per_file: int = 100_000  # most frames one input file may declare


def _coerce(value: str, like: Any) -> Any:
    if isinstance(like, bool):
        return value.lower() in ("1", "true", "yes", "on")
    return type(like)(value)


def load_settings(*, config_file: str | os.PathLike | None = None, overrides: dict | None = None) -> Settings:
    """Build :class:`Settings` from defaults, a TOML file, ``XSGPU_<FIELD>`` variables and overrides.

    Parameters
    ----------
    config_file : path, optional
        A TOML file; defaults to ``./xsgpu.toml`` when it exists.
    overrides : dict, optional
        Explicit values (for example from command-line options); ``None`` values are ignored.

    Raises
    ------
    ValueError
        For an unknown key in the file or overrides, naming it and the valid keys.
    """
    base = Settings()
    names = {f.name for f in fields(Settings)}
    values: dict[str, Any] = {}
    path = Path(config_file) if config_file else Path("xsgpu.toml")
    if path.exists():
        data = tomllib.loads(path.read_text())
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"{path}: unknown setting(s) {sorted(unknown)}; valid: {sorted(names)}.")
        values.update(data)
    for name in names:
        env = os.environ.get(f"XSGPU_{name.upper()}")
        if env is not None:
            values[name] = _coerce(env, getattr(base, name))
    for key, val in (overrides or {}).items():
        if key not in names:
            raise ValueError(f"Unknown setting {key!r}; valid: {sorted(names)}.")
        if val is not None:
            values[key] = val
    return dataclasses.replace(base, **values)
