"""Tags (physical summaries of each generated image) and the 17 labels derived from them.

Label rules (DOMAIN.md thresholds; counts are per conceptual pixel):

=====================  =====================================================================
BCC, FCC               the image holds a bcc / fcc superlattice powder pattern
Beam Off Image         the run's beam centre is off the detector (no beamstop then)
Circular / Linear /    the run's beamstop kind
Wedge beamstop
Diffuse low-q          a low-q diffuse term (Porod, OZ, Debye-Bueche, Guinier) with more than
                       400 detector pixels above 10 counts
Diffuse high-q         a wide-angle diffuse term with more than 400 pixels above 10 counts
Halo                   a halo component
High background        background max > 1e4 or mean > 1e3 counts
Higher orders          a multi-ring generator (series, lattice, ad-hoc, textured rings), even when
                       only one order is visible (the original labels' quirk)
Many rings             more than 4 rings on the detector whose peak exceeds
                       max(3, 3 sqrt(background mean)) counts
Polycrystalline        textured speckled rings
Ring                   any Debye-Scherrer ring component
Strong scattering      sample term (the sample components, not the diffuse term) max > 1000
                       or mean > 5 counts
Structure factor       NP lattice, ad-hoc rings or textured speckled rings
Weak scattering        a sample term whose max is < 10 counts or below the background mean
=====================  =====================================================================

All tags are computed on the run's 1-D q grid, weighted by the number of conceptual (256 x 256)
detector pixels per q bin, so they do not depend on the output size. The sample-term maximum uses
each term's azimuthal maximum (orientation peak), its mean the azimuthal mean (1).
"""
from __future__ import annotations

import numpy as np

from xsgpu.attributes import SLUGS
from xsgpu.synth.components import Terms
from xsgpu.synth.geometry import CONCEPT_SIZE, make_pixel_maps

__all__ = ["THRESHOLDS", "compute_tags", "labels_from_tags", "glow_stats"]

THRESHOLDS = {
    "strong_max": 1000.0, "strong_mean": 5.0, "weak_max": 10.0, "diffuse_counts": 10.0,
    "diffuse_pixels": 400.0, "high_bg_max": 1e4, "high_bg_mean": 1e3, "many_rings": 4,
    "ring_min_counts": 3.0, "ring_noise_sigmas": 3.0,
}


def glow_stats(run) -> tuple[float, float]:
    """Mean and max over the conceptual detector of the run's unit window glow (0, 0 without glow)."""
    if run.glow_width is None:
        return 0.0, 0.0
    maps = make_pixel_maps(run.geometry, CONCEPT_SIZE, np)
    glow = np.exp(-0.5 * (maps.r.astype(np.float64) / run.glow_width) ** 2)
    return float(glow.mean()), float(glow.max())


def compute_tags(terms: Terms, profiles: np.ndarray, extras, run, hist: np.ndarray) -> dict[str, np.ndarray]:
    """Physical tags of a block of images of one run.

    Parameters
    ----------
    terms : Terms
    profiles : float64 (T, Q)
        Conceptual radial profiles of the terms (``terms.profiles()``).
    extras : ImageExtras
    run : RunSpec
    hist : float64 (Q,)
        Conceptual detector pixels per q bin.

    Returns
    -------
    dict of (n,) arrays: sample_max, sample_mean, diffuse_low_px, diffuse_high_px, bg_mean, bg_max,
    n_rings, components (str: the drawn components and their parameters) and the generator flags
    (``flag_<name>``).
    """
    n = terms.n_images
    n_pix = float(hist.sum())
    visible = hist > 0
    img = np.asarray(terms.img, dtype=np.int64)
    peak_ang = np.asarray(terms.peak_ang)
    smax_prof = np.zeros((n, profiles.shape[1]))
    mean_prof = np.zeros_like(smax_prof)
    is_sample = np.asarray(terms.is_sample, dtype=bool)
    if is_sample.any():
        np.add.at(smax_prof, img[is_sample], profiles[is_sample] * peak_ang[is_sample, None])
        np.add.at(mean_prof, img[is_sample], profiles[is_sample])
    sample_max = np.where(visible[None, :], smax_prof, 0.0).max(axis=1) if n else np.zeros(0)
    sample_mean = mean_prof @ hist / n_pix
    low_px = np.zeros(n)
    high_px = np.zeros(n)
    for t, kind in enumerate(terms.kind):
        if not terms.is_sample[t] and kind not in ("standard", "particular"):
            px = float(hist[profiles[t] > THRESHOLDS["diffuse_counts"]].sum())
            if kind == "high_q":
                high_px[img[t]] += px
            else:
                low_px[img[t]] += px
    g_mean, g_max = glow_stats(run)
    bg_mean = extras.bg_level + extras.glow_amp * g_mean
    bg_max = extras.bg_level + extras.glow_amp * g_max
    qmin, qmax = run.geometry.q_range()
    n_rings = np.zeros(n, dtype=np.int64)
    if terms.ring_img:
        r_img = np.asarray(terms.ring_img)
        r_q = np.asarray(terms.ring_q)
        thr = np.maximum(THRESHOLDS["ring_min_counts"], THRESHOLDS["ring_noise_sigmas"] * np.sqrt(bg_mean))
        ok = (np.asarray(terms.ring_height) > thr[r_img]) & (r_q >= qmin) & (r_q <= qmax)
        n_rings = np.bincount(r_img[ok], minlength=n)
    tags = {
        "sample_max": sample_max, "sample_mean": sample_mean, "diffuse_low_px": low_px,
        "diffuse_high_px": high_px, "bg_mean": bg_mean, "bg_max": bg_max, "n_rings": n_rings,
    }
    tags["components"] = np.asarray(terms.describe(), dtype=object)
    for name, v in extras.flags.items():
        tags[f"flag_{name}"] = v.copy()
    return tags


def labels_from_tags(tags: dict[str, np.ndarray], beamstop: str) -> np.ndarray:
    """Apply the label rules to the tags of one run's images; returns bool (n, 17) in canonical order."""
    T = THRESHOLDS
    n = len(tags["sample_max"])
    f = {k[5:]: v for k, v in tags.items() if k.startswith("flag_")}
    beam = {k: np.full(n, beamstop == k) for k in ("none", "linear", "circular", "wedge")}
    rules = {
        "bcc": f["bcc"],
        "beam_off": beam["none"],
        "circular_beamstop": beam["circular"],
        "diffuse_high_q": f["diffuse_high"] & (tags["diffuse_high_px"] > T["diffuse_pixels"]),
        "diffuse_low_q": f["diffuse_low"] & (tags["diffuse_low_px"] > T["diffuse_pixels"]),
        "fcc": f["fcc"],
        "halo": f["halo"],
        "high_background": (tags["bg_max"] > T["high_bg_max"]) | (tags["bg_mean"] > T["high_bg_mean"]),
        "higher_orders": f["multi_ring"],
        "linear_beamstop": beam["linear"],
        "many_rings": tags["n_rings"] > T["many_rings"],
        "polycrystalline": f["poly"],
        "ring": f["ring"],
        "strong_scattering": (tags["sample_max"] > T["strong_max"]) | (tags["sample_mean"] > T["strong_mean"]),
        "structure_factor": f["structure_factor"],
        "weak_scattering": f["sample"] & ((tags["sample_max"] < T["weak_max"])
                                          | (tags["sample_max"] < tags["bg_mean"])),
        "wedge_beamstop": beam["wedge"],
    }
    return np.stack([np.asarray(rules[s], dtype=bool) for s in SLUGS], axis=1)
