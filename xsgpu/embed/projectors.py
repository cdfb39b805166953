"""One factory for 2-D projections: t-SNE, PCA and UMAP on CPU or GPU, with a capability table.

``make_projector(method, device=...)`` returns a :class:`Projector`, a scikit-learn-like estimator
that picks its implementation in :meth:`Projector.fit`:

=========  ==========================  ====================================
method     CPU (always available)      GPU (RAPIDS cuML, imported lazily)
=========  ==========================  ====================================
``tsne``   openTSNE (can place new     cuML TSNE: 2-D only, cannot place
           points: ``transform``)      new points
``pca``    scikit-learn, randomized    cuML PCA
``umap``   umap-learn (optional)       cuML UMAP
=========  ==========================  ====================================

The table lives in :data:`CAPABILITIES`. A request the GPU cannot serve raises
:class:`~xsgpu.backend.UnsupportedOnGPU` when ``device="gpu"`` was asked for, and falls back to the
CPU twin with a logged reason when ``device="auto"`` (as cuML's own dispatcher does).

Examples
--------
>>> import numpy as np
>>> from xsgpu.embed import make_projector, capability
>>> capability("tsne", "gpu").n_components, capability("tsne", "gpu").transform
((2,), False)
>>> proj = make_projector("pca", device="cpu", n_components=2, random_state=0)
>>> proj.fit_transform(np.random.default_rng(0).normal(size=(50, 5))).shape
(50, 2)
>>> proj.backend_
'cpu'
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from xsgpu.backend import UnsupportedOnGPU, gpu_fallback, resolve_device, to_host
from xsgpu.embed import pca, umap
from xsgpu.embed._base import NotFittedError
from xsgpu.embed.reference import ReferenceMap
from xsgpu.embed.tsne_cpu import OpenTSNE
from xsgpu.embed.tsne_gpu import CumlTSNE

__all__ = [
    "METHODS", "Capability", "CAPABILITIES", "capability", "check_capability",
    "Projector", "make_projector", "NotFittedError",
]

log = logging.getLogger(__name__)

Method = Literal["tsne", "pca", "umap"]
METHODS: tuple[str, ...] = ("tsne", "pca", "umap")


@dataclass(frozen=True)
class Capability:
    """What one implementation can do.

    Attributes
    ----------
    library : str
        The library that does the work (for messages and table metadata).
    n_components : tuple of int or None
        Supported output dimensions; ``None`` means any positive number.
    transform : bool
        Whether new points can be placed onto a fitted map.
    """

    library: str
    n_components: tuple[int, ...] | None
    transform: bool

    def supports_n_components(self, n: int) -> bool:
        return self.n_components is None or n in self.n_components


#: (method, backend) -> what that implementation supports.
CAPABILITIES: dict[tuple[str, str], Capability] = {
    ("tsne", "cpu"): Capability("openTSNE", (1, 2), True),
    ("tsne", "gpu"): Capability("cuml.TSNE", (2,), False),
    ("pca", "cpu"): Capability("sklearn.decomposition.PCA(svd_solver='randomized')", None, True),
    ("pca", "gpu"): Capability("cuml.PCA", None, True),
    ("umap", "cpu"): Capability("umap-learn", None, True),
    ("umap", "gpu"): Capability("cuml.UMAP", None, True),
}


def _check_method(method: Any) -> str:
    if method not in METHODS:
        raise ValueError(f"The 'method' parameter of make_projector must be one of {list(METHODS)}. "
                         f"Got {method!r} instead.")
    return method


def capability(method: str, backend: str) -> Capability:
    """Return the :class:`Capability` of ``method`` on ``backend`` (``"cpu"`` or ``"gpu"``)."""
    _check_method(method)
    if backend not in ("cpu", "gpu"):
        raise ValueError(f"The 'backend' parameter of capability must be 'cpu' or 'gpu'. Got {backend!r} instead.")
    return CAPABILITIES[(method, backend)]


def check_capability(method: str, backend: str, *, n_components: int | None = None,
                     transform: bool = False) -> None:
    """Raise if ``method`` on ``backend`` cannot serve the request.

    Raises
    ------
    UnsupportedOnGPU
        For a GPU request outside :data:`CAPABILITIES` (e.g. 3-D or ``transform`` with cuML t-SNE).
    ValueError
        For a CPU request outside the table (e.g. a 3-D openTSNE map).
    """
    cap = capability(method, backend)
    if n_components is not None and not cap.supports_n_components(n_components):
        msg = (f"{cap.library} supports n_components in {list(cap.n_components or [])}; "
               f"got n_components={n_components}.")
        if backend == "gpu":
            raise UnsupportedOnGPU(msg + " Hint: use device='cpu' or n_components=2.")
        raise ValueError(f"The 'n_components' parameter of the {method} projector is not supported: {msg}")
    if transform and not cap.transform:
        raise UnsupportedOnGPU(f"{cap.library} cannot place new points onto a fitted map (no transform). "
                               "Hint: fit with device='cpu' (openTSNE), or place them with "
                               "xsgpu.embed.ReferenceMap built from the fitted coordinates.")


def _implementation(method: str, backend: str):
    """Return the estimator class for (method, backend); the GPU classes import cuML only when used."""
    if method == "tsne":
        return OpenTSNE if backend == "cpu" else CumlTSNE
    if method == "pca":
        return pca.SklearnPCA if backend == "cpu" else pca.CumlPCA
    return umap.UmapLearn if backend == "cpu" else umap.CumlUMAP


class Projector:
    """A device-dispatching projector (use :func:`make_projector`).

    Parameters
    ----------
    method : {"tsne", "pca", "umap"}
    device : {"auto", "cpu", "gpu"}
        ``"auto"`` uses the GPU implementation when a GPU is usable and the request is within its
        capabilities, else the CPU one (logging why); ``"gpu"`` raises instead of falling back.
    **params
        Passed to the implementation (``n_components``, ``random_state``, ``perplexity``, ...).

    Attributes
    ----------
    backend_ : {"cpu", "gpu"}
        The backend that fitted the map.
    estimator_ : object
        The fitted implementation (e.g. :class:`~xsgpu.embed.tsne_cpu.OpenTSNE`).
    embedding_ : ndarray of shape (n_samples, n_components), float32
        The fitted coordinates.
    fallback_reason_ : str or None
        Why ``device="auto"`` ran on CPU although a GPU was usable (``None`` otherwise).
    """

    def __init__(self, method: str, *, device: str = "auto", **params: Any):
        self.method = method
        self.device = device
        self.params = params

    # -- helpers
    def _n_components(self) -> int:
        n = self.params.get("n_components", 2)
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            raise ValueError(f"The 'n_components' parameter of the {self.method} projector must be a positive "
                             f"int. Got {n!r} instead.")
        return int(n)

    def _choose_backend(self) -> str:
        _check_method(self.method)
        n = self._n_components()
        if self.device not in ("auto", "cpu", "gpu"):
            raise ValueError(f"The 'device' parameter of make_projector must be 'auto', 'cpu' or 'gpu'. "
                             f"Got {self.device!r} instead.")
        self.fallback_reason_ = None
        if self.device == "cpu":
            check_capability(self.method, "cpu", n_components=n)
            return "cpu"
        if self.device == "gpu":
            check_capability(self.method, "gpu", n_components=n)  # UnsupportedOnGPU before any import
            resolve_device("gpu")  # GPUUnavailable with the reason
            return "gpu"

        def gpu_serves() -> None:
            check_capability(self.method, "gpu", n_components=n)
            _implementation(self.method, "gpu").check_available()

        backend, self.fallback_reason_ = gpu_fallback("auto", f"{self.method} projector", gpu_serves)
        if backend == "cpu":
            check_capability(self.method, "cpu", n_components=n)
        return backend

    # -- estimator API
    def fit(self, X: Any, y: None = None) -> "Projector":
        """Fit the map on ``X`` of shape (n_samples, n_features); sets ``embedding_``."""
        backend = self._choose_backend()
        impl = _implementation(self.method, backend)
        if backend == "cpu":
            impl.check_available()  # e.g. umap-learn missing -> ImportError with the remedy
        est = impl(**self.params)
        log.info("%s projector on %s (%s), %d x %d input", self.method, backend,
                 capability(self.method, backend).library, *np.shape(X))
        est.fit(X)
        self.backend_ = backend
        self.estimator_ = est
        self.embedding_ = est.embedding_
        if backend == "gpu" and not capability(self.method, "gpu").transform and self.device == "auto":
            # keep the fitted input (a reference, no copy) so transform can fall back to openTSNE
            self._fit_input = X
        return self

    def fit_transform(self, X: Any, y: None = None) -> np.ndarray:
        """Fit on ``X`` and return the coordinates, shape (n_samples, n_components), float32."""
        return self.fit(X).embedding_

    def transform(self, X: Any) -> np.ndarray:
        """Place new points ``X`` of shape (m, n_features) onto the fitted map; returns (m, n_components).

        Raises
        ------
        UnsupportedOnGPU
            If the map was fitted by an implementation without ``transform`` and ``device="gpu"``.
            With ``device="auto"`` the points are placed by openTSNE against the fitted coordinates.
        """
        if not hasattr(self, "estimator_"):
            raise NotFittedError(f"This {self.method} projector is not fitted yet; call fit or fit_transform first.")
        if capability(self.method, self.backend_).transform:
            return self.estimator_.transform(X)
        if self.device == "gpu" or getattr(self, "_fit_input", None) is None:
            check_capability(self.method, self.backend_, transform=True)
        log.warning("%s projector: falling back to CPU for transform: %s cannot place new points; "
                    "placing them with openTSNE against the fitted map", self.method,
                    capability(self.method, self.backend_).library)
        perplexity = float(self.params.get("perplexity", 30.0))
        ref = ReferenceMap(np.asarray(to_host(self._fit_input), np.float32), to_host(self.embedding_),
                           perplexity=perplexity, random_state=self.params.get("random_state", 0))
        return ref.transform(np.asarray(to_host(X), np.float32))

    def get_params(self) -> dict[str, Any]:
        """Return the constructor parameters (method, device and the implementation's params)."""
        return {"method": self.method, "device": self.device, **self.params}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"Projector({self.method!r}, device={self.device!r}{', ' + args if args else ''})"


def make_projector(method: str, *, device: str = "auto", **params: Any) -> Projector:
    """Return an unfitted projector for ``method`` (``"tsne"``, ``"pca"`` or ``"umap"``).

    Parameters
    ----------
    method : {"tsne", "pca", "umap"}
    device : {"auto", "cpu", "gpu"}
        See :class:`Projector`.
    **params
        Implementation parameters, e.g. ``n_components=2, random_state=0, perplexity=30``.

    Raises
    ------
    ValueError
        For an unknown method or device (checked here, before any work).
    """
    _check_method(method)
    if device not in ("auto", "cpu", "gpu"):
        raise ValueError(f"The 'device' parameter of make_projector must be 'auto', 'cpu' or 'gpu'. "
                         f"Got {device!r} instead.")
    return Projector(method, device=device, **params)
