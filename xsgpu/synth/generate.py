"""Generate batches of synthetic SAXS images with their tags and 17 labels (pure; NumPy or CuPy).

Per image (DOMAIN.md "Runs and images"): diffuse (p .4) + sample scattering (p .7, 1 + Poisson(.3)
components) + background (p .4, with the run's window glow) + defects (p .1, parasitic slit streaks) +
the direct beam, times the run's beamstop transmission, then the detector model.

How it stays cheap: every radial profile is evaluated on a 1-D q grid (host), pixels gather it through
their precomputed q-bin index; anisotropic terms gather a 1-D azimuthal factor the same way; all
per-run maps (q, chi, beamstop, beam, glow, streaks, gaps) are computed once per run; noise uses one
16-bit uniform per pixel (:mod:`xsgpu.synth.detector`).

Determinism: image parameters come from ``SeedSequence(seed, spawn_key=(1, start))``, pixel noise
from ``SeedSequence(seed, spawn_key=(3, start))`` and coherent-speckle fields from ``(5, start)``; run
parameters from ``(0, run)``. The same
``(n, size, seed, start)`` gives identical output. Parameters and labels are drawn on the host, so they
are identical on CPU and GPU (the noise differs between the two generators).

Examples
--------
>>> from xsgpu.synth import generate_images
>>> b = generate_images(4, size=32, seed=1, images_per_run=2)
>>> b.counts.shape, b.mask.shape, b.labels.shape, b.labels.dtype
((4, 32, 32), (4, 32, 32), (4, 17), dtype('bool'))
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from xsgpu.backend import get_backend
from xsgpu.preprocess import resize_batch
from xsgpu.synth import kernels as K
from xsgpu.synth.beamstops import direct_beam_map, transmission_map
from xsgpu.synth.components import draw_block
from xsgpu.synth.cpu_kernels import compose_counts, numba_available
from xsgpu.synth.detector import (DARK_RATE, LAM_STEPS, MAX_COUNTS, N_QUANTILES, POISSON_EXACT_BELOW, gap_mask,
                                  noise_tables, sample_counts, uniform_u16)
from xsgpu.synth.geometry import (CONCEPT_SIZE, Q_BIN, Q_PIXEL, chi_grid, conceptual_histogram,
                                  make_pixel_maps)
from xsgpu.synth.labels import compute_tags, labels_from_tags
from xsgpu.synth.meso import structure_factor
from xsgpu.synth.mix import DEFAULT_MIX, Mix
from xsgpu.synth.runs import make_run_spec
from xsgpu.synth.windows import window_map

__all__ = ["SynthBatch", "generate_images", "check_size"]

log = logging.getLogger(__name__)
_CHI = chi_grid()


@dataclass
class SynthBatch:
    """A generated batch.

    Attributes
    ----------
    counts : float32 (n, H, W)
        Detector counts (NumPy or CuPy, per ``xp``); 0 on masked pixels.
    mask : bool (n, H, W)
        True where a pixel has no data (module gaps).
    labels : bool (n, 17)
        The 17 attributes in canonical order (host NumPy).
    tags : dict of (n,) host arrays
        ``sample_id``, ``run_index``, ``run_id``, ``split``, ``beamstop``, the physical tags
        (``sample_max``, ``sample_mean``, ``diffuse_low_px``, ``diffuse_high_px``, ``bg_mean``,
        ``bg_max``, ``n_rings``) and the generator flags (``flag_*``); see :mod:`xsgpu.synth.labels`.
    """

    counts: object
    mask: object
    labels: np.ndarray
    tags: dict


def check_size(size) -> int:
    """Validate an output size (8..4096 pixels)."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 8 <= int(size) <= 4096:
        raise ValueError(f"The 'size' parameter must be an integer in [8, 4096]. Got {size!r} instead.")
    return int(size)


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < low:
        raise ValueError(f"The {name!r} parameter must be an integer >= {low}. Got {value!r} instead.")
    return int(value)


class _RunRenderer:
    """Pixel maps of one run at one size (built once, reused by all its images)."""

    def __init__(self, run, size: int, xp: ModuleType, fast: bool = True):
        self.run, self.size, self.xp, self.fast = run, size, xp, fast
        geom = run.geometry
        self.maps = make_pixel_maps(geom, size, xp)
        self.n_q = geom.n_q_bins()
        self.hist = conceptual_histogram(geom)
        self.trans = transmission_map(run.beamstop, self.maps)
        if run.obstruction is not None:  # window obstruction: everything beyond q0 is blocked
            q0, dq = run.obstruction
            z = xp.clip((self.maps.q - xp.float32(q0)) / xp.float32(dq), -60.0, 60.0)
            self.trans = (self.trans * (1.0 - 1.0 / (1.0 + xp.exp(-z)))).astype(xp.float32)
        self.beam = direct_beam_map(self.maps, fwhm_x=run.beam_fwhm[0], fwhm_y=run.beam_fwhm[1])
        m = self.maps
        self.glow = None
        if run.glow_width is not None:
            self.glow = xp.exp(-0.5 * (m.r / xp.float32(run.glow_width)) ** 2).astype(xp.float32)
        w = run.streak_width
        self.streak_h = (xp.exp(-0.5 * (m.dy / w) ** 2) * (1 + xp.abs(m.dx) / 5.0) ** -1.5).astype(xp.float32)
        self.streak_v = (xp.exp(-0.5 * (m.dx / w) ** 2) * (1 + xp.abs(m.dy) / 5.0) ** -1.5).astype(xp.float32)
        self.gaps = gap_mask(m, row0=run.gap_row, col0=run.gap_col)
        self.has_gaps = bool(run.gap_row is not None or run.gap_col is not None)
        self.gap_idx = xp.nonzero(self.gaps)[0]  # integer indices: portable NumPy/CuPy fancy indexing

    def render(self, terms, profiles, extras, rng, host_rng, batch_size: int, out, noise: bool = True):
        """Write the counts of the block's images into ``out`` (float32 (m, H*W), C-contiguous)."""
        xp, m = self.xp, self.maps
        n = terms.n_images
        npx = self.size * self.size
        iso_rows = [t for t in range(len(terms.img))
                    if t not in terms.ang and t not in terms.oval and t not in terms.speckle and t not in terms.meso]
        other = [t for t in range(len(terms.img)) if t not in iso_rows]
        iso = np.zeros((n, self.n_q))
        if iso_rows:
            np.add.at(iso, np.asarray(terms.img)[iso_rows], profiles[iso_rows])
        iso_x = xp.asarray(iso.astype(np.float32))
        bg = xp.asarray(extras.bg_level.astype(np.float32))
        glow_amp = xp.asarray(extras.glow_amp.astype(np.float32))
        beam_scale = extras.beam_scale.astype(np.float32)
        blocked = extras.blocked.astype(np.uint8)
        bg_sigma = extras.bg_sigma.astype(np.float32)
        by_img: dict[int, list[int]] = {}
        for t in other:
            by_img.setdefault(terms.img[t], []).append(t)
        use_numba = xp is np and self.fast and numba_available()
        for a in range(0, n, batch_size):
            b = min(n, a + batch_size)
            rows = [i for i in range(a, b)
                    if i in by_img or extras.streak_h[i] or extras.streak_v[i] or extras.windows[i]]
            extra = xp.zeros((max(len(rows), 1), npx), dtype=xp.float32)
            extra_row = np.full(b - a, -1, dtype=np.int64)
            for j, i in enumerate(rows):
                extra_row[i - a] = j
                if extras.streak_h[i]:
                    extra[j] += np.float32(extras.streak_h[i]) * self.streak_h
                if extras.streak_v[i]:
                    extra[j] += np.float32(extras.streak_v[i]) * self.streak_v
                for t in by_img.get(i, ()):
                    extra[j] += self._term_pixels(t, terms, profiles, host_rng)
                for w in extras.windows[i]:
                    extra[j] += window_map(w, m)
            u = uniform_u16(rng, (b - a, npx), xp)
            if use_numba:
                table, ztab = noise_tables(np)
                compose_counts(
                    iso_x[a:b], m.qidx, bg[a:b], glow_amp[a:b], self.glow if self.glow is not None else self.beam,
                    self.beam, self.trans, extra, extra_row, u, table=table, ztab=ztab, lam_steps=LAM_STEPS,
                    n_q=N_QUANTILES, exact_below=POISSON_EXACT_BELOW, dark=DARK_RATE, max_counts=MAX_COUNTS,
                    noise=noise, beam_scale=beam_scale[a:b], blocked=blocked[a:b], bg_sigma=bg_sigma[a:b],
                    out=out[a:b])
            else:
                lam = xp.take(iso_x[a:b], m.qidx, axis=1)
                lam += bg[a:b, None] + xp.asarray(beam_scale[a:b])[:, None] * self.beam[None, :]
                if self.glow is not None:
                    lam += glow_amp[a:b, None] * self.glow[None, :]
                has = extra_row >= 0
                if has.any():
                    sel = xp.asarray(np.nonzero(has)[0])
                    lam[sel] += extra[xp.asarray(extra_row[has])]
                blk = xp.asarray(blocked[a:b].astype(bool))[:, None]
                lam = xp.where(blk, lam * self.trans[None, :], lam)
                lam += xp.float32(DARK_RATE)
                out[a:b] = sample_counts(lam, u=u) if noise else xp.clip(lam, 0.0, MAX_COUNTS)
                noisy = np.nonzero(bg_sigma[a:b] > 0)[0]
                if noise and len(noisy):  # background pixel noise: Gaussian of variance lam + (sigma t)^2
                    _, ztab = noise_tables(xp)
                    sel = xp.asarray(noisy)
                    tp = xp.where(blk[sel], self.trans[None, :], xp.float32(1.0))
                    sg = xp.asarray(bg_sigma[a:b][noisy])[:, None] * tp
                    lm = xp.clip(lam[sel], 0.0, MAX_COUNTS)
                    c = xp.rint(lm + xp.sqrt(lm + sg * sg) * xp.take(ztab, u[sel]))
                    out[xp.asarray(a + noisy)] = xp.maximum(c, 0.0).astype(xp.float32)
            counts = out[a:b]
            for i in range(a, b):
                for uz, v in extras.zingers[i]:
                    k = min(int(uz * npx), npx - 1)
                    counts[i - a, k] = counts[i - a, k] + xp.float32(v)
            xp.minimum(counts, xp.float32(MAX_COUNTS), out=counts)
            if self.has_gaps:
                counts[:, self.gap_idx] = 0.0

    def _term_pixels(self, t, terms, profiles, host_rng):
        xp, m = self.xp, self.maps
        if t in terms.meso:  # a single-crystal mesostructure: radial envelope x the cluster's structure factor
            vectors, envelope = terms.meso[t]
            return xp.take(xp.asarray(envelope.astype(np.float32)), m.qidx) * structure_factor(m.dx, m.dy, vectors, xp)
        prof = xp.asarray(profiles[t].astype(np.float32))
        if t in terms.oval:
            ecc, chi0 = terms.oval[t]
            f = xp.asarray(K.oval_factor(_CHI, ecc=ecc, chi0=chi0).astype(np.float32))
            qi = xp.rint(m.q * xp.take(f, m.cidx) * xp.float32(1.0 / Q_BIN)).astype(xp.intp)
            vals = xp.take(prof, xp.minimum(qi, self.n_q - 1))
        else:
            vals = xp.take(prof, m.qidx)
        if t in terms.ang:
            vals = vals * xp.take(xp.asarray(terms.ang[t]), m.cidx)
        if t in terms.speckle:
            shape = terms.speckle[t]
            g = min(48, self.size)
            field = host_rng.gamma(shape, 1.0 / shape, size=(1, g, g)).astype(np.float32)
            vals = vals * resize_batch(xp.asarray(field), self.size).reshape(-1)
        return vals


def generate_images(n: int, *, size: int = 256, seed: int = 0, xp: ModuleType | None = None, start: int = 0,
                    images_per_run: int = 200, mix: Mix = DEFAULT_MIX, device: str = "cpu",
                    batch_size: int = 32, fast: bool = True, noise: bool = True) -> SynthBatch:
    """Generate ``n`` synthetic images with ids ``start .. start + n - 1``.

    Parameters
    ----------
    n : int
        Number of images.
    size : int
        Output size H = W (the 256-pixel conceptual detector resampled; labels do not depend on it).
    seed : int
        Seed of the whole dataset.
    xp : module, optional
        ``numpy`` or ``cupy``; default: the array module of ``device``.
    start : int
        Sample id of the first image (sets its run and the random streams).
    images_per_run : int
        Images per run (runs share geometry, beamstop, window and split).
    mix : Mix
        Probabilities and ranges (:data:`xsgpu.synth.mix.DEFAULT_MIX`).
    device : {"cpu", "gpu", "auto"}
        Used only when ``xp`` is None.
    batch_size : int
        Images per vectorised pixel batch (memory: ~20 x batch_size x H x W bytes).
    fast : bool
        On NumPy, use the fused numba kernel for the per-pixel work (same results as the array code,
        which runs when False and always on CuPy).
    noise : bool
        False: return the expected counts (before counting noise; zingers, clipping and gaps still
        apply). The random streams are consumed the same way, so labels and tags are unchanged.

    Returns
    -------
    SynthBatch
        ``counts`` float32 (n, size, size) and ``mask`` bool (n, size, size) in ``xp``; ``labels`` bool
        (n, 17) and ``tags`` on the host.
    """
    n = _check_int("n", n, 0)
    size = check_size(size)
    seed = _check_int("seed", seed, 0)
    start = _check_int("start", start, 0)
    images_per_run = _check_int("images_per_run", images_per_run, 1)
    batch_size = _check_int("batch_size", batch_size, 1)
    if not isinstance(mix, Mix):
        raise TypeError(f"The 'mix' parameter must be a xsgpu.synth.Mix. Got {type(mix).__name__} instead.")
    if xp is None:
        xp = get_backend(device).xp
    host = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, start)))
    # speckle fields have a size-dependent shape: their own stream keeps the parameter stream size-free
    speckle_rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(5, start)))
    noise_ss = np.random.SeedSequence(seed, spawn_key=(3, start))
    rng = np.random.default_rng(noise_ss) if xp is np else xp.random.default_rng(
        int(noise_ss.generate_state(1, np.uint64)[0]))
    counts = xp.zeros((n, size, size), dtype=xp.float32)
    mask = xp.zeros((n, size, size), dtype=bool)
    labels = np.zeros((n, 17), dtype=bool)
    tag_parts: list[dict] = []
    ids = np.arange(start, start + n, dtype=np.int64)
    run_of = ids // images_per_run
    pos = 0
    for k in (np.unique(run_of) if n else []):
        m = int((run_of == k).sum())
        run = make_run_spec(int(k), seed=seed, mix=mix)
        rend = _RunRenderer(run, size, xp, fast)
        terms, extras = draw_block(host, mix, m, rend.n_q, glow=run.glow_width is not None,
                                   first_of_run=ids[pos:pos + m] % images_per_run == 0, style=run.style)
        prof = terms.profiles(pixel_q=Q_PIXEL)
        tags = compute_tags(terms, prof, extras, run, rend.hist)
        labels[pos:pos + m] = labels_from_tags(tags, run.beamstop.kind)
        img_prof = prof if size == CONCEPT_SIZE else terms.profiles(pixel_q=Q_PIXEL * CONCEPT_SIZE / size)
        rend.render(terms, img_prof, extras, rng, speckle_rng, batch_size, counts[pos:pos + m].reshape(m, size * size),
                    noise=noise)
        if rend.has_gaps:
            mask[pos:pos + m] = rend.gaps.reshape(size, size)[None]
        tags.update(sample_id=ids[pos:pos + m], run_index=np.full(m, k), run_id=np.full(m, run.run_id),
                    image_kind=extras.image_kind, run_style=np.full(m, run.style),
                    split=np.full(m, run.split), beamstop=np.full(m, run.beamstop.kind))
        tag_parts.append(tags)
        pos += m
    all_tags = {key: np.concatenate([t[key] for t in tag_parts]) for key in tag_parts[0]} if tag_parts else {}
    return SynthBatch(counts=counts, mask=mask, labels=labels, tags=all_tags)


