"""The run as the app sees it: loaded once per server process, read-only, shared by every session.

:func:`load_run_data` reads the small tables of a run store into memory (samples, ACT, PRD, the
embedding) and opens the large arrays (images, thumbnails, features) lazily as Zarr arrays, so a
million-image run costs ~150 MB of RAM per server process however many browser sessions are open.
``sample_id`` equals the row position everywhere (dense 0..N-1); :func:`load_run_data` checks it.

Examples
--------
>>> import numpy as np
>>> from panel_app.data import RunData
>>> rng = np.random.default_rng(0)
>>> d = RunData.from_arrays(y_true=rng.random((5, 17)) < 0.3, y_prob=rng.random((5, 17)),
...                         coords=rng.normal(size=(5, 6)))
>>> d.n, d.coords("FEA")[0].dtype.name
(5, 'float32')
"""
from __future__ import annotations

import base64
import io
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xsgpu.attributes import DEFAULT_VOCABULARY, Vocabulary
from xsgpu.io.runstore import RunStore, RunStoreError
from xsgpu.io.schema import EMBEDDING, PREDICTIONS, SAMPLES, Artifact

__all__ = [
    "RunData", "load_run_data", "check_run", "clear_cache", "SPACES", "EMBEDDING_COLUMNS",
    "REQUIRED_ARTIFACTS",
]

log = logging.getLogger(__name__)

#: The three embedded spaces, in display order.
SPACES: tuple[str, ...] = ("ACT", "FEA", "PRD")
#: Columns of ``embedding.parquet``.
EMBEDDING_COLUMNS: tuple[str, ...] = ("act_x", "act_y", "fea_x", "fea_y", "prd_x", "prd_y")
#: artifact -> the command that writes it (used for the "run is incomplete" page).
REQUIRED_ARTIFACTS: dict[str, str] = {
    "samples": "xsgpu synth ... --out RUN  (or xsgpu ingest DATA/ --out RUN)",
    "thumbs": "xsgpu synth ... --out RUN  (or xsgpu ingest DATA/ --out RUN)",
    "images": "xsgpu synth ... --out RUN  (or xsgpu ingest DATA/ --out RUN)",
    "predictions": "xsgpu infer RUN --model MODEL",
    "features": "xsgpu infer RUN --model MODEL",
    "embedding": "xsgpu embed RUN",
}


def _check_space(space: str) -> str:
    key = str(space).upper()
    if key not in SPACES:
        raise ValueError(f"The 'space' parameter must be one of {list(SPACES)}. Got {space!r} instead.")
    return key


@dataclass(frozen=True, eq=False)
class RunData:
    """A loaded run (read-only; one instance per server process, shared by all sessions).

    Attributes
    ----------
    store : RunStore or None
        The run store (``None`` for in-memory data built by :meth:`from_arrays`).
    samples : pandas.DataFrame
        One row per sample, ``sample_id`` == row position; columns of ``samples.parquet``.
    y_true : ndarray of bool, shape (n, n_attributes)
        ACT as stored (without corrections; see :meth:`panel_app.state.AppState.y_act`), columns in the
        order of :attr:`vocabulary`.
    y_prob : ndarray of float32, shape (n, n_attributes)
        PRD, the predicted probabilities.
    embedding : pandas.DataFrame
        ``sample_id, act_x, act_y, fea_x, fea_y, prd_x, prd_y`` (float32).
    thumbs : array-like, shape (n, 64, 64) uint8, or None
        Lazily opened Zarr array (``thumbs[i]`` reads one thumbnail).
    images : array-like, shape (n, H, W) float16, or None
        Lazily opened Zarr array of log-scaled images.
    features : array-like, shape (n, D) float16, or None
        Lazily opened Zarr array of FEA features.
    n : int
        Number of samples.
    embedding_meta : dict
        Metadata of the embedding table (``method``, parameters per space).
    vocabulary : Vocabulary
        The run's ordered attributes (``store.vocabulary``; the paper's 17 by default): every filter,
        table, legend and flower of the app follows it.
    """

    store: RunStore | None
    samples: pd.DataFrame
    y_true: np.ndarray
    y_prob: np.ndarray
    embedding: pd.DataFrame
    thumbs: Any
    images: Any
    features: Any
    n: int
    embedding_meta: dict = field(default_factory=dict)
    vocabulary: Vocabulary = DEFAULT_VOCABULARY
    _cache: dict = field(default_factory=dict, repr=False)
    _lock: Any = field(default_factory=threading.Lock, repr=False)  # guards _key_locks
    _key_locks: dict = field(default_factory=dict, repr=False)  # one RLock per key: builds may nest (index -> coords)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(
        cls,
        *,
        y_true: np.ndarray,
        y_prob: np.ndarray,
        coords: np.ndarray,
        thumbs: Any = None,
        images: Any = None,
        features: Any = None,
        samples: pd.DataFrame | None = None,
        method: str = "tsne",
        vocabulary: Vocabulary | None = None,
    ) -> "RunData":
        """Build in-memory run data (benchmarks, tests) without a run store.

        Parameters
        ----------
        y_true : ndarray of bool, shape (n, n_attributes)
        y_prob : ndarray of float, shape (n, n_attributes)
        coords : ndarray of float, shape (n, 6)
            Columns ``act_x, act_y, fea_x, fea_y, prd_x, prd_y``.
        thumbs, images, features : array-like, optional
            Row-indexable arrays of n rows.
        samples : DataFrame, optional
            Defaults to ``sample_id, source_uri ('mem://<id>'; categorical 'mem://' above 100k rows), frame 0,
            run_id 'mem', split 'test', labelled True``.
        vocabulary : Vocabulary, optional
            The attributes of the label columns; default the paper's 17.
        """
        y_true = np.asarray(y_true, dtype=bool)
        y_prob = np.ascontiguousarray(y_prob, dtype=np.float32)
        coords = np.asarray(coords, dtype=np.float32)
        n = len(y_true)
        vocab = DEFAULT_VOCABULARY if vocabulary is None else vocabulary
        k = len(vocab)
        if y_true.shape != (n, k) or y_prob.shape != (n, k):
            raise ValueError(f"y_true and y_prob must have shape (n, {k}) (one column per attribute of the "
                             f"vocabulary); got {y_true.shape} and {y_prob.shape}.")
        if coords.shape != (n, 6):
            raise ValueError(f"The 'coords' parameter must have shape ({n}, 6). Got {coords.shape} instead.")
        ids = np.arange(n, dtype=np.int64)
        emb = pd.DataFrame({"sample_id": ids, **{c: coords[:, i] for i, c in enumerate(EMBEDDING_COLUMNS)}})
        if samples is None:
            def const(value: str) -> pd.Categorical:  # one category, 1 byte per row (10M rows stay cheap)
                return pd.Categorical.from_codes(np.zeros(n, np.int8), categories=[value])

            uri = pd.Series([f"mem://{i}" for i in range(n)]) if n <= 100_000 else const("mem://")
            samples = pd.DataFrame({"sample_id": ids, "source_uri": uri, "frame": np.zeros(n, np.int32),
                                    "run_id": const("mem"), "split": const("test"),
                                    "labelled": np.ones(n, bool)})
        for name, arr in (("thumbs", thumbs), ("images", images), ("features", features)):
            if arr is not None and len(arr) != n:
                raise ValueError(f"The '{name}' parameter must have {n} rows. Got {len(arr)} instead.")
        return cls(store=None, samples=samples, y_true=y_true, y_prob=y_prob, embedding=emb, thumbs=thumbs,
                   images=images, features=features, n=n, embedding_meta={"method": method}, vocabulary=vocab)

    # ------------------------------------------------------------------ access
    @property
    def method(self) -> str:
        """The embedding method recorded in the embedding metadata (e.g. ``'tsne'``): the one shown first."""
        return str(self.embedding_meta.get("method", "tsne"))

    @property
    def methods(self) -> list[str]:
        """Embedding methods the run holds (:attr:`method` first, then ``embeddings/<method>.parquet``)."""
        if self.store is None:
            return [self.method]
        from xsgpu.embed.run import stored_methods

        return [self.method] + [m for m in stored_methods(self.store) if m != self.method]

    def coords(self, space: str, method: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Return the embedded coordinates of ``space`` ('ACT', 'FEA' or 'PRD') under ``method``.

        Parameters
        ----------
        space : str
        method : str, optional
            One of :attr:`methods` (default: :attr:`method`). Other methods' tables are read on first use.

        Returns
        -------
        x, y : ndarray of float32, shape (n,)
        """
        key = _check_space(space).lower()
        method = self.method if method is None else str(method)
        cache_key = ("coords", key) if method == self.method else ("coords", key, method)
        got = self._cache.get(cache_key)
        if got is None:
            table = self.embedding if method == self.method else self._method_table(method)
            got = (np.ascontiguousarray(table[f"{key}_x"].to_numpy(np.float32)),
                   np.ascontiguousarray(table[f"{key}_y"].to_numpy(np.float32)))
            self._cache[cache_key] = got
        return got

    def _method_table(self, method: str) -> pd.DataFrame:
        if method not in self.methods:
            raise ValueError(f"The 'method' parameter of RunData.coords must be one of {self.methods} (the embeddings "
                             f"this run holds). Got {method!r} instead. Hint: `xsgpu embed RUN --method {method}`.")
        from xsgpu.embed.run import method_table

        def load() -> pd.DataFrame:
            table = self.store.read_table(method_table(method), columns=["sample_id", *EMBEDDING_COLUMNS])
            _check_embedding(table, self.n, self.store, method_table(method))
            return table

        return self.cached(("embedding_table", method), load)

    def cached(self, key: Any, build):
        """Return ``self._cache[key]``, building it once with ``build()`` (thread-safe).

        Derived read-only structures (spatial indexes, colour tables) live here so that every session of
        the process shares them. Each key has its own lock: a thread asking for a key being built waits for
        that build (and then reuses it), while other keys are served meanwhile (a long build in the
        background warm-up never holds up a session that needs something else).
        """
        got = self._cache.get(key)
        if got is None:
            with self._lock:
                lock = self._key_locks.setdefault(key, threading.RLock())
            with lock:
                got = self._cache.get(key)
                if got is None:
                    got = build()
                    self._cache[key] = got
        return got

    def probability_order(self) -> np.ndarray:
        """The rows by decreasing probability, per attribute: ``xsgpu.metrics.descending_order(y_prob)``.

        Built once per run (memory-mapped from the app cache ``app_cache/probability_order`` for a run store,
        in memory otherwise) and shared by every session; the AP of any large subset of images is then a
        gather (``xsgpu.metrics.restrict_order``) instead of a sort per attribute.

        Returns
        -------
        ndarray of int32, shape (n, n_attributes)
        """
        def build() -> np.ndarray:
            from xsgpu.metrics.ranking import descending_order

            if self.store is None:
                return descending_order(self.y_prob)
            from panel_app.startcache import cached_array

            return cached_array(self.store, "probability_order", [PREDICTIONS], lambda: descending_order(self.y_prob),
                                extra=self.vocabulary.prob_columns())

        return self.cached(("probability_order",), build)

    @property
    def valid(self) -> np.ndarray:
        """Which frames were read (``samples.valid``; all True for runs without the column, e.g. synth).

        Ingest keeps a zero image for a frame it could not read (recorded in errors.parquet) so sample
        ids stay dense; the app hides those frames (:meth:`panel_app.state.AppState.filtered_mask`).
        """
        if "valid" not in self.samples.columns:
            return self.cached(("valid",), lambda: np.ones(self.n, dtype=bool))
        return self.cached(("valid",), lambda: self.samples["valid"].to_numpy(bool))

    @property
    def n_invalid(self) -> int:
        """How many frames failed to read (``samples.valid`` False)."""
        return int(self.cached(("n_invalid",), lambda: int(self.n - np.count_nonzero(self.valid))))

    def check_id(self, sample_id: Any) -> int:
        """Validate one sample id (``0 <= id < n``) and return it as ``int``.

        Raises
        ------
        ValueError
            If it is not an integer in range (never a path: the app serves images by id only).
        """
        try:
            i = int(sample_id)
            if isinstance(sample_id, (bool, np.bool_)) or i != sample_id:
                raise ValueError
        except (TypeError, ValueError):
            raise ValueError(f"The 'sample_id' parameter must be an integer in 0..{self.n - 1}. "
                             f"Got {sample_id!r} instead.") from None
        if not 0 <= i < self.n:
            raise ValueError(f"The 'sample_id' parameter must be an integer in 0..{self.n - 1}. Got {i} instead.")
        return i

    def thumbnail(self, sample_id: Any) -> np.ndarray:
        """The uint8 (64, 64) thumbnail of one sample (validated id)."""
        return self._array_row("thumbs", "thumbnails", sample_id, np.uint8)

    def thumbnail_uri(self, sample_id: Any) -> str:
        """The thumbnail of one sample as a ``data:image/png;base64,...`` URI (cached per process)."""
        i = self.check_id(sample_id)
        cache = self.cached("thumb_uri", dict)
        uri = cache.get(i)
        if uri is None:
            uri = png_data_uri(self.thumbnail(i))
            if len(cache) > 50_000:
                cache.clear()
            cache[i] = uri
        return uri

    def image(self, sample_id: Any) -> np.ndarray:
        """The float32 (H, W) log-scaled image of one sample (validated id)."""
        return self._array_row("images", "images", sample_id, np.float32)

    def _array_row(self, name: str, what: str, sample_id: Any, dtype: Any) -> np.ndarray:
        i = self.check_id(sample_id)
        arr = getattr(self, name)
        if arr is None:
            raise RunStoreError(f"{self._where()}: the run has no {what} ({name}.zarr). "
                                f"Hint: {REQUIRED_ARTIFACTS[name]}.")
        return np.asarray(arr[i], dtype=dtype)

    def __repr__(self) -> str:
        return f"RunData({self._where()!r}, n={self.n}, method={self.method!r})"

    def _where(self) -> str:
        return str(self.store.path) if self.store is not None else "in-memory run"


def png_data_uri(img: np.ndarray) -> str:
    """Encode a uint8 (H, W) image as a PNG data URI."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(img, dtype=np.uint8)).save(buf, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# ---------------------------------------------------------------------- loading
def check_run(run_path: str | os.PathLike) -> list[str]:
    """List what keeps a run store from being served (empty list = servable).

    Each entry names the missing artifact and the command that writes it, e.g.
    ``"embedding.parquet is missing: run `xsgpu embed RUN`"``.
    """
    try:
        store = RunStore.open(run_path)
    except RunStoreError as exc:
        return [str(exc)]
    problems = []
    for name, cmd in REQUIRED_ARTIFACTS.items():
        if not store.has(name):
            kind = "zarr" if name in ("images", "thumbs", "features") else "parquet"
            problems.append(f"{name}.{kind} is missing or incomplete: run `{cmd}`")
    return problems


_CACHE: dict[str, RunData] = {}
_CACHE_LOCK = threading.Lock()


def clear_cache() -> None:
    """Forget every loaded run (tests; a server never needs this)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def load_run_data(run_path: str | os.PathLike, *, use_cache: bool = True) -> RunData:
    """Load a run for the app, once per process (module-level cache keyed by the resolved path).

    Parameters
    ----------
    run_path : path
        A run store with samples, thumbnails, images, predictions, features and an embedding.
    use_cache : bool
        Return the process-wide instance if this run was loaded before.

    Raises
    ------
    RunStoreError
        If the run store is missing or incomplete; the message lists every missing artifact and the
        command that writes it.
    """
    key = str(Path(run_path).resolve())
    if use_cache:
        got = _CACHE.get(key)
        if got is not None:
            return got
    with _CACHE_LOCK:
        if use_cache and key in _CACHE:
            return _CACHE[key]
        data = _load(run_path)
        if use_cache:
            _CACHE[key] = data
        return data


def _load(run_path: str | os.PathLike) -> RunData:
    problems = check_run(run_path)
    if problems:
        raise RunStoreError(f"The run store {run_path} cannot be served yet:\n  - " + "\n  - ".join(problems))
    from panel_app.startcache import cached_array

    store = RunStore.open(run_path)
    n = store.n_samples
    vocab = store.vocabulary
    labels = set(vocab.label_columns())
    # the label columns become one memory-mapped (n, k) bool array; the rest of samples is read as a table,
    # its strings (run ids, splits, file names) as categories: codes for the filters, no string per row
    samples = store.samples.read(columns=[c for c in _table_columns(store, SAMPLES) if c not in labels],
                                 strings_as_categories=True)
    _check_dense(samples, n, SAMPLES, store)

    def build_labels() -> np.ndarray:
        # row-major (pandas hands out the column-major transpose): selections gather rows
        return np.ascontiguousarray(store.samples.read(columns=vocab.label_columns())[vocab.label_columns()]
                                    .to_numpy(bool))

    def build_probs() -> np.ndarray:
        pred = store.predictions.read(columns=["sample_id"] + vocab.prob_columns())
        _check_dense(pred, n, PREDICTIONS, store)
        return np.ascontiguousarray(pred[vocab.prob_columns()].to_numpy(np.float32))

    def build_coords() -> np.ndarray:
        emb = store.embedding.read(columns=["sample_id", *EMBEDDING_COLUMNS])
        _check_embedding(emb, n, store, EMBEDDING)
        # column-major: each coordinate is contiguous in the memory map, so a view needs no copy
        return np.asfortranarray(emb[list(EMBEDDING_COLUMNS)].to_numpy(np.float32))

    y_true = cached_array(store, "labels", [SAMPLES], build_labels, extra=vocab.label_columns())
    y_prob = cached_array(store, "probabilities", [PREDICTIONS], build_probs, extra=vocab.prob_columns())
    coords = cached_array(store, "coords", [EMBEDDING], build_coords, version=2)  # 2: column-major
    # copy=False: one block per column, views of the memory map (consolidating would copy 6 x n floats)
    emb = pd.DataFrame({"sample_id": np.arange(n, dtype=np.int64),
                        **{c: coords[:, i] for i, c in enumerate(EMBEDDING_COLUMNS)}}, copy=False)
    arrays = {name: store.open_array(name) for name in ("thumbs", "images", "features")}
    for name, arr in arrays.items():
        if arr.shape[0] != n:
            raise RunStoreError(f"{store.array_path(name)} has {arr.shape[0]} rows but the run has {n} samples. "
                                f"Hint: {REQUIRED_ARTIFACTS[name]}.")
    meta = store.embedding.metadata()
    log.info("loaded run %s: %d samples, %d attributes", store.path, n, len(vocab))
    return RunData(store=store, samples=samples, y_true=y_true, y_prob=y_prob, embedding=emb,
                   thumbs=arrays["thumbs"], images=arrays["images"], features=arrays["features"], n=n,
                   embedding_meta=meta, vocabulary=vocab)


def _table_columns(store: RunStore, name: Artifact) -> list[str]:
    """Column names of a table (its first part file's schema; no rows read)."""
    import pyarrow.parquet as pq

    p = store.table_path(name)
    if p.is_dir():
        p = min(f for f in p.iterdir() if f.suffix == ".parquet" and not f.name.startswith("."))
    return [c for c in pq.read_schema(p).names if not c.startswith("__index_level_")]


def _check_embedding(emb: pd.DataFrame, n: int, store: RunStore, name: Artifact) -> None:
    """Dense ids and finite coordinates (cast to float32 in place), or a RunStoreError naming the table."""
    _check_dense(emb, n, name, store)
    for c in EMBEDDING_COLUMNS:
        emb[c] = emb[c].astype(np.float32)
    bad = ~np.isfinite(emb[list(EMBEDDING_COLUMNS)].to_numpy()).all(axis=1)
    if bad.any():
        raise RunStoreError(f"{store.table_path(name)}: {int(bad.sum())} rows hold NaN/inf coordinates "
                            f"(first sample_id {int(emb['sample_id'][bad].iloc[0])}). Hint: rerun `xsgpu embed`.")


def _check_dense(df: pd.DataFrame, n: int, name: Artifact, store: RunStore) -> None:
    ids = df["sample_id"].to_numpy()
    if len(ids) != n or (n and (ids[0] != 0 or ids[-1] != n - 1 or not (np.diff(ids) == 1).all())):
        raise RunStoreError(f"{store.table_path(name)}: expected sample_id 0..{n - 1} (dense, one row each); "
                            f"got {len(ids)} rows. Hint: {REQUIRED_ARTIFACTS.get(name.name, 'rerun the stage')}.")
