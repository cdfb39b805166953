"""Embeddings of the three spaces (ACT, FEA, PRD): projectors behind one factory, ACT dedupe, quality,
placement onto stored maps, and the ``embed`` stage (:func:`embed_run`).

See docs/embeddings.md for the choices (openTSNE vs cuML, ACT dedupe, reference maps).
"""
from __future__ import annotations

from xsgpu.embed.act import dedupe_labels, spread_duplicates
from xsgpu.embed.projectors import (
    CAPABILITIES, METHODS, Capability, NotFittedError, Projector, capability, check_capability, make_projector,
)
from xsgpu.embed.quality import trustworthiness
from xsgpu.embed.reference import ReferenceMap, SpaceReference
from xsgpu.embed.run import EMBEDDING_COLUMNS, SPACES, embed_run

__all__ = [
    "make_projector", "Projector", "Capability", "CAPABILITIES", "METHODS", "capability", "check_capability",
    "NotFittedError", "dedupe_labels", "spread_duplicates", "trustworthiness", "ReferenceMap", "SpaceReference",
    "embed_run", "SPACES", "EMBEDDING_COLUMNS",
]
