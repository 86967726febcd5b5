"""The house rules that a machine can check: small modules, no import cycles, no process words."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "moe_lab"
MAX_LINES = 400


def modules() -> dict[str, Path]:
    """``moe_lab.x.y`` -> its file, for every module of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


@pytest.mark.parametrize("name", sorted(modules()))
def test_module_is_small(name):
    lines = len(modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines: split it along its seams (at most {MAX_LINES})"


def _resolve(name: str, is_package: bool, level: int, target: str | None) -> str:
    base = name.split(".") if is_package else name.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports at import time (top level, not inside functions)."""
    mods = modules()
    graph = {}
    for name, path in mods.items():
        is_package = path.name == "__init__.py"
        edges = set()
        for node in ast.parse(path.read_text()).body:  # top-level statements only
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name.startswith("moe_lab")}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    source = _resolve(name, is_package, node.level, node.module)
                elif node.module and node.module.startswith("moe_lab"):
                    source = node.module
                else:
                    continue
                for alias in node.names:  # `from . import x` may name a submodule
                    sub = f"{source}.{alias.name}"
                    edges.add(sub if sub in mods else source)
        graph[name] = {e for e in edges if e in mods and e != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``graph`` (``[a, b, ..., a]``), or ``[]``.

    A package's ``__init__`` re-exporting its submodules while they import siblings through the package
    is how packages work: an edge from a submodule to its own package does not count.
    """
    def edges(node):
        return {e for e in graph[node] if not node.startswith(e + ".")}

    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges(node)):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return []

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert not cycle, "import cycle: " + " -> ".join(cycle)


def test_find_cycle_finds_a_planted_one():
    graph = {"p": {"p.a"}, "p.a": {"p.b"}, "p.b": {"p.a", "p"}, "q": set()}
    assert find_cycle(graph) == ["p.a", "p.b", "p.a"]
    assert find_cycle({"p": {"p.a"}, "p.a": {"p"}}) == []  # a submodule importing its package


def test_the_graph_sees_imports():
    graph = import_graph()
    assert "moe_lab.records" in graph["moe_lab.bench"]  # a check that can fail: the parser finds edges
    assert "moe_lab.backend" in graph["moe_lab"]


PROCESS_WORDS = re.compile(r"\bissue\s+#?\d+\b|\bowned by (the|this) (team|work|issue|session)\b|"
                           r"\bsection owned\b|(?-i:\bTODO\b)", re.I)


def test_no_process_words():
    paths = [*PACKAGE.rglob("*.py"), *(ROOT / "docs").glob("*.md"), ROOT / "README.md",
             *(ROOT / "tools").glob("*.py"), ROOT / "data" / "README.md", ROOT / "notebooks" / "README.md"]
    found = []
    for path in paths:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if PROCESS_WORDS.search(line) and "Triton issue #" not in line:
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:100]}")
    assert not found, "process words in code or docs:\n" + "\n".join(found)
