"""Physics kernels: lattice ratios, orientation normalisation, form factor, power laws, peak sums."""
from __future__ import annotations

import math

import numpy as np
import pytest

from xsgpu.synth import kernels as K
from xsgpu.synth.geometry import Q_BIN, q_of_radius


def test_bcc_ratios_and_multiplicities():
    r, m = K.lattice_peaks("bcc")
    expected = np.sqrt([1, 2, 3, 4, 5, 6, 7, 8, 9])
    np.testing.assert_allclose(r[:9], expected, rtol=1e-12)
    assert m[0] == 12 and m[1] == 6  # {110} and {200}


def test_fcc_ratios():
    r, m = K.lattice_peaks("fcc")
    np.testing.assert_allclose(r[:6], [1, 2 / math.sqrt(3), math.sqrt(8 / 3), math.sqrt(11 / 3), 2, 4 / math.sqrt(3)],
                               rtol=1e-12)
    assert m[0] == 8 and m[1] == 6  # {111} and {200}


def test_hexagonal_and_lamellar_ratios():
    np.testing.assert_allclose(K.lattice_peaks("hexagonal")[0][:5], np.sqrt([1, 3, 4, 7, 9]))
    np.testing.assert_allclose(K.lattice_peaks("lamellar")[0][:4], [1, 2, 3, 4])


def test_unknown_lattice_message():
    with pytest.raises(ValueError, match="The 'kind' parameter of lattice_peaks must be one of"):
        K.lattice_peaks("diamond")


@pytest.mark.parametrize("eta,n", [(0.2, 2), (0.9, 6), (0.5, 20)])
def test_orientation_mean_one_and_peak(eta, n):
    chi = np.linspace(-math.pi, math.pi, 20000, endpoint=False)
    a = K.orientation(chi, eta=eta, n=n, chi0=0.4)
    assert a.mean() == pytest.approx(1.0, rel=1e-6)
    assert a.max() == pytest.approx(K.orientation_peak(eta), rel=1e-3)
    assert a[np.argmin(np.abs(chi - 0.4))] == pytest.approx(a.max(), rel=1e-3)


def test_sphere_form_factor_limits_and_first_minimum():
    q = np.linspace(1e-5, 0.2, 200001)
    p = K.sphere_form_factor(q, 100.0)
    assert p[0] == pytest.approx(1.0, abs=1e-6)
    # first zero of tan(x) = x at x = 4.4934
    mins = q[1:-1][(p[1:-1] < p[:-2]) & (p[1:-1] < p[2:])]
    assert mins[0] * 100.0 == pytest.approx(4.4934, rel=1e-3)


def test_porod_slope():
    q = np.geomspace(0.005, 0.1, 50)
    i = K.porod(q, exponent=-4.0)
    slope = np.polyfit(np.log(q), np.log(i), 1)[0]
    assert slope == pytest.approx(-4.0, abs=1e-9)


def test_guinier_and_oz_shapes():
    q = np.array([0.0, 0.01, 0.05])
    assert K.guinier(q, rg=50.0)[1] == pytest.approx(math.exp(-(0.5**2) / 3))
    assert K.ornstein_zernike(q, xi=100.0)[1] == pytest.approx(0.5)
    assert K.debye_bueche(q, a=100.0)[1] == pytest.approx(0.25)
    assert K.diffuse_high_q(q, s=10.0)[0] == 0.0


def test_sum_gaussians_matches_dense():
    rng = np.random.default_rng(0)
    n_bins, rows = 400, rng.integers(0, 3, 20)
    c = rng.uniform(0, 400 * Q_BIN, 20)
    s = rng.uniform(0.5, 20, 20) * Q_BIN
    h = rng.uniform(0.1, 5, 20)
    got = K.sum_gaussians(3, n_bins, Q_BIN, rows, c, s, h, n_sigma=8.0)
    q = np.arange(n_bins) * Q_BIN
    dense = np.zeros((3, n_bins))
    for r, cc, ss, hh in zip(rows, c, s, h):
        dense[r] += hh * np.exp(-0.5 * ((q - cc) / ss) ** 2)
    np.testing.assert_allclose(got, dense, atol=1e-12)


def test_oval_factor_range():
    chi = np.linspace(-math.pi, math.pi, 721)
    f = K.oval_factor(chi, ecc=0.8, chi0=0.0)
    assert f.min() == pytest.approx(0.8) and f.max() == pytest.approx(1.0)


def test_geometry_q_calibration():
    # DOMAIN.md: q = 0.02 1/A about 35 px from the beam, 0.1 1/A about 176 px
    assert float(q_of_radius(35.0)) == pytest.approx(0.02, rel=0.01)
    assert float(q_of_radius(176.0)) == pytest.approx(0.1, rel=0.01)
