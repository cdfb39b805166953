"""Metrics of a multi-attribute model: pure functions over NumPy or CuPy arrays (outputs match inputs).

Conventions shared by all functions (details in each module):

* ``y_true``: bool (n, 17) ACT labels in :mod:`xsgpu.attributes` order; ``y_prob``: float (n, 17) PRD.
* predicted means ``y_prob > cutoff`` (0.5 by default, or one cut-off per attribute, shape (17,));
* a ratio with a zero denominator is 0 (scikit-learn's ``zero_division=0``);
* AP is tie-exact and equals scikit-learn's; an attribute without positives has AP NaN and is left
  out of the mAP.

Modules: :mod:`~xsgpu.metrics.confusion` (counts, precision/recall/F1, selections),
:mod:`~xsgpu.metrics.ranking` (AP, mAP), :mod:`~xsgpu.metrics.distances` (ACT-vs-PRD error distance),
:mod:`~xsgpu.metrics.study` (MI, correlation, conditional entropy), :mod:`~xsgpu.metrics.cooccurrence`,
:mod:`~xsgpu.metrics.clustering`, :mod:`~xsgpu.metrics.suspicious`, :mod:`~xsgpu.metrics.evaluate`.
"""
from __future__ import annotations

from xsgpu.metrics.clustering import ClusterResult, cluster_selection, davies_bouldin
from xsgpu.metrics.confusion import (
    PER_ATTRIBUTE_COLUMNS,
    SelectionMetrics,
    SelectionScorer,
    attribute_metrics,
    confusion_counts,
    encode_rows,
    predict_labels,
    ratios,
    selection_metrics,
)
from xsgpu.metrics.cooccurrence import COOCCURRENCE_COLUMNS, cooccurrence_table
from xsgpu.metrics.distances import DISTANCE_METRICS, error_distance
from xsgpu.metrics.evaluate import (
    METRICS_COLUMNS,
    evaluate_run,
    load_evaluation_arrays,
    load_evaluation_frame,
    metrics_table,
    split_table,
)
from xsgpu.metrics.ranking import average_precision, descending_order, mean_ap, mean_average_precision, restrict_order
from xsgpu.metrics.study import STUDY_MEASURES, attribute_study
from xsgpu.metrics.suspicious import SUSPICIOUS_COLUMNS, knn_indices, neighbour_label_rate, suspicious_labels

__all__ = [
    "confusion_counts", "attribute_metrics", "selection_metrics", "SelectionMetrics", "SelectionScorer",
    "predict_labels", "ratios", "encode_rows", "PER_ATTRIBUTE_COLUMNS",
    "average_precision", "mean_average_precision", "mean_ap", "descending_order", "restrict_order",
    "error_distance", "DISTANCE_METRICS",
    "attribute_study", "STUDY_MEASURES",
    "cooccurrence_table", "COOCCURRENCE_COLUMNS",
    "cluster_selection", "ClusterResult", "davies_bouldin",
    "suspicious_labels", "neighbour_label_rate", "knn_indices", "SUSPICIOUS_COLUMNS",
    "evaluate_run", "load_evaluation_arrays", "load_evaluation_frame", "metrics_table", "split_table",
    "METRICS_COLUMNS",
]
