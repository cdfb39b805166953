"""Legends of the maps: the flower legend (petal order, outcome encoding, error dot, group rings) with the
choice of the attributes drawn as petals, and the colour bar of a view whenever colour encodes a number.

Examples
--------
>>> from panel_app.views.legend import colour_bar_spec
>>> colour_bar_spec("raster", colour_by="error_distance", flower_mode="joint", distance="cosine",
...                 span=(0.0, 1.0))["title"]
'mean error distance (cosine) per pixel'
>>> colour_bar_spec("raster", colour_by="density", flower_mode="joint", distance="cosine", span=(0.0, 1.0)) is None
True
"""
from __future__ import annotations

import html
import math
from typing import Any

import panel as pn
from bokeh.models import ColorBar, LinearColorMapper
from bokeh.palettes import YlOrRd9, interp_palette

from panel_app.state import AppState
from panel_app.views.raster import ERROR_CMAP
from xsgpu.attributes import DEFAULT_VOCABULARY, Vocabulary

__all__ = ["COLOUR_BAR_ROOM", "FlowerLegend", "flower_legend_html", "colour_bar_spec", "make_colour_bar", "update_colour_bar",
           "ERROR_PALETTE", "RASTER_ERROR_PALETTE"]

#: Palette of the error distance on glyphs (centre dots, dots): light yellow = agree, dark red = disagree.
ERROR_PALETTE: tuple[str, ...] = tuple(reversed(YlOrRd9))
#: The raster's error-distance palette (datashader interpolates :data:`~panel_app.views.raster.ERROR_CMAP`).
RASTER_ERROR_PALETTE: tuple[str, ...] = tuple(interp_palette(ERROR_CMAP, 64))
_FONT = "font-size:12px"
#: With more petals than this, the legend's flower has no order numbers (they would overlap) and the list
#: of names goes under it, in two columns.
_NUMBERED_PETALS = 20


def colour_bar_spec(mode: str, *, colour_by: str, flower_mode: str, distance: str,
                    span: tuple[float, float]) -> dict | None:
    """What the colour bar of a view shows, or ``None`` when no colour of the view encodes a number.

    Parameters
    ----------
    mode : {'raster', 'flowers', 'dots'}
        What the view draws now.
    colour_by, flower_mode, distance : str
        The session's raster colouring, flower mode and error distance.
    span : (float, float)
        The error distance's range.

    Returns
    -------
    dict or None
        ``palette``, ``low``, ``high``, ``title``.
    """
    low, high = float(span[0]), float(span[1])
    kind, sep, slug = colour_by.partition("__")
    if sep and kind in ("beamstop", "edge"):  # panel_app.shares: a heatmap share in [0, 1]
        where = "per pixel, mean" if mode == "raster" else ("centre dot" if mode == "flowers" else "dot")
        return {"palette": RASTER_ERROR_PALETTE if mode == "raster" else ERROR_PALETTE, "low": 0.0, "high": 1.0,
                "title": f"share of the {slug} heatmap on the {kind} ({where})"}
    if mode == "raster" and colour_by == "error_distance":
        return {"palette": RASTER_ERROR_PALETTE, "low": low, "high": high,
                "title": f"mean error distance ({distance}) per pixel"}
    if mode == "flowers" and flower_mode == "joint":
        return {"palette": ERROR_PALETTE, "low": low, "high": high,
                "title": f"centre dot: error distance ({distance})"}
    if mode == "dots" and colour_by == "error_distance":
        return {"palette": ERROR_PALETTE, "low": low, "high": high, "title": f"error distance ({distance})"}
    return None


#: Pixels under a view's frame kept for its colour bar, shown or not (``min_border_bottom``): the bar
#: with its title and labels takes 53 px in Chromium (12-px fonts), the rest is slack for other fonts.
COLOUR_BAR_ROOM = 60


def make_colour_bar() -> ColorBar:
    """A horizontal colour bar for below a view's frame (hidden until :func:`update_colour_bar` shows it)."""
    mapper = LinearColorMapper(palette=list(ERROR_PALETTE), low=0.0, high=1.0)
    return ColorBar(color_mapper=mapper, orientation="horizontal", height=10, title="", visible=False,
                    title_text_font_size="12px", major_label_text_font_size="12px", title_standoff=4,
                    name="colour-bar", padding=4)


def update_colour_bar(bar: ColorBar, spec: dict | None) -> None:
    """Show ``spec`` (:func:`colour_bar_spec`) on ``bar``, or hide it for ``None``; unchanged values are not re-sent."""
    if spec is None:
        if bar.visible:
            bar.visible = False
        return
    m = bar.color_mapper
    if list(m.palette) != list(spec["palette"]):
        m.palette = list(spec["palette"])
    if (m.low, m.high) != (spec["low"], spec["high"]):
        m.update(low=spec["low"], high=spec["high"])
    if bar.title != spec["title"]:
        bar.title = spec["title"]
    if not bar.visible:
        bar.visible = True


# ---------------------------------------------------------------------- the flower legend
def _pt(cx: float, cy: float, r: float, theta: float) -> str:
    return f"{cx + r * math.cos(theta):.2f},{cy - r * math.sin(theta):.2f}"


def _wedge(cx: float, cy: float, r0: float, r1: float, a0: float, a1: float) -> str:
    """SVG path of an annular wedge from angle a0 to a1 (radians, counter-clockwise, 0 = 3 o'clock)."""
    large = 1 if (a1 - a0) % (2 * math.pi) > math.pi else 0
    return (f"M{_pt(cx, cy, r0, a0)} L{_pt(cx, cy, r1, a0)} A{r1},{r1} 0 {large} 0 {_pt(cx, cy, r1, a1)} "
            f"L{_pt(cx, cy, r0, a1)} A{r0},{r0} 0 {large} 1 {_pt(cx, cy, r0, a0)} Z")


def flower_legend_html(attributes: list[str] | None = None, *, flower_mode: str = "joint",
                       distance: str = "cosine", span: tuple[float, float] = (0.0, 1.0),
                       vocabulary: Vocabulary | None = None) -> str:
    """HTML (inline SVG) legend of the flowers: petal order and colours, outcome encoding, error dot, rings.

    Parameters
    ----------
    attributes : list of str, optional
        Slugs of the attributes drawn as petals (default all of ``vocabulary``), shown in vocabulary order.
    flower_mode : {'ACT', 'PRD', 'joint'}
    distance : str
        The error distance named under the centre-dot scale.
    span : (float, float)
        The error distance's range.
    vocabulary : Vocabulary, optional
        The run's attributes; default the paper's 17.
    """
    from panel_app.views.flowers import FP_DASH, FP_FILL_ALPHA, petal_angles

    vocab = DEFAULT_VOCABULARY if vocabulary is None else vocabulary
    shown = [a for a in vocab if attributes is None or a.slug in set(attributes)]
    k = len(shown)
    parts = [f"<div class='xsgpu-flower-legend' style='{_FONT};line-height:1.35'>"]
    if 0 < k < len(vocab):
        parts.append(f"<div class='xsgpu-petal-count'>{k} of the run's {len(vocab)} attributes drawn as petals.</div>")
    if k == 0:
        parts.append("<div><i>No petals shown: pick attributes above.</i></div>")
    else:
        start, end = petal_angles(k=k)
        size, c, r0, r1 = 120, 60.0, 9.0, 54.0
        svg = [f"<svg width='{size}' height='{size}' viewBox='0 0 {size} {size}' role='img' "
               f"aria-label='petal order'>"]
        for i, a in enumerate(shown):
            svg.append(f"<path d='{_wedge(c, c, r0, r1, start[i], end[i])}' fill='{a.colour}' fill-opacity='0.85' "
                       f"stroke='{a.colour}'><title>{html.escape(a.name)}</title></path>")
            if k > _NUMBERED_PETALS:
                continue
            mid = (start[i] + end[i]) / 2
            svg.append(f"<text x='{c + 0.72 * r1 * math.cos(mid):.1f}' y='{c - 0.72 * r1 * math.sin(mid) + 4:.1f}' "
                       f"font-size='11' text-anchor='middle' fill='#fff' stroke='#000' stroke-width='0.25'>"
                       f"{i + 1}</text>")
        svg.append("</svg>")
        items = "".join(f"<div style='display:flex;align-items:center'><span style='width:18px;text-align:right;"
                        f"margin-right:4px'>{i + 1}</span><span style='display:inline-block;width:11px;height:11px;"
                        f"margin-right:4px;background:{a.colour}'></span>{html.escape(a.name)}</div>"
                        for i, a in enumerate(shown))
        many = k > _NUMBERED_PETALS   # the names go under the flower, in two columns
        columns = " style='columns:2;column-gap:8px'" if many else ""
        parts.append("<div><b>Petals</b> (from 12 o'clock, counter-clockwise)</div>"
                     f"<div style='display:flex;gap:8px;align-items:flex-start"
                     f"{';flex-direction:column' if many else ''}'>{''.join(svg)}"
                     f"<div class='xsgpu-petal-names'{columns}>{items}</div></div>")
    if flower_mode == "joint":
        colour = shown[0].colour if shown else vocab[0].colour
        cells = []
        wedge = {"long": _wedge(20, 30, 4, 26, math.radians(65), math.radians(115)),
                 "short": _wedge(20, 30, 4, 11, math.radians(65), math.radians(115))}
        for label, what, shape, fill in (
                ("TP", "labelled, predicted", "long", f"fill='{colour}' fill-opacity='0.85'"),
                ("FN", "labelled, missed", "short", f"fill='{colour}' fill-opacity='0.85'"),
                ("FP", "predicted, not labelled", "long",
                 f"fill='{colour}' fill-opacity='{FP_FILL_ALPHA}' stroke-dasharray='{FP_DASH}'"),
                ("TN", "neither", "short", "fill='none'")):
            width = 1.6 if label == "FP" else 0.8
            cells.append(f"<div style='text-align:center;width:74px'><svg width='40' height='34'>"
                         f"<path d='{wedge[shape]}' {fill} stroke='{colour}' stroke-width='{width}'/></svg>"
                         f"<div><b>{label}</b></div><div style='font-size:12px;color:#555'>{what}</div></div>")
        parts.append("<div style='margin-top:4px'><b>Petal outcome</b> (length = predicted probability)</div>"
                     f"<div style='display:flex;gap:2px' class='xsgpu-outcome-legend'>{''.join(cells)}</div>")
        lo, hi = span
        stops = ",".join(ERROR_PALETTE)
        parts.append("<div style='margin-top:4px' class='xsgpu-error-dot-legend'><b>Centre dot</b>: error distance "
                     f"ACT vs PRD ({html.escape(distance)})</div>"
                     f"<div style='display:flex;align-items:center;gap:4px'><span>{lo:g} agree</span>"
                     f"<span style='display:inline-block;width:110px;height:10px;border:1px solid #999;"
                     f"background:linear-gradient(to right,{stops})'></span><span>{hi:.3g} disagree</span></div>")
    elif flower_mode == "ACT":
        parts.append("<div style='margin-top:4px'><b>ACT mode</b>: a full petal per labelled attribute.</div>")
    else:
        parts.append("<div style='margin-top:4px'><b>PRD mode</b>: petal length = predicted probability.</div>")
    parts.append("<div style='margin-top:4px'><b>Ring</b> around a flower: a saved group, in its colour.</div>")
    parts.append("</div>")
    return "".join(parts)


class FlowerLegend(pn.viewable.Viewer):
    """The flower legend and the choice of the attributes drawn as petals (``state.flower_attributes``)."""

    def __init__(self, *, state: AppState, **params: Any):
        super().__init__(**params)
        if not isinstance(state, AppState):
            raise TypeError(f"The 'state' parameter of FlowerLegend must be an AppState. Got {type(state).__name__}.")
        self.state = state
        self.attributes = pn.widgets.MultiSelect.from_param(
            state.param.flower_attributes, name="Petals shown (Ctrl / Shift + click for several)",
            options={a.name: a.slug for a in state.vocabulary}, size=8, css_classes=["xsgpu-flower-attributes"],
            sizing_mode="stretch_width")
        self.all = pn.widgets.Button(label=f"All {state.n_attributes}", css_classes=["xsgpu-flower-all"], width=80)
        self.all.on_click(lambda _e: setattr(state, "flower_attributes", list(state.vocabulary.slugs)))
        self.legend = pn.pane.HTML("", css_classes=["xsgpu-flower-legend-pane"], sizing_mode="stretch_width")
        state.param.watch(lambda _e: self._update(), ["flower_attributes", "flower_mode", "distance"])
        self._update()
        self._layout = pn.Card(self.attributes, self.all, self.legend, title="Flowers", collapsible=True,
                               sizing_mode="stretch_width", css_classes=["xsgpu-flowers-card"])

    def _update(self) -> None:
        s = self.state
        self.legend.object = flower_legend_html(list(s.flower_attributes), flower_mode=s.flower_mode,
                                                distance=s.distance, span=s.error_span, vocabulary=s.vocabulary)

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout
