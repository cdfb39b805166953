"""The 17 structural attributes of x-ray scattering images.

Canonical order is alphabetical by display name, as the original Kent State system stores them
(``17tags_meta.txt``). Every table in the run store names its label columns ``y__<slug>`` and its
probability columns ``p__<slug>`` in this order.

Examples
--------
>>> from xsgpu.attributes import ATTRIBUTES, label_columns, resolve_attribute
>>> len(ATTRIBUTES)
17
>>> label_columns()[0]
'y__bcc'
>>> resolve_attribute("Beam Off Image").slug
'beam_off'
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Attribute", "ATTRIBUTES", "NAMES", "SLUGS", "N_ATTRIBUTES", "DOMAIN_FREQUENCIES",
    "label_columns", "prob_columns", "resolve_attribute", "attribute_index",
    "LABEL_PREFIX", "PROB_PREFIX",
]

LABEL_PREFIX = "y__"
PROB_PREFIX = "p__"


@dataclass(frozen=True)
class Attribute:
    """One attribute: its position, display name, column slug and colour (hex)."""

    index: int
    name: str
    slug: str
    colour: str

    @property
    def label_column(self) -> str:
        """Column holding the true label (ACT) in ``samples.parquet``."""
        return LABEL_PREFIX + self.slug

    @property
    def prob_column(self) -> str:
        """Column holding the predicted probability (PRD) in ``predictions.parquet``."""
        return PROB_PREFIX + self.slug


# 17 distinguishable colours (a qualitative palette tuned so neighbouring petals differ).
_SPEC = [
    ("BCC", "bcc", "#1f77b4"),
    ("Beam Off Image", "beam_off", "#7f7f7f"),
    ("Circular Beamstop", "circular_beamstop", "#8c564b"),
    ("Diffuse high-q", "diffuse_high_q", "#e377c2"),
    ("Diffuse low-q", "diffuse_low_q", "#bcbd22"),
    ("FCC", "fcc", "#17becf"),
    ("Halo", "halo", "#ff7f0e"),
    ("High background", "high_background", "#393b79"),
    ("Higher orders", "higher_orders", "#2ca02c"),
    ("Linear beamstop", "linear_beamstop", "#d62728"),
    ("Many rings", "many_rings", "#9467bd"),
    ("Polycrystalline", "polycrystalline", "#637939"),
    ("Ring", "ring", "#e7ba52"),
    ("Strong scattering", "strong_scattering", "#ad494a"),
    ("Structure factor", "structure_factor", "#6b6ecf"),
    ("Weak scattering", "weak_scattering", "#9edae5"),
    ("Wedge beamstop", "wedge_beamstop", "#a55194"),
]

ATTRIBUTES: tuple[Attribute, ...] = tuple(
    Attribute(i, name, slug, colour) for i, (name, slug, colour) in enumerate(_SPEC)
)
NAMES: tuple[str, ...] = tuple(a.name for a in ATTRIBUTES)
SLUGS: tuple[str, ...] = tuple(a.slug for a in ATTRIBUTES)
N_ATTRIBUTES = len(ATTRIBUTES)

#: Label frequencies of the original generator (DOMAIN.md, estimated on 2,000 images), by slug.
DOMAIN_FREQUENCIES: dict[str, float] = {
    "ring": 0.39, "higher_orders": 0.37, "strong_scattering": 0.37, "wedge_beamstop": 0.34,
    "structure_factor": 0.33, "circular_beamstop": 0.30, "linear_beamstop": 0.24,
    "many_rings": 0.22, "halo": 0.16, "beam_off": 0.12, "diffuse_low_q": 0.12,
    "weak_scattering": 0.10, "high_background": 0.10, "diffuse_high_q": 0.08,
    "polycrystalline": 0.06, "bcc": 0.036, "fcc": 0.029,
}

_LOOKUP: dict[str, Attribute] = {}
for _a in ATTRIBUTES:
    for _key in (_a.name, _a.slug, _a.label_column, _a.prob_column):
        _LOOKUP[_key.lower()] = _a
_LOOKUP["beam off"] = ATTRIBUTES[1]


def label_columns() -> list[str]:
    """Return the 17 ``y__<slug>`` column names in canonical order."""
    return [a.label_column for a in ATTRIBUTES]


def prob_columns() -> list[str]:
    """Return the 17 ``p__<slug>`` column names in canonical order."""
    return [a.prob_column for a in ATTRIBUTES]


def resolve_attribute(key: str | int) -> Attribute:
    """Find an attribute by display name, slug, column name (any case) or index.

    Raises
    ------
    KeyError
        If ``key`` names no attribute; the message lists the valid names.
    """
    if isinstance(key, int) and not isinstance(key, bool):
        if 0 <= key < N_ATTRIBUTES:
            return ATTRIBUTES[key]
        raise KeyError(f"Attribute index {key} is out of range 0..{N_ATTRIBUTES - 1}.")
    found = _LOOKUP.get(str(key).strip().lower())
    if found is None:
        raise KeyError(
            f"Unknown attribute {key!r}. Valid names: {', '.join(NAMES)} "
            f"(or their slugs: {', '.join(SLUGS)})."
        )
    return found


def attribute_index(key: str | int) -> int:
    """Return the canonical position (0..16) of an attribute named by :func:`resolve_attribute`."""
    return resolve_attribute(key).index
