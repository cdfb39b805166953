"""``xsgpu explain RUN --sample ID --attribute NAME``: Grad-CAM / Integrated Gradients of one image (thin wrapper)."""
from __future__ import annotations

from pathlib import Path

import click

__all__ = ["command", "save_map"]


def save_map(path: Path, explanation) -> None:
    """Write the map as ``.npy`` (float32, as computed) or ``.png`` (the model input in grey, the map over it, colour bar)."""
    import numpy as np

    suffix = path.suffix.lower()
    if suffix == ".npy":
        np.save(path, explanation.map, allow_pickle=False)
        return
    if suffix != ".png":
        raise click.BadParameter(f"{path}: write .npy or .png.", param_hint="--out")
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from xsgpu.explain.attribution import upsample

    m = explanation.map
    if m.shape != explanation.image.shape:
        m = upsample(m, explanation.image.shape[-1])
    signed = explanation.method != "gradcam"
    lim = float(np.abs(m).max()) or 1.0
    fig, ax = plt.subplots(figsize=(4.2, 3.6), dpi=120)
    ax.imshow(explanation.image, cmap="gray")
    shown = ax.imshow(m, cmap="RdBu_r" if signed else "inferno", alpha=0.55, vmin=-lim if signed else 0.0, vmax=lim)
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
    where = f" at {explanation.layer}" if explanation.layer else ""
    ax.set_title(f"{explanation.attribute}: {explanation.method}{where}", fontsize=9)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


@click.command(name="explain")
@click.argument("run", type=click.Path(file_okay=False, path_type=Path))
@click.option("--sample", "sample_id", type=click.IntRange(min=0), required=True, help="sample_id of the image.")
@click.option("--attribute", required=True, help="Attribute to explain: display name, slug or index (Ring, ring, 12).")
@click.option("--method", type=click.Choice(["gradcam", "ig", "gxi"]), default="gradcam", show_default=True,
              help="Grad-CAM at a layer, Integrated Gradients, or Gradient x Input.")
@click.option("--layer", default=None, help="Grad-CAM's layer: layer1..layer4 [default: layer4] or a dotted module "
                                            "name (layer3.1.conv2).")
@click.option("--model", type=click.Path(exists=True, path_type=str), default=None,
              help="Model to explain [default: the one recorded with RUN's predictions].")
@click.option("--spec", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="A foreign model's spec (default: beside the model file).")
@click.option("--device", type=click.Choice(["auto", "cpu", "gpu"]), default="cpu", show_default=True)
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Output file: .npy (the map, float32, input size) or .png (the map over the image).")
def command(run: Path, sample_id: int, attribute: str, method: str, layer: str | None, model: str | None,
            spec: str | None, device: str, out: Path) -> None:
    """Explain one attribute's score for one image of RUN (docs/explain.md).

    Grad-CAM weights a layer's maps by the mean gradient of the attribute's score (the logit) and
    keeps the positive part; Integrated Gradients and Gradient x Input attribute the score to the
    input pixels. Maps are at the model input's size (Grad-CAM upsampled from its layer's). Needs a
    PyTorch model (xsgpu checkpoint, state dict; TorchScript: ig/gxi only); ONNX models cannot be
    differentiated.

    \b
    Examples:
      xsgpu explain runs/demo --sample 17 --attribute Ring --out ring17.png
      xsgpu explain runs/demo --sample 17 --attribute Ring --method gradcam --layer layer3 --out ring17_l3.npy
      xsgpu explain runs/demo --sample 17 --attribute "Circular Beamstop" --method ig --out bs17.png
    """
    from xsgpu.explain.image import explain_image

    ex = explain_image(run, sample_id, attribute, method=method, layer=layer, model=model, spec=spec, device=device,
                       details=True)
    save_map(out, ex)
    extra = f", completeness error {ex.delta:.3g}" if ex.delta is not None else ""
    click.echo(f"{ex.method}{' at ' + ex.layer if ex.layer else ''} of {ex.attribute} for sample {sample_id} "
               f"(score {ex.score:.4g}{extra}): {ex.map.shape[0]}x{ex.map.shape[1]} map -> {out}")
