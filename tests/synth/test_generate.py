"""generate_images: shapes, determinism, size independence of labels, physics checks, label frequencies."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy.signal import find_peaks

from xsgpu.attributes import DOMAIN_FREQUENCIES, SLUGS, attribute_index
from xsgpu.synth import DEFAULT_MIX, Mix, generate_images
from xsgpu.synth.beamstops import transmission_map
from xsgpu.synth.geometry import Q_BIN, make_pixel_maps
from xsgpu.synth.kernels import lattice_peaks
from xsgpu.synth.runs import make_run_spec

#: one part at a time, on our run geometry (beam >= 40 px inside, opaque beamstops), sample frames only
QUIET = dict(p_diffuse=0.0, p_background=0.0, p_defects=0.0, p_zingers=0.0, p_gaps=0.0, p_original_runs=0.0,
             p_standard=0.0, standard_first=False, p_not_sample=0.0)


def test_shapes_and_dtypes():
    b = generate_images(5, size=48, seed=3, images_per_run=2)
    assert b.counts.shape == (5, 48, 48) and b.counts.dtype == np.float32
    assert b.mask.shape == (5, 48, 48) and b.mask.dtype == bool
    assert b.labels.shape == (5, 17) and b.labels.dtype == bool
    assert list(b.tags["sample_id"]) == [0, 1, 2, 3, 4]
    assert np.all(b.counts >= 0) and np.all(np.isfinite(b.counts))


def test_deterministic_and_seed_dependent():
    a = generate_images(6, size=32, seed=11, start=400)
    b = generate_images(6, size=32, seed=11, start=400)
    c = generate_images(6, size=32, seed=12, start=400)
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.counts, c.counts)


def test_labels_do_not_depend_on_size():
    a = generate_images(40, size=32, seed=4, images_per_run=10)
    b = generate_images(40, size=64, seed=4, images_per_run=10)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_allclose(a.tags["sample_mean"], b.tags["sample_mean"])


def test_run_level_labels_are_shared_and_exclusive():
    b = generate_images(120, size=16, seed=2, images_per_run=10)
    cols = [attribute_index(s) for s in ("beam_off", "linear_beamstop", "circular_beamstop", "wedge_beamstop")]
    assert np.all(b.labels[:, cols].sum(axis=1) == 1)  # every image: one beamstop or beam off
    for run in np.unique(b.tags["run_index"]):
        rows = b.labels[b.tags["run_index"] == run][:, cols]
        assert (rows == rows[0]).all()


def test_bad_arguments_have_clear_messages():
    with pytest.raises(ValueError, match="The 'size' parameter must be an integer in \\[8, 4096\\]. Got 3"):
        generate_images(2, size=3)
    with pytest.raises(ValueError, match="The 'n' parameter must be an integer >= 0. Got -1"):
        generate_images(-1, size=16)
    with pytest.raises(TypeError, match="The 'mix' parameter must be a xsgpu.synth.Mix"):
        generate_images(1, size=16, mix={"p_sample": 1})
    with pytest.raises(ValueError, match="'component_weights' parameter of Mix has unknown keys \\['cubic'\\]"):
        Mix(component_weights={"cubic": 1.0})


def _radial_average(counts, run, size):
    maps = make_pixel_maps(run.geometry, size)
    good = transmission_map(run.beamstop, maps) > 0.99
    qi = (maps.q[good] / (4 * Q_BIN)).astype(int)  # bins of one conceptual pixel
    s = np.bincount(qi, weights=counts.reshape(-1)[good])
    n = np.bincount(qi)
    prof = np.where(n > 0, s / np.maximum(n, 1), 0.0)
    return (np.arange(len(prof)) + 0.5) * 4 * Q_BIN, prof, n


@pytest.mark.parametrize("lattice", ["bcc", "fcc"])
def test_powder_ring_positions_follow_the_lattice(lattice):
    mix = dataclasses.replace(DEFAULT_MIX, **QUIET, p_sample=1.0, extra_components=0.0, p_distorted=0.0,
                              component_weights={lattice: 1.0}, log10_amplitude=(4.0, 4.0),
                              amplitude_offsets={lattice: 0.2})  # peak 10^4.2 counts
    ratios = lattice_peaks(lattice)[0]
    b = generate_images(6, size=256, seed=21, images_per_run=1, mix=mix)
    checked = 0
    for i in range(6):
        run = make_run_spec(i, seed=21, mix=mix)
        q, prof, n = _radial_average(b.counts[i], run, 256)
        ok = n > 50
        peaks, _ = find_peaks(np.where(ok, prof, 0), prominence=0.2 * prof[ok].max() * 0.05)
        peaks = [p for p in peaks if ok[p] and prof[p] > 20]
        if len(peaks) < 3:
            continue
        # refine the positions by a 3-point parabola
        pos = []
        for p in peaks:
            y0, y1, y2 = prof[p - 1], prof[p], prof[p + 1]
            den = y0 - 2 * y1 + y2
            pos.append(q[p] + (0.5 * (y0 - y2) / den if den != 0 else 0.0) * 4 * Q_BIN)
        rel = np.asarray(pos) / pos[0]
        for r in rel[:5]:
            assert np.min(np.abs(ratios - r) / ratios) < 0.02, (lattice, rel)
        checked += 1
    assert checked >= 2


def test_beam_off_images_have_no_beamstop_shadow():
    mix = dataclasses.replace(DEFAULT_MIX, **{**QUIET, "p_background": 1.0}, p_sample=0.0, p_glow=0.0,
                              log10_background=(3.0, 3.0))
    b = generate_images(40, size=64, seed=8, images_per_run=1, mix=mix)
    off = b.labels[:, attribute_index("beam_off")]
    assert off.any() and (~off).any()
    assert b.counts[off].min() > 800          # 1000 counts everywhere, nothing blocked
    assert np.all(b.counts[~off].reshape((~off).sum(), -1).min(axis=1) < 5)  # a shadow somewhere


def test_tags_match_the_pixels_and_weak_images_are_faint():
    # isotropic sample terms only, beam-off runs (no beamstop, no beam): image mean == the sample-mean tag
    mix = dataclasses.replace(
        DEFAULT_MIX, **QUIET, p_sample=1.0, p_oriented_ring=0.0, p_oriented_halo=0.0, p_speckle_halo=0.0,
        p_distorted=0.0, run_beamstops={"none": 1.0},
        component_weights={k: v for k, v in DEFAULT_MIX.component_weights.items() if k != "poly"})
    b = generate_images(30, size=256, seed=9, images_per_run=30, mix=mix)
    mean = b.counts.reshape(30, -1).mean(axis=1) - 0.002
    big = b.tags["sample_mean"] > 1.0
    assert big.sum() >= 5
    np.testing.assert_allclose(mean[big], b.tags["sample_mean"][big], rtol=0.03)
    weak = b.labels[:, attribute_index("weak_scattering")]
    assert np.all(b.tags["sample_max"][weak] < 10)
    for i in np.nonzero(weak)[0]:
        assert np.percentile(b.counts[i], 99.9) < 25  # Poisson(10) 99.9th percentile is about 21


def test_label_frequencies_match_domain_on_3000_images():
    b = generate_images(3000, size=16, seed=0, images_per_run=20)
    freq = b.labels.mean(axis=0)
    for slug, f in zip(SLUGS, freq):
        target = DOMAIN_FREQUENCIES[slug]
        assert f > 0, slug
        assert abs(f / target - 1) <= 0.5, (slug, f, target)
    assert 2.5 < b.labels.sum(axis=1).mean() < 4.5
    # deliberately changed (issue 14): the original generator's odds, beam off when x0 < 0 (1/6 of
    # runs), then linear / circular / wedge in equal thirds; DOMAIN.md's .12 was an estimate
    assert math.isclose(freq[attribute_index("beam_off")], 1 / 6, abs_tol=0.03)
    kinds = b.tags["image_kind"]
    assert math.isclose((kinds == "standard").mean(), 1 / 20 + 0.01, abs_tol=0.01)  # run's first image + 1 %
    assert math.isclose((kinds == "sample").mean(), 1 - 0.06 - 0.05 * 0.94, abs_tol=0.015)


def test_components_tag_describes_the_draw():
    b = generate_images(30, size=16, seed=0, images_per_run=10)
    comp = b.tags["components"]
    assert comp.shape == (30,)
    for i in range(30):
        if b.labels[i, attribute_index("bcc")]:
            assert "bcc(" in comp[i]
        if b.tags["image_kind"][i] in ("standard", "particular"):
            assert comp[i].startswith(b.tags["image_kind"][i] + "(q0=")
            assert b.labels[i].sum() == 1 and b.labels[i, RUN_COLS].sum() == 1  # only the run's beamstop label
        elif not b.tags["flag_sample"][i] and not b.tags["flag_diffuse_low"][i] and not b.tags["flag_diffuse_high"][i]:
            assert comp[i] == ""


RUN_COLS = [attribute_index(s) for s in ("beam_off", "linear_beamstop", "circular_beamstop", "wedge_beamstop")]


def _quiet(beamstop="none", **kw):
    return dataclasses.replace(DEFAULT_MIX, **{**QUIET, "run_beamstops": {beamstop: 1.0}, **kw})


def _param(text, name):
    return float(text.split(f"{name}=")[1].split(",")[0].split(")")[0])


def test_porod_slope_of_a_diffuse_image():
    mix = _quiet("circular", p_sample=0.0, p_diffuse=1.0, diffuse_weights={"porod": 1.0},
                 p_anisotropic_diffuse=0.0, log10_diffuse=(4.0, 4.0))
    b = generate_images(4, size=256, seed=5, images_per_run=1, mix=mix)
    for i in range(4):
        a = _param(b.tags["components"][i], "a")
        run = make_run_spec(i, seed=5, mix=mix)
        q, prof, n = _radial_average(b.counts[i], run, 256)
        sel = (n > 30) & (q > 0.016) & (prof > 20)
        assert sel.sum() >= 10
        slope = np.polyfit(np.log(q[sel]), np.log(prof[sel]), 1)[0]
        assert slope == pytest.approx(a, abs=0.1), b.tags["components"][i]


def test_distorted_lattice_gives_oval_rings():
    mix = _quiet("circular", p_sample=1.0, extra_components=0.0, component_weights={"lamellar": 1.0},
                 p_distorted=1.0, log10_amplitude=(4.5, 4.5))
    b = generate_images(4, size=256, seed=6, images_per_run=1, mix=mix)
    for i in range(4):
        text = b.tags["components"][i]
        ecc, chi0, q0 = _param(text, "ecc"), _param(text, "chi0"), _param(text, "q0")
        run = make_run_spec(i, seed=6, mix=mix)
        m = make_pixel_maps(run.geometry, 256)
        open_ = transmission_map(run.beamstop, m) > 0.99
        img = b.counts[i].reshape(-1)
        found, expected = [], []
        for d in np.linspace(0, 2 * math.pi, 16, endpoint=False):
            dchi = np.abs((m.chi - d + math.pi) % (2 * math.pi) - math.pi)
            sel = (dchi < math.radians(3)) & (m.q > 0.7 * q0) & (m.q < 1.3 * q0 / ecc) & open_
            if sel.sum() > 30:
                found.append(float(m.q[sel][np.argmax(img[sel])]))
                # the ring sits where q sqrt(sin^2(chi - chi0) + e^2 cos^2(chi - chi0)) = q0
                expected.append(q0 / math.sqrt(math.sin(d - chi0) ** 2 + (ecc * math.cos(d - chi0)) ** 2))
        found, expected = np.array(found), np.array(expected)
        assert len(found) >= 10, text
        assert np.mean(np.abs(found / expected - 1) < 0.03) >= 0.8, (text, found / expected)
        assert np.ptp(found) / q0 > 0.5 * (1 / ecc - 1), text  # the ring really is oval


def test_background_and_diffuse_tags_match_the_pixels():
    # beam-off runs (no beamstop, no beam), one part at a time: the tags are what the detector sees
    bg_mix = _quiet(p_sample=0.0, p_background=1.0, p_glow=1.0)
    b = generate_images(20, size=256, seed=12, images_per_run=20, mix=bg_mix)
    mean = b.counts.reshape(20, -1).mean(axis=1)
    np.testing.assert_allclose(mean, b.tags["bg_mean"] + 0.002, rtol=0.02, atol=0.05)
    high = b.labels[:, attribute_index("high_background")]
    assert np.all((b.tags["bg_mean"][high] > 1e3) | (b.tags["bg_max"][high] > 1e4))

    d_mix = _quiet(p_sample=0.0, p_diffuse=1.0, p_anisotropic_diffuse=0.0,
                   diffuse_weights={"porod": 1, "ornstein_zernike": 1, "debye_bueche": 1, "guinier": 1})
    b = generate_images(30, size=256, seed=13, images_per_run=30, mix=d_mix, noise=False)
    above = (b.counts.reshape(30, -1) > 10 + 0.002).sum(axis=1)  # expected counts (+ dark) above 10
    tag = b.tags["diffuse_low_px"]
    assert (tag > 400).any() and (tag == 0).any()
    np.testing.assert_allclose(above, tag, rtol=0.01, atol=5)
    lab = b.labels[:, attribute_index("diffuse_low_q")]
    np.testing.assert_array_equal(lab, tag > 400)


def test_original_style_runs_follow_the_original_geometry():
    from xsgpu.synth.runs import make_run_spec as spec

    runs = [spec(k, seed=3) for k in range(200)]
    orig = [r for r in runs if r.style == "original"]
    assert 0.7 < len(orig) / len(runs) < 0.8  # DEFAULT_MIX.p_original_runs = 0.75
    x0 = np.array([r.geometry.x0 for r in orig])
    y0 = np.array([r.geometry.y0 for r in orig])
    assert x0.min() >= -12.8 and x0.max() <= 64.0 and y0.min() >= 179.2 and y0.max() <= 243.2
    off = np.array([r.beam_off for r in orig])
    np.testing.assert_array_equal(off, x0 < 0)  # beam off exactly when the centre is left of the detector
    for r in orig:
        bs = r.beamstop
        assert 4.0 <= r.beam_fwhm[0] <= 10.0 and 2.0 <= r.beam_fwhm[1] <= 5.0
        assert r.glow_width is None and r.gap_row is None and r.gap_col is None
        if bs.kind != "none":
            assert bs.style == "soft"
        if bs.kind == "linear":
            assert 4.0 <= bs.width <= 15.0 and 2.0 <= bs.back <= 25.0 and 2.0 <= bs.blur <= 10.0
        elif bs.kind == "circular":
            assert 2.0 <= bs.width <= 12.5 and 1.0 <= bs.blur <= 5.0
        elif bs.kind == "wedge":
            assert 10.0 <= bs.width <= 50.0 and math.radians(10) <= bs.half_angle <= math.radians(20)
    assert sum(r.obstruction is not None for r in orig) < 0.15 * len(orig)


def test_frame_kinds_dark_direct_standard():
    mix = dataclasses.replace(DEFAULT_MIX, p_zingers=0.0, p_original_runs=0.0, p_standard=0.0, p_not_sample=1.0,
                              run_beamstops={"circular": 1.0}, not_sample_weights={"dark": 1.0, "direct": 1.0})
    b = generate_images(40, size=64, seed=14, images_per_run=40, mix=mix)
    kinds = b.tags["image_kind"]
    assert kinds[0] == "standard" and set(kinds[1:]) == {"dark", "direct"}
    flat = b.counts.reshape(40, -1)
    dark, direct = kinds == "dark", kinds == "direct"
    assert flat[dark].max() <= 2  # only Poisson(0.002) dark counts
    # the direct beam with no beamstop in: its full flux, peak 1e5 per conceptual pixel (averaged over 4x4)
    flux = 1e5 * 2 * math.pi * (8 / 2.3548) * (2 / 2.3548) / 16
    np.testing.assert_allclose(flat[direct].sum(axis=1), flux, rtol=0.05)
    assert (b.labels[1:] == b.labels[1]).all() and b.labels[1].sum() == 1  # the run's beamstop only

    # the standard: silver-behenate rings at q = n 0.1076 1/A
    std = dataclasses.replace(mix, p_not_sample=0.0, run_beamstops={"none": 1.0}, p_original_runs=1.0)
    b = generate_images(3, size=256, seed=15, images_per_run=1, mix=std)
    checked = 0
    for i in range(3):
        run = make_run_spec(i, seed=15, mix=std)
        if run.obstruction is not None and run.obstruction[0] < 0.1:  # the window hides q > q0
            continue
        q, prof, n = _radial_average(b.counts[i], run, 256)
        ok = (n > 20) & (q > 0.09) & (q < 0.12)
        assert abs(q[ok][np.argmax(prof[ok])] - 0.1076) < 0.001
        checked += 1
    assert checked >= 2


def test_original_rules_many_rings_poly_grains_and_visibility():
    mix = _quiet("linear", p_sample=1.0, extra_components=0.0, component_weights={"adhoc": 1.0, "poly": 1.0},
                 log10_amplitude=(3.0, 3.0))
    b = generate_images(200, size=16, seed=16, images_per_run=50, mix=mix)
    comp = b.tags["components"]
    many = b.labels[:, attribute_index("many_rings")]
    poly = b.labels[:, attribute_index("polycrystalline")]
    for i in range(200):
        drawn = int(comp[i].split("n=")[1].split(",")[0]) if comp[i].startswith("adhoc") else \
            int(comp[i].split("rings=")[1].split(",")[0])
        assert many[i] == (drawn > 4), comp[i]  # every drawn ring counts (the original's rule)
        if comp[i].startswith("poly"):
            assert poly[i] == (_param(comp[i], "eta") <= 0.75), comp[i]  # sharper grains: large grains
            assert b.labels[i, attribute_index("ring")] and b.labels[i, attribute_index("higher_orders")]
    assert poly.any() and (~poly & np.char.startswith(comp.astype(str), "poly")).any()

    # a sample under 1 % of a high background is not seen: no sample labels; Weak never with Strong
    hidden = _quiet("linear", p_sample=1.0, p_background=1.0, log10_background=(3.7, 3.7), p_glow=0.0,
                    log10_amplitude=(-0.5, 0.5), amplitude_offsets={})
    b = generate_images(60, size=16, seed=17, images_per_run=60, mix=hidden)
    cols = [attribute_index(s) for s in ("ring", "halo", "higher_orders", "strong_scattering", "weak_scattering",
                                         "structure_factor", "bcc", "fcc", "polycrystalline", "many_rings")]
    unseen = b.tags["sample_max"] <= 0.01 * b.tags["bg_mean"]
    assert unseen.sum() > 10 and not b.labels[unseen][:, cols].any()
    b = generate_images(600, size=16, seed=18, images_per_run=20)
    assert not (b.labels[:, attribute_index("weak_scattering")] & b.labels[:, attribute_index("strong_scattering")]).any()


def test_flat_background_with_pixel_noise():
    # original-style backgrounds: a level with Gaussian pixel noise (clipped at 0) plus counting noise
    mix = dataclasses.replace(DEFAULT_MIX, **{**QUIET, "p_original_runs": 1.0, "p_background": 1.0}, p_sample=0.0,
                              p_flat_background=1.0, p_window_scatter=0.0, run_beamstops={"none": 1.0})
    b = generate_images(40, size=256, seed=19, images_per_run=40, mix=mix)
    flat = b.counts.reshape(40, -1)[:, :256 * 128]  # the upper half: far from the beam at the left edge
    np.testing.assert_allclose(flat.mean(axis=1), b.tags["bg_mean"], rtol=0.03, atol=0.5)
    lvl = b.tags["bg_mean"]
    ok = (lvl > 200)
    assert ok.sum() > 20
    # where the level is many sigma above 0, std = sqrt(level + sigma^2) and sigma / level is in [.05, 1]
    rel = np.sqrt(np.maximum(flat.var(axis=1) - flat.mean(axis=1), 0)) / flat.mean(axis=1)
    assert rel[ok].min() > 0.04 and rel[ok].max() < 1.0
    high = b.labels[:, attribute_index("high_background")]
    np.testing.assert_array_equal(high, (b.tags["bg_mean"] > 1e3) | (b.tags["bg_max"] > 1e4))


def test_original_runs_draw_the_original_lattice_q0():
    """Original-style runs draw the original's NP lattice: q0 = clip(N(0.06, 0.04), 0.008, 0.05), so ~60 % sit
    at 0.05 (ours U(0.012, 0.05)), radius U(0.01, 2) d0, Debye-Waller sigma clip(N(0.1, 0.2), 0.01, 0.5)."""
    import re

    only = dict(QUIET, p_sample=1.0, extra_components=0.0, component_weights={"bcc": 1.0, "fcc": 1.0})
    q0 = {}
    for style, p_orig in (("original", 1.0), ("ours", 0.0)):
        b = generate_images(400, size=16, seed=5, images_per_run=20, mix=Mix(**{**only, "p_original_runs": p_orig}))
        q0[style] = np.array([float(m) for c in b.tags["components"] for m in re.findall(r"cc\(q0=([0-9.]+)", c)])
        assert len(q0[style]) == 400
    assert q0["original"].min() >= 0.008 and q0["original"].max() <= 0.05
    assert 0.5 < np.mean(q0["original"] == 0.05) < 0.7  # P(N(0.06, 0.04) > 0.05) = 0.60
    assert q0["ours"].min() >= 0.012 and np.mean(q0["ours"] == 0.05) < 0.01  # 4-digit tags round near 0.05
    # radius / d0 and the relative Debye-Waller sigma follow the original's draws too (ORIGINAL_LATTICE)
    b = generate_images(200, size=16, seed=6, images_per_run=20, mix=Mix(**{**only, "p_original_runs": 1.0}))
    found = [re.search(r"cc\(q0=([0-9.]+), R=([0-9.]+), s_r=([0-9.]+)", c) for c in b.tags["components"]]
    q, r, s_r = np.array([[float(v) for v in m.groups()] for m in found]).T
    r_d0 = r * q / (2 * math.pi)
    assert r_d0.min() >= 0.009 and r_d0.max() <= 2.01 and r_d0.max() > 1.0
    assert s_r.min() >= 0.01 and s_r.max() <= 0.5 and np.mean(s_r == 0.01) > 0.2  # P(N(.1, .2) < .01) = 0.33
    with pytest.raises(ValueError, match="The 'lattice_q0' parameter of Mix must be"):
        Mix(lattice_q0=(0.06, 0.04, 0.05, 0.008))


def test_window_glows_of_original_style_backgrounds():
    # square and circular window glows only: the tags' background mean and max are what the detector sees
    mix = dataclasses.replace(DEFAULT_MIX, **{**QUIET, "p_original_runs": 1.0, "p_background": 1.0}, p_sample=0.0,
                              p_flat_background=0.0, p_window_scatter=0.5, run_beamstops={"none": 1.0})
    b = generate_images(40, size=256, seed=23, images_per_run=40, mix=mix, noise=False)
    win = b.tags["n_windows"] > 0
    assert 10 < win.sum() < 40 and (b.tags["n_windows"] == 2).any()
    # the same runs without windows hold only the beam (and the dark rate): the difference is the glow
    bare = generate_images(40, size=256, seed=23, images_per_run=40, noise=False,
                           mix=dataclasses.replace(mix, p_window_scatter=0.0))
    glow = b.counts.reshape(40, -1).astype(np.float64) - bare.counts.reshape(40, -1)
    np.testing.assert_array_equal(b.tags["bg_mean"][~win], 0.0)
    np.testing.assert_allclose(glow[~win], 0.0, atol=1e-3)
    np.testing.assert_allclose(glow[win].mean(axis=1), b.tags["bg_mean"][win], rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(glow[win].max(axis=1), b.tags["bg_max"][win], rtol=1e-3, atol=1e-3)


def test_original_diffuse_tree_and_its_label_gates():
    from xsgpu.synth.components import ORIGINAL_DIFFUSE

    assert DEFAULT_MIX.diffuse_tree == "original"
    mix = dataclasses.replace(DEFAULT_MIX, **{**QUIET, "p_original_runs": 1.0, "p_diffuse": 1.0}, p_sample=0.0,
                              run_beamstops={"none": 1.0})
    b = generate_images(200, size=256, seed=29, images_per_run=200, mix=mix, noise=False)
    comp = b.tags["components"].astype(str)
    iso = np.array(["low-q: " in c and "oval" not in c for c in comp])
    oval = np.char.find(comp, "low-q oval") >= 0
    # the original's shares: isotropic group .3 x (1 - .5^4), anisotropic .15 x (1 - .6^4), wide-angle .2
    assert 0.18 < iso.mean() < 0.38 and 0.06 < oval.mean() < 0.22
    assert 0.12 < (np.char.find(comp, "high_q") >= 0).mean() < 0.3
    # near the beam the original's low-q terms reach 10^2..10^6 counts
    peak = np.array([float(c.split("c=")[1].split(")")[0]) for c in comp[iso & ~oval]])
    assert peak.max() > 1e4
    # isotropic group alone: the label is "more than 400 pixels above 10 counts" of the expected image
    only = iso & ~oval & (np.char.find(comp, "high_q") < 0)
    above = (b.counts.reshape(200, -1) > 10 + 0.002).sum(axis=1)
    lab = b.labels[:, attribute_index("diffuse_low_q")]
    clear = only & (np.abs(above - 400) > 40)
    assert clear.sum() > 10
    np.testing.assert_array_equal(lab[clear], above[clear] > 400)
    assert ORIGINAL_DIFFUSE["aniso_gate"] == (20.0, 500.0)
    with pytest.raises(ValueError, match="diffuse_tree"):
        dataclasses.replace(DEFAULT_MIX, diffuse_tree="yours")


def test_mesostructure_spots_and_their_powder_average():
    from xsgpu.synth.meso import debye_cluster, projected_vectors, random_rotation, structure_factor

    # closed form against the cluster's sum: 27 unit scatterers on a cubic lattice, one in-plane wavevector
    g = np.random.default_rng(0)
    rot = random_rotation(g)
    assert np.allclose(rot @ rot.T, np.eye(3), atol=1e-12)
    v = projected_vectors(rot, zoom=0.5)
    d = g.normal(0, 30, (50, 2))
    pts = np.stack(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij"), -1).reshape(-1, 3)
    phase = d @ (pts @ v).T  # d . (sum_a n_a v_a)
    np.testing.assert_allclose(structure_factor(d[:, 0], d[:, 1], v), np.abs(np.exp(1j * phase).sum(1)) ** 2,
                               rtol=1e-4, atol=1e-3)  # phases in float32
    # the powder average is the mean over orientations: 729 at k = 0, 27 (incoherent) at large k
    assert debye_cluster(np.array([0.0]), 0.5)[0] == pytest.approx(729.0)
    rots = [projected_vectors(random_rotation(g), 0.5) for _ in range(400)]
    dd = np.array([[7.0, 0.0]])
    mean = np.mean([structure_factor(dd[:, 0], dd[:, 1], r)[0] for r in rots])
    assert mean == pytest.approx(debye_cluster(np.array([7.0]), 0.5)[0], rel=0.15)

    # in images: single crystals carry no ring label, the powder variant is Polycrystalline; tags = pixels
    # beam-off runs drawn the original's way: the beam just beyond the left edge, no beamstop
    mix = _quiet("none", p_sample=1.0, extra_components=0.0, component_weights={"meso": 1.0}, p_original_runs=1.0)
    b = generate_images(60, size=256, seed=31, images_per_run=60, mix=mix, noise=False)
    comp = b.tags["components"].astype(str)
    single = np.char.find(comp, "single crystal") >= 0
    powder = np.char.find(comp, "orientations=") >= 0
    assert single.sum() > 30 and powder.sum() > 3 and (single | powder).all()
    np.testing.assert_array_equal(b.labels[:, attribute_index("polycrystalline")], powder)
    assert not b.labels[:, attribute_index("ring")].any()
    assert b.labels[:, attribute_index("strong_scattering")].mean() > 0.5  # 10^3..10^5 counts at the maximum
    # the same run without its samples holds the beam's glare only: the difference is the pattern
    bare = generate_images(60, size=256, seed=31, images_per_run=60, noise=False,
                           mix=dataclasses.replace(mix, p_sample=0.0))
    pattern = (b.counts.reshape(60, -1) - bare.counts.reshape(60, -1)).astype(np.float64)
    # the powder average is isotropic: its tag mean is exact; a single crystal's tag uses the mean over whole
    # circles, and only a quarter of each lies on the detector when the beam sits in its corner
    np.testing.assert_allclose(pattern[powder].mean(axis=1), b.tags["sample_mean"][powder], rtol=0.05, atol=1e-3)
    ratio = pattern[single].mean(axis=1) / b.tags["sample_mean"][single]
    assert 0.25 < ratio.min() and ratio.max() < 4 and 0.7 < np.median(ratio) < 1.4
    # the tag's maximum takes each circle's maximum over all azimuths, also those off the detector
    assert np.all(pattern.max(axis=1) <= 1.1 * b.tags["sample_max"])  # 128 azimuths per circle: spots can fall between
    assert np.median(pattern.max(axis=1) / b.tags["sample_max"]) > 0.8


def test_original_style_q0_is_the_originals_clipped_normal():
    from xsgpu.synth.components import _q0

    g = np.random.default_rng(1)
    q = np.array([_q0(g, "original", (0.01, 0.1), 0.05) for _ in range(4000)])
    assert q.min() == 0.008 and q.max() == 0.05
    assert 0.34 < (q == 0.008).mean() < 0.42  # P(N(.02, .04) < .008) = .38
    assert 0.19 < (q == 0.05).mean() < 0.27   # P(N(.02, .04) > .05) = .23
    ours = np.array([_q0(g, "ours", (0.01, 0.1), 0.05) for _ in range(1000)])
    assert 0.01 <= ours.min() and ours.max() <= 0.1
