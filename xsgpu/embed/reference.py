"""Place today's images onto yesterday's map, from plain arrays (no pickle).

A fitted openTSNE object can be pickled, but unpickling runs code from the file, so it is not
acceptable for run stores that travel between facilities. Instead ``embed_run`` stores, per space,
the reference points' inputs (what t-SNE saw: PCA-reduced FEA, PRD, unique ACT vectors) and their
2-D coordinates in ``RUN/embedding_reference/<space>.npz`` (``numpy.load(allow_pickle=False)``), plus
the PCA basis for FEA. :class:`ReferenceMap` rebuilds what openTSNE needs to place new points from
those arrays: an ``openTSNE.affinity.PerplexityBasedNN`` over the stored inputs (same perplexity,
kNN method and seed as the fit) wrapped with the stored coordinates in an ``openTSNE.TSNEEmbedding``;
``TSNEEmbedding.transform`` then optimises each new point against the fixed reference points.
The stored map may come from openTSNE or from cuML: only coordinates and inputs are needed.

Examples
--------
>>> import numpy as np
>>> from xsgpu.embed.reference import ReferenceMap
>>> rng = np.random.default_rng(0)
>>> X = np.concatenate([rng.normal(0, 1, (40, 3)), rng.normal(8, 1, (40, 3))]).astype(np.float32)
>>> Y = np.concatenate([np.zeros((40, 2)), np.full((40, 2), 30.0)]) + rng.normal(0, 1, (80, 2))
>>> placed = ReferenceMap(X, Y, perplexity=10).transform(np.array([[8.0, 8.0, 8.0]]), n_iter=50)
>>> bool(np.linalg.norm(placed[0] - 30) < 10)
True
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xsgpu.embed._base import check_matrix, check_random_state
from xsgpu.embed.tsne_cpu import place_points
from xsgpu.io.atomic import atomic_path
from xsgpu.io.schema import EMBEDDING_REFERENCE

__all__ = ["ReferenceMap", "SpaceReference", "REFERENCE_DIR", "REFERENCE_FORMAT"]

log = logging.getLogger(__name__)

REFERENCE_DIR = EMBEDDING_REFERENCE.name.split("/")[0]
REFERENCE_FORMAT = 1


class ReferenceMap:
    """A fixed 2-D map that new points can be placed onto (openTSNE ``transform``).

    Parameters
    ----------
    inputs : ndarray of shape (n_ref, d)
        The reference points as t-SNE saw them.
    coords : ndarray of shape (n_ref, 2)
        Their coordinates on the map.
    perplexity : float
        Perplexity of the reference affinities (as in the fit).
    neighbors : {"auto", "exact", "annoy", "pynndescent"}
        kNN method for the reference index.
    random_state : int or None
    n_jobs : int
    """

    def __init__(self, inputs: Any, coords: Any, *, perplexity: float = 30.0, neighbors: str = "auto",
                 random_state: int | None = 0, n_jobs: int = 1):
        self.inputs = check_matrix(inputs, name="inputs", owner="ReferenceMap", min_samples=5)
        self.coords = check_matrix(coords, name="coords", owner="ReferenceMap", dtype=np.float64)
        if self.coords.shape != (self.inputs.shape[0], 2):
            raise ValueError(f"The 'coords' parameter of ReferenceMap must have shape ({self.inputs.shape[0]}, 2) "
                             f"to match 'inputs'. Got {self.coords.shape} instead.")
        self.perplexity = perplexity
        self.neighbors = neighbors
        self.random_state = check_random_state(random_state, owner="ReferenceMap")
        self.n_jobs = n_jobs
        self._embedding = None

    def _build(self):
        if self._embedding is None:
            import openTSNE
            from openTSNE.affinity import PerplexityBasedNN

            from xsgpu.embed.tsne_cpu import effective_perplexity

            perp = effective_perplexity(float(self.perplexity), self.inputs.shape[0])
            log.info("rebuilding the reference affinities over %d points (perplexity %.1f)", len(self.inputs), perp)
            aff = PerplexityBasedNN(self.inputs.astype(np.float64), perplexity=perp, method=self.neighbors,
                                    random_state=self.random_state, n_jobs=self.n_jobs)
            self._embedding = openTSNE.TSNEEmbedding(self.coords.copy(), aff, random_state=self.random_state,
                                                     n_jobs=self.n_jobs)
        return self._embedding

    def transform(self, X: Any, *, perplexity: float = 5.0, n_iter: int = 250) -> np.ndarray:
        """Place new points (m, d) onto the map; returns (m, 2) float32 in the map's frame."""
        X = check_matrix(X, owner="ReferenceMap.transform")
        if X.shape[1] != self.inputs.shape[1]:
            raise ValueError(f"The 'X' parameter of ReferenceMap.transform must have {self.inputs.shape[1]} columns "
                             f"like the reference inputs. Got {X.shape[1]} instead.")
        return place_points(self._build(), X.astype(np.float64), perplexity=perplexity, n_iter=n_iter)


@dataclass
class SpaceReference:
    """What one space of a fitted run needs to take new points, as plain arrays.

    Attributes
    ----------
    space : {"act", "fea", "prd"}
    method : {"tsne", "pca", "umap"}
    inputs : ndarray (n_ref, d) float32
        Reference inputs (for ``pca``: unused, may be empty).
    coords : ndarray (n_ref, 2) float32
    arrays : dict of str -> ndarray
        Extras: ``pca_components``/``pca_mean`` (FEA reduction), ``map_components``/``map_mean`` (a
        linear ``pca`` map), ``counts`` (ACT).
    params : dict
        JSON-able fit parameters (perplexity, neighbors, random_state, source run, ...).
    """

    space: str
    method: str
    inputs: np.ndarray
    coords: np.ndarray
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    def save(self, run_path: str | os.PathLike) -> Path:
        """Write ``RUN/embedding_reference/<space>.npz`` atomically; return its path."""
        target = Path(run_path) / EMBEDDING_REFERENCE.named(space=self.space).entry
        meta = {"format": REFERENCE_FORMAT, "space": self.space, "method": self.method, "params": self.params}
        payload = {"inputs": np.asarray(self.inputs, np.float32), "coords": np.asarray(self.coords, np.float32),
                   "meta": np.array(json.dumps(meta, default=str))}
        for k, v in self.arrays.items():
            payload[f"x_{k}"] = np.asarray(v)
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **payload)
        return target

    @classmethod
    def load(cls, run_path: str | os.PathLike, space: str) -> "SpaceReference":
        """Read ``RUN/embedding_reference/<space>.npz`` without unpickling anything.

        Raises
        ------
        FileNotFoundError
            If the run has no stored reference for ``space`` (the remedy is in the message).
        ValueError
            If the file is not a reference of a format this xsgpu reads.
        """
        path = Path(run_path) / EMBEDDING_REFERENCE.named(space=space).entry
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: the reference run has no stored {space} map. "
                                    f"Hint: run `xsgpu embed {run_path}` (method tsne or pca) first.")
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
            meta = json.loads(str(data.pop("meta")))
        except Exception as exc:
            raise ValueError(f"{path} is not a readable xsgpu embedding reference ({exc.__class__.__name__}: {exc}).") from exc
        if meta.get("format") != REFERENCE_FORMAT or meta.get("space") != space:
            raise ValueError(f"{path}: field 'format'/'space' is {meta.get('format')}/{meta.get('space')}; "
                             f"expected {REFERENCE_FORMAT}/{space}.")
        arrays = {k[2:]: v for k, v in data.items() if k.startswith("x_")}
        return cls(space=space, method=meta["method"], inputs=data["inputs"], coords=data["coords"],
                   arrays=arrays, params=meta.get("params", {}))

    def place(self, X: Any, *, n_jobs: int = 1) -> np.ndarray:
        """Place inputs ``X`` (m, d) (already reduced like ``inputs``) onto this map; (m, 2) float32."""
        if self.method == "pca":
            comps = self.arrays["map_components"]
            mean = self.arrays["map_mean"]
            X = check_matrix(X, owner="SpaceReference.place")
            if X.shape[1] != comps.shape[1]:
                raise ValueError(f"The 'X' parameter of SpaceReference.place must have {comps.shape[1]} columns "
                                 f"like the {self.space} reference. Got {X.shape[1]} instead.")
            return ((X - mean) @ comps.T).astype(np.float32)
        if self.method != "tsne":
            raise ValueError(f"Placing points onto a stored {self.method!r} map is not supported "
                             "(only 'tsne' and 'pca' maps are stored as plain arrays).")
        ref = ReferenceMap(self.inputs, self.coords, perplexity=float(self.params.get("perplexity", 30.0)),
                           neighbors=str(self.params.get("neighbors", "auto")),
                           random_state=self.params.get("random_state", 0), n_jobs=n_jobs)
        return ref.transform(X)
