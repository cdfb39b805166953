"""Per-image components: draw their parameters (host NumPy) and build their 1-D profiles ("terms").

Every component becomes one or more *terms*: a radial profile on the run's 1-D q grid (bins of
:data:`~xsgpu.synth.geometry.Q_BIN`), optionally times an azimuthal factor (orientation kernel or
grain texture on a 1-D chi grid), an oval distortion of q, or coherent speckle. Sharp peaks are kept
apart (centre, width, height) so they can be widened by the output pixel footprint at sizes below 256
(``sigma^2 + pixel^2 / 12``, height lowered to keep the integrated intensity); the tags are always
computed from the conceptual (256) profiles, so labels do not depend on the output size.

Parameters are drawn on the host from a NumPy Generator, so tags and labels are the same on CPU and
GPU; only pixel noise comes from the device generator.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from xsgpu.synth import kernels as K
from xsgpu.synth.geometry import N_CHI, Q_BIN, Q_PIXEL, chi_grid
from xsgpu.synth.meso import MESO, debye_cluster, polar_stats, projected_vectors, radial_envelope, random_rotation
from xsgpu.synth.mix import COMPONENT_KINDS, DIFFUSE_KINDS, Mix
from xsgpu.synth.windows import draw_windows

__all__ = ["FLAGS", "IMAGE_KINDS", "Terms", "ImageExtras", "draw_block"]

#: generator-set flags per image (the label rules in labels.py read them)
FLAGS = ("ring", "multi_ring", "structure_factor", "bcc", "fcc", "poly", "halo", "sample", "diffuse_low",
         "diffuse_high")

_CHI = chi_grid()


@dataclass
class Terms:
    """Host description of the terms of a block of images (T terms, Q q bins).

    Attributes
    ----------
    img : int (T,)
        Image (row in the block) of each term.
    kind : list[str] (T,)
    is_sample : bool (T,)
        Sample scattering (True: the "sample term" of the Strong/Weak rules) or diffuse scattering
        (False: the Diffuse low/high-q rules).
    base : float64 (T, Q)
        Smooth part of the radial profile.
    peak_rows, peak_q, peak_sigma, peak_height : (P,)
        Gaussian peaks of the terms (term row, centre, width, height), counts.
    ang : dict term -> float32 (N_CHI,)
        Azimuthal factors (mean 1) of the anisotropic terms.
    peak_ang : float (T,)
        Maximum of each term's azimuthal factor (1 if isotropic).
    oval : dict term -> (ecc, chi0)
    speckle : dict term -> float
        Speckle contrast shape parameter of coherent terms.
    ring_img, ring_q, ring_height : (R,)
        Individual rings: image, position, peak height incl. orientation.
    orders : dict term -> (q (k,), relative height (k,), threshold)
        The orders of a multi-ring component as the original generator counts them for "Many rings":
        those within the detector whose relative height exceeds the threshold (0: all drawn rings).
    info : dict term -> str
        Human-readable parameters of the component that starts at this term (``tags["components"]``).
    meso : dict term -> (float (3, 2), float64 (Q,))
        Single-crystal mesostructure terms: projected lattice vectors (phase per detector px) and the
        radial envelope; the pixels are ``envelope(q) prod_a (1 + 2 cos(d . v_a))^2``
        (:mod:`xsgpu.synth.meso`), ``base`` holds their azimuthal mean.
    peak_profile : dict term -> float64 (Q,)
        Terms whose azimuthal maximum depends on q (single-crystal mesostructure): the maximum over
        each circle, used by the tags instead of ``profile x peak_ang``.
    gate : dict term -> (float, float)
        Diffuse terms whose label gate is not the default (10 counts on more than 400 pixels):
        (counts, pixels); the original generator's anisotropic low-q group uses (20, 500).
    """

    def describe(self) -> list[str]:
        """Per image: ``"; "``-joined component descriptions (e.g. ``"porod(a=-3.20)"``)."""
        parts: list[list[str]] = [[] for _ in range(self.n_images)]
        for t, text in sorted(self.info.items()):
            parts[self.img[t]].append(text)
        return ["; ".join(p) for p in parts]

    n_images: int
    n_q: int
    img: list = field(default_factory=list)
    kind: list = field(default_factory=list)
    is_sample: list = field(default_factory=list)
    base: list = field(default_factory=list)
    peak_rows: list = field(default_factory=list)
    peak_q: list = field(default_factory=list)
    peak_sigma: list = field(default_factory=list)
    peak_height: list = field(default_factory=list)
    ang: dict = field(default_factory=dict)
    peak_ang: list = field(default_factory=list)
    oval: dict = field(default_factory=dict)
    speckle: dict = field(default_factory=dict)
    ring_img: list = field(default_factory=list)
    ring_q: list = field(default_factory=list)
    ring_height: list = field(default_factory=list)
    orders: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    gate: dict = field(default_factory=dict)
    meso: dict = field(default_factory=dict)
    peak_profile: dict = field(default_factory=dict)

    def add(self, img: int, kind: str, *, is_sample: bool, base=None, ang=None, oval=None,
            speckle=None, info: str | None = None) -> int:
        t = len(self.img)
        if info is not None:
            self.info[t] = info
        self.img.append(img)
        self.kind.append(kind)
        self.is_sample.append(is_sample)
        self.base.append(base)
        if ang is not None:
            self.ang[t] = ang.astype(np.float32)
            self.peak_ang.append(float(ang.max()))
        else:
            self.peak_ang.append(1.0)
        if oval is not None:
            self.oval[t] = oval
        if speckle is not None:
            self.speckle[t] = speckle
        return t

    def add_peaks(self, t: int, q, sigma, height, *, rings: bool = True) -> None:
        q = np.atleast_1d(np.asarray(q, dtype=np.float64))
        sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), q.shape)
        height = np.broadcast_to(np.asarray(height, dtype=np.float64), q.shape)
        keep = q < self.n_q * Q_BIN
        self.peak_rows.extend([t] * int(keep.sum()))
        self.peak_q.extend(q[keep])
        self.peak_sigma.extend(sigma[keep])
        self.peak_height.extend(height[keep])
        if rings:
            self.ring_img.extend([self.img[t]] * int(keep.sum()))
            self.ring_q.extend(q[keep])
            self.ring_height.extend(height[keep] * self.peak_ang[t])

    def profiles(self, *, pixel_q: float = Q_PIXEL) -> np.ndarray:
        """Radial profiles (T, Q) float64 with peaks widened by a pixel of q-width ``pixel_q``."""
        n_t = len(self.img)
        out = np.zeros((n_t, self.n_q))
        for t, b in enumerate(self.base):
            if b is not None:
                out[t] += b
        if self.peak_rows:
            s0 = np.asarray(self.peak_sigma)
            s = np.sqrt(s0**2 + pixel_q**2 / 12.0)
            h = np.asarray(self.peak_height) * (s0 / s)
            out += K.sum_gaussians(n_t, self.n_q, Q_BIN, self.peak_rows, self.peak_q, s, h)
        return out


#: image kinds of the original generator's choice tree (``Mix.p_standard``, ``Mix.p_not_sample``)
IMAGE_KINDS = ("sample", "standard", "particular", "dark", "direct")
#: silver behenate: d001 = 58.38 A, so rings at q = n 0.1076 1/A; relative intensities of orders 1..11,
#: then two weak reflections at 12.723 and 12.8903 q0 (the values of the original generator's standard)
AGBH_Q0 = 0.1076
AGBH_ORDERS = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12.7230, 12.8903])
AGBH_INTENSITIES = np.array([1.0, 0.5965, 0.3822, 0.1798, 0.1123, 0.0825, 0.0627, 0.0462, 0.0391, 0.0332,
                             0.0352, 0.0771, 0.0678])
#: the "particular" test substance: the same pattern at 1/40 of the q scale
PARTICULAR_SCALE = 0.025


@dataclass
class ImageExtras:
    """Per-image non-profile parts (arrays of length n): background, glow, streaks, zingers, image kind."""

    bg_level: np.ndarray
    glow_amp: np.ndarray
    streak_h: np.ndarray
    streak_v: np.ndarray
    zingers: list  # per image: list of (position fraction in [0,1), counts)
    flags: dict    # name -> bool (n,)
    image_kind: np.ndarray = None  # str (n,), one of IMAGE_KINDS
    beam_scale: np.ndarray = None  # float (n,): 0 for a dark frame
    blocked: np.ndarray = None     # bool (n,): False for a direct-beam frame (no beamstop in)
    bg_sigma: np.ndarray = None    # float (n,): pixel-to-pixel sigma of the background (0: none)
    windows: list = None           # per image: list of xsgpu.synth.windows.Window (window glows)

    def __post_init__(self) -> None:
        n = len(self.bg_level)
        if self.image_kind is None:
            self.image_kind = np.full(n, "sample", dtype=object)
        if self.beam_scale is None:
            self.beam_scale = np.ones(n)
        if self.blocked is None:
            self.blocked = np.ones(n, dtype=bool)
        if self.bg_sigma is None:
            self.bg_sigma = np.zeros(n)
        if self.windows is None:
            self.windows = [[] for _ in range(n)]


#: the original generator's NP-lattice draws besides q0 (``Mix.lattice_q0``), used in original-style runs:
#: particle radius U(0.01, 2) x d0 (d0 = 2 pi / q0), relative Debye-Waller sigma clip(N(0.1, 0.2), 0.01, 0.5),
#: peak width U(0.01, 0.2) x q0; ours draw U(0.25, 0.4) x d0, U(0.01, 0.12) and U(0.01, 0.04) x q0
ORIGINAL_LATTICE = {"radius_d0": (0.01, 2.0), "sigma_dw": (0.1, 0.2, 0.01, 0.5), "width_q0": (0.01, 0.2)}


#: original-style runs: share of coherent (speckled) halos among halos (the original's weights .2 and .05)
ORIGINAL_COHERENT_HALO = 0.8
#: the original's ring and halo positions: q0 = clip(N(0.02, 0.04), 0.008, high) 1/A, high 0.1 or 0.05
ORIGINAL_Q0 = (0.02, 0.04, 0.008)


def _q0(g, style: str, ours: tuple, high: float) -> float:
    """First ring / halo position: the original's clipped normal in original-style runs, else U(ours)."""
    if style == "original":
        mean, sigma, low = ORIGINAL_Q0
        return float(np.clip(g.normal(mean, sigma), low, high))
    return float(g.uniform(*ours))


def _add_standard(g, terms: Terms, i: int, q: np.ndarray, scale: float, kind: str) -> None:
    """A calibrant frame: AgBH rings (dq = 0.05 q0) of 10^U(2,4) counts, 1 % of that flat, a Guinier core."""
    c = _loguniform(g, 2.0, 4.0)
    q0 = AGBH_Q0 * scale
    base = c * (0.01 + 10.0 * K.guinier(q, rg=800.0))
    t = terms.add(i, kind, is_sample=False, base=base, info=f"{kind}(q0={q0:.5f}, c={c:.1f})")
    terms.add_peaks(t, q0 * AGBH_ORDERS, 0.05 * q0, c * AGBH_INTENSITIES, rings=False)


def _loguniform(g, lo: float, hi: float) -> float:
    return float(10 ** g.uniform(lo, hi))


def _orientation(g, eta_range, n_choices) -> np.ndarray:
    eta = g.uniform(*eta_range)
    n = int(g.choice(n_choices))
    return K.orientation(_CHI, eta=eta, n=n, chi0=g.uniform(0, 2 * math.pi))


def _grains(g, n_grains: int, eta: float) -> np.ndarray:
    """Speckled ring: sum of 2..15 orientation kernels (sharpness ``eta``) at random azimuths, mean 1."""
    a = np.zeros(N_CHI)
    for _ in range(n_grains):
        a += K.orientation(_CHI, eta=eta, n=2, chi0=g.uniform(0, 2 * math.pi))
    return a / n_grains


def _add_component(g, mix: Mix, terms: Terms, i: int, kind: str, amp: float, q: np.ndarray,
                   flags: dict, style: str = "ours") -> None:
    if kind == "ring":
        q0 = _q0(g, style, (0.01, 0.12), 0.1)
        ang = _orientation(g, (0.2, 0.95), range(2, 21, 2)) if g.random() < mix.p_oriented_ring else None
        dq = q0 * 10 ** g.uniform(-2.0, math.log10(0.2))
        t = terms.add(i, kind, is_sample=True, ang=ang,
                      info=f"ring(q0={q0:.4f}, dq={dq:.4f}, oriented={ang is not None})")
        terms.add_peaks(t, q0, dq, amp)
        flags["ring"][i] = True
    elif kind == "series":
        q0 = _q0(g, style, (0.006, 0.035), 0.1)
        sq0 = g.uniform(0.02, 0.25)
        orders = np.arange(1, 25)
        ang = _orientation(g, (0.2, 0.95), range(2, 21, 2)) if g.random() < mix.p_oriented_ring else None
        t = terms.add(i, kind, is_sample=True, ang=ang, info=f"series(q0={q0:.4f}, s*q0={sq0:.3f})")
        damp = np.exp(-(sq0**2) * (orders**2 - 1))
        terms.add_peaks(t, orders * q0, q0 * 10 ** g.uniform(-2.3, -1.3), amp * damp)
        terms.orders[t] = (orders * q0, damp, 0.01)
        flags["ring"][i] = flags["multi_ring"][i] = True
    elif kind in K.LATTICES:
        if style == "original":  # the original's NP lattice: q0 clip(N(.06, .04), .008, .05), then ORIGINAL_LATTICE
            mean, sigma, low, high = mix.lattice_q0
            q0 = float(np.clip(g.normal(mean, sigma), low, high))
            radius = g.uniform(*ORIGINAL_LATTICE["radius_d0"]) * 2 * math.pi / q0
            s_r = float(np.clip(g.normal(*ORIGINAL_LATTICE["sigma_dw"][:2]), *ORIGINAL_LATTICE["sigma_dw"][2:]))
            width = q0 * g.uniform(*ORIGINAL_LATTICE["width_q0"])
        else:
            q0 = g.uniform(0.012, 0.05)
            radius = g.uniform(0.25, 0.4) * 2 * math.pi / q0
            s_r = g.uniform(0.01, 0.12)
            width = None
        ratios, mult = K.lattice_peaks(kind)
        qj = q0 * ratios
        env = K.sphere_form_factor(qj, radius) * K.debye_waller(qj, q0, s_r) / qj**2
        heights = mult * env
        diffuse = K.sphere_form_factor(np.maximum(q, 1e-4), radius) * (1 - K.debye_waller(q, q0, s_r))
        # the original divides peaks + diffuse part by the image maximum; ours by the highest peak
        c = amp / (heights.max() if width is None else max(heights.max(), diffuse.max()))
        base = c * diffuse
        oval = (g.uniform(0.75, 0.95), g.uniform(0, 2 * math.pi)) if g.random() < mix.p_distorted else None
        info = f"{kind}(q0={q0:.4f}, R={radius:.1f}, s_r={s_r:.3f}"
        info += f", ecc={oval[0]:.3f}, chi0={oval[1]:.3f})" if oval else ")"
        t = terms.add(i, kind, is_sample=True, base=base, oval=oval, info=info)
        terms.add_peaks(t, qj, q0 * g.uniform(0.01, 0.04) if width is None else width, c * heights)
        terms.orders[t] = (qj, heights / heights[0], 0.002)
        flags["ring"][i] = flags["multi_ring"][i] = flags["structure_factor"][i] = True
        if kind in ("bcc", "fcc"):
            flags[kind][i] = True
    elif kind == "adhoc":
        n = int(g.integers(3, 10))
        q1 = _q0(g, style, (0.008, 0.04), 0.05)
        qs = q1 + np.concatenate([[0.0], np.cumsum(q1 * g.uniform(0.3, 1.2, n - 1))])
        hs = g.uniform(0.05, 1.0, n)
        t = terms.add(i, kind, is_sample=True, info=f"adhoc(n={n}, q1={q1:.4f})")
        terms.add_peaks(t, qs, qs * 10 ** g.uniform(-2.3, -1.3, n), amp * hs / hs.max())
        terms.orders[t] = (np.zeros(n), np.ones(n), 0.0)  # every drawn ring counts, as in the original
        flags["ring"][i] = flags["multi_ring"][i] = flags["structure_factor"][i] = True
    elif kind == "poly":
        # speckled rings: 3..9 rings of grains; eta <= .75 textured (Polycrystalline), above: large grains
        n = int(g.integers(3, 10))
        q1 = _q0(g, style, (0.01, 0.05), 0.05)
        lat = str(g.choice(K.LATTICES))
        ratios = K.lattice_peaks(lat)[0][:n]
        eta = float(g.uniform(0.5, 0.95))
        for j, r in enumerate(ratios):
            t = terms.add(i, kind, is_sample=True, ang=_grains(g, int(g.integers(2, 16)), eta),
                          info=f"poly({lat}, rings={len(ratios)}, q1={q1:.4f}, eta={eta:.3f})" if j == 0 else None)
            terms.add_peaks(t, q1 * r, q1 * r * g.uniform(0.005, 0.03), amp * g.uniform(0.3, 1.0))
            if j == 0:
                terms.orders[t] = (np.zeros(n), np.ones(n), 0.0)
        flags["ring"][i] = flags["multi_ring"][i] = flags["structure_factor"][i] = True
        flags["poly"][i] |= eta <= 0.75
    elif kind == "halo":
        # original-style runs: 4 in 5 halos are coherent (its weights .2 : .05), q0 as its draws
        coherent = g.random() < (ORIGINAL_COHERENT_HALO if style == "original" else mix.p_speckle_halo)
        q0 = _q0(g, style, (0.01, 0.1), 0.05 if coherent else 0.1)
        ang = _orientation(g, (0.02, 0.4), (2, 4, 6)) if g.random() < mix.p_oriented_halo else None
        speckle = float(g.uniform(1.0, 4.0)) if coherent else None
        info = f"halo(q0={q0:.4f}, oriented={ang is not None}, speckle={speckle is not None})"
        if speckle is not None:  # coherent halo: speckle, and a low-q side suppressed by 1 - exp(-s^2 q^2)
            s = g.uniform(30.0, 120.0)
            dq = q0 * g.uniform(0.1 if style == "original" else 0.3, 0.6)
            base = mix.coherent_halo_gain * amp * K.gaussian(q, q0, dq) * K.diffuse_high_q(q, s=s)
            terms.add(i, kind, is_sample=True, base=base, ang=ang, speckle=speckle, info=info)
        else:
            t = terms.add(i, kind, is_sample=True, ang=ang, info=info)
            terms.add_peaks(t, q0, q0 * g.uniform(0.3, 0.6), amp, rings=False)
        flags["halo"][i] = True
    elif kind == "sphere":
        r = 10 ** g.uniform(1.5, 3.5)
        poly = g.uniform(0.03, 0.1)
        radii = r * (1 + poly * np.array([-1.5, -0.5, 0.5, 1.5]))[:, None]
        prof = K.sphere_form_factor(q[None, :], radii).mean(axis=0)
        terms.add(i, kind, is_sample=True, base=amp * prof, info=f"sphere(R={r:.1f}, polydispersity={poly:.3f})")
    elif kind == "meso":
        _add_meso(g, terms, i, q, flags)
    else:  # pragma: no cover - guarded by Mix validation
        raise ValueError(f"unknown component kind {kind!r}")


def _add_meso(g, terms: Terms, i: int, q: np.ndarray, flags: dict) -> None:
    """The original's mesostructure: a cubic cluster's spots (80 %) or their powder average (20 %, Polycrystalline).

    Its own amplitude (the pattern's maximum 10^U(3, 5) counts), whatever the mix's amplitude range.
    """
    zoom = g.uniform(*MESO["zoom"])
    c = 10 ** g.uniform(*MESO["log10_counts"])
    d = q / Q_PIXEL
    env = radial_envelope(d, zoom)
    if g.random() < MESO["p_rotation"]:
        n_or = int(g.integers(MESO["orientations"][0], MESO["orientations"][1] + 1))
        prof = env * debye_cluster(d, zoom)
        terms.add(i, "meso", is_sample=True, base=c * prof / max(prof.max(), 1e-300),
                  info=f"meso(zoom={zoom:.3f}, orientations={n_or}, c={c:.3g})")
        flags["poly"][i] = True
        return
    vectors = projected_vectors(random_rotation(g), zoom)
    mean_s, max_s = polar_stats(vectors, q)
    norm = c / max(float((env * max_s).max()), 1e-300)
    base = norm * env * mean_s
    t = terms.add(i, "meso", is_sample=True, base=base, info=f"meso(zoom={zoom:.3f}, single crystal, c={c:.3g})")
    terms.meso[t] = (vectors, norm * env)
    terms.peak_profile[t] = norm * env * max_s


def _add_diffuse(g, mix: Mix, terms: Terms, i: int, kind: str, q: np.ndarray, flags: dict) -> None:
    amp = _loguniform(g, *mix.log10_diffuse)
    qq = np.maximum(q, 0.002)
    if kind == "high_q":
        s = g.uniform(8.0, 30.0)
        terms.add(i, kind, is_sample=False, base=amp * 300.0 * K.diffuse_high_q(q, s=s), info=f"high_q(s={s:.2f})")
        flags["diffuse_high"][i] = True
        return
    if kind == "porod":
        par = ("a", g.uniform(-4.5, -1.8))
        prof = K.porod(qq, exponent=par[1], q_ref=0.002)
    elif kind == "ornstein_zernike":
        par = ("xi", 10 ** g.uniform(1.5, 2.7))
        prof = K.ornstein_zernike(qq, xi=par[1])
    elif kind == "debye_bueche":
        par = ("a", 10 ** g.uniform(1.3, 2.5))
        prof = K.debye_bueche(qq, a=par[1])
    else:
        par = ("Rg", 10 ** g.uniform(1.5, 2.6))
        prof = K.guinier(qq, rg=par[1])
    prof = prof / prof[0]
    oval = (g.uniform(0.3, 0.8), g.uniform(0, 2 * math.pi)) if g.random() < mix.p_anisotropic_diffuse else None
    info = f"{kind}({par[0]}={par[1]:.3f}" + (f", ecc={oval[0]:.3f}, chi0={oval[1]:.3f})" if oval else ")")
    terms.add(i, kind, is_sample=False, base=amp * 100.0 * prof, oval=oval, info=info)
    flags["diffuse_low"][i] = True


#: the original generator's diffuse tree (CFN cms_generators, facts only): per low-q group, the
#: probability of each of its four terms; log10 ranges of their amplitudes and parameters
ORIGINAL_DIFFUSE = {
    "p_iso": 0.3, "p_iso_term": 0.5, "p_aniso": 0.15, "p_aniso_term": 0.4, "p_high": 0.2, "p_high_aniso": 0.01,
    "log10_c_porod": (4.0, 6.0), "log10_c": (2.0, 5.0), "log10_length": (1.0, 4.0), "log10_rg": (2.0, 3.0),
    "log10_c_high": (1.0, 3.0), "log10_sigma_high": (-2.0, 2.2), "aniso_gate": (20.0, 500.0),
}


def _original_low_q_group(g, q: np.ndarray, p_term: float, porod_range: tuple) -> tuple[np.ndarray, list[str]]:
    """Sum of the original's low-q terms (Porod, OZ, Debye-Bueche, Guinier), each drawn with ``p_term``.

    The Porod term is ``c (q / q_pixel)^a`` (c = 10^U(4, 6) counts one pixel from the beam), the others
    ``c f(q)`` with c = 10^U(2, 5) and f = 1 at q = 0. Returns the summed profile and the parts drawn.
    """
    o = ORIGINAL_DIFFUSE
    prof = np.zeros_like(q)
    parts: list[str] = []
    if g.random() < p_term:
        a, c = g.uniform(*porod_range), 10 ** g.uniform(*o["log10_c_porod"])
        prof += c * K.porod(q, exponent=a, q_ref=Q_PIXEL, q_min=Q_PIXEL / 2)
        parts.append(f"porod(a={a:.3f}, c={c:.3g})")
    if g.random() < p_term:
        xi, c = 10 ** g.uniform(*o["log10_length"]), 10 ** g.uniform(*o["log10_c"])
        prof += c * K.ornstein_zernike(q, xi=xi)
        parts.append(f"ornstein_zernike(xi={xi:.3f}, c={c:.3g})")
    if g.random() < p_term:
        a, c = 10 ** g.uniform(*o["log10_length"]), 10 ** g.uniform(*o["log10_c"])
        prof += c * K.debye_bueche(q, a=a)
        parts.append(f"debye_bueche(a={a:.3f}, c={c:.3g})")
    if g.random() < p_term:
        rg, c = 10 ** g.uniform(*o["log10_rg"]), 10 ** g.uniform(*o["log10_c"])
        prof += c * K.guinier(q, rg=rg)
        parts.append(f"guinier(Rg={rg:.3f}, c={c:.3g})")
    return prof, parts


def _add_original_diffuse(g, terms: Terms, i: int, q: np.ndarray, flags: dict) -> None:
    """The original generator's diffuse scattering: up to three groups, each its own term and label gate.

    An isotropic low-q group (p .3; each of Porod, OZ, Debye-Bueche and Guinier with p .5, summed;
    label: > 400 pixels above 10 counts), an anisotropic one (p .15; each term p .4; q scaled by
    ``sqrt(sin^2 + e^2 cos^2)`` around a common azimuth, e = 2 lognormal(0, .5), one e for the group
    where the original draws one per term; label: > 500 pixels above 20 counts) and a wide-angle rise
    ``c (1 - exp(-s^2 q^2))`` normalised to its maximum on the detector (p .2, c = 10^U(1, 3),
    s = 10^U(-2, 2.2) A; 1 % of images also an oval one). Amplitudes are counts per conceptual pixel.
    """
    o = ORIGINAL_DIFFUSE
    if g.random() < o["p_iso"]:
        prof, parts = _original_low_q_group(g, q, o["p_iso_term"], (-4.5, -1.8))
        if parts:
            terms.add(i, "low_q_group", is_sample=False, base=prof, info="low-q: " + " + ".join(parts))
            flags["diffuse_low"][i] = True
    if g.random() < o["p_aniso"]:
        chi0 = g.uniform(0.0, 2 * math.pi)
        ecc = 2.0 * g.lognormal(0.0, 0.5)
        prof, parts = _original_low_q_group(g, q, o["p_aniso_term"], (-3.8, -1.8))
        if parts:
            t = terms.add(i, "low_q_group", is_sample=False, base=prof, oval=(ecc, chi0),
                          info=f"low-q oval(ecc={ecc:.3f}, chi0={chi0:.3f}): " + " + ".join(parts))
            terms.gate[t] = o["aniso_gate"]
            flags["diffuse_low"][i] = True
    for p, oval in ((o["p_high"], False), (o["p_high_aniso"], True)):
        if g.random() < p:
            ecc_chi = (1.0 + 0.5 * g.lognormal(0.0, 0.25), g.uniform(0.0, 2 * math.pi)) if oval else None
            c, s = 10 ** g.uniform(*o["log10_c_high"]), 10 ** g.uniform(*o["log10_sigma_high"])
            prof = -np.expm1(-((s * q) ** 2))
            prof = c * prof / max(prof.max(), 1e-300)
            terms.add(i, "high_q", is_sample=False, base=prof, oval=ecc_chi, info=f"high_q(s={s:.4g}, c={c:.3g})")
            flags["diffuse_high"][i] = True


def draw_block(g: np.random.Generator, mix: Mix, n: int, n_q: int, *, glow: bool,
               first_of_run: np.ndarray | None = None, style: str = "ours") -> tuple[Terms, ImageExtras]:
    """Draw the components of ``n`` images of one run (host generator ``g``, run grid of ``n_q`` bins).

    ``first_of_run`` (bool (n,)) marks the run's first image, a silver-behenate standard when
    ``mix.standard_first``. ``style`` is the run's (``"original"`` runs draw the original generator's
    backgrounds: with probability ``mix.p_flat_background`` a level U(0, 2000) counts with a
    pixel-to-pixel sigma of U(.05, 1) x level, square and circular window glows with
    ``mix.p_window_scatter`` each (:mod:`xsgpu.synth.windows`), the original's diffuse tree
    (``mix.diffuse_tree``) and lattice q0, ``mix.lattice_q0``;
    ours draw 10^U(log10_background) and the window glow, and lattice q0 from U(0.012, 0.05)).
    Returns the terms and the per-image extras; the draw order is fixed, so the same generator state
    gives the same block.
    """
    q = np.arange(n_q) * Q_BIN
    terms = Terms(n_images=n, n_q=n_q)
    flags = {f: np.zeros(n, dtype=bool) for f in FLAGS}
    ckinds, cprob = mix.weights("component_weights", COMPONENT_KINDS)
    dkinds, dprob = mix.weights("diffuse_weights", DIFFUSE_KINDS)
    bg = np.zeros(n)
    glow_amp = np.zeros(n)
    sh = np.zeros(n)
    sv = np.zeros(n)
    zingers: list = []
    kinds = np.full(n, "sample", dtype=object)
    bg_sigma = np.zeros(n)
    windows: list = [[] for _ in range(n)]
    beam_scale = np.ones(n)
    blocked = np.ones(n, dtype=bool)
    okinds, oprob = mix.weights("not_sample_weights", IMAGE_KINDS[2:])
    first = np.zeros(n, dtype=bool) if first_of_run is None else np.asarray(first_of_run, dtype=bool)
    for i in range(n):
        special = (mix.standard_first and first[i]) or (mix.p_standard > 0 and g.random() < mix.p_standard)
        if special:
            kinds[i] = "standard"
        elif mix.p_not_sample > 0 and g.random() < mix.p_not_sample:
            kinds[i] = okinds[g.choice(len(okinds), p=oprob)]
        if kinds[i] != "sample":  # only the run's beamstop labels; zingers as on every frame
            if kinds[i] in ("standard", "particular"):
                _add_standard(g, terms, i, q, 1.0 if kinds[i] == "standard" else PARTICULAR_SCALE, kinds[i])
            beam_scale[i] = 0.0 if kinds[i] == "dark" else 1.0
            blocked[i] = kinds[i] != "direct"
            zingers.append(_zingers(g, mix))
            continue
        if g.random() < mix.p_diffuse:
            if style == "original" and mix.diffuse_tree == "original":
                _add_original_diffuse(g, terms, i, q, flags)
            else:
                _add_diffuse(g, mix, terms, i, dkinds[g.choice(len(dkinds), p=dprob)], q, flags)
        if g.random() < mix.p_sample:
            for _ in range(1 + int(g.poisson(mix.extra_components))):
                kind = ckinds[g.choice(len(ckinds), p=cprob)]
                amp = 10 ** (g.uniform(*mix.log10_amplitude) + mix.amplitude_offsets.get(kind, 0.0))
                _add_component(g, mix, terms, i, kind, amp, q, flags, style)
        if g.random() < mix.p_background:
            if style == "original":
                if g.random() < mix.p_flat_background:
                    bg[i] = g.uniform(*mix.flat_background)
                    bg_sigma[i] = bg[i] * g.uniform(0.05, 1.0)
                if mix.p_window_scatter > 0:
                    windows[i] = draw_windows(g, {"square": mix.p_window_scatter, "circle": mix.p_window_scatter})
            else:
                bg[i] = _loguniform(g, *mix.log10_background)
                if glow:
                    glow_amp[i] = bg[i] * 10 ** g.uniform(-1.0, 1.2)
        if g.random() < mix.p_defects:
            a = _loguniform(g, 1.0, 4.0)
            r = g.random()
            sh[i] = a if r < 0.7 else 0.0
            sv[i] = a if r > 0.3 else 0.0
        zingers.append(_zingers(g, mix))
    flags["sample"] = np.zeros(n, dtype=bool)
    for i, is_sample in zip(terms.img, terms.is_sample):
        flags["sample"][i] |= is_sample
    return terms, ImageExtras(bg_level=bg, glow_amp=glow_amp, streak_h=sh, streak_v=sv, zingers=zingers, flags=flags,
                              image_kind=kinds, beam_scale=beam_scale, blocked=blocked, bg_sigma=bg_sigma,
                              windows=windows)


def _zingers(g, mix: Mix) -> list:
    if g.random() < mix.p_zingers:
        k = int(g.integers(1, 6))
        return [(float(u), float(v)) for u, v in zip(g.random(k), 10 ** g.uniform(3.5, 5.5, k))]
    return []
