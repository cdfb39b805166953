"""Per-run specification: beam centre, beamstop, direct beam, window glow or obstruction, module gaps, split.

A run is a block of ``images_per_run`` consecutive sample ids (run ``k`` holds ids
``k*images_per_run .. (k+1)*images_per_run - 1``). Its parameters come from
``SeedSequence(seed, spawn_key=(0, k))``, so they do not depend on how the ids are partitioned.
The beamstop kind and the train/val/test split are assigned by two independent Weyl sequences over
``k`` (multipliers 1/phi and sqrt 2 - 1, offsets from the seed), which keeps the run shares close to
their targets even for a handful of runs (a random draw per run would swing by +-30 % at 15 runs).
A third Weyl sequence (multiplier sqrt 3 - 1) picks the run's style: ``"original"`` (a share
``Mix.p_original_runs``: the original generator's Conceptual256 experiment, beam centre near the
lower-left corner, x0 in [-0.05, 0.25] x 256 (beam off when x0 < 0), y0 in [0.7, 0.95] x 256, direct
beam FWHM U(4, 10) x U(2, 5) px, small Gaussian-blurred beamstops, a window obstruction in 5 % of
runs) or ``"ours"`` (beam anywhere at least 40 px inside, large opaque beamstops, glow and gaps).

Examples
--------
>>> from xsgpu.synth.runs import make_run_spec
>>> spec = make_run_spec(0, seed=0)
>>> spec.beamstop.kind in ("none", "linear", "circular", "wedge"), spec.split in ("train", "val", "test")
(True, True)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from xsgpu.synth.beamstops import BeamstopSpec
from xsgpu.synth.geometry import CONCEPT_SIZE, RunGeometry
from xsgpu.synth.mix import DEFAULT_MIX, RUN_BEAMSTOPS, Mix

__all__ = ["RunSpec", "make_run_spec", "SPLIT_SHARES"]

SPLIT_SHARES = (("train", 0.8), ("val", 0.1), ("test", 0.1))
_PHI_INV = (math.sqrt(5.0) - 1.0) / 2.0
_SQRT2_FRAC = math.sqrt(2.0) - 1.0
_SQRT3_FRAC = math.sqrt(3.0) - 1.0
#: share of the original generator's runs with a window obstruction (a dark ring beyond q0)
P_WINDOW_OBSTRUCTION = 0.05


@dataclass(frozen=True)
class RunSpec:
    """Everything the images of one run share.

    Attributes
    ----------
    index : int
        Run number k.
    geometry : RunGeometry
    beamstop : BeamstopSpec
        ``kind == "none"`` for a beam-off run.
    glow_width : float or None
        Width (conceptual px) of the window glow around the beam, None if the window does not glow.
    gap_row, gap_col : float or None
        Module-gap positions (conceptual px), None for no gap.
    streak_width : float
        Width of the parasitic slit streaks (conceptual px).
    split : {"train", "val", "test"}
    style : {"ours", "original"}
        How the run was drawn (see the module docstring).
    beam_fwhm : (float, float)
        FWHM of the direct beam along x and y (conceptual px).
    obstruction : (float, float) or None
        Window obstruction ``(q0, dq)``: transmission ``1 - 1 / (1 + exp(-(q - q0) / dq))``.
    """

    index: int
    geometry: RunGeometry
    beamstop: BeamstopSpec
    glow_width: float | None
    gap_row: float | None
    gap_col: float | None
    streak_width: float
    split: str
    style: str = "ours"
    beam_fwhm: tuple = (8.0, 2.0)
    obstruction: tuple | None = None

    @property
    def run_id(self) -> str:
        return f"run{self.index:06d}"

    @property
    def beam_off(self) -> bool:
        return self.beamstop.kind == "none"


def _offsets(seed: int) -> tuple[float, float, float]:
    a, b = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2,))).random(2)
    c = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(4,))).random()
    return float(a), float(b), float(c)


def _pick(u: float, shares: list[tuple[str, float]]) -> str:
    total = sum(s for _, s in shares)
    acc = 0.0
    for name, s in shares:
        acc += s / total
        if u < acc:
            return name
    return shares[-1][0]


def make_run_spec(index: int, *, seed: int, mix: Mix = DEFAULT_MIX) -> RunSpec:
    """Draw the parameters of run ``index`` (deterministic in ``seed`` and ``index``)."""
    off_bs, off_split, off_style = _offsets(seed)
    kind = _pick((off_bs + index * _PHI_INV) % 1.0, [(k, mix.run_beamstops.get(k, 0.0)) for k in RUN_BEAMSTOPS])
    split = _pick((off_split + index * _SQRT2_FRAC) % 1.0, list(SPLIT_SHARES))
    g = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, index)))
    if (off_style + index * _SQRT3_FRAC) % 1.0 < mix.p_original_runs:
        return _original_run(index, kind, split, g)
    if kind == "none":  # beam centre outside the detector, beyond one edge
        side = int(g.integers(4))
        along = g.uniform(0.1, 0.9) * CONCEPT_SIZE
        beyond = g.uniform(15.0, 100.0)
        pos = (-beyond, CONCEPT_SIZE + beyond)[side % 2]
        x0, y0 = (pos, along) if side < 2 else (along, pos)
    else:
        x0, y0 = g.uniform(40.0, CONCEPT_SIZE - 40.0, size=2)
    direction = float(g.uniform(-math.pi, math.pi))
    t_in = float(10 ** g.uniform(-5.0, -3.0))
    if kind == "linear":
        bs = BeamstopSpec("linear", direction=direction, width=float(g.uniform(18.0, 30.0)), t_in=t_in)
    elif kind == "circular":
        bs = BeamstopSpec("circular", direction=direction, width=float(g.uniform(12.0, 24.0)), t_in=t_in)
    elif kind == "wedge":
        half = math.radians(float(g.uniform(6.0, 15.0)))
        # apex far enough behind the beam that the wedge is >= 2 x 10 px wide at the beam (covers it)
        bs = BeamstopSpec("wedge", direction=direction, width=float(g.uniform(1.0, 1.6)) * 10.0 / math.tan(half),
                          half_angle=half, t_in=t_in)
    else:
        bs = BeamstopSpec("none")
    glow = float(g.uniform(30.0, 120.0)) if g.random() < mix.p_glow else None
    gap_row = gap_col = None
    if g.random() < mix.p_gaps:
        if g.random() < 0.7:
            gap_row = float(g.uniform(0.0, CONCEPT_SIZE - 39.0))
        else:
            gap_col = float(g.uniform(0.0, CONCEPT_SIZE - 16.0))
    return RunSpec(index=index, geometry=RunGeometry(float(x0), float(y0)), beamstop=bs, glow_width=glow,
                   gap_row=gap_row, gap_col=gap_col, streak_width=float(g.uniform(1.0, 3.0)), split=split)


def _original_run(index: int, kind: str, split: str, g: np.random.Generator) -> RunSpec:
    """A run drawn like the original generator's Conceptual256 experiment (docs/synth.md, "Run styles")."""
    w = float(CONCEPT_SIZE)
    # beam off exactly when x0 < 0 (the original's odds for that are 1/6; here the kind decides)
    x0 = g.uniform(-0.05, 0.0) * w if kind == "none" else g.uniform(0.0, 0.25) * w
    y0 = g.uniform(0.7, 0.95) * w
    fwhm = (float(g.uniform(4.0, 10.0)), float(g.uniform(2.0, 5.0)))
    # directions: our azimuth (0 = up); the original's bars and arms point into the half towards
    # the near (bottom) edge, chi_orig in [-90, 90] deg from "down"
    direction = math.pi - math.radians(float(g.uniform(-90.0, 90.0)))
    if kind == "linear":
        bs = BeamstopSpec("linear", direction=math.pi, width=2.0 * float(g.uniform(8.0, 30.0)) / 4.0,
                          back=float(g.uniform(8.0, 100.0)) / 4.0, blur=float(g.uniform(2.0, 10.0)), style="soft")
    elif kind == "circular":
        bs = BeamstopSpec("circular", direction=direction, width=float(g.uniform(8.0, 50.0)) / 4.0,
                          blur=float(g.uniform(1.0, 5.0)), style="soft")
    elif kind == "wedge":
        bs = BeamstopSpec("wedge", direction=direction, width=float(g.uniform(10.0, 50.0)),
                          half_angle=math.radians(float(g.uniform(10.0, 20.0))), blur=float(g.uniform(1.0, 5.0)),
                          style="soft")
    else:
        bs = BeamstopSpec("none")
    obstruction = None
    if g.random() < P_WINDOW_OBSTRUCTION:
        obstruction = (float(g.uniform(0.04, 0.06)), float(g.uniform(1e-4, 1e-2)))
    return RunSpec(index=index, geometry=RunGeometry(float(x0), float(y0)), beamstop=bs, glow_width=None,
                   gap_row=None, gap_col=None, streak_width=float(g.uniform(1.0, 3.0)), split=split,
                   style="original", beam_fwhm=fwhm, obstruction=obstruction)
