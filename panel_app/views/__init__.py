"""Views of the app: (A) controls, (B) attribute filters, (C)(D)(E) the linked ACT / FEA / PRD views."""
from __future__ import annotations

from panel_app.views.controls import AttributeFilters, ControlPanel
from panel_app.views.embedding import IMAGE_ROUTE, THUMB_ROUTE, EmbeddingView, EmbeddingViews

__all__ = ["AttributeFilters", "ControlPanel", "EmbeddingView", "EmbeddingViews", "THUMB_ROUTE", "IMAGE_ROUTE"]
