"""The app's analysis panels (APP-B): each a :class:`panel.viewable.Viewer` built as ``Cls(state=state)``.

SelectionManager
    Current selection count, named coloured groups, TP/TN/FP/FN and accuracy/precision/recall/F1 per
    attribute and overall, two groups side by side, export (CSV/Parquet), clustering into sub-groups.
DetailView
    Images side by side (log-scaled, enlargeable), ACT vs PRD per attribute, FEA neighbours, label corrections.
ModelOverview
    Per-attribute accuracy/precision/recall/F1/AP and the mAP.
AttributeStudyPanel
    17 x 17 mutual information / correlation / conditional entropy, ACT vs predictions.
CooccurrencePanel
    The most frequent attribute combinations, true vs correctly predicted.
SuspiciousPanel
    Ranked likely label errors; clicking one opens it in the detail view.
NeuronPanel
    The last block's channels that fire most on the selection, their most activating images, attribute x channel r.
warm_up
    Precompute the shared results (FEA index, overview, study, co-occurrence, suspicious) at server start.
"""
from __future__ import annotations

from panel_app.panels.detail import DetailView
from panel_app.panels.neurons import NeuronPanel
from panel_app.panels.overview import ModelOverview
from panel_app.panels.selection import SelectionManager
from panel_app.panels.study import AttributeStudyPanel, CooccurrencePanel
from panel_app.panels.suspicious import SuspiciousPanel
from panel_app.panels.warmup import warm_up, warm_up_steps

__all__ = ["SelectionManager", "DetailView", "ModelOverview", "AttributeStudyPanel", "CooccurrencePanel",
           "SuspiciousPanel", "NeuronPanel", "warm_up", "warm_up_steps"]
