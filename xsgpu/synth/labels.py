"""Tags (physical summaries of each generated image) and the 17 labels derived from them.

Label rules (DOMAIN.md thresholds, and the original generator's rules where ours differed; counts are
per conceptual pixel). "Visible" is the original's gate: a sample (diffuse) term sets its labels only
when its maximum exceeds 1 % of the background mean.

=====================  =====================================================================
BCC, FCC               a visible bcc / fcc superlattice powder pattern
Beam Off Image         the run's beam centre is off the detector (no beamstop then)
Circular / Linear /    the run's beamstop kind
Wedge beamstop
Diffuse low-q          a visible low-q diffuse term (Porod, OZ, Debye-Bueche, Guinier) with more
                       than 400 detector pixels above 10 counts (the original's anisotropic
                       group: 500 pixels above 20 counts)
Diffuse high-q         a visible wide-angle diffuse term with more than 400 pixels above 10 counts
Halo                   a visible halo component
High background        background max > 1e4 or mean > 1e3 counts (incl. its pixel noise and
                       window glows)
Higher orders          a visible multi-ring generator (series, lattice, ad-hoc, speckled rings),
                       even when only one order is visible (the original labels' quirk)
Many rings             a visible multi-ring component with more than 4 orders, counted as the
                       original generator does: ad-hoc and speckled rings all their drawn rings;
                       a series its orders on the detector damped by less than 100x; a lattice
                       its peaks on the detector above 0.2 % of the first
Polycrystalline        visible speckled rings of textured grains (eta <= 0.75; sharper grains are
                       "large grains", no label)
Ring                   any visible Debye-Scherrer ring component
Strong scattering      visible sample term (the sample components, not the diffuse term) with max
                       > 1000 or mean > 5 counts
Structure factor       visible NP lattice, ad-hoc rings or speckled rings
Weak scattering        visible sample term, not Strong, whose max is < 10 counts or below the
                       background mean
Calibrant, dark and    only the run's beamstop label (Beam Off Image or one of the three)
direct-beam frames
=====================  =====================================================================

All tags are computed on the run's 1-D q grid, weighted by the number of conceptual (256 x 256)
detector pixels per q bin, so they do not depend on the output size. The sample-term maximum uses
each term's azimuthal maximum (orientation peak), its mean the azimuthal mean (1).
"""
from __future__ import annotations

import numpy as np

from xsgpu.attributes import SLUGS
from xsgpu.synth import kernels as K
from xsgpu.synth.components import Terms
from xsgpu.synth.geometry import CONCEPT_SIZE, chi_grid, make_pixel_maps
from xsgpu.synth.windows import window_stats

__all__ = ["THRESHOLDS", "compute_tags", "labels_from_tags", "glow_stats"]

THRESHOLDS = {
    "strong_max": 1000.0, "strong_mean": 5.0, "weak_max": 10.0, "diffuse_counts": 10.0,
    "diffuse_pixels": 400.0, "high_bg_max": 1e4, "high_bg_mean": 1e3, "many_rings": 4,
    "ring_min_counts": 3.0, "ring_noise_sigmas": 3.0, "visible_fraction": 0.01,
}


_CHI = chi_grid()


def _phi(z):
    from scipy.special import ndtr

    return ndtr(z)


def _pdf(z):
    return np.exp(-0.5 * np.minimum(z, 50.0) ** 2) / np.sqrt(2 * np.pi)


def glow_stats(run) -> tuple[float, float]:
    """Mean and max over the conceptual detector of the run's unit window glow (0, 0 without glow)."""
    if run.glow_width is None:
        return 0.0, 0.0
    maps = make_pixel_maps(run.geometry, CONCEPT_SIZE, np)
    glow = np.exp(-0.5 * (maps.r.astype(np.float64) / run.glow_width) ** 2)
    return float(glow.mean()), float(glow.max())


def _window_stats(extras, run) -> np.ndarray:
    """(n, 2): mean and max over the conceptual detector of each image's window glows."""
    out = np.zeros((len(extras.bg_level), 2))
    if any(extras.windows):
        maps = make_pixel_maps(run.geometry, CONCEPT_SIZE, np)
        for i, wins in enumerate(extras.windows):
            out[i] = window_stats(wins, maps)
    return out


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
        peak_prof = profiles * peak_ang[:, None]
        for t, peak in terms.peak_profile.items():  # an azimuthal maximum that depends on q
            peak_prof[t] = peak
        np.add.at(smax_prof, img[is_sample], peak_prof[is_sample])
        np.add.at(mean_prof, img[is_sample], profiles[is_sample])
    sample_max = np.where(visible[None, :], smax_prof, 0.0).max(axis=1) if n else np.zeros(0)
    sample_mean = mean_prof @ hist / n_pix
    low_px = np.zeros(n)
    high_px = np.zeros(n)
    low_ok = np.zeros(n, dtype=bool)
    high_ok = np.zeros(n, dtype=bool)
    diffuse_prof = np.zeros((n, profiles.shape[1]))
    default_gate = (THRESHOLDS["diffuse_counts"], THRESHOLDS["diffuse_pixels"])
    for t, kind in enumerate(terms.kind):
        if not terms.is_sample[t] and kind not in ("standard", "particular"):
            counts, pixels = terms.gate.get(t, default_gate)
            px = float(hist[profiles[t] > counts].sum())
            if t in terms.oval:  # q scaled by f(chi): the area inside a q contour is the disc's x mean(f^-2)
                px *= float(np.mean(K.oval_factor(_CHI, ecc=terms.oval[t][0], chi0=terms.oval[t][1]) ** -2.0))
            diffuse_prof[img[t]] += profiles[t]
            if kind == "high_q":
                high_px[img[t]] += px
                high_ok[img[t]] |= px > pixels
            else:
                low_px[img[t]] += px
                low_ok[img[t]] |= px > pixels
    diffuse_max = np.where(visible[None, :], diffuse_prof, 0.0).max(axis=1) if n else np.zeros(0)
    g_mean, g_max = glow_stats(run)
    level = extras.bg_level
    sigma = getattr(extras, "bg_sigma", None)
    sigma = np.zeros(n) if sigma is None else np.asarray(sigma, dtype=np.float64)
    # a level with Gaussian pixel noise, clipped at 0: E[max(0, X)]; its max over 65,536 pixels ~ +4.4 sigma
    z = np.where(sigma > 0, level / np.maximum(sigma, 1e-12), np.inf)
    flat_mean = np.where(sigma > 0, level * _phi(z) + sigma * _pdf(z), level)
    win = _window_stats(extras, run)
    bg_mean = flat_mean + extras.glow_amp * g_mean + win[:, 0]
    bg_max = level + 4.4 * sigma + extras.glow_amp * g_max + win[:, 1]
    qmin, qmax = run.geometry.q_range()
    n_orders = np.zeros(n, dtype=np.int64)
    for t, (q_o, rel, thr) in terms.orders.items():
        k = int(((rel > thr) & (q_o <= qmax)).sum()) if thr > 0 else len(rel)
        n_orders[img[t]] = max(n_orders[img[t]], k)
    n_rings = np.zeros(n, dtype=np.int64)
    if terms.ring_img:
        r_img = np.asarray(terms.ring_img)
        r_q = np.asarray(terms.ring_q)
        thr = np.maximum(THRESHOLDS["ring_min_counts"], THRESHOLDS["ring_noise_sigmas"] * np.sqrt(bg_mean))
        ok = (np.asarray(terms.ring_height) > thr[r_img]) & (r_q >= qmin) & (r_q <= qmax)
        n_rings = np.bincount(r_img[ok], minlength=n)
    tags = {
        "sample_max": sample_max, "sample_mean": sample_mean, "diffuse_low_px": low_px,
        "diffuse_high_px": high_px, "diffuse_low_ok": low_ok, "diffuse_high_ok": high_ok,
        "diffuse_max": diffuse_max, "bg_mean": bg_mean, "bg_max": bg_max,
        "n_rings": n_rings, "n_orders": n_orders,
        "n_windows": np.asarray([len(w) for w in extras.windows], dtype=np.int64),
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
    seen = f["sample"] & (tags["sample_max"] > T["visible_fraction"] * tags["bg_mean"])
    seen_diffuse = tags["diffuse_max"] > T["visible_fraction"] * tags["bg_mean"]
    strong = seen & ((tags["sample_max"] > T["strong_max"]) | (tags["sample_mean"] > T["strong_mean"]))
    rules = {
        "bcc": seen & f["bcc"],
        "beam_off": beam["none"],
        "circular_beamstop": beam["circular"],
        "diffuse_high_q": seen_diffuse & f["diffuse_high"] & tags["diffuse_high_ok"],
        "diffuse_low_q": seen_diffuse & f["diffuse_low"] & tags["diffuse_low_ok"],
        "fcc": seen & f["fcc"],
        "halo": seen & f["halo"],
        "high_background": (tags["bg_max"] > T["high_bg_max"]) | (tags["bg_mean"] > T["high_bg_mean"]),
        "higher_orders": seen & f["multi_ring"],
        "linear_beamstop": beam["linear"],
        "many_rings": seen & (tags["n_orders"] > T["many_rings"]),
        "polycrystalline": seen & f["poly"],
        "ring": seen & f["ring"],
        "strong_scattering": strong,
        "structure_factor": seen & f["structure_factor"],
        "weak_scattering": seen & ~strong & ((tags["sample_max"] < T["weak_max"])
                                             | (tags["sample_max"] < tags["bg_mean"])),
        "wedge_beamstop": beam["wedge"],
    }
    return np.stack([np.asarray(rules[s], dtype=bool) for s in SLUGS], axis=1)
