"""Where an attribute's heatmap lies: its share on the beamstop/detector gaps and on the image edge.

The paper's Case 2 (beamstops at the image edge missed, rings nobody labelled) is a "where did the model
look" question. This module answers it for every image and attribute of a run with one simple measure:

* the class activation map of attribute ``c`` (``heatmaps.zarr``, N x C x h x w) is upsampled to the
  image grid (H x W) by **nearest neighbour**: image pixel ``(i, j)`` takes cell
  ``(floor(i * h / H), floor(j * w / W))``;
* only its **positive part** counts (``max(cam, 0)``: where the map raises the attribute's logit);
* ``beamstop__<slug>`` is the share of that positive mass on the image's **masked pixels**, those that are
  exactly 0 in ``images.zarr`` (the beamstop and detector gaps; ingest and synth write them as 0);
* ``edge__<slug>`` is the share on the **outer 10 % border**: rows ``i < b_h`` or ``i >= H - b_h`` and
  columns likewise, with ``b_h = max(1, round(0.1 * H))`` (``b_w`` from W);
* an image whose map has no positive mass gets NaN for that attribute.

Both shares lie in [0, 1]. The upsampled map is never built: per image the number of masked pixels in
each cell's block is counted once (``np.add.reduceat``) and the shares are weighted sums over the h x w
cells, so a partition costs one pass over its images. :func:`heatmap_shares` is written by
``xsgpu evaluate`` as ``heatmap_shares.parquet`` (:data:`xsgpu.io.schema.HEATMAP_SHARES`) when the run
has heatmaps; the app colours the maps by it.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from xsgpu.io.runstore import RunStore, RunStoreError

__all__ = ["EDGE_FRACTION", "cell_index", "border_mask", "shares_block", "heatmap_shares",
           "write_heatmap_shares", "share_columns"]

log = logging.getLogger(__name__)

#: width of the border counted as "edge", as a fraction of the image side
EDGE_FRACTION = 0.1


def cell_index(n_pixels: int, n_cells: int) -> np.ndarray:
    """The heatmap cell of each image row (or column) under nearest-neighbour upsampling, (n_pixels,)."""
    return (np.arange(n_pixels) * n_cells) // n_pixels


def border_mask(height: int, width: int, fraction: float = EDGE_FRACTION) -> np.ndarray:
    """Bool (H, W): the outer ``fraction`` border of the image (at least one pixel wide)."""
    bh, bw = max(1, int(round(fraction * height))), max(1, int(round(fraction * width)))
    rows = np.zeros(height, bool)
    cols = np.zeros(width, bool)
    rows[:bh] = rows[height - bh:] = True
    cols[:bw] = cols[width - bw:] = True
    return rows[:, None] | cols[None, :]


def _block_counts(pixels: np.ndarray, h: int, w: int) -> np.ndarray:
    """Sum ``pixels`` (n, H, W) over each heatmap cell's block: (n, h, w)."""
    H, W = pixels.shape[-2:]
    r0 = np.searchsorted(cell_index(H, h), np.arange(h))
    c0 = np.searchsorted(cell_index(W, w), np.arange(w))
    return np.add.reduceat(np.add.reduceat(pixels, r0, axis=1), c0, axis=2)


def shares_block(images: np.ndarray, cams: np.ndarray, *, fraction: float = EDGE_FRACTION
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Beamstop and edge shares of a block of images.

    Parameters
    ----------
    images : ndarray (n, H, W)
        The images (masked pixels 0).
    cams : ndarray (n, C, h, w)
        Their class activation maps; ``h <= H`` and ``w <= W``.
    fraction : float
        Border width as a fraction of the side (:data:`EDGE_FRACTION`).

    Returns
    -------
    beamstop, edge : ndarray (n, C) float32
        Shares of the positive upsampled CAM mass on the zero pixels and on the border; NaN where an
        image's map of an attribute has no positive mass.
    """
    n, H, W = images.shape
    _, C, h, w = cams.shape
    if cams.shape[0] != n or h > H or w > W:
        raise ValueError(f"shares_block: images {images.shape} and heatmaps {cams.shape} do not match "
                         "(one map per image, no larger than the image).")
    pos = np.maximum(np.asarray(cams, np.float64), 0.0)
    masked = _block_counts((np.asarray(images) == 0).astype(np.int32), h, w).astype(np.float64)  # (n, h, w)
    edge_cells = _block_counts(border_mask(H, W, fraction)[None].astype(np.int32), h, w)[0].astype(np.float64)
    size_cells = _block_counts(np.ones((1, H, W), np.int32), h, w)[0].astype(np.float64)
    total = np.einsum("nchw,hw->nc", pos, size_cells)
    on_mask = np.einsum("nchw,nhw->nc", pos, masked)
    on_edge = np.einsum("nchw,hw->nc", pos, edge_cells)
    with np.errstate(invalid="ignore", divide="ignore"):
        beamstop = np.where(total > 0, on_mask / total, np.nan)
        edge = np.where(total > 0, on_edge / total, np.nan)
    return beamstop.astype(np.float32), edge.astype(np.float32)


def share_columns(slugs: Any) -> tuple[list[str], list[str]]:
    """The table's column names: (``beamstop__<slug>`` ..., ``edge__<slug>`` ...)."""
    return [f"beamstop__{s}" for s in slugs], [f"edge__{s}" for s in slugs]


def heatmap_shares(store: RunStore, *, fraction: float = EDGE_FRACTION) -> pd.DataFrame:
    """Beamstop and edge shares of every image and attribute of a run, one partition at a time.

    Returns
    -------
    pandas.DataFrame
        ``sample_id`` and ``beamstop__<slug>``, ``edge__<slug>`` (float32) for the run's vocabulary.

    Raises
    ------
    RunStoreError
        No ``heatmaps.zarr`` / ``images.zarr``, or shapes that do not fit the run.
    """
    for handle, hint in ((store.heatmaps, "xsgpu infer RUN --model MODEL --heatmaps"),
                         (store.images, "xsgpu ingest / xsgpu synth")):
        if not handle.path.exists():
            raise RunStoreError(f"{handle.path} does not exist. Hint: run `{hint}`.")
    cams, images = store.heatmaps.open(), store.images.open()
    slugs = list(store.vocabulary.slugs)
    n = store.n_samples
    if cams.ndim != 4 or cams.shape[0] != n or cams.shape[1] != len(slugs):
        raise RunStoreError(f"{store.heatmaps.path}: shape {cams.shape}, expected ({n}, {len(slugs)}, h, w). "
                            "Hint: rerun `xsgpu infer RUN --model MODEL --overwrite`.")
    beam = np.empty((n, len(slugs)), np.float32)
    edge = np.empty((n, len(slugs)), np.float32)
    for p in range(store.n_partitions):
        a, b = store.partition_bounds(p)
        beam[a:b], edge[a:b] = shares_block(np.asarray(images[a:b]), np.asarray(cams[a:b]), fraction=fraction)
    bcols, ecols = share_columns(slugs)
    df = pd.DataFrame({"sample_id": np.arange(n, dtype=np.int64)})
    df = pd.concat([df, pd.DataFrame(beam, columns=bcols), pd.DataFrame(edge, columns=ecols)], axis=1)
    return df


def write_heatmap_shares(store: RunStore) -> pd.DataFrame | None:
    """Write ``heatmap_shares.parquet`` when the run has heatmaps (else remove a stale one); the table or None."""
    from xsgpu.io.schema import HEATMAP_SHARES

    handle = store.artifact(HEATMAP_SHARES)
    if not store.heatmaps.path.exists():
        handle.path.unlink(missing_ok=True)
        log.info("%s: no heatmaps.zarr, no heatmap shares", store.path)
        return None
    df = heatmap_shares(store)
    meta: dict[str, Any] = {"edge_fraction": EDGE_FRACTION, "upsampling": "nearest", "mass": "positive CAM"}
    sha = store.heatmaps.open().attrs.get("weights_sha256")
    if sha:
        meta["weights_sha256"] = sha
    handle.write(df, metadata=meta)
    log.info("%s: heatmap shares of %d images written", store.path, len(df))
    return df
