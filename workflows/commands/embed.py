"""``xsgpu embed RUN``: 2-D maps of ACT, FEA and PRD -> RUN/embedding.parquet (thin wrapper over embed_run)."""
from __future__ import annotations

from pathlib import Path

import click

__all__ = ["command"]


@click.command(name="embed")
@click.argument("run", type=click.Path(file_okay=False, path_type=Path))
@click.option("--method", type=click.Choice(["tsne", "umap", "pca"]), default="tsne", show_default=True,
              help="Projection: t-SNE (openTSNE on CPU, cuML on GPU), UMAP (umap-learn / cuML) or PCA.")
@click.option("--device", type=click.Choice(["auto", "cpu", "gpu"]), default="auto", show_default=True,
              help="auto: the GPU when usable and the request fits cuML, else CPU (the reason is logged).")
@click.option("--seed", "random_state", type=int, default=0, show_default=True,
              help="Seed of the projections and the ACT jitter (same seed, same map on CPU).")
@click.option("--pca-dims", type=int, default=50, show_default=True,
              help="FEA (N x 2048) is reduced to this many dimensions by exact streaming PCA first.")
@click.option("--perplexity", type=float, default=30.0, show_default=True, help="t-SNE perplexity.")
@click.option("--reference", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Place RUN's images onto the maps of this earlier run instead of fitting new maps.")
@click.option("--n-jobs", type=int, default=-1, show_default=True, help="openTSNE threads (-1: all cores).")
@click.option("--quality/--no-quality", default=True, show_default=True,
              help="Record trustworthiness (k=10, 5k-point sample) per space in the table metadata.")
@click.option("--fit-sample", type=click.IntRange(min=25), default=None, metavar="N",
              help="t-SNE on CPU: fit each map on a stratified sample of N images (strata: predicted label "
                   "vectors) and place every other image on it (openTSNE transform). Default: fit all; "
                   "use ~100000 for runs of 1M+ images without a GPU. Ignored on a GPU (cuML fits all).")
@click.option("--app-cache/--no-app-cache", default=True, show_default=True,
              help="Then write the arrays `xsgpu serve` memory-maps at start (the app_cache stage, as "
                   "`xsgpu app-cache RUN`).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress bars.")
def command(run: Path, method: str, device: str, random_state: int, pca_dims: int, perplexity: float,
            reference: Path | None, n_jobs: int, quality: bool, fit_sample: int | None, app_cache: bool,
            progress: bool) -> None:
    """Embed the three spaces of RUN in 2-D and write RUN/embedding.parquet.

    ACT (true labels, deduplicated), FEA (features.zarr through PCA) and PRD (predictions) each get a
    map; the table has sample_id, act_x, act_y, fea_x, fea_y, prd_x, prd_y. t-SNE and PCA maps are also
    stored as plain arrays in RUN/embedding_reference/, so later runs can be placed onto them.
    The table is also kept per method as RUN/embeddings/<method>.parquet (the app
    switches between the methods a run holds), and the PCA-reduced FEA as
    RUN/fea_reduced.npy (the app's neighbour search, `xsgpu evaluate`'s label audit).

    \b
    Examples:
      xsgpu embed runs/demo                                  # t-SNE, GPU if usable, else CPU
      xsgpu embed runs/demo --method pca --device cpu        # seconds, for a first look
      xsgpu embed runs/demo --method umap --seed 1           # needs umap-learn
      xsgpu embed runs/today --reference runs/yesterday      # today's images onto yesterday's map
      xsgpu embed runs/1m --fit-sample 100000                # fit on 100k, place the other 900k
    """
    import logging

    from xsgpu.io.runstore import RunStore
    from xsgpu.stages import AppCacheParams, EmbedParams, get_stage, run_stage

    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:  # openTSNE's per-step INFO lines only with -vv
        logging.getLogger("openTSNE").setLevel(logging.WARNING)
    store = RunStore.open(run)
    params = EmbedParams(method=method, device=device, random_state=random_state, pca_dims=pca_dims,
                         perplexity=perplexity, reference=None if reference is None else str(reference),
                         n_jobs=n_jobs, quality=quality, fit_sample=fit_sample)
    # one embed per run at a time (the stage's lock): fea_reduced and the embedding stay one method's
    rows = run_stage(get_stage("embed"), run, params, progress=progress, skip_done=False).rows
    meta = store.embedding.metadata()
    click.echo(f"Wrote {rows} rows to {store.embedding.path} (method {method}, "
               f"{meta.get('seconds', 0):.1f} s)")
    for space, info in meta.get("spaces", {}).items():
        tw = info.get("trustworthiness_k10")
        click.echo(f"  {space}: {info.get('n_inputs')} x {info.get('input_dims')} -> 2-D on {info.get('backend')} "
                   f"({info.get('library')}), {info.get('seconds', 0):.1f} s"
                   + (f", trustworthiness@10 {tw:.3f}" if tw is not None else ""))
    if app_cache:
        from xsgpu.errors import XsgpuError

        try:
            cache = run_stage(get_stage("app_cache"), run, AppCacheParams(), progress=progress)
        except XsgpuError as exc:  # e.g. a run without images: the maps are written, the app cannot serve it yet
            click.echo(f"App cache not written: {exc}", err=True)
        else:
            click.echo(f"App cache: {'up to date' if cache.status == 'skipped' else f'written in {cache.seconds:.1f} s'}")
