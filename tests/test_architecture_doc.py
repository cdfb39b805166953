"""docs/architecture.md's "Stage contract" table says what the stage registry (xsgpu.stages.STAGES) says."""
from __future__ import annotations

import re
from dataclasses import MISSING, fields
from pathlib import Path

import pytest

from xsgpu.stages import STAGES

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


def _section(text: str, title: str) -> str:
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    assert m, f"{DOC} has no '## {title}' section"
    return m.group(1)


def _table(section: str) -> list[dict[str, str]]:
    """The first Markdown table of ``section`` as a list of {header: cell} rows."""
    lines = [ln.strip() for ln in section.splitlines() if ln.strip().startswith("|")]
    assert len(lines) >= 2, "no Markdown table in the section"
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    head, rule, body = cells[0], cells[1], cells[2:]
    assert all(set(c) <= set("-:") for c in rule), f"the second line of the table is not a rule: {lines[1]}"
    assert all(len(row) == len(head) for row in body), "rows with another number of cells than the header"
    return [dict(zip(head, row)) for row in body]


def _names(cell: str) -> list[str]:
    """The artifact names of an inputs/outputs cell (the back-quoted ones)."""
    return re.findall(r"`([^`]+)`", cell) if cell != "-" else []


def _params(cell: str) -> dict[str, str | None]:
    """``name`` or ``name=default`` entries of a parameters cell (defaults as written)."""
    out: dict[str, str | None] = {}
    for item in re.split(r",\s*(?=[a-z_][a-z0-9_]*(?:=|,|$))", cell):
        name, _, default = item.strip().partition("=")
        out[name] = default or None
    return out


@pytest.fixture(scope="module")
def rows() -> dict[str, dict[str, str]]:
    table = _table(_section(DOC.read_text(encoding="utf-8"), "Stage contract"))
    assert list(table[0]) == ["stage", "inputs", "outputs", "parameters", "partitioned"]
    return {r["stage"]: r for r in table}


def test_the_table_lists_every_stage_in_pipeline_order(rows):
    assert list(rows) == list(STAGES)


@pytest.mark.parametrize("name", list(STAGES))
def test_a_stage_row_matches_the_code(rows, name):
    stage, row = STAGES[name], rows[name]
    assert _names(row["inputs"]) == [a.name for a in stage.inputs]
    outputs = [a.name for a in stage.outputs]
    assert _names(row["outputs"])[:len(outputs)] == outputs
    if stage.outputs_elsewhere:
        assert stage.outputs_elsewhere in row["outputs"]
    want = {f.name: None if f.default is MISSING else repr(f.default) for f in fields(stage.Params)}
    assert _params(row["parameters"]) == want
    assert row["partitioned"] == ("yes" if stage.partitioned else "no")


def test_a_wrong_row_is_caught():
    """The parser sees a difference (a test that cannot fail is no test)."""
    section = "| stage | inputs | outputs | parameters | partitioned |\n|---|---|---|---|---|\n" \
              "| embed | `samples` | `embedding` | method='pca' | yes |\n"
    row = _table(section)[0]
    stage = STAGES["embed"]
    assert _names(row["inputs"]) != [a.name for a in stage.inputs]
    assert _params(row["parameters"]) != {f.name: repr(f.default) for f in fields(stage.Params)}
    assert row["partitioned"] != ("yes" if stage.partitioned else "no")
