"""Evaluate a run's predictions against its labels and store ``metrics.parquet`` (the evaluate stage).

Only labelled samples (``samples.labelled``) that were read (``samples.valid``, when ingest wrote it)
count; the metadata records how many (``n_evaluated``) of the run's ``n_samples``. A run without any
labelled sample is evaluated too: its table says ``n`` = 0 with every other value NaN. The table is
long: one row per (scope, attribute, metric) with ``scope`` "model" (``attribute`` = ""), "attribute"
(``attribute`` = slug) or "split" (``attribute`` = the split name, train/val/test: the model-level
metrics of that split's labelled samples; the model was fitted on "train", so "test" is the unbiased
figure). Its metadata also records the cut-off and the predictions' model id.

When the run has ``fea_reduced.npy`` (written by the embed stage), the stage also audits every labelled
image's labels with :func:`~xsgpu.metrics.suspicious_labels` (FEA neighbours; approximate kNN above
50k images) and writes the ``suspicious_top`` most suspicious (image, attribute) pairs to
``suspicious.parquet``, which the app lists, so a million-image run is audited whole, once, in batch.

When the run has ``heatmaps.zarr`` (written by infer), the stage also writes ``heatmap_shares.parquet``:
per image and attribute the share of the heatmap on the beamstop/gaps and on the image edge
(:mod:`xsgpu.explain.shares`), which the app colours the maps by.
"""
from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
import pandas as pd

from xsgpu.attributes import DEFAULT_VOCABULARY, Vocabulary
from xsgpu.io.runstore import RunStore, RunStoreError
from xsgpu.metrics.confusion import PER_ATTRIBUTE_COLUMNS, SelectionScorer, attribute_metrics
from xsgpu.metrics.validation import check_cutoff
from xsgpu.io.schema import SAMPLES

__all__ = ["NoLabelledSamples", "evaluate_run", "write_suspicious", "load_evaluation_arrays", "load_evaluation_frame",
           "metrics_table",
           "split_table", "METRICS_COLUMNS", "MODEL_METRICS"]

log = logging.getLogger(__name__)

METRICS_COLUMNS = ["scope", "attribute", "metric", "value"]
#: Model-scope metrics written by :func:`evaluate_run` (keys of ``SelectionMetrics.overall`` plus ``map``).
MODEL_METRICS = ["n", "map", "accuracy", "subset_accuracy", "precision_micro", "recall_micro", "f1_micro",
                 "precision_macro", "recall_macro", "f1_macro", "precision_samples", "recall_samples", "f1_samples"]


class NoLabelledSamples(RunStoreError):
    """The run has no labelled (and readable) sample: there is no ground truth to evaluate against."""


def load_evaluation_arrays(store: RunStore) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read ``(sample_id, y_true bool (m,k), y_prob float32 (m,k))`` for the labelled samples of a run (k attributes).

    Raises
    ------
    RunStoreError
        See :func:`load_evaluation_frame`.
    """
    merged = load_evaluation_frame(store)
    vocab = store.vocabulary
    return (merged["sample_id"].to_numpy(np.int64), merged[vocab.label_columns()].to_numpy(bool),
            merged[vocab.prob_columns()].to_numpy(np.float32))


def load_evaluation_frame(store: RunStore) -> pd.DataFrame:
    """The labelled samples joined with their predictions: ``sample_id``, ``split`` (when the run has it),
    ``y__<slug>`` and ``p__<slug>`` of the run's vocabulary, ordered by ``sample_id``.

    Raises
    ------
    RunStoreError
        Missing or incomplete predictions, no ``labelled`` column, no labelled samples, or labelled
        samples without a prediction; the message names the table and the remedy.
    """
    label_columns, prob_columns = store.vocabulary.label_columns, store.vocabulary.prob_columns
    if not store.predictions.path.exists():
        raise RunStoreError(f"{store.path}: the run has no predictions yet (predictions.parquet is missing). "
                            f"Hint: run `xsgpu infer {store.path} --model MODEL` first.")
    if not store.predictions.exists():
        done = len(store.predictions.finished())
        raise RunStoreError(f"{store.path}: predictions are incomplete ({done} of {store.n_partitions} partitions "
                            f"finished). Hint: rerun `xsgpu infer {store.path} --model MODEL` to resume.")
    samples = store.samples.read()
    if "labelled" not in samples.columns:
        raise RunStoreError(f"{store.samples.path}: field 'labelled' is missing, so the labelled samples "
                            "cannot be told apart. Hint: re-create the run with a current `xsgpu synth`/`ingest`.")
    missing_cols = [c for c in label_columns() if c not in samples.columns]
    if missing_cols:
        raise RunStoreError(f"{store.samples.path}: label columns {missing_cols} are missing.")
    samples = samples[samples["labelled"].to_numpy(bool)]
    if "valid" in samples.columns:  # ingest keeps a zero image for a frame it could not read: not evidence
        invalid = ~samples["valid"].to_numpy(bool)
        if invalid.any():
            log.info("%s: %d labelled frames failed to read (samples.valid False, see errors.parquet); "
                     "left out of the evaluation", store.path, int(invalid.sum()))
            samples = samples[~invalid]
    if samples.empty:
        raise NoLabelledSamples(f"{store.path}: no sample is labelled (samples.labelled is all False); "
                            "there is nothing to evaluate against.")
    preds = store.predictions.read()
    missing_p = [c for c in prob_columns() if c not in preds.columns]
    if missing_p:
        raise RunStoreError(f"{store.predictions.path}: probability columns {missing_p} are missing.")
    keep = ["sample_id"] + (["split"] if "split" in samples.columns else []) + label_columns()
    merged = samples[keep].merge(preds[["sample_id"] + prob_columns()], on="sample_id", how="left",
                                 validate="one_to_one")
    no_pred = merged[prob_columns()].isna().all(axis=1).to_numpy()
    if no_pred.any():
        raise RunStoreError(f"{store.predictions.path}: {int(no_pred.sum())} labelled samples have no "
                            f"prediction (first sample_id {int(merged['sample_id'][no_pred].iloc[0])}). "
                            f"Hint: rerun `xsgpu infer {store.path} --model MODEL`.")
    return merged.reset_index(drop=True)


def evaluate_run(run_path: str | os.PathLike, *, cutoff: float | Any = 0.5, suspicious: bool = True,
                 suspicious_top: int = 10_000, suspicious_k: int = 10) -> pd.DataFrame:
    """Compute per-attribute and model metrics of a run and write ``RUN/metrics.parquet``.

    Parameters
    ----------
    run_path : path
        A run store with samples and (complete) predictions.
    cutoff : float or array of shape (k,)
        Predicted means ``p > cutoff`` (k: the run's attributes, ``store.vocabulary``).
    suspicious : bool
        Also write ``suspicious.parquet`` (see the module docstring) when the run has ``fea_reduced.npy``.
    suspicious_top : int
        Rows kept in ``suspicious.parquet``.
    suspicious_k : int
        FEA neighbours per image in the suspicious-label score.

    Returns
    -------
    pandas.DataFrame
        The long table written (columns :data:`METRICS_COLUMNS`).

    Raises
    ------
    RunStoreError
        See :func:`load_evaluation_arrays`.
    ValueError
        NaN or out-of-range probabilities in the predictions (the message names the table).
    """
    store = RunStore.open(run_path, require=[SAMPLES])
    vocab = store.vocabulary
    cut = check_cutoff(cutoff, xp=np, func="evaluate_run", n_attributes=len(vocab))
    try:
        frame = load_evaluation_frame(store)
    except NoLabelledSamples as exc:
        return _write_nothing_evaluated(store, cut, reason=str(exc), vocabulary=vocab)
    y_true = frame[vocab.label_columns()].to_numpy(bool)
    y_prob = frame[vocab.prob_columns()].to_numpy(np.float32)
    try:
        per = attribute_metrics(y_true, y_prob, cutoff=cut, slugs=vocab.slugs)
        scorer = SelectionScorer(y_true, y_prob, cutoff=cut, vocabulary=vocab)
    except ValueError as exc:
        raise ValueError(f"{store.predictions.path}: {exc}") from exc
    overall = scorer().overall
    ap = per["ap"].to_numpy()
    overall["map"] = float(np.nanmean(ap)) if np.isfinite(ap).any() else float("nan")
    rows = [("model", "", m, float(overall[m])) for m in MODEL_METRICS]
    for slug in vocab.slugs:
        for m in PER_ATTRIBUTE_COLUMNS:
            rows.append(("attribute", slug, m, float(per.at[slug, m])))
    if "split" in frame.columns:  # the model was trained on "train": "test" is the honest figure
        splits = frame["split"].astype(str).to_numpy()
        for split in sorted(set(splits)):
            split_overall = scorer(splits == split, ap=True).overall
            rows.extend(("split", split, m, float(split_overall[m])) for m in MODEL_METRICS)
    df = pd.DataFrame(rows, columns=METRICS_COLUMNS)
    meta: dict[str, Any] = {
        "cutoff": cut if isinstance(cut, float) else [float(c) for c in cut],
        "n_evaluated": int(y_true.shape[0]),
        "n_samples": int(store.n_samples),
        "prediction_rule": "p > cutoff",
        "zero_division": 0,
    }
    try:
        pmeta = store.predictions.metadata()
        meta.update({k: pmeta[k] for k in ("model_id", "arch", "weights_sha256") if k in pmeta})
    except Exception as exc:  # metadata is informative only; the evaluation itself is complete
        log.warning("evaluate_run: could not read the predictions metadata of %s (%s)", store.path, exc)
    store.metrics.write(df, metadata=meta)
    if suspicious:
        write_suspicious(store, frame["sample_id"].to_numpy(np.int64), y_true, y_prob, top=suspicious_top,
                         k=suspicious_k)
    from xsgpu.explain.shares import write_heatmap_shares

    write_heatmap_shares(store)
    store.set_stage("evaluate", "done", map=overall["map"], n_evaluated=int(y_true.shape[0]),
                    cutoff=meta["cutoff"])
    log.info("evaluate_run: %s: %d labelled samples, mAP %.4f", store.path, y_true.shape[0], overall["map"])
    return df


def _write_nothing_evaluated(store: RunStore, cut: Any, *, reason: str,
                             vocabulary: Vocabulary = DEFAULT_VOCABULARY) -> pd.DataFrame:
    """An unlabelled run: metrics.parquet says n = 0 (every other value NaN), so later stages and the app
    see "evaluated, no ground truth" rather than a failed stage."""
    log.warning("evaluate_run: %s", reason)
    rows = [("model", "", m, 0.0 if m == "n" else float("nan")) for m in MODEL_METRICS]
    rows += [("attribute", slug, m, 0.0 if m in ("support", "tp", "tn", "fp", "fn") else float("nan"))
             for slug in vocabulary.slugs for m in PER_ATTRIBUTE_COLUMNS]
    df = pd.DataFrame(rows, columns=METRICS_COLUMNS)
    meta = {"cutoff": cut if isinstance(cut, float) else [float(c) for c in cut], "n_evaluated": 0,
            "n_samples": int(store.n_samples), "prediction_rule": "p > cutoff", "zero_division": 0,
            "note": "no labelled samples: nothing evaluated"}
    store.metrics.write(df, metadata=meta)
    from xsgpu.explain.shares import write_heatmap_shares

    write_heatmap_shares(store)
    store.set_stage("evaluate", "done", map=float("nan"), n_evaluated=0, cutoff=meta["cutoff"])
    return df


def write_suspicious(store: RunStore, sample_ids: np.ndarray, y_true: np.ndarray, y_prob: np.ndarray, *,
                     top: int = 10_000, k: int = 10) -> pd.DataFrame | None:
    """Audit the labels of ``sample_ids`` against the model and their FEA neighbours; write ``suspicious``.

    Uses ``fea_reduced.npy`` (the embed stage's PCA of FEA). Without it, or with fewer than ``k + 1``
    images, nothing is computed and a stale ``suspicious.parquet`` (from other predictions) is removed.

    Returns
    -------
    pandas.DataFrame or None
        The table written (:data:`~xsgpu.metrics.SUSPICIOUS_COLUMNS`), or None.
    """
    import time

    from xsgpu.metrics.suspicious import EXACT_MAX_ROWS, suspicious_labels

    target = store.suspicious.path
    if not store.fea_reduced.exists() or len(sample_ids) <= k:
        target.unlink(missing_ok=True)
        log.info("evaluate_run: %s: no suspicious-label audit (%s)", store.path,
                 "no fea_reduced.npy: run `xsgpu embed` first" if not store.fea_reduced.exists()
                 else f"only {len(sample_ids)} labelled images")
        return None
    reduced = store.fea_reduced.load()
    if reduced.ndim != 2 or reduced.shape[0] != store.n_samples:
        raise RunStoreError(f"{store.fea_reduced.path}: shape {reduced.shape}, expected "
                            f"({store.n_samples}, k). Hint: rerun `xsgpu embed {store.path}`.")
    t0 = time.perf_counter()
    feats = np.asarray(reduced[sample_ids], dtype=np.float32)
    df = suspicious_labels(y_true, y_prob, feats, k=k, top=top, sample_ids=sample_ids, vocabulary=store.vocabulary)
    neighbors = "approx" if len(sample_ids) > EXACT_MAX_ROWS else "exact"
    meta = {"k": k, "top": top, "n_audited": int(len(sample_ids)), "features": "fea_reduced",
            "neighbors": neighbors, "seconds": round(time.perf_counter() - t0, 3)}
    store.suspicious.write(df, metadata=meta)
    log.info("evaluate_run: %s: audited %d labelled images (%s kNN, k=%d) in %.1f s; top %d in suspicious.parquet",
             store.path, len(sample_ids), neighbors, k, meta["seconds"], len(df))
    return df


def metrics_table(long: pd.DataFrame, vocabulary: Vocabulary | None = None) -> tuple[pd.DataFrame, dict[str, float]]:
    """Pivot a long metrics table back to (per-attribute DataFrame indexed by slug, model-metrics dict).

    Rows of other scopes (e.g. "split") are ignored; see :func:`split_table`.
    """
    missing = [c for c in METRICS_COLUMNS if c not in long.columns]
    if missing:
        raise ValueError(f"The 'long' parameter of metrics_table must have columns {METRICS_COLUMNS}. "
                         f"Missing {missing}.")
    attr = long[long["scope"] == "attribute"].pivot(index="attribute", columns="metric", values="value")
    order = (list(vocabulary.slugs) if vocabulary is not None  # else the table's own order (the run's vocabulary)
             else list(dict.fromkeys(long.loc[long["scope"] == "attribute", "attribute"])))
    attr = attr.reindex(index=order, columns=[c for c in PER_ATTRIBUTE_COLUMNS if c in attr.columns])
    model = long[long["scope"] == "model"].set_index("metric")["value"].to_dict()
    return attr, {k: float(v) for k, v in model.items()}


def split_table(long: pd.DataFrame) -> pd.DataFrame:
    """The "split" rows of a long metrics table as a DataFrame (index: split, columns: metrics)."""
    rows = long[long["scope"] == "split"]
    if rows.empty:
        return pd.DataFrame(columns=MODEL_METRICS)
    return rows.pivot(index="attribute", columns="metric", values="value").reindex(columns=MODEL_METRICS)
