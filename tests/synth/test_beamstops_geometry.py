"""Geometry conventions and beamstop shapes."""
from __future__ import annotations

import math

import numpy as np
import pytest

from xsgpu.synth.beamstops import BeamstopSpec, direct_beam_map, transmission_map
from xsgpu.synth.geometry import RunGeometry, make_pixel_maps


def _maps(size=128, x0=128.0, y0=128.0):
    return make_pixel_maps(RunGeometry(x0, y0), size)


def test_chi_convention_up_is_zero_right_is_plus_90():
    m = _maps(256, 128.0, 128.0)
    chi = m.chi.reshape(256, 256)
    assert chi[10, 128] == pytest.approx(0.0, abs=0.01)          # above the beam
    assert chi[128, 250] == pytest.approx(math.pi / 2, abs=0.01)  # right of the beam
    assert m.qidx.dtype.kind == "i" and m.cidx.max() < 720


def test_wedge_blocks_a_wedge_from_a_displaced_apex():
    spec = BeamstopSpec("wedge", direction=math.pi / 2, width=30.0, half_angle=math.radians(10), t_in=0.0)
    m = _maps(256)
    t = transmission_map(spec, m).reshape(256, 256)
    # apex 30 px left of the beam (x = 98): along the axis to the right everything is blocked
    assert t[128, 110:256].max() < 1e-6
    # at 100 px right of the apex the wedge half-width is 100 tan(10 deg) = 17.6 px
    x = 98 + 100
    assert t[128 + 12, x] < 1e-6 and t[128 - 12, x] < 1e-6
    assert t[128 + 25, x] == 1.0 and t[128 - 25, x] == 1.0
    # left of the apex and far off-axis: open
    assert t[128, 0:90].min() == 1.0 and t[10, 128] == 1.0
    blocked = (t < 0.5).mean()
    assert 0.03 < blocked < 0.2


def test_linear_bar_from_beam_to_edge():
    spec = BeamstopSpec("linear", direction=0.0, width=12.0, t_in=0.0)  # bar going up
    t = transmission_map(spec, _maps(256)).reshape(256, 256)
    assert t[0:128, 128].max() < 1e-6          # covers the beam and the way up to the edge
    assert t[140:, 128].min() == 1.0            # nothing below the beam
    assert t[64, 100] == 1.0 and t[64, 156] == 1.0


def test_circular_disc_with_thin_arm():
    spec = BeamstopSpec("circular", direction=math.pi, width=15.0, t_in=0.0)  # arm goes down
    t = transmission_map(spec, _maps(256)).reshape(256, 256)
    assert t[128, 128] < 1e-6 and t[128, 128 + 12] < 1e-6     # disc
    assert t[128, 128 + 20] == 1.0                            # outside the disc sideways
    assert t[250, 128] < 1e-6                                 # arm down to the edge
    assert t[250, 128 + 12] == 1.0                            # arm is thin (2 deg half-angle: 4 px at 120 px)
    assert t[20, 128] == 1.0                                  # no arm upwards


def test_no_beamstop_is_transparent_and_unknown_kind_errors():
    assert np.all(transmission_map(BeamstopSpec("none"), _maps(32)) == 1.0)
    with pytest.raises(ValueError, match="Unknown beamstop kind 'round'"):
        transmission_map(BeamstopSpec("round"), _maps(32))


@pytest.mark.parametrize("size", [256, 64])
def test_direct_beam_keeps_flux(size):
    m = _maps(size)
    b = direct_beam_map(m)
    pix_area = (256 / size) ** 2
    sigma_x, sigma_y = 8 / 2.3548, 2 / 2.3548
    expected = 1e5 * 2 * math.pi * sigma_x * sigma_y
    assert float(b.sum()) * pix_area == pytest.approx(expected, rel=0.05)


def test_soft_beamstops_are_gaussian_blurred_indicators():
    m = _maps(256, 128.5, 128.5)  # the beam on the centre of pixel (128, 128)
    # a thin bar under a wide blur lets most of the beam through; a wide one under a small blur does not
    thin = transmission_map(BeamstopSpec("linear", direction=math.pi, width=4.0, back=10.0, blur=10.0, style="soft"), m)
    wide = transmission_map(BeamstopSpec("linear", direction=math.pi, width=15.0, back=10.0, blur=2.0, style="soft"), m)
    centre = 128 * 256 + 128
    from scipy.special import erf
    across, along = erf(2 / (10 * math.sqrt(2))), 0.5 * (1 + erf(10 / (10 * math.sqrt(2))))
    assert float(thin[centre]) == pytest.approx(1 - across * along, rel=1e-4)
    assert float(wide[centre]) < 1e-3
    # the bar runs from 10 px above the beam down to the edge: open far above, blocked far below
    t = wide.reshape(256, 256)
    assert t[60, 128] > 0.999 and t[250, 128] < 1e-3
    # a blurred disc: at its centre 1 - exp(-R^2 / (2 sigma^2)) is blocked (exact for a 2-D Gaussian)
    disc = transmission_map(BeamstopSpec("circular", direction=math.pi, width=6.0, blur=4.0, style="soft"), m)
    assert float(disc[centre]) == pytest.approx(math.exp(-36 / 32), abs=2e-3)
    assert transmission_map(BeamstopSpec("wedge", direction=math.pi, width=20.0, blur=2.0, style="soft"), m
                            ).reshape(256, 256)[250, 128] < 1e-3
    with pytest.raises(ValueError, match="Unknown beamstop style 'fuzzy'"):
        transmission_map(BeamstopSpec("linear", style="fuzzy"), m)
