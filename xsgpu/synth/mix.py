"""The mix: probabilities and parameter ranges of the generator, in one frozen, validated object.

The defaults follow DOMAIN.md "Runs and images" (diffuse p .4, sample p .7 with 1 + Poisson(.3)
components, background p .4, defects p .1, zingers on 5 % of images) and, since issue 14, the original
generator's run geometry, beamstops, frame kinds, amplitude ranges and backgrounds (75 % of runs drawn
its way). The derived label frequencies lie within +-33 % (relative) of DOMAIN.md's estimates
(``xsgpu.attributes.DOMAIN_FREQUENCIES``) over 20k images, except Beam Off Image, which follows the
original's odds (1/6 of runs); docs/synth.md has the measured table. ``PRE_ISSUE14_MIX`` keeps the
earlier run and image distributions (our geometry and beamstops, sample frames only, the narrower
amplitudes) for before/after figures; kernels and label rules are today's in both.

Examples
--------
>>> from xsgpu.synth.mix import DEFAULT_MIX, Mix
>>> DEFAULT_MIX.p_sample
0.7
>>> Mix(p_sample=1.5)
Traceback (most recent call last):
...
ValueError: The 'p_sample' parameter of Mix must be a probability in [0, 1]. Got 1.5 instead.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

__all__ = ["Mix", "DEFAULT_MIX", "PRE_ISSUE14_MIX", "COMPONENT_KINDS", "DIFFUSE_KINDS", "RUN_BEAMSTOPS"]

#: sample-scattering component kinds (what each sets is in docs/synth.md)
COMPONENT_KINDS = ("ring", "series", "bcc", "fcc", "hexagonal", "lamellar", "adhoc", "poly", "halo", "sphere",
                   "meso")
DIFFUSE_KINDS = ("porod", "ornstein_zernike", "debye_bueche", "guinier", "high_q")
RUN_BEAMSTOPS = ("none", "linear", "circular", "wedge")
NOT_SAMPLE_KINDS = ("particular", "dark", "direct")


@dataclass(frozen=True)
class Mix:
    """Probabilities and ranges of the synthetic mix (per run and per image).

    Attributes
    ----------
    run_beamstops : dict
        Share of runs per beamstop kind; ``"none"`` is a beam-off run. Runs are assigned by a
        low-discrepancy sequence over the run index, so shares hold closely even for few runs.
    p_original_runs : float
        Share of runs drawn like the original generator's experiment (corner beam, small blurred
        beamstops; :mod:`xsgpu.synth.runs`); the others are drawn our way.
    p_gaps : float
        Share of runs with detector module gaps (masked).
    p_glow : float
        Share of runs whose window glows (adds to the background of their images).
    p_standard : float
        Per-image probability of a silver-behenate standard (a calibrant frame; run labels only).
    standard_first : bool
        The first image of every run is a standard (as in the original generator).
    p_not_sample : float
        Per-image probability (of the non-standard images) of a frame that is not a sample:
        ``not_sample_weights`` picks a "particular" test substance, a dark or a direct-beam frame.
    not_sample_weights : dict
        Relative weights of ``particular`` (rings at 1/40 of AgBH's q), ``dark`` (no beam, only dark
        counts) and ``direct`` (the beam without the beamstop).
    p_diffuse, p_sample, p_background, p_defects, p_zingers : float
        Per-image probabilities of a diffuse term, sample scattering, a background, parasitic
        streaks, zingers.
    extra_components : float
        Mean of the Poisson number of extra sample components (1 + Poisson(.3)).
    component_weights : dict
        Relative weights of the sample component kinds.
    amplitude_offsets : dict
        log10 offset of each kind's peak counts (broad kinds are dimmer at the same peak so that
        their mean does not make every image "Strong").
    diffuse_weights : dict
        Relative weights of the diffuse kinds.
    p_anisotropic_diffuse, p_oriented_ring, p_oriented_halo, p_speckle_halo, p_distorted : float
        Variant probabilities.
    log10_amplitude : (float, float)
        Range of log10 of a sample component's peak counts (uniform).
    log10_diffuse : (float, float)
        Range of log10 of the diffuse term's counts at q = 0.01 1/A.
    log10_background : (float, float)
        Range of log10 of the background level (counts per pixel) in our runs.
    p_flat_background, flat_background : float, (float, float)
        Original-style runs: share of the background draws that are a flat level, uniform in
        ``flat_background`` counts, with a pixel-to-pixel Gaussian sigma of U(.05, 1) x the level.
    p_window_scatter : float
        Original-style runs: probability, per background draw, of each of a square and a circular
        window glow (a blurred square or disc of 10^U(-1, 3) counts; :mod:`xsgpu.synth.windows`).
    coherent_halo_gain : float
        Factor on the peak counts of coherent (speckled) halos (the original's speckle field has
        mean 10).
    diffuse_tree : {"original", "ours"}
        Original-style runs: ``"original"`` draws the original generator's diffuse scattering (up to
        three groups per image: isotropic low-q, anisotropic low-q, wide-angle, each a sum of its
        terms, at its amplitudes, 10^2..10^6 counts near the beam; ``components.ORIGINAL_DIFFUSE``);
        ``"ours"`` draws one term of ``diffuse_weights`` at ``log10_diffuse``, as our runs do.
    lattice_q0 : (float, float, float, float)
        Original-style runs: the first peak q0 (1/A) of a BCC/FCC/hexagonal/lamellar lattice is
        clip(N(mean, sigma), low, high), given as (mean, sigma, low, high): the original's
        (0.06, 0.04, 0.008, 0.05) puts 60 % of its lattices at q0 = 0.05. Our runs draw U(0.012, 0.05).
    """

    run_beamstops: dict = field(default_factory=lambda: {"none": 1 / 6, "linear": 5 / 18, "circular": 5 / 18,
                                                         "wedge": 5 / 18})
    p_original_runs: float = 0.75
    p_gaps: float = 0.1
    p_glow: float = 0.5
    p_standard: float = 0.01
    standard_first: bool = True
    p_not_sample: float = 0.05
    not_sample_weights: dict = field(default_factory=lambda: {"particular": 0.4, "dark": 0.3, "direct": 0.3})
    p_diffuse: float = 0.4
    p_sample: float = 0.7
    p_background: float = 0.4
    p_defects: float = 0.1
    p_zingers: float = 0.05
    extra_components: float = 0.3
    component_weights: dict = field(default_factory=lambda: {
        "ring": 0.05, "series": 0.09, "bcc": 0.05, "fcc": 0.045, "hexagonal": 0.042, "lamellar": 0.042,
        "adhoc": 0.18, "poly": 0.15, "halo": 0.25, "sphere": 0.18, "meso": 0.09,
    })
    amplitude_offsets: dict = field(default_factory=lambda: {
        "ring": 0.0, "series": 0.0, "bcc": 0.5, "fcc": 0.5, "hexagonal": 0.5, "lamellar": 0.5,
        "adhoc": 0.75, "poly": 1.5, "halo": 0.0, "sphere": -0.45, "meso": 0.0,
    })
    diffuse_weights: dict = field(default_factory=lambda: {
        "porod": 0.2, "ornstein_zernike": 0.2, "debye_bueche": 0.2, "guinier": 0.2, "high_q": 0.34,
    })
    p_anisotropic_diffuse: float = 0.3
    p_oriented_ring: float = 0.4
    p_oriented_halo: float = 0.3
    p_speckle_halo: float = 0.3
    p_distorted: float = 0.2
    log10_amplitude: tuple = (-0.5, 4.0)
    log10_diffuse: tuple = (-2.5, 1.0)
    log10_background: tuple = (-1.0, 3.8)
    p_flat_background: float = 0.5
    flat_background: tuple = (0.0, 2000.0)
    p_window_scatter: float = 0.1
    coherent_halo_gain: float = 10.0
    lattice_q0: tuple = (0.06, 0.04, 0.008, 0.05)
    diffuse_tree: str = "original"

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name.startswith("p_") and not (isinstance(v, (int, float)) and 0.0 <= v <= 1.0):
                raise ValueError(f"The {f.name!r} parameter of Mix must be a probability in [0, 1]. Got {v!r} instead.")
        bad = {k: v for k, v in self.amplitude_offsets.items() if k not in COMPONENT_KINDS or not math.isfinite(v)}
        if bad:
            raise ValueError(f"The 'amplitude_offsets' parameter of Mix must map kinds in {list(COMPONENT_KINDS)} "
                             f"to finite numbers. Got {bad!r} instead.")
        for name, keys in (("run_beamstops", RUN_BEAMSTOPS), ("component_weights", COMPONENT_KINDS),
                           ("diffuse_weights", DIFFUSE_KINDS), ("not_sample_weights", NOT_SAMPLE_KINDS)):
            d = getattr(self, name)
            unknown = set(d) - set(keys)
            if unknown:
                raise ValueError(f"The {name!r} parameter of Mix has unknown keys {sorted(unknown)}; "
                                 f"valid keys are {list(keys)}.")
            vals = list(d.values())
            if not vals or any(not math.isfinite(v) or v < 0 for v in vals) or sum(vals) <= 0:
                raise ValueError(f"The {name!r} parameter of Mix must hold non-negative weights with a positive "
                                 f"sum. Got {d!r} instead.")
        if not (0 <= self.extra_components < 20):
            raise ValueError(f"The 'extra_components' parameter of Mix must be in [0, 20). "
                             f"Got {self.extra_components!r} instead.")
        for name in ("log10_amplitude", "log10_diffuse", "log10_background", "flat_background"):
            lo, hi = getattr(self, name)
            if not lo <= hi:
                raise ValueError(f"The {name!r} parameter of Mix must be a (low, high) pair with low <= high. "
                                 f"Got {(lo, hi)!r} instead.")

        if self.diffuse_tree not in ("original", "ours"):
            raise ValueError(f"The 'diffuse_tree' parameter of Mix must be 'original' or 'ours'. "
                             f"Got {self.diffuse_tree!r} instead.")
        mean, sigma, low, high = self.lattice_q0
        if not (sigma >= 0 and 0 < low <= high):
            raise ValueError(f"The 'lattice_q0' parameter of Mix must be (mean, sigma, low, high) with sigma >= 0 "
                             f"and 0 < low <= high. Got {self.lattice_q0!r} instead.")

    def weights(self, name: str, keys: tuple) -> tuple[tuple, list]:
        """Normalised (keys, probabilities) of one weight dict, in canonical key order."""
        d = getattr(self, name)
        ks = tuple(k for k in keys if d.get(k, 0) > 0)
        total = sum(d[k] for k in ks)
        return ks, [d[k] / total for k in ks]

    def to_dict(self) -> dict:
        """JSON-able form (stored in the run manifest)."""
        return dataclasses.asdict(self)


DEFAULT_MIX = Mix()

#: the mix before issue 14 (centred beams, large opaque beamstops, sample images only); for before/after figures
PRE_ISSUE14_MIX = Mix(
    run_beamstops={"none": 0.12, "linear": 0.24, "circular": 0.30, "wedge": 0.34}, p_original_runs=0.0,
    p_standard=0.0, standard_first=False, p_not_sample=0.0, log10_amplitude=(1.7, 3.1), coherent_halo_gain=1.0,
    component_weights={"ring": 0.05, "series": 0.09, "bcc": 0.042, "fcc": 0.034, "hexagonal": 0.035,
                       "lamellar": 0.035, "adhoc": 0.18, "poly": 0.07, "halo": 0.19, "sphere": 0.274},
    amplitude_offsets={"ring": -0.3, "series": 0.2, "bcc": 0.2, "fcc": 0.2, "hexagonal": 0.2, "lamellar": 0.2,
                       "adhoc": -0.3, "poly": 0.0, "halo": -0.75, "sphere": -0.55})
