"""Vocabulary files and attribute maps: what ``--vocabulary FILE`` and ``--attribute-map FILE`` read.

A **vocabulary file** lists a run's attributes in order, either

* plain text, one display name per line (blank lines and lines starting with ``#`` are skipped), or
* JSON (``.json``): a list of names, or a list of ``{"name", "slug", "colour"}`` objects (the
  manifest's ``vocabulary`` field, so one run's vocabulary can seed another's).

An **attribute map** (:func:`read_attribute_map`) says which output of a model is which attribute of
a run: a JSON object ``{"model output name": "run attribute name"}`` or a CSV/text file of
``model,run`` lines. Names are matched like :meth:`xsgpu.attributes.Vocabulary.resolve` (name, slug,
column name, any case).

Examples
--------
>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "vocab.txt")
>>> _ = open(path, "w").write("# five\\nRing\\nHalo\\nCrystal A\\n\\nCrystal B\\nStreak\\n")
>>> read_vocabulary(path).slugs
('ring', 'halo', 'crystal_a', 'crystal_b', 'streak')
"""
from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path

from xsgpu.attributes import Vocabulary, VocabularyError

__all__ = ["read_vocabulary", "vocabulary_option", "read_attribute_map", "apply_attribute_map"]

log = logging.getLogger(__name__)


def read_vocabulary(path: str | os.PathLike) -> Vocabulary:
    """Read a vocabulary file (module docstring): text, one name per line, or a JSON list.

    Raises
    ------
    VocabularyError
        Missing or unreadable file, no names, duplicate names or slugs; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise VocabularyError(f"Vocabulary file {path} does not exist (or is not a file). Hint: check --vocabulary; "
                              "it takes 'default', 'from-labels' or a file of names, one per line.")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise VocabularyError(f"Vocabulary file {path}: cannot read it ({type(exc).__name__}: {exc}).") from None
    try:
        if path.suffix.lower() == ".json" or text.lstrip().startswith("["):
            try:
                entries = json.loads(text)
            except json.JSONDecodeError as exc:
                raise VocabularyError(f"not valid JSON ({exc}).") from None
            if isinstance(entries, list) and entries and all(isinstance(e, dict) for e in entries):
                return Vocabulary.from_manifest(entries, where=str(path))
            if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
                raise VocabularyError("a JSON vocabulary must be a list of names or of {name, slug, colour} objects.")
            names = entries
        else:
            names = [s.strip() for s in text.splitlines() if s.strip() and not s.strip().startswith("#")]
        if not names:
            raise VocabularyError("it lists no attribute names.")
        vocab = Vocabulary.from_names(names)
    except VocabularyError as exc:
        msg = str(exc)
        raise VocabularyError(msg if msg.startswith(str(path)) else f"Vocabulary file {path}: {msg}") from None
    log.info("Read a vocabulary of %d attributes from %s", len(vocab), path)
    return vocab


def vocabulary_option(value: str | None) -> Vocabulary | str | None:
    """What ``--vocabulary`` means: ``"default"``/None -> None (the paper's 17), ``"from-labels"`` as is, else a file."""
    from xsgpu.io.labels import FROM_LABELS

    if value is None or value == "default":
        return None
    if value == FROM_LABELS:
        return FROM_LABELS
    return read_vocabulary(value)


def read_attribute_map(path: str | os.PathLike) -> dict[str, str]:
    """Read an attribute map: JSON ``{"model output": "run attribute"}`` or CSV/text ``model,run`` lines.

    A first CSV line ``model,run`` (any case) is taken for a header and skipped.

    Raises
    ------
    VocabularyError
        Missing file, bad JSON, a line without two names, or a model name given twice.
    """
    path = Path(path)
    if not path.is_file():
        raise VocabularyError(f"Attribute map {path} does not exist (or is not a file). Hint: check --attribute-map.")
    text = path.read_text(encoding="utf-8")
    pairs: list[tuple[str, str]] = []
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise VocabularyError(f"Attribute map {path}: not valid JSON ({exc}).") from None
        if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
            raise VocabularyError(f"Attribute map {path}: must be a JSON object of model output name -> run "
                                  "attribute name (strings).")
        pairs = list(data.items())
    else:
        for i, row in enumerate(csv.reader(text.splitlines()), start=1):
            cells = [c.strip() for c in row]
            if not any(cells) or cells[0].startswith("#"):
                continue
            if len(cells) != 2 or not all(cells):
                raise VocabularyError(f"Attribute map {path}: line {i} must be 'model output name,run attribute "
                                      f"name'; got {row!r}.")
            if i == 1 and [c.lower() for c in cells] == ["model", "run"]:
                continue
            pairs.append((cells[0], cells[1]))
    seen: dict[str, str] = {}
    for k, v in pairs:
        if k.lower() in seen:
            raise VocabularyError(f"Attribute map {path}: model output {k!r} is mapped twice.")
        seen[k.lower()] = v
    if not pairs:
        raise VocabularyError(f"Attribute map {path}: it maps no attribute.")
    return dict(pairs)


def apply_attribute_map(model: Vocabulary, run: Vocabulary, mapping: dict[str, str] | None, *,
                        theirs: str = "the model") -> list[int]:
    """For each attribute of ``run``, the position of the ``model`` output that gives it.

    Without ``mapping`` the model must have the run's attributes in the run's order
    (:meth:`Vocabulary.require_same`). With it, model outputs are renamed by the map (outputs it does not
    name keep their names) and every run attribute must then be found among them (the model may have
    more outputs; they are ignored).

    Raises
    ------
    VocabularyError
        Naming both lists (and the map's unknown names).
    """
    if not mapping:
        run.require_same(model, theirs=theirs)
        return list(range(len(run)))
    slug_of: dict[str, int] = {}  # run slug -> model output; mapped outputs first, then same-named ones
    unknown_model, unknown_run = [], []
    for src, dst in mapping.items():
        try:
            j = model.index(src)
        except KeyError:
            unknown_model.append(src)
            continue
        try:
            slug = run.resolve(dst).slug
        except KeyError:
            unknown_run.append(dst)
            continue
        if slug in slug_of:
            raise VocabularyError(f"The attribute map gives run attribute {dst!r} from two model outputs "
                                  f"({model.names[slug_of[slug]]!r} and {src!r}); map one output to each.")
        slug_of[slug] = j
    if unknown_model or unknown_run:
        raise VocabularyError(
            "The attribute map names "
            + "; ".join(s for s in (
                f"output(s) {', '.join(map(repr, unknown_model))} that {theirs} does not have" if unknown_model else "",
                f"attribute(s) {', '.join(map(repr, unknown_run))} that the run does not have" if unknown_run else "")
                if s)
            + f". {theirs} has [{', '.join(model.names)}]; the run has [{', '.join(run.names)}].")
    mapped = set(slug_of.values())
    for j, name in enumerate(model.names):
        try:
            slug = run.resolve(name).slug
        except KeyError:
            continue
        if j not in mapped:
            slug_of.setdefault(slug, j)
    missing = [a.name for a in run if a.slug not in slug_of]
    if missing:
        raise VocabularyError(
            f"{theirs} gives no output for {len(missing)} attribute(s) of the run even with the attribute map: "
            f"{', '.join(missing)}. The run has [{', '.join(run.names)}]; {theirs} has [{', '.join(model.names)}]. "
            "Hint: map a model output to each of them.")
    return [slug_of[a.slug] for a in run]
