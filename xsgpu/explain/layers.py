"""Layers: the pooled activations ``xsgpu infer --layers`` keeps, their embedding spaces, and neighbourhood overlap.

``xsgpu infer --layers layer1,layer2,layer3`` writes ``features_<layer>.zarr`` (N x K float16, the
block's output globally average-pooled); ``layer4`` pooled is FEA itself. ``xsgpu embed`` maps each
kept layer like FEA (PCA to ``pca_dims``, then the same projection) into the embedding columns
``fea_<layer>_x`` / ``fea_<layer>_y`` (:func:`layer_space`).

:func:`knn_overlap` measures how much two representations of the same images agree locally: for each
query image, the fraction of its k nearest neighbours (Euclidean, itself excluded) in space A that
are also among its k nearest in space B, averaged over the queries. 1 means the same neighbourhoods,
about k / n means unrelated. :func:`layer_overlaps` gives it for consecutive layers
(layer1 -> layer2 -> layer3 -> FEA) and for each layer against PRD, on a seeded subsample of the run
(neighbours searched within the subsample, so a 1M-image run costs the same as ``sample`` images).

Examples
--------
>>> import numpy as np
>>> x = np.random.default_rng(0).normal(size=(200, 5))
>>> knn_overlap(x, x, k=5)
1.0
>>> knn_overlap(x, x * 3 + 1, k=5)  # scaling and shifting keep the neighbourhoods
1.0
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from xsgpu.io.runstore import RunStore, RunStoreError
from xsgpu.io.schema import FEATURES, PREDICTIONS

__all__ = ["kept_layers", "layer_space", "load_layer_inputs", "knn_overlap", "layer_overlaps", "read_space"]

log = logging.getLogger(__name__)


def layer_space(layer: str) -> str:
    """Embedding space (column prefix) of a kept layer: ``"layer2"`` -> ``"fea_layer2"``."""
    return f"fea_{layer}"


def kept_layers(store: RunStore) -> list[str]:
    """The layers whose pooled activations the run holds from the model of its predictions, in block order.

    An array left by another model (its ``weights_sha256`` attribute differs from the predictions') is
    skipped with a warning.
    """
    from xsgpu.model.infer import MODEL_ATTR, extra_arrays
    from xsgpu.model.predictor import layer_of

    want = store.predictions.metadata().get("weights_sha256") if store.predictions.path.exists() else None
    out = []
    for name in extra_arrays(store):
        layer = layer_of(name)
        if layer is None:
            continue
        have = store.artifact(name).open().attrs.get(MODEL_ATTR)
        if want is not None and have is not None and have != want:
            log.warning("%s holds another model's activations (%s..., predictions %s...); skipping it",
                        store.artifact(name).path, str(have)[:12], str(want)[:12])
            continue
        out.append(layer)
    return sorted(out)


def load_layer_inputs(store: RunStore, *, pca_dims: int = 50, device: str = "auto",
                      batch_rows: int = 8192) -> dict[str, np.ndarray]:
    """``{space: (N, k) float32}`` for every kept layer, reduced like FEA (exact streaming PCA, read in row blocks)."""
    from xsgpu.backend import get_backend, to_host
    from xsgpu.embed.pca import StreamingPCA
    from xsgpu.embed.run import _feature_blocks
    from xsgpu.model.predictor import layer_array

    layers = kept_layers(store)
    if not layers:
        return {}
    xp = get_backend(device).xp
    out = {}
    for layer in layers:
        handle = store.artifact(layer_array(layer))
        arr = handle.open()
        if arr.ndim != 2 or arr.shape[0] != store.n_samples:
            raise RunStoreError(f"{handle.path}: shape {arr.shape}, expected ({store.n_samples}, K). "
                                "Hint: rerun `xsgpu infer --layers ... --overwrite`.")
        pca = None
        if arr.shape[1] > pca_dims:
            pca = StreamingPCA(n_components=min(pca_dims, store.n_samples)).fit(
                _feature_blocks(store, arr, batch_rows=batch_rows, xp=xp, path=handle.path))
        parts = [to_host(pca.transform(b)) if pca is not None else to_host(b)
                 for b in _feature_blocks(store, arr, batch_rows=batch_rows, xp=xp, path=handle.path)]
        out[layer_space(layer)] = np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
        log.info("%s %s -> %d dims%s", layer, arr.shape, out[layer_space(layer)].shape[1], " by PCA" if pca else "")
    return out


def _neighbours(x: np.ndarray, k: int) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k + 1).fit(x)
    idx = nn.kneighbors(x, return_distance=False)
    # drop each point itself (with exact duplicates it may not come first: drop it wherever it is)
    own = idx == np.arange(len(x))[:, None]
    keep = ~own
    keep[~own.any(axis=1), -1] = False  # no self among the k + 1: drop the farthest
    return idx[keep].reshape(len(x), k)


def knn_overlap(a: np.ndarray, b: np.ndarray, *, k: int = 10) -> float:
    """Mean fraction of shared k nearest neighbours of each point in spaces ``a`` (n, d1) and ``b`` (n, d2).

    Parameters
    ----------
    a, b : array, shape (n, d)
        Two representations of the same n items (row i is item i in both).
    k : int
        Neighbours per point (itself excluded); ``1 <= k < n``.

    Returns
    -------
    float
        In [0, 1]; ``k / (n - 1)`` is what unrelated spaces give on average.
    """
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    if a.ndim != 2 or b.ndim != 2 or len(a) != len(b):
        raise ValueError(f"a and b must be (n, d) arrays of the same n. Got shapes {a.shape} and {b.shape} instead.")
    if not 1 <= k < len(a):
        raise ValueError(f"The 'k' parameter of knn_overlap must be in 1..{len(a) - 1}. Got {k!r} instead.")
    na, nb = _neighbours(a, k), _neighbours(b, k)
    both = (na[:, :, None] == nb[:, None, :]).any(axis=2).sum(axis=1)
    return float(both.mean() / k)


def read_space(store: RunStore, space: str, rows: np.ndarray) -> np.ndarray:
    """Rows of one representation: ``layer1``.. (pooled activations), ``fea`` (FEA) or ``prd`` (probabilities)."""
    rows = np.asarray(rows, np.int64)
    if space == "prd":
        from xsgpu.embed.run import _read_prd

        return _read_prd(store)[rows]
    from xsgpu.model.predictor import layer_array

    handle = store.features if space in ("fea", "layer4") else store.artifact(layer_array(space))
    arr = handle.open()
    order = np.argsort(rows, kind="stable")
    sorted_rows = rows[order]
    out = np.empty((len(rows), arr.shape[1]), np.float32)
    step = int(arr.chunks[0]) if getattr(arr, "chunks", None) else 8192
    lo = 0
    for start in range(0, arr.shape[0], step):  # chunk by chunk: only chunks holding asked rows are read
        hi = np.searchsorted(sorted_rows, start + step, side="left")
        if hi > lo:
            block = np.asarray(arr[start:start + step], np.float32)
            out[order[lo:hi]] = block[sorted_rows[lo:hi] - start]
            lo = hi
    return out


def layer_overlaps(run_path: Any, *, k: int = 10, sample: int = 5000, random_state: int | None = 0) -> pd.DataFrame:
    """k-NN overlap between consecutive layers (layer1 -> ... -> FEA) and of each with PRD.

    Parameters
    ----------
    run_path : path
        An inferred run (``xsgpu infer --layers ...`` for more than FEA).
    k : int
        Neighbours per image.
    sample : int
        Images drawn (seeded, without replacement) when the run has more; neighbours are searched
        among them.
    random_state : int or None

    Returns
    -------
    pandas.DataFrame
        Columns ``a``, ``b``, ``kind`` (``"consecutive"`` or ``"prd"``), ``overlap``, ``k``, ``n``; one row
        per consecutive pair, then one per representation against PRD.
    """
    store = RunStore.open(run_path, require=[FEATURES, PREDICTIONS])
    n = store.n_samples
    rng = np.random.default_rng(random_state)
    rows = np.sort(rng.choice(n, size=sample, replace=False)) if n > sample else np.arange(n)
    chain = kept_layers(store) + ["fea"]
    spaces = {s: read_space(store, s, rows) for s in chain + ["prd"]}
    k = min(k, len(rows) - 1)
    out = [{"a": a, "b": b, "kind": "consecutive", "overlap": knn_overlap(spaces[a], spaces[b], k=k)}
           for a, b in zip(chain[:-1], chain[1:])]
    out += [{"a": s, "b": "prd", "kind": "prd", "overlap": knn_overlap(spaces[s], spaces["prd"], k=k)} for s in chain]
    df = pd.DataFrame(out)
    df["k"], df["n"] = k, len(rows)
    return df
