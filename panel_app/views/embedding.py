"""The linked ACT / FEA / PRD views: a datashader raster while dense, attribute flowers (or dots) once sparse.

Each :class:`EmbeddingView` is a plain Bokeh figure. After every pan, zoom or reset the browser sends
one ``RangesUpdate`` event; :meth:`EmbeddingView.set_viewport` counts the filtered images inside the
new viewport with the shared :class:`~panel_app.views.index.SpatialIndex` and then draws either

* a raster (``image_rgba`` from :func:`~panel_app.views.raster.rasterize`) of all filtered images, when
  the viewport holds more than ``state.flower_threshold`` of them, plus a second raster layer of the
  selected images; or
* one flower (one ``annular_wedge`` petal per attribute of the run's vocabulary + a centre dot) or one
  dot per image, with a hover tooltip that loads the image's thumbnail from the server by sample id.

A tap puts the nearest image first in the detail view (``state.detail_ids``).
Box and lasso tools select nothing in the browser; their ``SelectionGeometry`` event comes here, is
resolved to sample ids in this view's space (filtered images only) and written to ``state.selection``;
every view watches ``state.selection`` and redraws its selection layer, so a selection in one view
highlights in all three.

With ``state.device == "gpu"`` the view queries the space's :class:`~panel_app.views.index_gpu.GPUSpatialIndex`
and rasterizes CuPy arrays (:mod:`panel_app.device`): the per-session masks and values go to the GPU once per
change (:func:`~panel_app.device.on_device`), the ids of a query come back to the host, and the glyphs are
drawn from the host coordinates, as on the CPU.
"""
from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import panel as pn
import param
from bokeh.events import RangesUpdate, SelectionGeometry, Tap
from bokeh.models import (
    BoxSelectTool, ColumnDataSource, HoverTool, LassoSelectTool, LinearColorMapper, PanTool, Range1d, ResetTool,
    WheelZoomTool,
)
from bokeh.palettes import YlOrRd9
from bokeh.plotting import figure

from panel_app.data import SPACES
from panel_app.filters import labelled_mask
from panel_app.layers import LAST_BLOCK, layer_coords, layer_index, layer_label
from panel_app.shares import is_share_key, share_values
from panel_app.state import AppState
from panel_app.views.docsafe import with_batched_edits, with_bokeh_edits
from panel_app.views.lean_panes import LeanHTML
from panel_app.views.flowers import CENTRE_RADIUS, PETAL_RADIUS, crowding, flower_columns, glyphs_legible
from panel_app.views.groups_layer import RING_WIDTH, group_raster, group_rings
from panel_app.views.index import space_index
from panel_app.views.legend import COLOUR_BAR_ROOM, colour_bar_spec, make_colour_bar, update_colour_bar
from panel_app.views.raster import (
    OUTCOME_COLOURS, OUTCOMES, SELECTION_COLOUR, empty_image, outcome_codes, rasterize,
)
from xsgpu.backend import namespace_of

__all__ = ["EmbeddingView", "EmbeddingViews", "THUMB_ROUTE", "IMAGE_ROUTE"]

log = logging.getLogger(__name__)

#: URL prefixes under which the server returns a sample's thumbnail / image PNG by integer id.
THUMB_ROUTE = "/xsgpu/thumb"
IMAGE_ROUTE = "/xsgpu/image"
_ERR_PALETTE = tuple(reversed(YlOrRd9))
#: Milliseconds after the last wheel / pan step before the browser ends level-of-detail mode and sends
#: ``RangesUpdate``. Bokeh's default (500 ms) was most of a zoom step's wait in Chromium (docs/app.md,
#: ``benchmarks/bench_browser.py``); a short pause still merges the steps of one fast scroll.
LOD_TIMEOUT_MS = 40
_RASTER_TOOLTIP = [("images here", "@counts")]
_BORDER = 5   # px left and right of a growing view's frame (Bokeh's min_border)


def _empty_raster(x_range, y_range) -> dict:
    """The main raster's source when nothing is rasterized: a transparent pixel and its count, 0."""
    return {**empty_image(x_range, y_range), "counts": [np.zeros((1, 1), np.uint32)]}
_DOT_COLOUR = "#2171b5"

_TOOLTIP = """
<div style="width: 220px">
  <img src="{route}/@sample_id.png" width="64" height="64" style="image-rendering: pixelated; float: left;
       margin: 0 6px 4px 0" alt="thumbnail @sample_id"/>
  <div><b>id @sample_id</b></div>
  <div style="clear: both; font-size: 11px"><b>ACT</b>: @act</div>
  <div style="font-size: 11px"><b>PRD</b>: @prd</div>
  <div style="font-size: 11px"><b>error</b>: @err{{0.000}}</div>
</div>
"""


def _padded(bounds: tuple[float, float, float, float], pad: float = 0.03) -> tuple[float, float, float, float]:
    x0, x1, y0, y1 = bounds
    dx = (x1 - x0) or 1.0
    dy = (y1 - y0) or 1.0
    return x0 - pad * dx, x1 + pad * dx, y0 - pad * dy, y1 + pad * dy


class EmbeddingView(pn.viewable.Viewer):
    """One embedded space (ACT, FEA or PRD) of one session.

    Parameters
    ----------
    state : AppState
        The session state (read for drawing; ``selection`` is written on box / lasso select).
    space : {'ACT', 'FEA', 'PRD'}
    width, height : int
        Size of the plot frame (and of the raster) in pixels.
    grow : (int, int), optional
        The frame's least and greatest side in pixels when it follows the width the page gives the view
        (square, as wide as the browser lays it out, within these bounds; the raster follows). Default:
        a fixed ``width`` x ``height`` frame.
    thumb_route : str
        URL prefix of the thumbnail route used by the hover tooltip.
    """

    mode = param.Selector(default="raster", objects=["raster", "flowers", "dots"], constant=True,
                          doc="What the view draws now.")
    in_view = param.Integer(default=0, constant=True, doc="Filtered images inside the viewport.")
    selected_in_view = param.Integer(default=0, constant=True, doc="Selected filtered images inside the viewport.")
    render_ms = param.Number(default=0.0, constant=True, doc="Duration of the last redraw (server side).")

    def __init__(self, *, state: AppState, space: str, width: int = 420, height: int = 420,
                 grow: tuple[int, int] | None = None, thumb_route: str = THUMB_ROUTE, **params: Any):
        if not isinstance(state, AppState):
            raise TypeError(f"The 'state' parameter of EmbeddingView must be an AppState. Got {type(state).__name__}.")
        if str(space).upper() not in SPACES:
            raise ValueError(f"The 'space' parameter of EmbeddingView must be one of {list(SPACES)}. Got {space!r} instead.")
        super().__init__(**params)
        self.state = state
        self.space = str(space).upper()
        self.width, self.height = int(width), int(height)
        self.grow = None if grow is None else (int(grow[0]), int(grow[1]))
        if self.grow is not None and not 0 < self.grow[0] <= self.grow[1]:
            raise ValueError(f"The 'grow' parameter of EmbeddingView must be (least, greatest) pixels with "
                             f"0 < least <= greatest. Got {grow!r} instead.")
        self._load_coords()
        self.viewport = self.home
        self._build_figure(thumb_route)
        state.param.watch(self._on_state, ["cutoff", "filter_attributes", "filter_mode", "filter_source", "distance",
                                           "more_filters", "glyph", "flower_mode", "colour_by", "corrections_version",
                                           "flower_threshold", "flower_crowding", "flower_attributes"])
        state.param.watch(self._on_selection, ["selection"])
        state.param.watch(lambda *_e: self._draw_groups(state.filtered_mask()), ["groups"])
        state.param.watch(self._on_method, ["method"])
        if self.space == "FEA":  # another layer's map (panel_app.layers): as another method
            state.param.watch(self._on_method, ["fea_layer"])
        self.refresh()

    def _load_coords(self) -> None:
        """This space's coordinates, index and home viewport under the state's embedding method."""
        self.method = self.state.method
        self.layer = self.state.fea_layer if self.space == "FEA" else LAST_BLOCK
        if self.layer == LAST_BLOCK:
            self.index = space_index(self.state.data, self.space, self.method)
            self.x, self.y = self.state.data.coords(self.space, self.method)
        else:
            self.index = layer_index(self.state.data, self.layer, self.method)
            self.x, self.y = layer_coords(self.state.data, self.layer, self.method)
        if self.state.device == "gpu":   # queries and rasters on the GPU; x, y stay the host copies for the glyphs
            from panel_app.device import device_index

            self.index = device_index(self.state.data, self.space, self.method, layer=self.layer)
            self.dx, self.dy = self.index.x, self.index.y
        else:
            self.dx, self.dy = self.x, self.y
        self.home = _padded(self.index.bounds)

    def _on_device(self, host: np.ndarray):
        """``host`` (a mask or per-image values the state caches) on this view's device: itself on the CPU,
        its CuPy copy (made once while it lives, :func:`panel_app.device.on_device`) on the GPU."""
        if self.state.device == "cpu":
            return host
        from panel_app.device import on_device

        return on_device(host)

    @property
    def title(self) -> str:
        """``"FEA (tsne)"``, ``"FEA layer2 (tsne)"`` for another layer's map."""
        layer = "" if self.layer == LAST_BLOCK else f" {self.layer}"
        return f"{self.space}{layer} ({self.method})"

    # ------------------------------------------------------------------ figure
    def _build_figure(self, thumb_route: str) -> None:
        x0, x1, y0, y1 = self.home
        if self.grow is None:
            size: dict[str, Any] = {"frame_width": self.width}
        else:   # as wide as the page lays the view out (within grow); the server learns it from inner_width
            size = {"sizing_mode": "stretch_width", "min_width": self.grow[0] + 2 * _BORDER,
                    "max_width": self.grow[1] + 2 * _BORDER, "min_border_left": _BORDER, "min_border_right": _BORDER}
        fig = figure(**size, frame_height=self.height, title=self.title,
                     x_range=Range1d(x0, x1), y_range=Range1d(y0, y1), tools=[], toolbar_location="above",
                     output_backend="canvas", name=f"xsgpu-{self.space.lower()}")
        fig.xaxis.visible = fig.yaxis.visible = False
        fig.grid.visible = False
        fig.lod_timeout = LOD_TIMEOUT_MS
        self.raster_src = ColumnDataSource(_empty_raster((x0, x1), (y0, y1)))
        self.sel_src = ColumnDataSource(empty_image((x0, x1), (y0, y1)))
        self.petal_src = ColumnDataSource(dict(x=[], y=[], start=[], end=[], outer=[], fill_color=[], fill_alpha=[],
                                               line_color=[], line_width=[], line_alpha=[], line_dash=[],
                                               sample_id=[]))
        self.point_src = ColumnDataSource(dict(x=[], y=[], sample_id=[], err=[], alpha=[], act=[], prd=[],
                                               color=[], line_color=[]))
        self.raster_r = fig.image_rgba("image", x="x", y="y", dw="dw", dh="dh", source=self.raster_src,
                                       name="raster")
        self.group_src = ColumnDataSource(empty_image((x0, x1), (y0, y1)))
        self.group_r = fig.image_rgba("image", x="x", y="y", dw="dw", dh="dh", source=self.group_src,
                                      name="group-raster")  # saved groups in their colours, under the selection
        # one byte per pixel (rasterize how='mask'), coloured here: a quarter of an RGBA layer's bytes, and
        # a selection re-sends this layer in all three views
        self.sel_r = fig.image("image", x="x", y="y", dw="dw", dh="dh", source=self.sel_src,
                               color_mapper=LinearColorMapper(palette=["#00000000", SELECTION_COLOUR + "eb"],
                                                              low=0, high=1),
                               name="selection-raster")
        self.petal_r = fig.annular_wedge(x="x", y="y", inner_radius=CENTRE_RADIUS + 1.0, outer_radius="outer",
                                         inner_radius_units="screen", outer_radius_units="screen",
                                         start_angle="start", end_angle="end", fill_color="fill_color",
                                         fill_alpha="fill_alpha", line_color="line_color", line_width="line_width",
                                         line_alpha="line_alpha", line_dash="line_dash",
                                         source=self.petal_src, name="petals")
        self.err_mapper = LinearColorMapper(palette=_ERR_PALETTE, low=0.0, high=1.0)
        self.colour_bar = make_colour_bar()  # shown whenever colour encodes a number (error distance)
        fig.add_layout(self.colour_bar, "below")
        # the bar's room is kept while it is hidden: showing it (the step into flowers) then changes no
        # size, and the browser re-lays out nothing (before: +48 px, a page layout and a round trip)
        fig.min_border_bottom = COLOUR_BAR_ROOM
        self.centre_r = fig.scatter(x="x", y="y", size=2 * CENTRE_RADIUS, source=self.point_src, name="centres",
                                    fill_color={"field": "err", "transform": self.err_mapper}, fill_alpha="alpha",
                                    line_color="#444444", line_alpha="alpha", line_width=0.5)
        self.dot_r = fig.scatter(x="x", y="y", size=6, source=self.point_src, name="dots", fill_color="color",
                                 fill_alpha="alpha", line_color="line_color", line_alpha="alpha", line_width=1)
        self.ring_src = ColumnDataSource(dict(x=[], y=[], sample_id=[], color=[], size=[]))
        self.ring_r = fig.scatter(x="x", y="y", size="size", source=self.ring_src, name="group-rings",
                                  fill_alpha=0.0, line_color="color", line_width=RING_WIDTH)
        # hover on the flower's centre only: neighbouring flowers' petals overlap, their centres do not
        self.hit_r = fig.scatter(x="x", y="y", size=2 * CENTRE_RADIUS + 3, source=self.point_src, name="hover-area",
                                 fill_alpha=0.0, line_alpha=0.0)
        for r in (self.raster_r, self.group_r, self.sel_r, self.petal_r, self.centre_r, self.dot_r, self.ring_r,
                  self.hit_r):
            r.nonselection_glyph = None
            r.selection_glyph = None
        hover = HoverTool(renderers=[self.hit_r], tooltips=_TOOLTIP.format(route=thumb_route.rstrip("/")),
                          point_policy="snap_to_data", description="Image preview")
        wheel = WheelZoomTool()
        box = BoxSelectTool(renderers=[], description="Box Select", persistent=False)
        lasso = LassoSelectTool(renderers=[], description="Lasso Select")
        # raster mode: how many images lie under the cursor's pixel (the image's per-pixel counts); in the
        # glyph modes the raster is hidden, and a hidden renderer is never hit (its renderers stay the same:
        # changing them would be a change of references, and a walk of the document's models)
        self.raster_hover = HoverTool(renderers=[self.raster_r], tooltips=_RASTER_TOOLTIP, description="Images here")
        fig.add_tools(PanTool(), wheel, box, lasso, ResetTool(), hover, self.raster_hover)
        fig.toolbar.active_scroll = wheel
        fig.toolbar.active_drag = fig.tools[0]
        fig.on_event(RangesUpdate, self._on_ranges)
        fig.on_event(SelectionGeometry, self._on_geometry)
        fig.on_event(Tap, self._on_tap)
        if self.grow is not None:
            fig.on_change("inner_width", self._on_inner_width)
        self.figure = fig
        self.status = LeanHTML("", css_classes=["xsgpu-view-status"], margin=(0, 5))
        stretch = {} if self.grow is None else {"sizing_mode": "stretch_width"}
        self._layout = pn.Column(self.status, pn.pane.Bokeh(fig, **stretch), margin=(0, 4), **stretch)
        if self.space == "FEA":  # the layer switch, when the run's embedding maps kept layers
            self.layer_select = pn.widgets.Select.from_param(
                self.state.param.fea_layer, name="FEA layer", width=160, css_classes=["xsgpu-fea-layer"],
                options={layer_label(v): v for v in self.state.param.fea_layer.objects})
            self.layer_select.visible = len(self.state.param.fea_layer.objects) > 1
            self.state.param.watch(self._on_layers, ["method"])
            self._layout.insert(1, self.layer_select)

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    # ------------------------------------------------------------------ events
    # each browser event's changes (this view, the other views, the panels that follow at once) reach the
    # browser as one patch, with one walk of the document's models (docsafe.batched_edits)
    @with_batched_edits
    def _on_ranges(self, event: RangesUpdate) -> None:
        if None in (event.x0, event.x1, event.y0, event.y1):
            return
        self.set_viewport(event.x0, event.x1, event.y0, event.y1)

    @with_batched_edits
    def _on_inner_width(self, attr: str, old: Any, new: Any) -> None:
        """The browser laid the frame out ``new`` pixels wide: make it square and draw the raster at that size."""
        self.set_frame_size(new)

    def set_frame_size(self, width: Any) -> None:
        """Make the frame ``width`` x ``width`` pixels (within :attr:`grow`) and redraw; for a growing view."""
        if self.grow is None or width is None or int(width) <= 0:
            return
        side = min(max(int(width), self.grow[0]), self.grow[1])
        if (side, side) == (self.width, self.height):
            return
        self.width = self.height = side
        self.figure.frame_height = side
        self.refresh()

    @with_batched_edits
    def _on_geometry(self, event: SelectionGeometry) -> None:
        if not event.final:
            return
        try:
            self.select_geometry(event.geometry)
        except ValueError as exc:  # a degenerate lasso: tell the log, keep the session alive
            log.warning("ignored selection in %s view: %s", self.space, exc)

    @with_batched_edits
    def _on_tap(self, event: Tap) -> None:
        if event.x is None or event.y is None:
            return
        best = self.pick(event.x, event.y)
        if best is not None and self.mode == "flowers":
            slug = self.petal_at(best, event.x, event.y)
            if slug is not None:  # a petal: the detail view overlays that attribute's heatmap
                self.state.heatmap_attribute = slug

    def _on_state(self, *events: param.parameterized.Event) -> None:
        self.refresh()

    @with_bokeh_edits
    def _on_method(self, *events: param.parameterized.Event) -> None:
        """Another embedding method: new coordinates, back to the whole map, same selection and filters."""
        self._load_coords()
        x0, x1, y0, y1 = self.home
        self.figure.x_range.update(start=x0, end=x1)
        self.figure.y_range.update(start=y0, end=y1)
        self.figure.title.text = self.title
        self.viewport = self.home
        self.refresh()

    def _on_layers(self, *events: param.parameterized.Event) -> None:
        """Another method may map other layers: the switch offers those (hidden without any)."""
        objects = self.state.param.fea_layer.objects
        self.layer_select.options = {layer_label(v): v for v in objects}
        self.layer_select.visible = len(objects) > 1

    def _on_selection(self, *events: param.parameterized.Event) -> None:
        self.refresh(selection_only=True)

    # ------------------------------------------------------------------ actions
    def set_viewport(self, x0: float, x1: float, y0: float, y1: float) -> None:
        """Move the viewport (data units) and redraw: raster above the flower threshold, glyphs at or below."""
        x0, x1 = sorted((float(x0), float(x1)))
        y0, y1 = sorted((float(y0), float(y1)))
        if not (np.isfinite([x0, x1, y0, y1]).all() and x1 > x0 and y1 > y0):
            raise ValueError(f"The viewport of the {self.space} view must be finite with x0 < x1 and y0 < y1. "
                             f"Got ({x0}, {x1}, {y0}, {y1}) instead.")
        self.viewport = (x0, x1, y0, y1)
        self.refresh()

    def select_geometry(self, geometry: dict) -> np.ndarray:
        """Select the filtered images inside a Bokeh selection geometry (``rect`` or ``poly``) of this space.

        Returns
        -------
        ndarray of int64
            The ids now in ``state.selection``.
        """
        kind = geometry.get("type")
        mask = self._on_device(self.state.filtered_mask())
        if kind == "rect":
            ids = self.index.ids_in_box(geometry["x0"], geometry["x1"], geometry["y0"], geometry["y1"], mask=mask)
        elif kind == "poly":
            ids = self.index.ids_in_polygon(np.asarray(geometry["x"], float), np.asarray(geometry["y"], float),
                                            mask=mask)
        else:
            raise ValueError(f"Selection geometry of type {kind!r} is not supported; use the box or lasso tool.")
        self.state.select(ids, mode=self.state.selection_mode)
        return self.state.selection

    def pick(self, x: float, y: float, *, radius_px: float = PETAL_RADIUS, keep: int = 12) -> int | None:
        """Put the filtered image nearest to ``(x, y)`` (within ``radius_px`` screen pixels) first in the
        detail view (``state.detail_ids``, at most ``keep`` ids); returns its id, or ``None`` if none is near.
        """
        x0, x1, y0, y1 = self.viewport
        rx = radius_px * (x1 - x0) / self.width
        ry = radius_px * (y1 - y0) / self.height
        ids = self.index.ids_in_box(x - rx, x + rx, y - ry, y + ry, mask=self._on_device(self.state.filtered_mask()))
        if len(ids) == 0:
            return None
        d = ((self.x[ids] - x) / rx) ** 2 + ((self.y[ids] - y) / ry) ** 2
        best = int(ids[int(np.argmin(d))])
        if d.min() > 1.0:
            return None
        self.state.detail_ids = [best, *[i for i in self.state.detail_ids if i != best]][:keep]
        return best

    def petal_at(self, sample_id: int, x: float, y: float) -> str | None:
        """The slug of the petal of ``sample_id``'s flower under ``(x, y)`` (data units), or ``None``
        (the centre dot or outside the flower)."""
        x0, x1, y0, y1 = self.viewport
        dx = (x - float(self.x[sample_id])) * self.width / (x1 - x0)
        dy = (y - float(self.y[sample_id])) * self.height / (y1 - y0)
        if not CENTRE_RADIUS < np.hypot(dx, dy) <= PETAL_RADIUS:
            return None
        vocab = self.state.vocabulary
        shown = sorted(vocab.index(a) for a in self.state.flower_attributes)
        if not shown:
            return None
        turn = (np.arctan2(dy, dx) - np.pi / 2) % (2 * np.pi)  # petals start at 12 o'clock, counter-clockwise
        j = min(int(turn / (2 * np.pi / len(shown))), len(shown) - 1)
        return vocab[shown[j]].slug

    def visible_ids(self) -> np.ndarray:
        """Sorted ids of the filtered images inside the current viewport."""
        x0, x1, y0, y1 = self.viewport
        return self.index.ids_in_box(x0, x1, y0, y1, mask=self._on_device(self.state.filtered_mask()))

    # ------------------------------------------------------------------ drawing
    @with_bokeh_edits
    def refresh(self, *, selection_only: bool = False) -> None:
        """Redraw for the current viewport and state (``selection_only``: just the selection highlight).

        The figure's models are changed inside :func:`~panel_app.views.docsafe.bokeh_edits`, so a redraw
        triggered by a callback that Panel runs without the document lock reaches the browser too.
        """
        t0 = time.perf_counter()
        st = self.state
        mask = st.filtered_mask()
        x0, x1, y0, y1 = self.viewport
        if selection_only and self.mode == "raster":
            self._draw_selection_raster(mask)
        else:
            n_view = self.index.count_in_box(x0, x1, y0, y1, mask=self._on_device(mask), limit=st.flower_threshold)
            if not self._glyphs_fit(n_view):
                n_view = self._draw_raster(mask)  # the exact count comes with the raster
                self._draw_selection_raster(mask)
            else:
                self._draw_glyphs(mask)
            self._draw_groups(mask)
            self._update_colour_bar()
            with param.edit_constant(self):
                self.in_view = n_view
        with param.edit_constant(self):
            self.render_ms = (time.perf_counter() - t0) * 1000
        self._update_status()

    def _glyphs_fit(self, n_view: int) -> bool:
        """Whether the images in view are few and spread enough on screen for glyphs (else the raster).

        The count cap (``state.flower_threshold``) bounds the drawing cost; below it, the crowding on
        screen decides (:func:`~panel_app.views.flowers.glyphs_legible`), kept in :attr:`crowding`.
        """
        st = self.state
        self.crowding = float("nan")
        if n_view > st.flower_threshold:
            return False
        x0, x1, y0, y1 = self.viewport
        ids = self.visible_ids()
        cell = 2 * PETAL_RADIUS if st.glyph == "flowers" else 8.0
        self.crowding = crowding((self.x[ids] - x0) * (self.width / (x1 - x0)),
                                 (self.y[ids] - y0) * (self.height / (y1 - y0)), cell=cell)
        return glyphs_legible(len(ids), self.crowding, max_glyphs=st.flower_threshold,
                              max_crowding=st.flower_crowding)

    def _update_colour_bar(self) -> None:
        st = self.state
        update_colour_bar(self.colour_bar, colour_bar_spec(self.mode, colour_by=st.colour_by,
                                                           flower_mode=st.flower_mode if st.glyph == "flowers" else "",
                                                           distance=st.distance, span=st.error_span))

    def _draw_raster(self, mask: np.ndarray) -> int:
        st = self.state
        x0, x1, y0, y1 = self.viewport
        # only the x-slab of the viewport, as zero-copy slices of the x-sorted coordinates (on the GPU there)
        xs, ys, ids = self.index.slab(x0, x1)
        xp, dev = namespace_of(xs), self._on_device
        kw: dict[str, Any] = {}
        if st.filters_active or st.data.n_invalid:   # else every image passes: skip the gather
            kw["mask"] = dev(mask)[ids]
        if st.colour_by == "error_distance":
            err = dev(st.error_distance())[ids]
            unl = ~dev(labelled_mask(st.data))[ids]
            if unl.any():  # no ACT, no error distance: unlabelled images leave the mean (they are not 0)
                err = xp.where(unl, np.float32(np.nan), err)
            kw.update(how="mean", values=err, value_span=st.error_span)
        elif st.colour_by in st.vocabulary.slugs:
            kw.update(how="outcome", values=dev(self._outcomes(st.vocabulary.index(st.colour_by)))[ids])
        elif is_share_key(st.colour_by):
            kw.update(how="mean", values=dev(share_values(st.data, st.colour_by))[ids], value_span=(0.0, 1.0))
        out = rasterize(xs, ys, x_range=(x0, x1), y_range=(y0, y1), width=self.width, height=self.height,
                        with_counts=True, **kw)
        count = int(out.pop("count"))
        self.raster_src.data = out
        if len(self.petal_src.data["x"]):
            self.petal_src.data = {k: [] for k in self.petal_src.data}
        if len(self.point_src.data["x"]):
            self.point_src.data = {k: [] for k in self.point_src.data}
        self._show("raster")
        return count

    def _outcomes(self, j: int) -> np.ndarray:
        st = self.state
        key = ("outcomes", j, st.cutoff, st._y_act_key)
        cache = getattr(self, "_outcome_cache", None)
        if cache is None or cache[0] != key:
            codes = outcome_codes(st.y_act()[:, j], st.data.y_prob[:, j], cutoff=st.cutoff,
                                  labelled=labelled_mask(st.data))
            self._outcome_cache = (key, codes)
        return self._outcome_cache[1]

    def _draw_selection_raster(self, mask: np.ndarray) -> None:
        sel = self.state.selection
        x0, x1, y0, y1 = self.viewport
        if len(sel) == 0:
            self.sel_src.data = empty_image((x0, x1), (y0, y1))
            n_sel = 0
        else:
            dsel = self._on_device(sel)   # the selection's ids, on the GPU once per selection there
            out = rasterize(self.dx[dsel], self.dy[dsel], x_range=(x0, x1), y_range=(y0, y1), width=self.width,
                            height=self.height, mask=self._on_device(mask)[dsel], how="mask")
            n_sel = out.pop("count")
            self.sel_src.data = out
        with param.edit_constant(self):
            self.selected_in_view = n_sel

    @with_bokeh_edits  # also called alone, when the groups change
    def _draw_groups(self, mask: np.ndarray) -> None:
        """The saved groups in their colours: a raster layer while dense, rings around the glyphs once sparse."""
        groups = self.state.groups
        x0, x1, y0, y1 = self.viewport
        if self.mode == "raster" and groups:
            out = group_raster(self.x, self.y, groups, mask, x_range=(x0, x1), y_range=(y0, y1),
                               width=self.width, height=self.height)
            out.pop("counts")
            self.group_src.data = out
        elif len(self.group_src.data["image"][0]) > 1 or not groups:
            self.group_src.data = empty_image((x0, x1), (y0, y1))
        if self.mode != "raster" and groups:
            base = 2 * PETAL_RADIUS + 4 if self.mode == "flowers" else 10.0
            self.ring_src.data = group_rings(self.visible_ids(), self.x, self.y, groups, base=base)
        elif len(self.ring_src.data["x"]):
            self.ring_src.data = {k: [] for k in self.ring_src.data}

    def _draw_glyphs(self, mask: np.ndarray) -> None:
        st = self.state
        ids = self.visible_ids()
        sel = st.selection
        selected = np.isin(ids, sel, assume_unique=True) if len(sel) else np.zeros(len(ids), bool)
        err = st.error_distance(ids) if len(ids) else np.zeros(0, np.float32)
        act = st.y_act()[ids]
        prob = st.data.y_prob[ids]
        x, y = self.x[ids], self.y[ids]
        petals, centres = flower_columns(ids, x, y, act, prob, err=err, mode=st.flower_mode, cutoff=st.cutoff,
                                         selected=selected, labelled=labelled_mask(st.data)[ids],
                                         attributes=[st.vocabulary.index(a) for a in st.flower_attributes],
                                         vocabulary=st.vocabulary)
        centres["color"], centres["line_color"] = self._dot_colours(ids, err, selected)
        unl = ~labelled_mask(st.data)[ids]
        if unl.any() and not is_share_key(st.colour_by):   # no error distance, no outcome (heatmaps it has): a plain dot
            centres["color"] = list(np.where(unl, _DOT_COLOUR, np.asarray(centres["color"], dtype=object)))
        self.err_mapper.high = st.error_span[1]
        if st.glyph == "flowers":
            self.petal_src.data = petals
            self._show("flowers")
        else:
            self.petal_src.data = {k: [] for k in self.petal_src.data}
            self._show("dots")
        self.point_src.data = centres
        x0, x1, y0, y1 = self.viewport
        self.raster_src.data = _empty_raster((x0, x1), (y0, y1))
        self.sel_src.data = empty_image((x0, x1), (y0, y1))
        with param.edit_constant(self):
            self.selected_in_view = int(selected.sum())

    def _dot_colours(self, ids: np.ndarray, err: np.ndarray, selected: np.ndarray) -> tuple[list, list]:
        st = self.state
        k = len(ids)
        if st.colour_by == "error_distance":
            lo, hi = st.error_span
            pos = np.clip(((err - lo) / (hi - lo) * len(_ERR_PALETTE)).astype(int), 0, len(_ERR_PALETTE) - 1)
            colours = np.asarray(_ERR_PALETTE, dtype=object)[pos]
        elif st.colour_by in st.vocabulary.slugs:
            codes = self._outcomes(st.vocabulary.index(st.colour_by))[ids]
            colours = np.asarray([*(OUTCOME_COLOURS[o] for o in OUTCOMES), _DOT_COLOUR], dtype=object)[codes]
        elif is_share_key(st.colour_by):
            share = share_values(st.data, st.colour_by)[ids]
            pos = np.clip((share * len(_ERR_PALETTE)).astype(int), 0, len(_ERR_PALETTE) - 1)
            colours = np.asarray(_ERR_PALETTE, dtype=object)[pos]
        else:
            colours = np.full(k, _DOT_COLOUR, dtype=object)
        line = np.where(selected, SELECTION_COLOUR, "#ffffff").astype(object)
        return list(colours), list(line)

    def _show(self, mode: str) -> None:
        self.raster_r.visible = self.sel_r.visible = self.group_r.visible = mode == "raster"
        self.ring_r.visible = mode != "raster"
        self.petal_r.visible = self.centre_r.visible = mode == "flowers"
        self.dot_r.visible = mode == "dots"
        self.hit_r.visible = mode != "raster"
        with param.edit_constant(self):
            self.mode = mode

    def _update_status(self) -> None:
        n_sel = len(self.state.selection)
        self.status.object = (
            f"<span class='xsgpu-view-status-text' data-space='{self.space}' data-mode='{self.mode}' "
            f"data-in-view='{self.in_view}' data-selected='{n_sel}' data-selected-in-view='{self.selected_in_view}'>"
            f"<b>{self.space}</b> &middot; {self.in_view:,} in view &middot; {self.selected_in_view:,} of {n_sel:,} "
            f"selected here &middot; {self.mode}</span>")


class EmbeddingViews(pn.viewable.Viewer):
    """The ACT, FEA and PRD views side by side (only those in ``state.spaces``).

    Parameters
    ----------
    state : AppState
    **view_kw
        Passed to each :class:`EmbeddingView` (``width``, ``height``, ``thumb_route``).
    """

    def __init__(self, *, state: AppState, **view_kw: Any):
        super().__init__()
        self.state = state
        self.views = {space: EmbeddingView(state=state, space=space, **view_kw) for space in SPACES}
        self._row = pn.Row(*[self.views[s] for s in state.spaces], sizing_mode="stretch_width")
        state.param.watch(self._on_spaces, ["spaces"])

    def _on_spaces(self, event: param.parameterized.Event) -> None:
        self._row.objects = [self.views[s] for s in SPACES if s in self.state.spaces]

    def __panel__(self) -> pn.viewable.Viewable:
        return self._row
