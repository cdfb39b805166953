"""No module outside the store schema spells an artifact's name or builds a partition's file name."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from xsgpu.io import schema

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("xsgpu", "workflows", "panel_app")
#: names of the registry's plain artifacts (templates have no literal name to spell)
NAMES = {a.name for a in schema.REGISTRY.values() if not a.is_template}
PART_LITERAL = re.compile(r"part-\{[^}]*:05d\}")
#: calls that address the store by an artifact name (RunStore's generic methods, Staging.begin)
STORE_CALLS = {"read_table", "write_table", "write_partition", "has", "open_array", "create_array", "table_path",
               "array_path", "npy_path", "finished_partitions", "pending_partitions", "append_rows", "append_path",
               "read_metadata", "load_npy", "write_npy", "entry_path", "partition_path", "artifact", "begin",
               "_check_dense", "_check_embedding"}


def artifact_name_literals(source: str) -> list[tuple[int, str]]:
    """(line, name) of string constants naming an artifact in a store call or a ``require=`` list.

    Dictionary keys, metadata keys, docstrings and messages are not counted: they do not address the store.
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        values = list(node.args) if name in STORE_CALLS else []
        for kw in node.keywords:
            if kw.arg == "require":
                values.append(kw.value)
        for v in values:
            elts = v.elts if isinstance(v, (ast.List, ast.Tuple, ast.Set)) else [v]
            for e in elts:
                if isinstance(e, ast.Constant) and isinstance(e.value, str) and e.value in NAMES:
                    found.append((e.lineno, e.value))
    return found


def _modules():
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            if path.name == "schema.py" and path.parent.name == "io":
                continue
            yield path


def test_the_checker_finds_a_spelled_name():
    assert artifact_name_literals('store.read_table("samples")\nRunStore.open(p, require=["images"])') == [
        (1, "samples"), (2, "images")]
    assert artifact_name_literals('d = {"samples": 1}\nlog.info("samples %d", n)\nmeta.get("predictions")') == []


@pytest.mark.parametrize("path", list(_modules()), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_artifact_name_or_partition_path_is_spelled(path):
    source = path.read_text()
    spelled = artifact_name_literals(source)
    parts = [i + 1 for i, line in enumerate(source.splitlines()) if PART_LITERAL.search(line)]
    assert not spelled, f"{path}: artifact names spelled at {spelled}; use xsgpu.io.schema constants or store handles"
    assert not parts, f"{path}: partition file names built by hand at lines {parts}; use schema.partition_file"
