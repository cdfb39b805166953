"""Neurons: which channels of the last block tell a selection of images apart, and what they fire on.

A channel's *pooled activation* for an image is the global average of its map in the last block: the
FEA vector (``features.zarr``, N x D) holds exactly these, one column per channel. For a kept earlier
layer (``xsgpu infer --layers``) ``space="layer2"`` reads ``features_layer2.zarr`` instead.

* :func:`rank_channels`: for a selection against the rest of the run, per channel the mean pooled
  activation of each group, their difference and the effect size (Cohen's d: difference / pooled
  standard deviation, ``sqrt(((n1 - 1) s1^2 + (n0 - 1) s0^2) / (n1 + n0 - 2))``), ranked by d;
* :func:`top_images`: for some channels, the images of the whole run where they are largest;
* :func:`attribute_channel_correlation`: the Pearson correlation of every attribute (PRD or ACT) with
  every channel, a (C x D) matrix.

Each reads the array once, in row blocks (``batch_rows``), with float64 accumulators: memory does not
grow with N, and a 1M x 512 run is one streaming pass.

Examples
--------
::

    from xsgpu.explain.neurons import rank_channels, top_images
    ranked = rank_channels("runs/demo", selection=[3, 17, 21, 40])   # DataFrame, best first
    top_images("runs/demo", ranked["channel"][:5], k=9)
"""
from __future__ import annotations

import logging
from typing import Any, Iterable, Iterator

import numpy as np
import pandas as pd

from xsgpu.errors import InputError
from xsgpu.io.runstore import RunStore, RunStoreError
from xsgpu.io.schema import FEATURES

__all__ = ["rank_channels", "top_images", "attribute_channel_correlation", "selection_mask", "activation_blocks"]

log = logging.getLogger(__name__)


def _array(store: RunStore, space: str):
    if space in ("fea", "layer4"):
        if not store.features.exists():
            raise RunStoreError(f"{store.features.path} does not exist. Hint: run `xsgpu infer RUN --model MODEL`.")
        return store.features
    from xsgpu.model.predictor import layer_array

    handle = store.artifact(layer_array(space))
    if not handle.path.exists():
        raise RunStoreError(f"{handle.path} does not exist. Hint: run `xsgpu infer RUN --model MODEL --layers {space} "
                            "--overwrite`.")
    return handle


def activation_blocks(store: RunStore, *, space: str = "fea", batch_rows: int = 16384
                      ) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, rows (b, D) float32)`` of the pooled activations, in order, chunk-aligned."""
    handle = _array(store, space)
    arr = handle.open()
    if arr.ndim != 2 or arr.shape[0] != store.n_samples:
        raise RunStoreError(f"{handle.path}: shape {arr.shape}, expected ({store.n_samples}, D).")
    chunk = int(arr.chunks[0]) if getattr(arr, "chunks", None) else batch_rows
    step = max(chunk, batch_rows - batch_rows % chunk)
    for start in range(0, arr.shape[0], step):
        block = np.asarray(arr[start:start + step], np.float32)
        if not np.isfinite(block).all():
            bad = start + int(np.flatnonzero(~np.isfinite(block).all(axis=1))[0])
            raise RunStoreError(f"{handle.path}: row {bad} holds NaN/inf. Hint: rerun `xsgpu infer`.")
        yield start, block


def selection_mask(selection: Iterable[int] | np.ndarray, n: int) -> np.ndarray:
    """A bool mask (n,) from sample ids or from a bool mask; refuses out-of-range ids and empty groups."""
    sel = np.asarray(list(selection) if not isinstance(selection, np.ndarray) else selection)
    if sel.dtype == bool:
        if sel.shape != (n,):
            raise InputError(f"a boolean selection must have one entry per sample ({n}); got shape {sel.shape}.")
        mask = sel.copy()
    else:
        ids = sel.astype(np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= n):
            raise InputError(f"selection holds sample_id outside 0..{n - 1} (e.g. {ids[(ids < 0) | (ids >= n)][0]}).")
        mask = np.zeros(n, bool)
        mask[ids] = True
    if not mask.any() or mask.all():
        raise InputError(f"the selection must hold some but not all of the run's {n} images "
                         f"(it holds {int(mask.sum())}).")
    return mask


def rank_channels(run_path: Any, selection: Iterable[int] | np.ndarray, *, space: str = "fea",
                  top: int | None = None, batch_rows: int = 16384) -> pd.DataFrame:
    """Rank channels by how much more they fire on ``selection`` than on the rest of the run.

    Parameters
    ----------
    run_path : path
        An inferred run.
    selection : sample ids or bool mask (N,)
    space : str
        ``"fea"`` (the last block, default) or a kept layer (``"layer2"``).
    top : int, optional
        Keep the first ``top`` rows.
    batch_rows : int

    Returns
    -------
    pandas.DataFrame
        ``channel``, ``mean_selection``, ``mean_rest``, ``diff`` (selection - rest), ``std_selection``,
        ``std_rest`` (sample standard deviations, ddof 1), ``cohen_d``; sorted by ``cohen_d`` descending
        (the channels the selection excites most first; the last rows are the ones it silences).
        A channel constant in both groups gets d = 0.
    """
    store = RunStore.open(run_path, require=[FEATURES])
    mask = selection_mask(selection, store.n_samples)
    s1 = s0 = q1 = q0 = None
    for start, block in activation_blocks(store, space=space, batch_rows=batch_rows):
        m = mask[start:start + len(block)]
        b = block.astype(np.float64)
        if s1 is None:
            d = b.shape[1]
            s1, s0, q1, q0 = (np.zeros(d) for _ in range(4))
        s1 += b[m].sum(0)
        s0 += b[~m].sum(0)
        q1 += (b[m] ** 2).sum(0)
        q0 += (b[~m] ** 2).sum(0)
    n1, n0 = int(mask.sum()), int((~mask).sum())
    mean1, mean0 = s1 / n1, s0 / n0
    var1 = np.maximum(q1 - n1 * mean1 ** 2, 0) / max(n1 - 1, 1)
    var0 = np.maximum(q0 - n0 * mean0 ** 2, 0) / max(n0 - 1, 1)
    pooled = np.sqrt(((n1 - 1) * var1 + (n0 - 1) * var0) / max(n1 + n0 - 2, 1))
    diff = mean1 - mean0
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(pooled > 0, diff / pooled, 0.0)
    df = pd.DataFrame({"channel": np.arange(len(diff)), "mean_selection": mean1, "mean_rest": mean0, "diff": diff,
                       "std_selection": np.sqrt(var1), "std_rest": np.sqrt(var0), "cohen_d": d})
    df = df.sort_values("cohen_d", ascending=False, kind="stable").reset_index(drop=True)
    df.attrs.update(n_selection=n1, n_rest=n0, space=space)
    return df.head(top) if top is not None else df


def top_images(run_path: Any, channels: Iterable[int], *, k: int = 9, space: str = "fea",
               batch_rows: int = 16384) -> pd.DataFrame:
    """The ``k`` images of the whole run with the largest pooled activation of each channel.

    Returns
    -------
    pandas.DataFrame
        ``channel``, ``rank`` (0 = most activating), ``sample_id``, ``activation``; ties broken by the
        smaller sample_id.
    """
    store = RunStore.open(run_path, require=[FEATURES])
    chans = np.asarray(list(channels), np.int64)
    if chans.size == 0:
        return pd.DataFrame(columns=["channel", "rank", "sample_id", "activation"])
    if k < 1:
        raise InputError(f"The 'k' parameter of top_images must be >= 1. Got {k!r} instead.")
    best_v = np.full((chans.size, 0), -np.inf)
    best_i = np.zeros((chans.size, 0), np.int64)
    for start, block in activation_blocks(store, space=space, batch_rows=batch_rows):
        if chans.max() >= block.shape[1] or chans.min() < 0:
            raise InputError(f"channels must lie in 0..{block.shape[1] - 1} ({space}); got {chans.tolist()[:8]}.")
        vals = np.concatenate([best_v, block[:, chans].T.astype(np.float64)], axis=1)
        ids = np.concatenate([best_i, np.broadcast_to(np.arange(start, start + len(block)), (chans.size, len(block)))],
                             axis=1)
        # largest value first, then smaller sample_id: lexsort keys (last is primary)
        order = np.lexsort((ids, -vals), axis=1)[:, :k]
        best_v = np.take_along_axis(vals, order, axis=1)
        best_i = np.take_along_axis(ids, order, axis=1)
    kk = best_v.shape[1]
    return pd.DataFrame({"channel": np.repeat(chans, kk), "rank": np.tile(np.arange(kk), chans.size),
                         "sample_id": best_i.ravel(), "activation": best_v.ravel().astype(np.float32)})


def attribute_channel_correlation(run_path: Any, *, source: str = "prd", space: str = "fea",
                                  batch_rows: int = 16384) -> pd.DataFrame:
    """Pearson correlation of every attribute with every channel: a (C, D) frame, attributes as the index.

    Parameters
    ----------
    source : {"prd", "act"}
        The predicted probabilities, or the labels (ACT; unlabelled entries are not supported here,
        the labels are read as 0/1).
    space : str
        ``"fea"`` or a kept layer.

    Returns
    -------
    pandas.DataFrame
        Index: attribute display names; columns: channel numbers. A constant attribute or channel
        gets 0 (not NaN).
    """
    store = RunStore.open(run_path, require=[FEATURES])
    if source == "prd":
        from xsgpu.embed.run import _read_prd

        y = _read_prd(store).astype(np.float64)
    elif source == "act":
        y = store.labels().astype(np.float64)
    else:
        raise InputError(f"The 'source' parameter must be 'prd' or 'act'. Got {source!r} instead.")
    n = store.n_samples
    sx = sxx = sxy = None
    for start, block in activation_blocks(store, space=space, batch_rows=batch_rows):
        b = block.astype(np.float64)
        yb = y[start:start + len(b)]
        if sx is None:
            sx, sxx, sxy = np.zeros(b.shape[1]), np.zeros(b.shape[1]), np.zeros((y.shape[1], b.shape[1]))
        sx += b.sum(0)
        sxx += (b ** 2).sum(0)
        sxy += yb.T @ b
    sy, syy = y.sum(0), (y ** 2).sum(0)
    cov = sxy / n - np.outer(sy / n, sx / n)
    sd_x = np.sqrt(np.maximum(sxx / n - (sx / n) ** 2, 0))
    sd_y = np.sqrt(np.maximum(syy / n - (sy / n) ** 2, 0))
    denom = np.outer(sd_y, sd_x)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(denom > 0, cov / denom, 0.0)
    return pd.DataFrame(np.clip(r, -1, 1), index=list(store.vocabulary.names), columns=np.arange(r.shape[1]))
