"""Regenerate docs/synth_contact_sheet.png: one synthetic image per attribute, labelled (Pillow only).

Usage::

    python benchmarks/make_contact_sheet.py [--n 600] [--seed 0] [--size 256] [--out docs/synth_contact_sheet.png]

Each tile shows ``log_scale`` of the counts (the model input, 1-99.8 % stretch, a black-red-yellow-white
ramp); the attribute it illustrates is written under it in bold, followed by all the image's labels.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from xsgpu.attributes import ATTRIBUTES, NAMES
from xsgpu.preprocess import log_scale
from xsgpu.synth import generate_images

_RAMP = np.array([[0, 0, 0], [90, 0, 30], [200, 30, 0], [255, 170, 0], [255, 255, 190], [255, 255, 255]], float)


def colourise(img: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(img, [1.0, 99.8])
    x = np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1) * (len(_RAMP) - 1)
    i = np.minimum(x.astype(int), len(_RAMP) - 2)
    f = (x - i)[..., None]
    return (_RAMP[i] * (1 - f) + _RAMP[i + 1] * f).astype(np.uint8)


def pick(labels: np.ndarray, tags: dict) -> list[int]:
    """One distinct image per attribute, preferring clear examples (bright, few other labels)."""
    used: set[int] = set()
    chosen = []
    bright = np.log10(tags["sample_max"] + 1.0)
    for a in ATTRIBUTES:
        cand = np.nonzero(labels[:, a.index])[0]
        if a.slug in ("weak_scattering", "high_background", "diffuse_low_q", "diffuse_high_q", "halo"):
            score = -labels[cand].sum(axis=1).astype(float)
            if a.slug != "high_background":  # show these on a dark detector
                score -= 5.0 * (tags["bg_mean"][cand] > 1.0)
        else:
            score = bright[cand] - 0.3 * labels[cand].sum(axis=1)
        order = cand[np.argsort(-score, kind="stable")]
        free = [i for i in order if i not in used]
        if not free:
            raise RuntimeError(f"no image with {a.name!r} in the sample; use a larger --n")
        used.add(free[0])
        chosen.append(int(free[0]))
    return chosen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--tile", type=int, default=220)
    ap.add_argument("--cols", type=int, default=6)
    ap.add_argument("--out", default="docs/synth_contact_sheet.png")
    args = ap.parse_args()

    b = generate_images(args.n, size=args.size, seed=args.seed, images_per_run=20)
    logf = log_scale(b.counts, b.mask)
    idx = pick(b.labels, b.tags)
    try:
        font = ImageFont.load_default(size=12)
        bold = ImageFont.load_default(size=15)
    except TypeError:  # Pillow < 10.1
        font = bold = ImageFont.load_default()
    t, pad, text_h = args.tile, 8, 78
    rows = math.ceil(len(idx) / args.cols)
    sheet = Image.new("RGB", (args.cols * (t + pad) + pad, rows * (t + text_h + pad) + pad + 30), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 8), f"xsgpu synthetic SAXS images (seed {args.seed}, {args.size}x{args.size}, log scale): "
              "one image per attribute; bold = the attribute shown, then all labels of the image", fill="black",
              font=font)
    for k, (a, i) in enumerate(zip(ATTRIBUTES, idx)):
        r, c = divmod(k, args.cols)
        x, y = pad + c * (t + pad), 30 + pad + r * (t + text_h + pad)
        tile = Image.fromarray(colourise(logf[i])).resize((t, t), Image.Resampling.BILINEAR)
        sheet.paste(tile, (x, y))
        draw.text((x, y + t + 2), a.name, fill=a.colour, font=bold)
        others = [NAMES[j] for j in np.nonzero(b.labels[i])[0] if j != a.index]
        lines, line = [], ""
        for name in others:
            nxt = f"{line}, {name}" if line else name
            if draw.textlength(nxt, font=font) > t:
                lines.append(line)
                line = name
            else:
                line = nxt
        lines.append(line)
        for j, text in enumerate(lines[:4]):
            draw.text((x, y + t + 20 + 14 * j), text, fill="#333333", font=font)
        draw.text((x + 3, y + 3), f"#{i}", fill="white", font=font)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(f"wrote {args.out} ({sheet.size[0]}x{sheet.size[1]}, images {idx})")


if __name__ == "__main__":
    main()
