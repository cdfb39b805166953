"""Label files for ``xsgpu ingest --labels``: CSV or Parquet, one row per image (or per frame).

Format
------
* A key column naming the file: ``source_uri``, ``file``, ``path`` or ``filename`` (exactly one of them).
  A key matches an input file when it is

  1. an absolute path equal to the input's absolute path;
  2. a relative path with a directory part, resolved against the label file's directory (then the
     current directory);
  3. else a relative path with a directory part that ends exactly one input's path, component by
     component: ``run7/img_0001.tif`` matches ``/data/run7/img_0001.tif`` when ``/data`` was ingested
     (paths relative to any ingested directory). Several inputs ending so: an error lists them;
  4. a bare file name equal to the name of exactly one input (two inputs with that name: an error
     asks for a longer path).
* An optional ``frame`` column (integer >= 0) for multi-frame files. Without the column, or where the
  cell is empty, the row labels EVERY frame of its file. A file may not have both an all-frames row
  and per-frame rows, nor two rows for the same frame.
* The attribute columns of the run's vocabulary (:class:`~xsgpu.attributes.Vocabulary`; default the
  paper's 17), each named by display name (``Circular Beamstop``) or slug (``circular_beamstop``) or
  label column (``y__circular_beamstop``), any case; all of them are required. With
  ``vocabulary="from-labels"`` (``xsgpu ingest --vocabulary from-labels``) the file defines the
  vocabulary instead: every column other than the key, ``frame``, ``sample_id`` and ``meta__*`` whose
  name starts with ``y__`` or whose cells are all 0/1/true/false is an attribute (named by the column,
  a ``y__`` prefix dropped), in the file's column order; the other columns are metadata.
  Values are 0/1/true/false (any case), or booleans/integers 0/1 in Parquet. Empty cells are errors.
* ``sample_id`` (written by ``xsgpu export-labels``) is ignored.
* Any other column (``run``, ``sample``, ``notes``, ``tags`` ...) is kept as per-row metadata
  (:attr:`LabelTable.metadata`, logged once), EXCEPT a column that looks like a misspelled attribute:
  a name close to an attribute's (``Rings``, ``beam_of_image``) or a column holding only 0/1/true/false
  values. Such a column is refused, since silently dropping a mistyped attribute would leave it
  missing or mislabel a whole data set. Prefix a metadata column with ``meta__`` (``meta__flagged``)
  to keep it whatever its name or values. Ingest writes the metadata into ``samples.parquet`` as
  ``meta__<name>`` columns (:func:`sample_metadata`): the name lower-cased, runs of other characters
  than letters and digits made ``_`` (``Sample Name`` -> ``meta__sample_name``; a ``meta__`` prefix is
  not doubled); a column whose filled cells are all integers is ``Int64``, all numbers ``float64`` (but
  ``007`` and other numbers with a leading zero stay text),
  booleans (Parquet) ``boolean``, else ``string``; empty cells and images without a label row are
  null.

Every problem (unknown or missing attributes, bad values, duplicate keys, keys that match no input
file, frame numbers beyond a file's frame count) raises :class:`LabelsError` naming the file, the
rows/columns and the remedy, before an ingest writes anything. Inputs without a row are unlabelled
(``labelled=False``, all ``y__`` False).

Examples
--------
>>> import tempfile, os
>>> from xsgpu.attributes import NAMES
>>> d = tempfile.mkdtemp()
>>> with open(os.path.join(d, "labels.csv"), "w") as fh:
...     _ = fh.write("file," + ",".join(NAMES) + "\\n" + "a.tif," + ",".join(["0"] * 12 + ["1"] + ["0"] * 4) + "\\n")
>>> table = read_labels(os.path.join(d, "labels.csv"))
>>> table.n_rows, int(table.y.sum())
(1, 1)
>>> labels = match_labels(table, [os.path.join(d, "a.tif"), os.path.join(d, "b.tif")])
>>> labelled, y = labels.for_file(os.path.join(d, "a.tif"), 1)
>>> bool(labelled[0]), int(y.sum())
(True, 1)
"""
from __future__ import annotations

import difflib
import logging
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from xsgpu.attributes import DEFAULT_VOCABULARY, LABEL_PREFIX, Vocabulary, VocabularyError
from xsgpu.errors import InputError

__all__ = ["LabelsError", "LabelTable", "LabelAssignment", "read_labels", "match_labels", "resolve_file_keys",
           "KEY_COLUMNS", "META_PREFIX", "FROM_LABELS", "metadata_column_name", "sample_metadata"]

log = logging.getLogger(__name__)

KEY_COLUMNS = ("source_uri", "file", "path", "filename")
_IGNORED = ("sample_id",)
#: Prefix that marks a label-file column as metadata whatever its name or values.
META_PREFIX = "meta__"
#: ``read_labels(vocabulary=FROM_LABELS)``: the label file's attribute columns define the vocabulary
FROM_LABELS = "from-labels"
_CLOSE = 0.8  # difflib ratio above which a column name is taken for a misspelled attribute
_TRUE = {"1", "true"}
_FALSE = {"0", "false"}
_SHOW = 10


class LabelsError(InputError):
    """A label file is malformed or does not fit the inputs; the message names what and where."""


def _show(items: Sequence) -> str:
    items = list(items)
    more = f" ... and {len(items) - _SHOW} more" if len(items) > _SHOW else ""
    return ", ".join(repr(i) if not isinstance(i, str) else i for i in items[:_SHOW]) + more


@dataclass
class LabelTable:
    """A validated label file.

    Attributes
    ----------
    path : Path
        The label file.
    keys : list of str
        The key cell of each row, as written.
    frames : ndarray of int64, shape (n,)
        Frame of each row; -1 = every frame of the file.
    y : ndarray of bool, shape (n, len(vocabulary))
        Labels in the vocabulary's order.
    rows : ndarray of int64, shape (n,)
        Row numbers as a spreadsheet shows them (header = row 1), for error messages.
    metadata : DataFrame
        The non-attribute columns (``run``, ``notes`` ...), one row per label row, as read.
    """

    path: Path
    keys: list[str]
    frames: np.ndarray
    y: np.ndarray
    rows: np.ndarray
    metadata: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: the attributes of ``y``'s columns (the run's, or the file's own with ``vocabulary="from-labels"``)
    vocabulary: Vocabulary = DEFAULT_VOCABULARY

    @property
    def n_rows(self) -> int:
        return len(self.keys)


def _load(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise LabelsError(f"Label file {path} does not exist (or is not a file). Hint: check --labels.")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt", ".tsv"):
            return pd.read_csv(path, dtype=str, keep_default_na=False, sep=None if suffix != ".csv" else ",",
                               engine="python" if suffix != ".csv" else "c", skipinitialspace=True)
    except Exception as exc:
        raise LabelsError(f"Label file {path}: cannot parse it ({type(exc).__name__}: {exc}).") from exc
    raise LabelsError(f"Label file {path}: unsupported extension {suffix!r}; expected .csv or .parquet.")


def _bool_column(path: Path, col: str, values: pd.Series, rows: np.ndarray) -> np.ndarray:
    out = np.zeros(len(values), dtype=bool)
    bad: list[str] = []
    for i, v in enumerate(values.tolist()):
        if isinstance(v, (bool, np.bool_)):
            out[i] = bool(v)
            continue
        if isinstance(v, (int, np.integer)) or (isinstance(v, (float, np.floating)) and np.isfinite(v)):
            if v in (0, 1):
                out[i] = bool(v)
                continue
        elif isinstance(v, str):
            s = v.strip().lower()
            if s in _TRUE or s in _FALSE:
                out[i] = s in _TRUE
                continue
        bad.append(f"row {rows[i]}: {v!r}")
    if bad:
        raise LabelsError(f"Label file {path}: column {col!r} must hold 0/1/true/false; got {_show(bad)}. "
                          "Empty cells are not allowed: write 0 for an absent attribute.")
    return out


def _frame_column(path: Path, values: pd.Series, rows: np.ndarray) -> np.ndarray:
    out = np.full(len(values), -1, dtype=np.int64)
    bad: list[str] = []
    for i, v in enumerate(values.tolist()):
        if v is None or (isinstance(v, float) and np.isnan(v)) or (isinstance(v, str) and not v.strip()):
            continue  # every frame
        try:
            f = float(v)
            if f != int(f) or f < 0:
                raise ValueError
            out[i] = int(f)
        except (TypeError, ValueError):
            bad.append(f"row {rows[i]}: {v!r}")
    if bad:
        raise LabelsError(f"Label file {path}: column 'frame' must hold integers >= 0 (or be empty for all "
                          f"frames); got {_show(bad)}.")
    return out


def _is_bool_like(values: pd.Series) -> bool:
    """True when every non-empty cell is 0/1/true/false (and at least one cell is filled)."""
    seen = False
    for v in values.tolist():
        if v is None or (isinstance(v, float) and np.isnan(v)) or (isinstance(v, str) and not v.strip()):
            continue
        if isinstance(v, (bool, np.bool_)):
            seen = True
            continue
        if isinstance(v, (int, np.integer, float, np.floating)):
            if v not in (0, 1):
                return False
        elif not (isinstance(v, str) and v.strip().lower() in _TRUE | _FALSE):
            return False
        seen = True
    return seen


def _check_metadata_columns(path: Path, df: pd.DataFrame, extra: Sequence[str],
                            vocab: Vocabulary = DEFAULT_VOCABULARY) -> None:
    """Refuse non-attribute columns that look like misspelled attributes (see the module docstring)."""
    vocabulary = {n.lower(): n for n in vocab.names}
    vocabulary.update({a.slug: a.name for a in vocab})
    problems: list[str] = []
    for c in extra:
        if c.lower().startswith(META_PREFIX):
            continue
        name = c.lower()
        for prefix in ("y__", "p__"):
            name = name[len(prefix):] if name.startswith(prefix) else name
        close = difflib.get_close_matches(name, list(vocabulary), n=1, cutoff=_CLOSE)
        if close:
            problems.append(f"{c!r} (did you mean {vocabulary[close[0]]!r}?)")
        elif _is_bool_like(df[c]):
            problems.append(f"{c!r} (holds only 0/1 values, like an attribute)")
    if problems:
        raise LabelsError(
            f"Label file {path}: column(s) {_show(problems)} look like misspelled attribute columns. "
            f"Valid names: {', '.join(vocab.names)} (or their slugs, e.g. {vocab[0].slug}). Hint: rename the column "
            f"to its attribute, or prefix it with {META_PREFIX!r} to keep it as metadata"
            + (", or pass `--vocabulary from-labels` to take the run's attributes from this file's columns."
               if vocab.is_default else "."))


def metadata_column_name(name: str) -> str:
    """The ``samples.parquet`` column of a label-file metadata column (module docstring).

    Examples
    --------
    >>> metadata_column_name("Sample Name"), metadata_column_name("meta__Flagged"), metadata_column_name("T (K)")
    ('meta__sample_name', 'meta__flagged', 'meta__t_k')
    """
    base = str(name).strip()
    if base.lower().startswith(META_PREFIX):
        base = base[len(META_PREFIX):]
    slug = re.sub(r"[^a-z0-9]+", "_", base.lower()).strip("_")
    return META_PREFIX + (slug or "column")


def _is_empty(v: object) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or (isinstance(v, str) and not v.strip()) \
        or v is pd.NA


_INT_RE = re.compile(r"^[-+]?\d+$")
_LEADING_ZERO = re.compile(r"^[-+]?0\d")


def _typed(values: pd.Series) -> pd.Series:
    """One metadata column with a sensible dtype: Int64, float64, boolean or string; empty cells null."""
    if values.dtype.kind == "b":
        return values.astype("boolean")
    if values.dtype.kind in "iu":
        return values.astype("Int64")
    if values.dtype.kind == "f":
        return values.astype(np.float64)
    cells = [None if _is_empty(v) else v for v in values.tolist()]
    filled = [v for v in cells if v is not None]
    if filled and all(isinstance(v, (bool, np.bool_)) for v in filled):
        return pd.Series(cells, dtype="boolean")
    text = [str(v).strip() for v in filled]
    if any(_LEADING_ZERO.match(t) for t in text):  # identifiers such as sample "007" stay text
        return pd.Series([None if v is None else str(v) for v in cells], dtype="string")
    if filled and all(_INT_RE.match(t) for t in text) and all(abs(int(t)) < 2**63 for t in text):
        return pd.Series([None if v is None else int(str(v).strip()) for v in cells], dtype="Int64")
    try:
        numbers = [None if v is None else float(str(v).strip()) for v in cells]
    except ValueError:
        numbers = None
    if filled and numbers is not None:
        return pd.Series([np.nan if v is None else v for v in numbers], dtype=np.float64)
    return pd.Series([None if v is None else str(v) for v in cells], dtype="string")


def sample_metadata(table: LabelTable) -> pd.DataFrame:
    """The table's metadata columns as ``samples.parquet`` will hold them: ``meta__<name>``, typed.

    One row per label row. See the module docstring for names and dtypes.

    Raises
    ------
    LabelsError
        When two columns get the same name (``Run`` and ``run``, ``meta__run`` and ``run``).
    """
    names = [metadata_column_name(c) for c in table.metadata.columns]
    clash = {n: [c for c, m in zip(table.metadata.columns, names) if m == n] for n in names if names.count(n) > 1}
    if clash:
        raise LabelsError(f"Label file {table.path}: metadata column(s) {_show(list(clash.values()))} would all be "
                          f"stored as {_show(list(clash))} in samples.parquet. Hint: rename one of each.")
    return pd.DataFrame({n: _typed(table.metadata[c]).reset_index(drop=True)
                         for n, c in zip(names, table.metadata.columns)}, index=pd.RangeIndex(table.n_rows))


def read_labels(path: str | os.PathLike, *, vocabulary: Vocabulary | str | None = None) -> LabelTable:
    """Read and validate a label file (CSV or Parquet); see the module docstring for the format.

    Parameters
    ----------
    path : path
        ``.csv`` (comma-separated, header row) or ``.parquet``.
    vocabulary : Vocabulary or "from-labels", optional
        The attributes the file must give (default: the paper's 17), or ``"from-labels"`` to take them
        from the file's attribute columns (:attr:`LabelTable.vocabulary`).

    Returns
    -------
    LabelTable

    Raises
    ------
    LabelsError
        Missing file, no/ambiguous key column, missing/duplicate attribute columns, a column that looks
        like a misspelled attribute, bad values, bad frame numbers, or duplicate (key, frame) rows.
    """
    path = Path(path)
    df = _load(path)
    df.columns = [str(c).strip() for c in df.columns]
    rows = np.arange(len(df), dtype=np.int64) + 2
    keys = [c for c in df.columns if c.lower() in KEY_COLUMNS]
    if len(keys) != 1:
        raise LabelsError(
            f"Label file {path}: needs exactly one key column naming the image file, one of "
            f"{list(KEY_COLUMNS)}; found {keys or 'none'} among the columns {list(df.columns)}.")
    key_col = keys[0]
    frame_cols = [c for c in df.columns if c.lower() == "frame"]
    others = [c for c in df.columns if not (c == key_col or c in frame_cols or c.lower() in _IGNORED)]
    vocab = _vocabulary_of(path, df, others, vocabulary)
    attr_of: dict[str, int] = {}
    extra: list[str] = []
    for c in others:
        try:
            attr_of[c] = vocab.resolve(c).index
        except KeyError:
            extra.append(c)
    _check_metadata_columns(path, df, extra, vocab)
    if extra:
        log.info("Label file %s: keeping non-attribute column(s) %s as metadata", path, ", ".join(extra))
    seen: dict[int, list[str]] = defaultdict(list)
    for c, i in attr_of.items():
        seen[i].append(c)
    dup = {vocab.names[i]: cols for i, cols in seen.items() if len(cols) > 1}
    if dup:
        raise LabelsError(f"Label file {path}: attribute(s) given by more than one column: {dup}. Keep one each.")
    missing = [vocab.names[i] for i in range(len(vocab)) if i not in seen]
    if missing:
        raise LabelsError(f"Label file {path}: missing attribute column(s) {_show(missing)}; all {len(vocab)} are "
                          f"required by the run's vocabulary (write 0 for an absent attribute)"
                          + (". Hint: `--vocabulary from-labels` takes the attributes from the file's columns."
                             if vocab.is_default else "."))
    key_vals = df[key_col].tolist()
    empty = [f"row {rows[i]}" for i, k in enumerate(key_vals)
             if k is None or (isinstance(k, float) and np.isnan(k)) or not str(k).strip()]
    if empty:
        raise LabelsError(f"Label file {path}: empty {key_col!r} cell(s) at {_show(empty)}.")
    frames = _frame_column(path, df[frame_cols[0]], rows) if frame_cols else np.full(len(df), -1, np.int64)
    y = np.zeros((len(df), len(vocab)), dtype=bool)
    for c, i in attr_of.items():
        y[:, i] = _bool_column(path, c, df[c], rows)
    table = LabelTable(path=path, keys=[str(k).strip() for k in key_vals], frames=frames, y=y, rows=rows,
                       metadata=df[extra].reset_index(drop=True), vocabulary=vocab)
    _check_duplicates(table, [(k, k) for k in table.keys])
    sample_metadata(table)  # refuse clashing metadata column names now, before an ingest writes anything
    log.info("Read %d label rows from %s", table.n_rows, path)
    return table


def _vocabulary_of(path: Path, df: pd.DataFrame, columns: Sequence[str],
                   vocabulary: Vocabulary | str | None) -> Vocabulary:
    """The vocabulary a label file is read with: the one given, or (``"from-labels"``) its own columns."""
    if vocabulary is None:
        return DEFAULT_VOCABULARY
    if isinstance(vocabulary, Vocabulary):
        return vocabulary
    if vocabulary != FROM_LABELS:
        raise ValueError(f"The 'vocabulary' parameter of read_labels must be a Vocabulary, {FROM_LABELS!r} or None. "
                         f"Got {vocabulary!r} instead.")
    names = [c[len(LABEL_PREFIX):] if c.lower().startswith(LABEL_PREFIX) else c for c in columns
             if not c.lower().startswith(META_PREFIX) and (c.lower().startswith(LABEL_PREFIX) or _is_bool_like(df[c]))]
    if not names:
        raise LabelsError(f"Label file {path}: no attribute columns to take the vocabulary from (columns "
                          f"{list(df.columns)}); an attribute column holds only 0/1/true/false or is named y__<name>.")
    try:
        vocab = Vocabulary.from_names(names)
    except VocabularyError as exc:
        raise LabelsError(f"Label file {path}: its attribute columns do not make a vocabulary: {exc}") from None
    log.info("Label file %s: vocabulary of %d attributes from its columns: %s", path, len(vocab), ", ".join(vocab.names))
    return vocab


def _check_duplicates(table: LabelTable, resolved: Iterable[tuple[str, str]]) -> None:
    """Raise for two rows with the same (file, frame), or an all-frames row next to per-frame rows."""
    by_file: dict[str, list[int]] = defaultdict(list)
    for r, (_, target) in enumerate(resolved):
        by_file[target].append(r)
    problems: list[str] = []
    for target, idx in by_file.items():
        if len(idx) < 2:
            continue
        fr = table.frames[idx]
        counts = pd.Series(fr).value_counts()
        shown = ", ".join(str(table.rows[i]) for i in idx[:_SHOW])
        if (fr == -1).any():
            problems.append(f"{target} (rows {shown}: a row for all frames plus other rows)")
        elif (counts > 1).any():
            problems.append(f"{target} frame(s) {sorted(counts[counts > 1].index.tolist())[:_SHOW]} (rows {shown})")
    if problems:
        raise LabelsError(f"Label file {table.path}: duplicate keys: {_show(problems)}. Keep one row per file "
                          "(or per file and frame).")


@dataclass
class LabelAssignment:
    """Labels matched to input files: ``{absolute path: {frame (-1 = all): row index}}``."""

    table: LabelTable
    by_file: dict[str, dict[int, int]] = field(default_factory=dict)

    def check_frames(self, n_frames: Mapping[str, int]) -> None:
        """Raise :class:`LabelsError` for per-frame rows beyond their file's frame count.

        Files missing from ``n_frames`` (they failed the scan and are error rows) are skipped.
        """
        bad = []
        for f, frames in self.by_file.items():
            if f not in n_frames:
                continue
            for fr, r in frames.items():
                if fr >= n_frames[f]:
                    bad.append(f"row {self.table.rows[r]}: {f} frame {fr} (the file has {n_frames[f]})")
        if bad:
            raise LabelsError(f"Label file {self.table.path}: keys matching no image: {_show(bad)}.")

    def for_file(self, path: str, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
        """Return ``labelled`` bool (n_frames,) and ``y`` bool (n_frames, n_attributes) for one input file."""
        labelled = np.zeros(n_frames, dtype=bool)
        y = np.zeros((n_frames, self.table.y.shape[1]), dtype=bool)
        for fr, r in self.by_file.get(path, {}).items():
            sel = slice(None) if fr == -1 else slice(fr, fr + 1)
            labelled[sel] = True
            y[sel] = self.table.y[r]
        return labelled, y

    def rows_for_file(self, path: str, n_frames: int) -> np.ndarray:
        """Label-table row of each frame of one input file, int64 (n_frames,); -1 where it has none."""
        out = np.full(n_frames, -1, dtype=np.int64)
        for fr, r in self.by_file.get(path, {}).items():
            out[slice(None) if fr == -1 else slice(fr, fr + 1)] = r
        return out

    @property
    def n_files(self) -> int:
        return len(self.by_file)


def resolve_file_keys(keys: Sequence[str], inputs: Sequence[str], *, base: Path,
                      rows: Sequence[int]) -> tuple[list[str | None], list[str], list[str]]:
    """Resolve file keys to inputs by the rules of the module docstring.

    Parameters
    ----------
    keys : sequence of str
        The key cells, as written.
    inputs : sequence of str
        Absolute paths of the candidate files.
    base : Path
        Directory that relative keys are tried against first (the key file's directory).
    rows : sequence of int
        Row number of each key, for messages.

    Returns
    -------
    targets : list of (str or None)
        The input each key names (``None`` when unmatched or ambiguous).
    unmatched, ambiguous : list of str
        ``"row R: 'key'"`` descriptions (ambiguous ones list the candidates).
    """
    input_set = set(inputs)
    by_name: dict[str, list[str]] = defaultdict(list)
    for f in inputs:
        by_name[os.path.basename(f)].append(f)
    roots = (os.fspath(base), os.getcwd())
    targets: list[str | None] = []
    unmatched: list[str] = []
    ambiguous: list[str] = []
    for r, key in zip(rows, keys):
        target = None
        hits: list[str] = []
        if os.path.isabs(key):
            cand = os.path.normpath(key)
            target = cand if cand in input_set else None
        elif os.sep in key or "/" in key:
            for root in roots:
                cand = os.path.normpath(os.path.join(root, key))
                if cand in input_set:
                    target = cand
                    break
            if target is None:
                hits = _suffix_matches(key, by_name)
        else:
            hits = by_name.get(key, [])
        if target is None and len(hits) == 1:
            target = hits[0]
        elif target is None and len(hits) > 1:
            ambiguous.append(f"row {r}: {key!r} matches {len(hits)} inputs ({_show(hits)})")
        elif target is None:
            unmatched.append(f"row {r}: {key!r}")
        targets.append(target)
    return targets, unmatched, ambiguous


def _suffix_matches(key: str, by_name: Mapping[str, list[str]]) -> list[str]:
    """Inputs whose path ends with the components of the relative ``key`` (``run7/a.tif``)."""
    want = os.path.normpath(key.replace("\\", "/"))
    if want in (".", "") or want == ".." or want.startswith("../"):
        return []
    tail = os.sep + want.replace("/", os.sep)
    return sorted(f for f in by_name.get(os.path.basename(want), []) if f.endswith(tail))


def match_labels(table: LabelTable, files: Sequence[str | os.PathLike]) -> LabelAssignment:
    """Match label rows to input files (see the module docstring for the rules).

    Parameters
    ----------
    table : LabelTable
        From :func:`read_labels`.
    files : sequence of path
        The inputs of the ingest (absolute or relative to the current directory).

    Raises
    ------
    LabelsError
        Keys matching no input, bare names matching several inputs, or two rows resolving to the same
        (file, frame).
    """
    inputs = [os.path.abspath(os.fspath(f)) for f in files]
    targets, unmatched, ambiguous = resolve_file_keys(table.keys, inputs, base=table.path.resolve().parent,
                                                      rows=table.rows)
    resolved = [(k, t) for k, t in zip(table.keys, targets) if t is not None]
    if ambiguous:
        raise LabelsError(f"Label file {table.path}: ambiguous keys: {_show(ambiguous)}. Hint: write a longer "
                          "path (run/a.tif), relative to the label file, or absolute.")
    if unmatched:
        raise LabelsError(
            f"Label file {table.path}: keys matching no image among the {len(inputs)} inputs: {_show(unmatched)}. "
            "Hint: keys are absolute paths, paths relative to the label file or to an ingested directory, or bare "
            "file names; remove rows for images you do not ingest.")
    _check_duplicates(table, resolved)
    assignment = LabelAssignment(table=table)
    for r, (_, target) in enumerate(resolved):
        assignment.by_file.setdefault(target, {})[int(table.frames[r])] = r
    return assignment


def label_frame(y: np.ndarray, vocabulary: Vocabulary | None = None) -> pd.DataFrame:
    """``y`` bool (n, len(vocabulary)) -> DataFrame with the vocabulary's ``y__<slug>`` columns."""
    return pd.DataFrame(np.asarray(y, dtype=bool), columns=(vocabulary or DEFAULT_VOCABULARY).label_columns())
