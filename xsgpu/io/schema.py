"""The run store's schema: one registry of every artifact a run directory can hold.

Each :class:`Artifact` says what it is (its name and kind, hence its file or directory in the run),
what it holds (required columns and their dtypes, the label/probability columns of the run's
vocabulary, the metadata keys its writer stores) and which stage writes it. :class:`~xsgpu.io.runstore.RunStore`
validates every write against this registry, builds every path from it, and refuses a store written
under another :data:`SCHEMA_VERSION` with a message naming both versions. No other module spells an
artifact's name or a partition's file name: they use the constants here (``SAMPLES``, ``PREDICTIONS``
...) or the typed handles of a store (``store.samples.read()``).

Kinds (layout inside ``RUN/``):

``partitioned``  ``<name>.parquet/part-00000.parquet ...``: one file per partition, keyed by ``sample_id``
``table``        ``<name>.parquet``: one Parquet file, written whole and atomically
``append``       ``<name>.parquet/<key>.parquet``: append-only parts, one per writer key
``zarr``         ``<name>.zarr``: N x ... arrays chunked by partition rows
``npy``          ``<name>.npy``: a small dense array, memory-mappable
``npz``          ``<name>.npz``: a bundle of arrays with JSON metadata

Parameterised artifacts have ``{...}`` fields in their name (``embeddings/{method}``): use
:meth:`Artifact.named` to get the concrete one.

Examples
--------
>>> from xsgpu.io.schema import SAMPLES, EMBEDDING_BY_METHOD, lookup
>>> SAMPLES.kind, SAMPLES.entry, SAMPLES.writer
('partitioned', 'samples.parquet', 'synth, ingest')
>>> EMBEDDING_BY_METHOD.named(method="pca").entry
'embeddings/pca.parquet'
>>> lookup("embeddings/tsne").template is EMBEDDING_BY_METHOD
True
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Literal

import numpy as np
import pandas as pd

from xsgpu.errors import StoreError

__all__ = [
    "SCHEMA_VERSION", "READABLE_VERSIONS", "Kind", "Column", "Artifact", "SchemaError", "REGISTRY",
    "lookup", "artifacts", "markdown_table", "partition_file", "partition_key", "PART_RE", "samples_frame", "fill_samples",
    "SAMPLES", "SYNTH_TAGS", "INGEST_PLAN", "INGEST_FILES", "IMAGES", "THUMBS", "PREDICTIONS", "FEATURES",
    "HEATMAPS", "LAYER_FEATURES", "FEA_REDUCED", "EMBEDDING", "EMBEDDING_BY_METHOD", "EMBEDDING_REFERENCE",
    "LAYER_OVERLAPS", "METRICS", "SUSPICIOUS", "HEATMAP_SHARES", "ERRORS", "CORRECTIONS", "GROUPS",
]

#: version of the layout and tables below; written into every manifest
SCHEMA_VERSION = 2
#: versions this code reads (1: before the per-run vocabulary; its manifest lists attribute names only)
READABLE_VERSIONS = (1, 2)

Kind = Literal["partitioned", "table", "append", "zarr", "npy", "npz"]
_SUFFIX = {"partitioned": ".parquet", "table": ".parquet", "append": ".parquet", "zarr": ".zarr", "npy": ".npy",
           "npz": ".npz"}
#: file name of a finished partition of a ``partitioned`` artifact
PART_RE = re.compile(r"^part-(\d{5,})\.parquet$")

DType = Literal["int", "float", "bool", "str", "label", "any"]


class SchemaError(StoreError):
    """A write does not match the store schema (missing column, wrong dtype, unknown artifact)."""


def partition_key(part: int) -> str:
    """Name of partition ``part`` (``part-00007``): its file's stem, and the key of its error rows."""
    if part < 0:
        raise ValueError(f"partition numbers start at 0; got {part}")
    return f"part-{part:05d}"


def partition_file(part: int) -> str:
    """File name of partition ``part`` of a partitioned table (``part-00007.parquet``)."""
    return partition_key(part) + ".parquet"


@dataclass(frozen=True)
class Column:
    """A required column: its name and its dtype family (``int``, ``float``, ``bool``, ``str``, ``any``)."""

    name: str
    dtype: DType = "any"
    doc: str = ""


def _dtype_ok(series: pd.Series, want: DType) -> bool:
    kind = series.dtype.kind
    if want == "any":
        return True
    if want == "int":
        return kind in "iu"
    if want == "float":
        return kind in "fiu"
    if want == "bool":
        return kind == "b"
    if want == "label":  # 0/1 labels: bool, or a nullable type (pandas boolean/Int8) for unknown labels
        return kind in "biuf" or str(series.dtype) == "boolean"
    if want == "str":
        return kind in "OUST" or pd.api.types.is_string_dtype(series.dtype)
    raise ValueError(f"unknown dtype family {want!r}")


@dataclass(frozen=True)
class Artifact:
    """One kind of thing a run directory holds.

    Attributes
    ----------
    name : str
        Its name in the run (``samples``; ``embeddings/{method}`` for a template).
    kind : Kind
        Storage layout (module docstring).
    writer : str
        The stage(s) that write it.
    doc : str
        One line on what it holds.
    columns : tuple of Column
        Columns every write must hold (tables).
    label_columns, prob_columns : bool
        Whether every write must hold the run vocabulary's ``y__<slug>`` / ``p__<slug>`` columns.
    metadata_keys : tuple of str
        Keys its writer stores in the Parquet ``xsgpu`` metadata (documented; not required).
    sorted_by_id : bool
        Whether reads come back sorted by ``sample_id``.
    array_dtype, array_ndim : str, int, optional
        For arrays: the dtype and number of dimensions every creation must have (rows = samples).
    fields : dict
        The template's filled-in fields (``{"method": "pca"}``), empty for a plain artifact.
    """

    name: str
    kind: Kind
    writer: str
    doc: str
    columns: tuple[Column, ...] = ()
    label_columns: bool = False
    prob_columns: bool = False
    metadata_keys: tuple[str, ...] = ()
    sorted_by_id: bool = True
    array_dtype: str | None = None
    array_ndim: int | None = None
    fields: dict[str, str] = field(default_factory=dict, compare=False)
    template: "Artifact | None" = field(default=None, compare=False, repr=False)

    @property
    def is_template(self) -> bool:
        """Whether the name still has ``{field}`` parts to fill with :meth:`named`."""
        return any(f for _, f, _, _ in string.Formatter().parse(self.name) if f)

    @property
    def entry(self) -> str:
        """File or directory name inside the run (``samples.parquet``, ``features.zarr``)."""
        if self.is_template:
            raise SchemaError(f"artifact template {self.name!r} needs its fields filled (Artifact.named).")
        return self.name + _SUFFIX[self.kind]

    @property
    def column_names(self) -> list[str]:
        """Names of the fixed required columns."""
        return [c.name for c in self.columns]

    def named(self, **fields: Any) -> "Artifact":
        """The concrete artifact of a template (``EMBEDDING_BY_METHOD.named(method="pca")``)."""
        if not self.is_template:
            raise SchemaError(f"artifact {self.name!r} is not a template; it has no fields to fill.")
        values = {k: str(v) for k, v in fields.items()}
        for v in values.values():
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", v) or v.startswith("."):
                raise SchemaError(f"artifact {self.name!r}: field value {v!r} must be letters, digits, _ . -")
        try:
            name = self.name.format(**values)
        except KeyError as exc:
            raise SchemaError(f"artifact {self.name!r} needs field {exc.args[0]!r}.") from None
        return replace(self, name=name, fields=values, template=self)

    def validate_array(self, shape: tuple[int, ...], dtype: Any, *, n_samples: int, where: str = "") -> None:
        """Check a new array's shape and dtype: one row per sample, this artifact's dtype and rank.

        Raises
        ------
        SchemaError
            Naming the artifact, what was asked and what the schema says.
        """
        where = where or self.name
        if not shape or shape[0] != n_samples:
            raise SchemaError(f"{where}: {self.name} must have one row per sample ({n_samples}); asked for shape {shape}.")
        if self.array_ndim is not None and len(shape) != self.array_ndim:
            raise SchemaError(f"{where}: {self.name} must have {self.array_ndim} dimensions; asked for shape {shape}.")
        if self.array_dtype is not None and np.dtype(dtype) != np.dtype(self.array_dtype):
            raise SchemaError(f"{where}: {self.name} must be {self.array_dtype}; asked for {np.dtype(dtype)}.")

    def validate(self, df: pd.DataFrame, *, vocabulary: Any = None, where: str = "") -> None:
        """Check that ``df`` holds this artifact's required columns with the right dtypes.

        Parameters
        ----------
        df : DataFrame
            What is about to be written.
        vocabulary : xsgpu.attributes.Vocabulary, optional
            The run's vocabulary, for the ``y__``/``p__`` columns.
        where : str
            The target path, for the message.

        Raises
        ------
        SchemaError
            Naming the artifact, the column, what was expected and what was found, and the writer stage.
        """
        where = where or self.name
        required: list[Column] = list(self.columns)
        if vocabulary is not None and self.label_columns:
            required += [Column(c, "label") for c in vocabulary.label_columns()]
        if vocabulary is not None and self.prob_columns:
            required += [Column(c, "float") for c in vocabulary.prob_columns()]
        missing = [c.name for c in required if c.name not in df.columns]
        if missing:
            shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
            raise SchemaError(f"{where}: {self.name} must hold column(s) {shown} (schema v{SCHEMA_VERSION}; "
                              f"written by {self.writer}); the frame has {list(df.columns)[:8]}. "
                              "Hint: this is a bug in the writing stage, or a run made with another vocabulary.")
        for c in required:
            if not _dtype_ok(df[c.name], c.dtype):
                raise SchemaError(f"{where}: column {c.name!r} of {self.name} must be {c.dtype}, "
                                  f"got {df[c.name].dtype} (schema v{SCHEMA_VERSION}; written by {self.writer}).")
        if self.prob_columns and vocabulary is not None and len(df):
            p = df[vocabulary.prob_columns()].to_numpy(np.float64)
            bad = ~((p >= 0) & (p <= 1))
            if bad.any():
                r, j = map(int, np.argwhere(bad)[0])
                raise SchemaError(f"{where}: {self.name} column {vocabulary.prob_columns()[j]!r} holds "
                                  f"{float(p[r, j])} at row {r}; probabilities must lie in [0, 1] and be finite.")


_ID = Column("sample_id", "int", "dense id 0..N-1")

SAMPLES = Artifact(
    "samples", "partitioned", "synth, ingest", "one row per image: source file and frame, run, split (train/val/test, by run), flags, ACT labels y__<slug> (bool), ingest's valid/format/height/width, sample metadata",
    columns=(_ID, Column("source_uri", "str"), Column("frame", "int"), Column("run_id", "str"), Column("split", "str"),
             Column("is_synthetic", "bool"), Column("labelled", "bool"), Column("quantitative", "bool")),
    label_columns=True, metadata_keys=("generator_version", "seed", "size", "stage"))
SYNTH_TAGS = Artifact("synth_tags", "partitioned", "synth", "the generator's choices per image (components, flags)",
                      columns=(_ID, Column("components", "str"), Column("image_kind", "str")),
                      metadata_keys=("generator_version", "seed", "size"))
INGEST_PLAN = Artifact("ingest_plan", "table", "ingest", "the planned frames, one row per sample (written last: marks a complete plan)",
                       columns=(_ID, Column("source_uri", "str"), Column("frame", "int")))
INGEST_FILES = Artifact("ingest_files", "table", "ingest", "every input file with its size, mtime and scan status",
                        sorted_by_id=False)
IMAGES = Artifact("images", "zarr", "synth, ingest", "float16 (N, H, W): log_scale of each frame at the run's size (masked pixels 0)", array_dtype="float16", array_ndim=3)
THUMBS = Artifact("thumbs", "zarr", "synth, ingest", "uint8 (N, 64, 64) previews (make_thumbnails)", array_dtype="uint8", array_ndim=3)
PREDICTIONS = Artifact(
    "predictions", "partitioned", "infer, import-outputs", "PRD: p__<slug> float32 per attribute of the run's vocabulary",
    columns=(_ID,), prob_columns=True,
    metadata_keys=("model_id", "arch", "weights_sha256", "input_size", "feature_dim", "stage", "outputs", "model_path"))
FEATURES = Artifact("features", "zarr", "infer, import-outputs", "float16 (N, D): FEA, the pooled last-block features", array_dtype="float16", array_ndim=2)
HEATMAPS = Artifact("heatmaps", "zarr", "infer", "float16 (N, C, h, w): class activation map per attribute", array_dtype="float16", array_ndim=4)
LAYER_FEATURES = Artifact("features_{layer}", "zarr", "infer", "float16 (N, D_layer): pooled activations of one named layer (infer --layers)", array_dtype="float16", array_ndim=2)
FEA_REDUCED = Artifact("fea_reduced", "npy", "embed", "float32 (N, k): FEA after the embed stage's PCA (k = 50); app neighbours, evaluate's audit", array_dtype="float32", array_ndim=2)
EMBEDDING = Artifact(
    "embedding", "table", "embed", "act/fea/prd _x/_y float32: the 2-D maps of the latest method (shown first by the app)",
    columns=(_ID,) + tuple(Column(f"{s}_{a}", "float") for s in ("act", "fea", "prd") for a in ("x", "y")),
    metadata_keys=("method", "params", "spaces", "random_state", "fit_sample", "predictions", "reference", "xsgpu"))
EMBEDDING_BY_METHOD = replace(EMBEDDING, name="embeddings/{method}", doc="the same table once per method embedded (tsne, pca, umap)")
EMBEDDING_REFERENCE = Artifact("embedding_reference/{space}", "npz", "embed",
                               "what one fitted space needs to place new points (inputs, coords, params; no pickles)")
APP_CACHE = Artifact("app_cache/{name}", "npy", "app_cache (the pipeline's last stage; else xsgpu serve's first start)",
                     "derived arrays the app memory-maps at start (labels, probabilities, coordinates, index orders "
                     "and sorted points, the per-attribute probability order); each with a .json key of its sources' "
                     "sizes and mtimes, rebuilt when they change")
METRICS = Artifact(
    "metrics", "table", "evaluate", "long table: scope (model/attribute/split), attribute slug or split, metric, value",
    columns=(Column("scope", "str"), Column("attribute", "str"), Column("metric", "str"), Column("value", "float")),
    metadata_keys=("cutoff", "n_evaluated", "n_samples", "prediction_rule", "zero_division", "model_id"),
    sorted_by_id=False)
SUSPICIOUS = Artifact(
    "suspicious", "table", "evaluate", "the top suspicious labels of the labelled images (label, prob, neighbour_rate, score, rank)",
    columns=(_ID, Column("attribute", "str"), Column("score", "float"), Column("rank", "int")), sorted_by_id=False)
HEATMAP_SHARES = Artifact(
    "heatmap_shares", "table", "evaluate",
    "share of each attribute's positive CAM mass on masked/zero pixels (beamstop__<slug>) and the outer 10 % border "
    "(edge__<slug>), float32 in [0, 1] (xsgpu.explain.shares)",
    columns=(_ID,), metadata_keys=("edge_fraction", "upsampling", "mass", "weights_sha256"))
LAYER_OVERLAPS = Artifact(
    "layer_overlaps", "table", "embed",
    "k-NN overlap of the kept layers' neighbourhoods (xsgpu.explain.layers.layer_overlaps): consecutive layers "
    "(layer1 -> ... -> fea) and each against prd; only runs with layers kept by infer --layers",
    columns=(Column("a", "str"), Column("b", "str"), Column("kind", "str"), Column("overlap", "float"),
             Column("k", "int"), Column("n", "int")),
    metadata_keys=("k", "sample", "random_state", "predictions"), sorted_by_id=False)
ERRORS = Artifact("errors", "append", "every stage", "bad inputs, one part per unit of work (<stage>-<key>); never dropped silently",
                  columns=(Column("source_uri", "str"), Column("stage", "str"), Column("error_type", "str"),
                           Column("message", "str")), sorted_by_id=False)
CORRECTIONS = Artifact("corrections", "append", "app", "label corrections, one part per correction (old, new, note, user, time)",
                       columns=(_ID, Column("attribute", "str"), Column("new", "any")), sorted_by_id=False)
GROUPS = Artifact("groups", "append", "app", "saved selections, one part per group (colour #rrggbb, created UTC ISO)",
                  columns=(Column("group_id", "str"), Column("name", "str"), Column("colour", "str"), _ID),
                  sorted_by_id=False)

#: every artifact (templates included), by name
REGISTRY: dict[str, Artifact] = {a.name: a for a in (
    SAMPLES, SYNTH_TAGS, INGEST_PLAN, INGEST_FILES, IMAGES, THUMBS, PREDICTIONS, FEATURES, HEATMAPS, LAYER_FEATURES,
    FEA_REDUCED, EMBEDDING, EMBEDDING_BY_METHOD, EMBEDDING_REFERENCE, APP_CACHE, LAYER_OVERLAPS, METRICS, SUSPICIOUS,
    HEATMAP_SHARES, ERRORS, CORRECTIONS, GROUPS)}


def _template_regex(template: Artifact) -> re.Pattern:
    parts = []
    for literal, fname, _, _ in string.Formatter().parse(template.name):
        parts.append(re.escape(literal))
        if fname:
            parts.append(f"(?P<{fname}>[A-Za-z0-9_.-]+)")
    return re.compile("^" + "".join(parts) + "$")


_TEMPLATES = [(a, _template_regex(a)) for a in REGISTRY.values() if a.is_template]


def lookup(name: "str | Artifact") -> Artifact:
    """The registered artifact called ``name`` (a template's concrete name works too).

    Raises
    ------
    SchemaError
        If nothing in the registry has that name; the message lists the registered names.
    """
    if isinstance(name, Artifact):
        return name
    found = REGISTRY.get(name)
    if found is not None and not found.is_template:
        return found
    for template, rx in _TEMPLATES:
        m = rx.match(name)
        if m:
            return template.named(**m.groupdict())
    raise SchemaError(f"{name!r} is not an artifact of the run store (schema v{SCHEMA_VERSION}). "
                      f"Registered: {', '.join(sorted(REGISTRY))}.")


def markdown_table() -> str:
    """The registry as the Markdown table of docs/architecture.md (a test holds the two equal)."""
    rows = ["| artifact | kind | in the run | written by | required columns | holds |", "|---|---|---|---|---|---|"]
    for a in REGISTRY.values():
        cols = [c.name for c in a.columns] + (["y__<slug> per attribute"] if a.label_columns else []) + (
            ["p__<slug> per attribute"] if a.prob_columns else [])
        entry = a.name + _SUFFIX[a.kind] + ("/" if a.kind in ("partitioned", "append") else "")
        rows.append(f"| `{a.name}` | {a.kind} | `{entry}` | {a.writer} | {', '.join(cols) or '-'} | {a.doc} |")
    return "\n".join(rows)


def artifacts(kinds: Iterable[str] | None = None) -> list[Artifact]:
    """Registered artifacts (templates included), optionally only those of the given kinds."""
    wanted = set(kinds) if kinds is not None else None
    return [a for a in REGISTRY.values() if wanted is None or a.kind in wanted]


def samples_frame(sample_ids: Any, *, labels: Any = None, vocabulary: Any = None, **columns: Any) -> pd.DataFrame:
    """A ``samples`` partition holding every column the schema requires, for runs made without files.

    Tools that build a run from arrays (benchmarks, tests, ``import-outputs`` from a table) fill the
    provenance columns with neutral values: ``source_uri`` ``mem://<id>``, frame 0, run ``run0``,
    split ``test``, synthetic, labelled, quantitative. Any of them (and extra columns) can be given.

    Parameters
    ----------
    sample_ids : array-like of int
        The partition's ids.
    labels : array-like (n, n_attributes) of bool, optional
        ACT in the vocabulary's order (default: all False).
    vocabulary : Vocabulary, optional
        Default: the paper's 17.
    **columns
        Column values (scalars or arrays) replacing the defaults or added after them.

    Examples
    --------
    >>> df = samples_frame([0, 1], split="train")
    >>> df[["sample_id", "split", "labelled"]].values.tolist(), df.shape[1]
    ([[0, 'train', True], [1, 'train', True]], 25)
    """
    from xsgpu.attributes import DEFAULT_VOCABULARY

    vocab = vocabulary or DEFAULT_VOCABULARY
    ids = np.asarray(sample_ids, dtype=np.int64)
    n = len(ids)
    df = pd.DataFrame({
        "sample_id": ids,
        "source_uri": [f"mem://{i}" for i in ids],
        "frame": np.zeros(n, np.int32),
        "run_id": np.full(n, "run0", dtype=object),
        "split": np.full(n, "test", dtype=object),
        "is_synthetic": np.ones(n, bool),
        "labelled": np.ones(n, bool),
        "quantitative": np.ones(n, bool),
    })
    y = np.zeros((n, len(vocab)), bool) if labels is None else np.asarray(labels)
    if y.shape != (n, len(vocab)):
        raise ValueError(f"labels must have shape ({n}, {len(vocab)}); got {y.shape}.")
    for j, col in enumerate(vocab.label_columns()):
        df[col] = y[:, j]
    for name, value in columns.items():
        df[name] = value
    return df


def fill_samples(df: pd.DataFrame, *, vocabulary: Any = None) -> pd.DataFrame:
    """``df`` with every ``samples`` column it lacks added with :func:`samples_frame`'s defaults.

    Examples
    --------
    >>> fill_samples(pd.DataFrame({"sample_id": [4], "split": ["val"]}))[["source_uri", "split"]].values.tolist()
    [['mem://4', 'val']]
    """
    base = samples_frame(df["sample_id"].to_numpy(), vocabulary=vocabulary)
    extra = {c: df[c].to_numpy() for c in df.columns if c != "sample_id"}
    for name, value in extra.items():
        base[name] = value
    return base
