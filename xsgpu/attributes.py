"""Attribute vocabularies: the paper's 17 structural attributes, and any run's own list.

A run's attributes are an ordered :class:`Vocabulary` (name, slug, colour) kept in its manifest; the
default is the paper's 17 (:data:`DEFAULT_VOCABULARY`), in canonical order: alphabetical by display
name, as the original Kent State system stores them (``17tags_meta.txt``). Every table in the run
store names its label columns ``y__<slug>`` and its probability columns ``p__<slug>`` in the run's
order. The module-level names (:data:`ATTRIBUTES`, :data:`NAMES`, :func:`label_columns` ...) describe
the default vocabulary only; code that handles a run uses ``store.vocabulary``.

Examples
--------
>>> from xsgpu.attributes import ATTRIBUTES, label_columns, resolve_attribute
>>> len(ATTRIBUTES)
17
>>> label_columns()[0]
'y__bcc'
>>> resolve_attribute("Beam Off Image").slug
'beam_off'
>>> vocab = Vocabulary.from_names(["Ring", "Halo", "Beam stop (circular)"])
>>> vocab.slugs, vocab.label_columns()[2]
(('ring', 'halo', 'beam_stop_circular'), 'y__beam_stop_circular')
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from xsgpu.errors import InputError

__all__ = [
    "Attribute", "Vocabulary", "VocabularyError", "DEFAULT_VOCABULARY", "slugify", "MAX_ATTRIBUTES", "ATTRIBUTES", "NAMES", "SLUGS", "N_ATTRIBUTES", "DOMAIN_FREQUENCIES",
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


# ---------------------------------------------------------------------------------------- vocabularies
#: the most attributes a run may have (a model head or a label table wider than this is a likely mistake)
MAX_ATTRIBUTES = 1024
_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_]*$")
_HEX_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
#: colours for attributes beyond the paper's 17: the 17 first, then an evenly spaced HSV wheel
_EXTRA_SATURATION, _EXTRA_VALUE = 0.55, 0.80


class VocabularyError(InputError):
    """A vocabulary is malformed (empty, duplicate names or slugs, bad colour), or two vocabularies disagree."""


def slugify(name: str) -> str:
    """Column-safe slug of an attribute name: lower case, runs of other characters become ``_``.

    Examples
    --------
    >>> slugify("Diffuse high-q"), slugify("  Beam Off Image ")
    ('diffuse_high_q', 'beam_off_image')
    """
    slug = re.sub(r"[^a-z0-9]+", "_", str(name).strip().lower()).strip("_")
    if not slug:
        raise VocabularyError(f"Attribute name {name!r} has no letters or digits to make a column name from.")
    return slug if slug[0].isalnum() else "a" + slug


def _palette(n: int) -> list[str]:
    """``n`` distinguishable hex colours: the paper's 17 first, then an HSV wheel (golden-angle steps)."""
    import colorsys

    base = [c for _, _, c in _SPEC]
    out = base[:n]
    for i in range(len(out), n):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, _EXTRA_SATURATION, _EXTRA_VALUE)
        out.append("#{:02x}{:02x}{:02x}".format(int(r * 255), int(g * 255), int(b * 255)))
    return out


@dataclass(frozen=True)
class Vocabulary:
    """An ordered list of attributes: what a run labels, a model predicts and the app draws.

    Build one with :meth:`from_names` (slugs and colours derived), :meth:`from_manifest` (the
    manifest's ``vocabulary`` field) or use :data:`DEFAULT_VOCABULARY`.

    Parameters
    ----------
    attributes : tuple of Attribute
        In order; ``attributes[i].index == i``. Names and slugs must be unique.
    """

    attributes: tuple[Attribute, ...]

    def __post_init__(self) -> None:
        attrs = self.attributes
        if not attrs:
            raise VocabularyError("A vocabulary needs at least one attribute.")
        if len(attrs) > MAX_ATTRIBUTES:
            raise VocabularyError(f"A vocabulary may hold at most {MAX_ATTRIBUTES} attributes; got {len(attrs)}.")
        for i, a in enumerate(attrs):
            if a.index != i:
                raise VocabularyError(f"Attribute {a.name!r} has index {a.index} at position {i}.")
            if not _SLUG_RE.match(a.slug):
                raise VocabularyError(f"Attribute {a.name!r}: slug {a.slug!r} must be lower-case letters, digits and _.")
            if not _HEX_RE.match(a.colour):
                raise VocabularyError(f"Attribute {a.name!r}: colour {a.colour!r} must be a hex colour like #1f77b4.")
        for what, values in (("name", [a.name.strip().lower() for a in attrs]), ("slug", [a.slug for a in attrs])):
            seen: dict[str, int] = {}
            for i, v in enumerate(values):
                if v in seen:
                    raise VocabularyError(f"Attributes {seen[v]} and {i} share the {what} {v!r}; each {what} must be unique.")
                seen[v] = i
        lookup: dict[str, Attribute] = {}
        for a in attrs:
            for key in (a.name, a.slug, a.label_column, a.prob_column):
                lookup.setdefault(key.strip().lower(), a)
        object.__setattr__(self, "_lookup", lookup)

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_names(cls, names: Iterable[str], *, colours: Sequence[str] | None = None) -> "Vocabulary":
        """Vocabulary of ``names`` in that order; slugs from :func:`slugify`, colours from the palette.

        Names of the paper's 17 (or their slugs) keep the paper's slug and colour, so a subset of the
        17 looks the same in the app as the full set.
        """
        names = [str(n).strip() for n in names]
        palette = list(colours) if colours is not None else _palette(len(names))
        if len(palette) < len(names):
            raise VocabularyError(f"{len(names)} attributes but only {len(palette)} colours.")
        attrs = []
        for i, name in enumerate(names):
            known = _LOOKUP.get(name.lower())
            if known is not None and colours is None:
                attrs.append(Attribute(i, known.name if known.slug == name.lower() else name, known.slug, known.colour))
            else:
                attrs.append(Attribute(i, name, known.slug if known is not None else slugify(name), palette[i]))
        vocab = cls(tuple(attrs))
        if colours is None:
            vocab = vocab._distinct_colours()
        return vocab

    def _distinct_colours(self) -> "Vocabulary":
        """Give a fresh palette colour to any attribute whose colour repeats an earlier one."""
        used: set[str] = set()
        spare = iter(c for c in _palette(len(self) + len(_SPEC))[len(_SPEC):] if c not in {a.colour for a in self.attributes})
        attrs = []
        for a in self.attributes:
            colour = a.colour if a.colour not in used else next(spare)
            used.add(colour)
            attrs.append(Attribute(a.index, a.name, a.slug, colour))
        return Vocabulary(tuple(attrs))

    @classmethod
    def from_manifest(cls, entries: Any, *, where: str = "manifest") -> "Vocabulary":
        """Read the manifest's ``vocabulary`` field: a list of ``{"name", "slug", "colour"}`` objects.

        Raises
        ------
        VocabularyError
            Naming ``where`` and the bad entry.
        """
        if not isinstance(entries, list) or not entries:
            raise VocabularyError(f"{where}: field 'vocabulary' must be a non-empty list of "
                                  f"{{name, slug, colour}} objects; got {entries!r:.80}.")
        attrs = []
        for i, e in enumerate(entries):
            if not isinstance(e, dict) or not {"name", "slug", "colour"} <= set(e):
                raise VocabularyError(f"{where}: vocabulary entry {i} must have name, slug and colour; got {e!r:.80}.")
            attrs.append(Attribute(i, str(e["name"]), str(e["slug"]), str(e["colour"])))
        try:
            return cls(tuple(attrs))
        except VocabularyError as exc:
            raise VocabularyError(f"{where}: field 'vocabulary': {exc}") from None

    def to_manifest(self) -> list[dict[str, str]]:
        """The ``vocabulary`` field of a manifest (inverse of :meth:`from_manifest`)."""
        return [{"name": a.name, "slug": a.slug, "colour": a.colour} for a in self.attributes]

    # ---------------------------------------------------------------- views
    def __len__(self) -> int:
        return len(self.attributes)

    def __iter__(self):
        return iter(self.attributes)

    def __getitem__(self, i: int) -> Attribute:
        return self.attributes[i]

    @property
    def names(self) -> tuple[str, ...]:
        """Display names, in order."""
        return tuple(a.name for a in self.attributes)

    @property
    def slugs(self) -> tuple[str, ...]:
        """Column slugs, in order."""
        return tuple(a.slug for a in self.attributes)

    @property
    def colours(self) -> tuple[str, ...]:
        """Hex colours, in order."""
        return tuple(a.colour for a in self.attributes)

    @property
    def is_default(self) -> bool:
        """Whether this is the paper's 17 in canonical order."""
        return self.slugs == SLUGS

    def label_columns(self) -> list[str]:
        """The ``y__<slug>`` column names, in order."""
        return [a.label_column for a in self.attributes]

    def prob_columns(self) -> list[str]:
        """The ``p__<slug>`` column names, in order."""
        return [a.prob_column for a in self.attributes]

    def resolve(self, key: str | int) -> Attribute:
        """Find an attribute by display name, slug, column name (any case) or index.

        Raises
        ------
        KeyError
            If ``key`` names no attribute of this vocabulary; the message lists the valid names.
        """
        if isinstance(key, (int,)) and not isinstance(key, bool):
            if 0 <= key < len(self):
                return self.attributes[key]
            raise KeyError(f"Attribute index {key} is out of range 0..{len(self) - 1}.")
        found = self._lookup.get(str(key).strip().lower())  # type: ignore[attr-defined]
        if found is None and self.is_default:
            found = _LOOKUP.get(str(key).strip().lower())
        if found is None:
            raise KeyError(f"Unknown attribute {key!r}. Valid names: {', '.join(self.names)}.")
        return found

    def index(self, key: str | int) -> int:
        """Position of the attribute named by :meth:`resolve`."""
        return self.resolve(key).index

    def mapping_from(self, other: "Vocabulary | Sequence[str]", *, mine: str = "the run",
                     theirs: str = "the model") -> list[int]:
        """For each of my attributes, its position in ``other`` (matched by slug).

        Raises
        ------
        VocabularyError
            When an attribute of mine is missing from ``other``; the message names both lists.
        """
        other_v = other if isinstance(other, Vocabulary) else Vocabulary.from_names(other)
        pos = {a.slug: a.index for a in other_v}
        missing = [a.name for a in self.attributes if a.slug not in pos]
        if missing:
            raise VocabularyError(
                f"{theirs} does not know {len(missing)} attribute(s) of {mine}: {', '.join(missing)}. "
                f"{mine} has [{', '.join(self.names)}]; {theirs} has [{', '.join(other_v.names)}]. "
                "Hint: give a mapping of names, or use a model trained on this vocabulary.")
        return [pos[a.slug] for a in self.attributes]

    def require_same(self, other: "Vocabulary | Sequence[str]", *, mine: str = "the run",
                     theirs: str = "the model") -> None:
        """Raise :class:`VocabularyError` naming both lists unless ``other`` has my attributes in my order."""
        other_v = other if isinstance(other, Vocabulary) else Vocabulary.from_names(other)
        if other_v.slugs != self.slugs:
            raise VocabularyError(
                f"{mine} and {theirs} have different attributes: {mine} has {len(self)} "
                f"[{', '.join(self.names)}]; {theirs} has {len(other_v)} [{', '.join(other_v.names)}]. "
                "Hint: use a model trained on this run's vocabulary, or give a mapping of names.")


#: the paper's 17 attributes, in canonical order (the default of every run)
DEFAULT_VOCABULARY = Vocabulary(ATTRIBUTES)
