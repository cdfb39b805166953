"""The spatial queries of one embedded space on the GPU (CuPy), twin of :class:`~panel_app.views.index.SpatialIndex`.

The x-sorted points of the host index are copied to the GPU once (``xs``, ``ys``, ``order``, and the
coordinates in id order ``x``, ``y``). A viewport or a box query is two ``cupy.searchsorted`` calls on ``xs``
(with the same float32 bounds as the host index, so the same points pass) and one vectorised test on the
x-slab; a lasso is the box query followed by the even-odd test over the polygon's edges, in float64 like the
host's. Queries take masks on the GPU (:func:`panel_app.device.on_device`) and return what the callers need:
``count_in_box`` an int, ``ids_in_box`` / ``ids_in_polygon`` sorted int64 ids on the host (the selection and
the glyphs are host arrays), ``slab`` views on the GPU (the raster stays there).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from panel_app.views.index import SpatialIndex, _bound_as, points_in_polygon
from xsgpu.backend import import_gpu

__all__ = ["GPUSpatialIndex", "points_in_polygon_gpu"]


class GPUSpatialIndex:
    """Points of one space on the GPU, sorted by x (see the module docstring).

    Parameters
    ----------
    xs, ys : cupy.ndarray of float32, shape (n,)
        The x-sorted coordinates.
    order : cupy.ndarray of int, shape (n,)
        The sample id of each sorted point.
    x, y : cupy.ndarray of float32, shape (n,)
        The coordinates in sample-id order.
    bounds : (float, float, float, float)
        ``(x0, x1, y0, y1)`` of the finite points (as the host index has them).
    """

    def __init__(self, xs: Any, ys: Any, order: Any, x: Any, y: Any, *, bounds: tuple[float, float, float, float]):
        self._cp = import_gpu("cupy")
        if not all(a.shape == xs.shape and a.ndim == 1 for a in (ys, order, x, y)):
            raise ValueError(f"xs, ys, order, x and y must be 1-d arrays of one length; got shapes "
                             f"{[tuple(a.shape) for a in (xs, ys, order, x, y)]}.")
        self.xs, self.ys, self.order, self.x, self.y = xs, ys, order, x, y
        self.n = int(xs.shape[0])
        self.bounds = tuple(float(b) for b in bounds)

    @classmethod
    def from_host(cls, index: SpatialIndex) -> "GPUSpatialIndex":
        """Copy a host :class:`SpatialIndex` to the GPU (its sorted arrays and coordinates; ids unchanged)."""
        cp = import_gpu("cupy")
        return cls(cp.asarray(index.xs), cp.asarray(index.ys), cp.asarray(index.order), cp.asarray(index.x),
                   cp.asarray(index.y), bounds=index.bounds)

    # ------------------------------------------------------------------ bounds
    def _slab(self, x0: float, x1: float) -> tuple[int, int]:
        cp = self._cp
        lo, hi = (x0, x1) if x0 <= x1 else (x1, x0)
        dtype = self.xs.dtype
        a = cp.searchsorted(self.xs, cp.asarray([_bound_as(lo, dtype, "left")], dtype=dtype), side="left")
        b = cp.searchsorted(self.xs, cp.asarray([_bound_as(hi, dtype, "right")], dtype=dtype), side="right")
        ab = cp.concatenate([a, b]).get()   # one copy to the host for both ends
        return int(ab[0]), int(ab[1])

    def _y_hit(self, a: int, b: int, y0: float, y1: float) -> Any:
        lo, hi = (y0, y1) if y0 <= y1 else (y1, y0)
        ylo, yhi = _bound_as(lo, self.ys.dtype, "left"), _bound_as(hi, self.ys.dtype, "right")
        ys = self.ys[a:b]
        return (ys >= ylo) & (ys <= yhi)

    # ------------------------------------------------------------------ queries
    def slab(self, x0: float, x1: float) -> tuple[Any, Any, Any]:
        """The points with ``x0 <= x <= x1`` as views of the x-sorted GPU arrays (``xs, ys, ids``)."""
        a, b = self._slab(x0, x1)
        return self.xs[a:b], self.ys[a:b], self.order[a:b]

    def _box(self, x0: float, x1: float, y0: float, y1: float, mask: Any) -> Any:
        """Unsorted ids in the box, on the GPU."""
        a, b = self._slab(x0, x1)
        ids = self.order[a:b][self._y_hit(a, b, y0, y1)]
        if mask is not None:
            ids = ids[mask[ids]]
        return ids

    def ids_in_box(self, x0: float, x1: float, y0: float, y1: float, *, mask: Any = None) -> np.ndarray:
        """Sample ids with ``x0 <= x <= x1`` and ``y0 <= y <= y1`` (and ``mask[id]``; ``mask`` a CuPy bool (n,)).

        Returns
        -------
        ndarray of int64, shape (k,)
            Sorted ids, on the host.
        """
        return self._sorted(self._box(x0, x1, y0, y1, mask)).get()

    def count_in_box(self, x0: float, x1: float, y0: float, y1: float, *, mask: Any = None,
                     limit: int | None = None) -> int:
        """Number of points in the box (counting only ``mask[id]``); always exact (``limit`` is accepted for
        the host index's signature: one pass over the slab on the GPU costs less than stopping early)."""
        a, b = self._slab(x0, x1)
        hit = self._y_hit(a, b, y0, y1)
        if mask is None:
            return int(self._cp.count_nonzero(hit))
        return int(self._cp.count_nonzero(mask[self.order[a:b][hit]]))

    def ids_in_polygon(self, px, py, *, mask: Any = None) -> np.ndarray:
        """Sample ids inside the polygon with vertices ``(px[i], py[i])`` (even-odd rule), sorted, on the host."""
        px = np.asarray(px, dtype=np.float64)
        py = np.asarray(py, dtype=np.float64)
        if px.shape != py.shape or px.ndim != 1 or len(px) < 3:
            raise ValueError(f"A lasso polygon needs >= 3 vertices with matching x and y; got {px.shape}, {py.shape}.")
        cand = self._sorted(self._box(px.min(), px.max(), py.min(), py.max(), mask))
        if cand.shape[0] == 0:
            return cand.get()
        return cand[points_in_polygon_gpu(self.x[cand], self.y[cand], px, py)].get()

    def _sorted(self, ids: Any) -> Any:
        ids = ids.astype(self._cp.int64)   # a copy: the views of order stay as they are
        ids.sort()
        return ids


def points_in_polygon_gpu(x: Any, y: Any, px: np.ndarray, py: np.ndarray) -> Any:
    """Even-odd point-in-polygon test on the GPU, vectorised over points (loop over the polygon's edges).

    :func:`panel_app.views.index.points_in_polygon` on CuPy: the same float64 operations, one kernel each, so
    a point on the same side of every edge gets the same answer.

    Parameters
    ----------
    x, y : cupy.ndarray, shape (k,)
    px, py : ndarray, shape (m,)
        Polygon vertices (host; closed implicitly).

    Returns
    -------
    cupy.ndarray of bool, shape (k,)
    """
    return points_in_polygon(x, y, px, py, xp=import_gpu("cupy"))
