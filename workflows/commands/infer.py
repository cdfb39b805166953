"""``xsgpu infer RUN --model MODEL``: write predictions.parquet and features.zarr for a run."""
from __future__ import annotations

import click
from xsgpu.io.schema import IMAGES

__all__ = ["command"]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("run", type=click.Path(file_okay=False, path_type=str))
@click.option("--model", "model", type=click.Path(path_type=str), required=True,
              help="Checkpoint directory written by `xsgpu train`, or a model file from elsewhere: ONNX (.onnx), "
                   "TorchScript (.pt/.ts) or a torchvision state dict (.safetensors/.pt/.pth), described by a spec.")
@click.option("--spec", "spec", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Model spec (TOML/JSON) of a model file; default MODEL_STEM.spec.toml/.json beside it. "
                   "`xsgpu model inspect MODEL` says what it must hold (docs/own_model.md).")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "gpu"]), default="auto", show_default=True)
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model (CUDA only; ~40 s warm-up).")
@click.option("--threads", "num_threads", type=click.IntRange(min=1), default=None,
              help="CPU threads (default: all cores).")
@click.option("--overwrite", is_flag=True,
              help="Replace the predictions/features there (e.g. another model's); the old ones stay until the "
                   "new ones are complete.")
@click.option("--heatmaps/--no-heatmaps", default=None,
              help="Also write RUN/heatmaps.zarr: one class activation map per attribute (N x C x h x w float16, "
                   "h = w = input size / 32), for models ending in global average pooling + linear (xsgpu "
                   "checkpoints); other models get none, with the reason logged. Default: on (a resume keeps "
                   "what its finished partitions have). docs/explain.md.")
@click.option("--layers", "layers", default=None, metavar="LAYER[,LAYER]",
              help="Also keep these blocks' globally pooled activations (layer1, layer2, layer3) as "
                   "RUN/features_<layer>.zarr; `xsgpu embed` maps each like FEA. Default: none (a resume keeps "
                   "the finished partitions' layers).")
@click.option("--attribute-map", "attribute_map", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="For a model whose attributes are not RUN's: a file mapping model output names to RUN's "
                   "attribute names (JSON object, or CSV lines 'model,run'); outputs of the same name match "
                   "without it. Every attribute of RUN must be given by one output.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def command(run: str, model: str, spec: str | None, batch_size: int, device: str, compile_: bool,
            num_threads: int | None,
            overwrite: bool, heatmaps: bool | None, layers: str | None, attribute_map: str | None,
            progress: bool) -> None:
    """Predict the attribute probabilities (PRD) and the pooled features (FEA) of RUN's images.

    Writes RUN/predictions.parquet/ (sample_id, p__<attribute> float32; model id and weights hash in
    the metadata) and RUN/features.zarr (N x D float16), partition by partition: an interrupted run
    resumes where it stopped. The model must match the run's attributes (its vocabulary, in order)
    and stored image size; a model of other attributes needs --attribute-map.
    With --overwrite the new outputs are written into RUN/.staging/infer/ and swapped in only when
    every partition is done, so an interrupted overwrite leaves the old outputs intact (rerun it to
    resume). One infer per run at a time: a second one is refused, naming the running one's pid.
    By default it also writes RUN/heatmaps.zarr (class activation maps, same forward pass); with
    --layers it keeps earlier blocks' pooled activations (RUN/features_<layer>.zarr). A resume must
    ask for the same extra outputs.

    \b
    Examples:
      xsgpu infer runs/demo --model models/r18
      xsgpu infer runs/big --model models/r50 --device gpu --batch-size 1024 --compile
      xsgpu infer runs/demo --model models/r18-v2 --overwrite
      xsgpu infer runs/demo --model models/r18 --layers layer1,layer2,layer3 --overwrite
      xsgpu infer runs/demo --model models/r18 --no-heatmaps
      xsgpu infer runs/demo --model exported/r50.onnx --spec exported/r50.spec.toml
      xsgpu infer runs/bl12 --model models/r18-paper --attribute-map bl12_map.csv   # 17-attribute model, own run
    """
    from xsgpu.io.runstore import RunStore
    from xsgpu.stages import InferParams, get_stage, run_stage

    RunStore.open(run, require=[IMAGES])  # a missing run is reported before a model is loaded
    keep = None if layers is None else tuple(name.strip() for name in layers.split(",") if name.strip())
    params = InferParams(model=model, spec=spec, device=device, batch_size=batch_size, compile=compile_,
                         num_threads=num_threads, overwrite=overwrite, heatmaps=heatmaps, layers=keep,
                         attribute_map=attribute_map)
    s = run_stage(get_stage("infer"), run, params, progress=progress, skip_done=False).info
    click.echo(f"predicted {s['n_images']} images in {s['n_partitions_done']} partitions "
               f"({s['n_partitions_skipped']} already done) with {s['model_id']} on {s['device']}: "
               f"{s['images_per_s']:.1f} img/s")
    extra = "".join(f", {name}.zarr" for name in s["outputs"])
    click.echo(f"wrote {run.rstrip('/')}/predictions.parquet, features.zarr{extra}")
