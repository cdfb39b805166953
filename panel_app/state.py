"""Per-session state of the app: one :class:`AppState` per browser session, over a shared :class:`RunData`.

Every view reads its inputs from an ``AppState`` and writes user actions back to it (a box selection sets
``state.selection``; a recorded correction bumps ``state.corrections_version``); views never talk to
each other directly.

Examples
--------
>>> import numpy as np
>>> from panel_app.data import RunData
>>> from panel_app.state import AppState
>>> rng = np.random.default_rng(0)
>>> data = RunData.from_arrays(y_true=rng.random((6, 17)) < 0.5, y_prob=rng.random((6, 17)),
...                            coords=rng.normal(size=(6, 6)))
>>> state = AppState(data=data)
>>> state.select([4, 1, 4])
>>> state.selection.tolist()
[1, 4]
>>> state.add_group(name="g1").ids.tolist()
[1, 4]
"""
from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np
import param

from panel_app.data import SPACES, RunData
from panel_app.filters import FilterSpec, filter_mask
from panel_app.layers import LAST_BLOCK, fea_layers
from panel_app.shares import share_keys
from xsgpu.attributes import DEFAULT_VOCABULARY, Vocabulary

__all__ = ["AppState", "Group", "GROUP_COLOURS", "DISTANCES", "FLOWER_MODES", "SELECTION_MODES", "MAX_DEFAULT_PETALS",
           "default_petals"]

#: How a new box / lasso selection combines with the current one (AppState.selection_mode)
SELECTION_MODES: tuple[str, ...] = ("replace", "add", "subtract", "intersect")

log = logging.getLogger(__name__)

DISTANCES = ("cosine", "euclidean", "manhattan")
FLOWER_MODES = ("ACT", "PRD", "joint")
#: Colours handed to new groups in turn (the first ones far from the selection pink and the density blues).
GROUP_COLOURS = ("#ff7f00", "#4daf4a", "#984ea3", "#a65628", "#e41a1c", "#377eb8", "#f781bf", "#999999")
#: A run with more attributes than this starts with only this many petals per flower (the most frequent ones in
#: ACT); 17 petals (the paper's flowers) are about the most a 32-pixel flower shows legibly.
MAX_DEFAULT_PETALS = 17
#: the parameters whose allowed values are the run's attribute slugs (set per session from the vocabulary)
_VOCAB_PARAMS = ("filter_attributes", "colour_by", "flower_attributes")


def sorted_unique(ids: np.ndarray) -> np.ndarray:
    """``np.unique`` of int64 ids, returning ``ids`` itself when they are sorted and distinct already (a box
    or lasso query's result: one O(k) check instead of a hash and a sort; 0.4 s for 400k ids)."""
    if len(ids) < 2 or bool((ids[1:] > ids[:-1]).all()):
        return ids
    ids = np.sort(ids)
    keep = np.empty(len(ids), bool)
    keep[0] = True
    np.not_equal(ids[1:], ids[:-1], out=keep[1:])
    return ids[keep]


def default_petals(vocabulary: Vocabulary, y_true: np.ndarray, *, limit: int = MAX_DEFAULT_PETALS) -> list[str]:
    """Slugs of the attributes drawn as petals at first: all of them, or the ``limit`` most frequent in ACT.

    Parameters
    ----------
    vocabulary : Vocabulary
    y_true : ndarray of bool, shape (n, len(vocabulary))
        Labels (ties in frequency go to the earlier attribute).
    limit : int

    Returns
    -------
    list of str
        In vocabulary order.
    """
    if len(vocabulary) <= limit:
        return list(vocabulary.slugs)
    freq = np.asarray(y_true, dtype=bool).sum(axis=0) if len(y_true) else np.zeros(len(vocabulary))
    keep = np.sort(np.argsort(-freq, kind="stable")[:limit])
    return [vocabulary.slugs[i] for i in keep]


@dataclass(eq=False)
class Group:
    """A named, coloured set of sample ids (a saved selection).

    Attributes
    ----------
    name : str
    colour : str
        Hex colour, e.g. ``'#e41a1c'``.
    ids : ndarray of int64, shape (k,)
        Sorted, unique sample ids.
    group_id : str
        The id of the group in the run store (``xsgpu.io.groups``); empty for a run without a store.
    """

    name: str
    colour: str
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    group_id: str = ""

    def __len__(self) -> int:
        return int(len(self.ids))


class AppState(param.Parameterized):
    """The state of one browser session.

    Parameters
    ----------
    data : RunData
        The shared, read-only run (not a param parameter: never copied per session).
    **params
        Initial values of the parameters below.
    """

    cutoff = param.Number(0.5, bounds=(0.0, 1.0), doc="Probability cut-off: p > cutoff is a positive prediction.")
    filter_attributes = param.ListSelector(default=[], objects=list(DEFAULT_VOCABULARY.slugs),
                                           doc="Show only images with these attributes (slugs); empty = all.")
    filter_mode = param.Selector(default="any", objects=["any", "all"],
                                 doc="'any': at least one filter attribute; 'all': every one.")
    filter_source = param.Selector(default="ACT", objects=["ACT", "PRD"],
                                   doc="Filter on the (corrected) labels or on the predictions (p > cutoff).")
    distance = param.Selector(default="cosine", objects=list(DISTANCES), doc="Error distance ACT vs PRD.")
    glyph = param.Selector(default="flowers", objects=["dots", "flowers"],
                           doc="Glyph once the viewport holds few enough images.")
    flower_mode = param.Selector(default="joint", objects=list(FLOWER_MODES))
    spaces = param.ListSelector(default=list(SPACES), objects=list(SPACES), doc="Embedded spaces shown.")
    method = param.Selector(default="tsne", objects=["tsne"], doc="Embedding method shown.")
    fea_layer = param.Selector(default="fea", objects=["fea"],
                               doc="Map the FEA view shows: 'fea' (the last block) or a layer kept by "
                                   "`xsgpu infer --layers` and embedded (fea_<layer>_x/_y; panel_app.layers).")
    colour_by = param.Selector(default="density", objects=["density", "error_distance", *DEFAULT_VOCABULARY.slugs],
                               doc="Raster colouring: density, error distance, one attribute's TP/FP/FN/TN, or "
                                   "the share of its heatmap on the beamstop / edge (beamstop__<slug>, edge__<slug>).")
    more_filters = param.ClassSelector(class_=FilterSpec, default=FilterSpec(),
                                       doc="Run, split, file pattern, metadata, probability range, outcome and "
                                           "labelled filters (panel_app.filters), AND-ed with the attribute filters.")
    selection = param.Array(default=np.zeros(0, np.int64), doc="Selected sample ids (sorted, unique).")
    heatmap_attribute = param.String(default="", doc="Slug of the attribute whose heatmap the detail view overlays "
                                                     "('' none); a tapped petal of a flower sets it.")
    selection_mode = param.Selector(default="replace", objects=list(SELECTION_MODES),
                                    doc="How a box / lasso selection in a view combines with the current one.")
    groups = param.List(default=[], item_type=Group, doc="Named, coloured groups of sample ids.")
    detail_ids = param.List(default=[], doc="Sample ids shown in the detail view.")
    corrections_version = param.Integer(default=0, doc="Bumped when a label correction is recorded.")
    flower_threshold = param.Integer(default=2000, bounds=(0, None),
                                     doc="Glyphs (flowers/dots) only when the viewport holds at most this many "
                                         "images (the drawing-cost cap; crowding decides below it).")
    flower_crowding = param.Number(default=1.3, bounds=(1.0, None), allow_None=True,
                                   doc="Glyphs only when the images in view, on screen, average at most this many "
                                       "per flower-sized cell (views.flowers.crowding); None: the count alone.")
    device = param.Selector(default="cpu", objects=["cpu", "gpu"], constant=True,
                            doc="Where the views' rasters and queries and the group metrics run: 'gpu' uses the "
                                "process-wide CuPy copies of panel_app.device (xsgpu serve --device gpu).")
    flower_attributes = param.ListSelector(default=list(DEFAULT_VOCABULARY.slugs),
                                           objects=list(DEFAULT_VOCABULARY.slugs),
                                           doc="Attributes drawn as petals (slugs, vocabulary order); default all of "
                                               "the run's, or its MAX_DEFAULT_PETALS most frequent when it has more.")

    def __init__(self, *, data: RunData, **params: Any):
        if not isinstance(data, RunData):
            raise TypeError(f"The 'data' parameter of AppState must be a RunData. Got {type(data).__name__} instead.")
        vocab_params = {k: params.pop(k) for k in _VOCAB_PARAMS if k in params}
        if params.get("device", "cpu") != "cpu":
            from panel_app.device import check_app_device

            check_app_device(params["device"])   # GPUUnavailable (what is missing, the remedy) before any view
        super().__init__(**params)
        self.data = data
        self._use_vocabulary(data.vocabulary)
        shares = share_keys(data)
        if shares:  # heatmap_shares.parquet (evaluate): "Heatmap on beamstop / edge: <attribute>" colourings
            self.param.colour_by.objects = [*self.param.colour_by.objects, *shares]
        for k, v in vocab_params.items():
            setattr(self, k, v)
        self.param.method.objects = data.methods
        if self.method != data.method:
            self.method = data.method
        self._use_fea_layers()
        self.param.watch(lambda _e: self._use_fea_layers(), ["method"])  # before the views' own watchers
        self._y_act_key: Any = None
        self._y_act: np.ndarray | None = None
        self._mask_key: Any = None
        self._mask: np.ndarray | None = None
        self._err_key: Any = None
        self._err: np.ndarray | None = None
        self._group_counter = itertools.count(1)
        if data.store is not None and "groups" not in params:
            self.reload_groups()

    def _use_vocabulary(self, vocab: Vocabulary) -> None:
        """Make the attribute parameters (filters, colouring, petals) take the run's slugs."""
        slugs = list(vocab.slugs)
        if slugs == list(DEFAULT_VOCABULARY.slugs):   # the class defaults already hold them
            return
        self.param.filter_attributes.objects = slugs
        self.filter_attributes = []
        self.param.colour_by.objects = ["density", "error_distance", *slugs]
        if self.colour_by not in self.param.colour_by.objects:
            self.colour_by = "density"
        self.param.flower_attributes.objects = slugs
        self.param.flower_attributes.default = petals = default_petals(vocab, self.data.y_true)
        self.flower_attributes = petals

    def _use_fea_layers(self) -> None:
        """The FEA view's maps under the current method: the last block and each embedded layer."""
        layers = [LAST_BLOCK, *fea_layers(self.data, self.method)]
        self.param.fea_layer.objects = layers
        if self.fea_layer not in layers:
            self.fea_layer = LAST_BLOCK

    @property
    def vocabulary(self) -> Vocabulary:
        """The run's ordered attributes (``data.vocabulary``)."""
        return self.data.vocabulary

    # ------------------------------------------------------------------ labels
    def _corrections_stamp(self) -> Any:
        """Changes whenever corrections.parquet gains a part (also from another session)."""
        store = self.data.store
        if store is None:
            return None
        p = store.corrections.path
        try:
            st = p.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, len(list(p.iterdir())) if p.is_dir() else st.st_size)

    def y_act(self) -> np.ndarray:
        """ACT with the run's label corrections applied.

        Returns
        -------
        ndarray of bool, shape (n, n_attributes)
            Cached per ``corrections_version`` (and the corrections table's modification stamp).
        """
        key = (self.corrections_version, self._corrections_stamp())
        if self._y_act is None or key != self._y_act_key:
            if self.data.store is None or key[1] is None:
                y = self.data.y_true
            else:
                from xsgpu.io.corrections import apply_corrections, read_corrections

                y = apply_corrections(self.data.y_true, read_corrections(self.data.store), vocabulary=self.vocabulary)
            self._y_act, self._y_act_key = y, key
        return self._y_act

    def y_pred(self) -> np.ndarray:
        """Predicted labels ``y_prob > cutoff``, bool (n, n_attributes)."""
        return self.data.y_prob > self.cutoff

    def error_distance(self, ids: np.ndarray | None = None) -> np.ndarray:
        """Error distance between (corrected) ACT and PRD with the chosen ``distance`` metric.

        Parameters
        ----------
        ids : ndarray of int, shape (k,), optional
            Only these samples (computed directly, not cached); default all (cached per metric and labels).

        Returns
        -------
        ndarray of float32, shape (n,) or (k,)
        """
        from xsgpu.metrics import error_distance

        y = self.y_act()
        if ids is not None:
            ids = np.asarray(ids, dtype=np.int64)
            return np.asarray(error_distance(y[ids], self.data.y_prob[ids], metric=self.distance,
                                             n_attributes=self.n_attributes), np.float32)
        key = (self.distance, self._y_act_key)
        if self._err is None or key != self._err_key:
            self._err = np.asarray(error_distance(y, self.data.y_prob, metric=self.distance,
                                                  n_attributes=self.n_attributes), np.float32)
            self._err_key = key
        return self._err

    @property
    def error_span(self) -> tuple[float, float]:
        """The range of the current error distance: (0, 1) cosine, (0, sqrt(N)) Euclidean, (0, N) Manhattan for N
        attributes."""
        k = self.n_attributes
        return (0.0, {"cosine": 1.0, "euclidean": float(np.sqrt(k)), "manhattan": float(k)}[self.distance])

    # ------------------------------------------------------------------ filters
    def filtered_mask(self) -> np.ndarray:
        """Which images pass the attribute filters and :attr:`more_filters` (frames that failed to read never do).

        Returns
        -------
        ndarray of bool, shape (n,)
            All ``True`` (but for unreadable frames, ``samples.valid`` False) when no filter attribute
            is chosen.
        """
        attrs = tuple(self.filter_attributes)
        if self.filter_source == "ACT":
            self.y_act()
            src_key = self._y_act_key
        else:
            src_key = self.cutoff
        more = self.more_filters
        if more.uses_labels:
            self.y_act()
        key = (attrs, self.filter_mode, self.filter_source, src_key, more,
               (self._y_act_key, self.cutoff) if more.uses_labels else None)
        if self._mask is not None and key == self._mask_key:
            return self._mask
        if not attrs:
            mask = np.ones(self.data.n, dtype=bool)
        else:
            cols = [self.vocabulary.index(a) for a in attrs]
            if self.filter_source == "ACT":
                sub = self.y_act()[:, cols]
            else:
                sub = self.data.y_prob[:, cols] > self.cutoff
            mask = sub.any(axis=1) if self.filter_mode == "any" else sub.all(axis=1)
        if more.active:
            mask = mask & filter_mask(self.data, more, y_act=self.y_act, cutoff=self.cutoff)
        if self.data.n_invalid:
            mask = mask & self.data.valid
        self._mask, self._mask_key = mask, key
        return mask

    @property
    def filters_active(self) -> bool:
        """Whether any filter (attributes or :attr:`more_filters`) is set: else every readable image passes."""
        return bool(self.filter_attributes) or self.more_filters.active

    # ------------------------------------------------------------------ selection and groups
    def _check_ids(self, ids: Iterable[Any] | np.ndarray, *, func: str) -> np.ndarray:
        arr = np.asarray(ids if ids is not None else [], dtype=object if not isinstance(ids, np.ndarray) else None)
        if arr.size == 0:
            return np.zeros(0, np.int64)
        if arr.dtype == object or arr.dtype.kind == "b" or arr.dtype.kind == "f":
            try:
                as_int = arr.astype(np.int64)
            except (TypeError, ValueError):
                raise ValueError(f"The 'ids' parameter of AppState.{func} must hold integer sample ids. "
                                 f"Got {arr[:5].tolist()!r}... instead.") from None
            if arr.dtype.kind == "b" or not np.array_equal(as_int, arr.astype(float)):
                raise ValueError(f"The 'ids' parameter of AppState.{func} must hold integer sample ids. "
                                 f"Got {arr[:5].tolist()!r}... instead.")
            arr = as_int
        arr = arr.astype(np.int64, copy=False).ravel()
        if arr.min() < 0 or arr.max() >= self.data.n:
            bad = arr[(arr < 0) | (arr >= self.data.n)][0]
            raise ValueError(f"The 'ids' parameter of AppState.{func} must hold sample ids in "
                             f"0..{self.data.n - 1}. Got {int(bad)} instead.")
        return sorted_unique(arr)

    def select(self, ids: Iterable[int] | np.ndarray, *, mode: str = "replace") -> None:
        """Combine ``ids`` (validated, sorted, de-duplicated) with the current selection.

        Parameters
        ----------
        ids : iterable of int
        mode : {"replace", "add", "subtract", "intersect"}
            ``replace`` makes ``ids`` the selection (empty clears it); the others take the union, the
            difference (current minus ``ids``) or the intersection with the current selection. The views
            pass :attr:`selection_mode`, so a scientist can grow or trim a selection over several boxes.
        """
        if mode not in SELECTION_MODES:
            raise ValueError(f"The 'mode' parameter of AppState.select must be one of {list(SELECTION_MODES)}. "
                             f"Got {mode!r} instead.")
        new = self._check_ids(ids, func="select")
        cur = self.selection
        if mode == "add":
            new = np.union1d(cur, new)
        elif mode == "subtract":
            new = np.setdiff1d(cur, new, assume_unique=True)
        elif mode == "intersect":
            new = np.intersect1d(cur, new, assume_unique=True)
        self.selection = new.astype(np.int64, copy=False)

    def clear_selection(self) -> None:
        """Select nothing."""
        self.selection = np.zeros(0, np.int64)

    def reload_groups(self) -> None:
        """Replace :attr:`groups` by the groups stored in the run (``RUN/groups.parquet/``), oldest first.

        A new session calls this at start, so saved groups outlive a page reload and a server restart.
        """
        if self.data.store is None:
            return
        from xsgpu.io.groups import read_groups

        stored = read_groups(self.data.store)
        n = self.data.n
        self.groups = [Group(name=g.name, colour=g.colour, ids=g.ids[g.ids < n], group_id=g.group_id)
                       for g in stored]

    def _next_colour(self) -> str:
        used = [g.colour.lower() for g in self.groups]
        free = [c for c in GROUP_COLOURS if c not in used]
        return free[0] if free else GROUP_COLOURS[len(self.groups) % len(GROUP_COLOURS)]

    def _group(self, name: str, *, func: str) -> Group:
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(f"AppState.{func}: no group named {name!r}; groups: {[g.name for g in self.groups]}.")

    def add_group(self, name: str | None = None, ids: Iterable[int] | np.ndarray | None = None, *,
                  colour: str | None = None) -> Group:
        """Save ``ids`` (default: the current selection) as a new named, coloured group.

        The group is written to the run store (``xsgpu.io.groups.save_group``) when the run has one.
        The selection, and every widget that shows it, stay as they are.

        Parameters
        ----------
        name : str, optional
            Default ``'group <k>'``.
        ids : iterable of int, optional
            Default: the current selection.
        colour : str, optional
            ``'#rrggbb'``; default the first of :data:`GROUP_COLOURS` not used by another group.

        Raises
        ------
        ValueError
            If there are no ids to save, the name is taken or the colour is not ``'#rrggbb'``.
        """
        from xsgpu.io.groups import check_colour, save_group

        ids_arr = self.selection if ids is None else self._check_ids(ids, func="add_group")
        if len(ids_arr) == 0:
            raise ValueError("AppState.add_group needs at least one sample id; the selection is empty. "
                             "Hint: box- or lasso-select images in a view first.")
        taken = {g.name for g in self.groups}
        if name is None:
            name = f"group {next(self._group_counter)}"
            while name in taken:
                name = f"group {next(self._group_counter)}"
        elif not str(name).strip():
            raise ValueError("The 'name' parameter of AppState.add_group must be a non-empty string. Got '' instead.")
        elif name in taken:
            raise ValueError(f"The 'name' parameter of AppState.add_group must be new; a group {name!r} exists.")
        colour = self._next_colour() if colour is None else check_colour(colour, func="AppState.add_group")
        ids_arr = np.array(ids_arr, dtype=np.int64, copy=True)
        gid = ""
        if self.data.store is not None:
            gid = save_group(self.data.store, name=str(name), colour=colour, ids=ids_arr).group_id
        group = Group(name=str(name), colour=colour, ids=ids_arr, group_id=gid)
        self.groups = [*self.groups, group]
        return group

    def _replace_group(self, old: Group, new: Group) -> Group:
        self.groups = [new if g is old else g for g in self.groups]
        return new

    def rename_group(self, name: str, new_name: str) -> Group:
        """Rename the group ``name`` to ``new_name`` (unique, non-empty), in the run store too."""
        g = self._group(name, func="rename_group")
        new_name = str(new_name).strip() if new_name is not None else ""
        if not new_name:
            raise ValueError("The 'new_name' parameter of AppState.rename_group must be a non-empty string. "
                             f"Got {new_name!r} instead.")
        if new_name != name and new_name in {h.name for h in self.groups}:
            raise ValueError(f"The 'new_name' parameter of AppState.rename_group must be new; "
                             f"a group {new_name!r} exists.")
        if g.group_id and self.data.store is not None:
            from xsgpu.io.groups import rename_group

            rename_group(self.data.store, g.group_id, name=new_name)
        return self._replace_group(g, Group(name=new_name, colour=g.colour, ids=g.ids, group_id=g.group_id))

    def recolour_group(self, name: str, colour: str) -> Group:
        """Give the group ``name`` a new ``'#rrggbb'`` colour, in the run store too."""
        from xsgpu.io.groups import check_colour, recolour_group

        g = self._group(name, func="recolour_group")
        colour = check_colour(colour, func="AppState.recolour_group")
        if g.group_id and self.data.store is not None:
            recolour_group(self.data.store, g.group_id, colour=colour)
        return self._replace_group(g, Group(name=g.name, colour=colour, ids=g.ids, group_id=g.group_id))

    def remove_group(self, name: str) -> None:
        """Delete the group called ``name`` (from the run store too)."""
        g = self._group(name, func="remove_group")
        if g.group_id and self.data.store is not None:
            from xsgpu.io.groups import delete_group

            delete_group(self.data.store, g.group_id)
        self.groups = [h for h in self.groups if h is not g]

    def show_details(self, ids: Iterable[int] | np.ndarray) -> None:
        """Put ``ids`` (validated, order kept, duplicates dropped) in the detail view."""
        arr = self._check_ids(ids, func="show_details") if ids is not None else np.zeros(0, np.int64)
        order = list(dict.fromkeys(int(i) for i in np.asarray(list(ids), dtype=np.int64))) if len(arr) else []
        self.detail_ids = order

    @property
    def attribute_colours(self) -> list[str]:
        """The run's attribute colours, in vocabulary order."""
        return list(self.vocabulary.colours)

    @property
    def n_attributes(self) -> int:
        """How many attributes the run has."""
        return len(self.vocabulary)
