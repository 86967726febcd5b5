"""The house rules that a machine can check: small modules, no import cycles, imports that go only the
allowed ways between the package's parts (strings included), no process words."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
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
    assert "moe_lab.measure.records" in graph["moe_lab.measure.bench"]  # can fail: the parser finds edges
    assert "moe_lab.backend" in graph["moe_lab"]


# ------------------------------------------------------------------------------- the package's parts

PARTS = {
    "core": ("moe_lab", "moe_lab.backend", "moe_lab.checks", "moe_lab.interp", "moe_lab.launcher",
             "moe_lab.paths", "moe_lab.registry", "moe_lab.routing", "moe_lab.verify", "moe_lab.stages",
             "moe_lab.dispatch"),
    "inspection": ("moe_lab.inspection",),
    "measure": ("moe_lab.measure",),
    "workbook": ("moe_lab.workbook",),
    "ep": ("moe_lab.ep",),
}
"""Which modules make up each part: a module belongs to the part of its longest listed prefix (``moe_lab``
itself names only the package's ``__init__``: a new top-level module must be placed here on purpose)."""

ALLOWED = {
    "core": {"core"},
    "inspection": {"core", "inspection"},
    "measure": {"core", "measure"},
    "workbook": {"core", "inspection", "measure", "workbook"},
    "ep": {"core", "measure", "ep"},
}
"""The parts each part may import. The core (the drop-in, the stages, the dispatch op) imports no other."""


def _in(module: str, prefix: str) -> bool:
    return module == prefix or (prefix != "moe_lab" and module.startswith(prefix + "."))


def part_of(module: str) -> str:
    found = [(prefix, part) for part, prefixes in PARTS.items() for prefix in prefixes if _in(module, prefix)]
    if not found:
        raise KeyError(f"{module} belongs to no part of PARTS")
    return max(found, key=lambda pair: len(pair[0]))[1]


_MODULE_STRING = re.compile(r"moe_lab(\.\w+)+(:\w+)?")


def _docstrings(tree) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _named_module(text: str, mods) -> str | None:
    """The package module a string names (``moe_lab.a.b``, ``moe_lab.a.b:attr``, ``moe_lab.a.b.attr``)."""
    dotted = text.partition(":")[0]
    while dotted and dotted not in mods:
        dotted = dotted.rpartition(".")[0]
    return dotted or None


def all_edges() -> dict[str, set[str]]:
    """Module -> every package module it imports: at the top, inside functions, and through strings
    (a string that is a module path, ``module:attr``, or an f-string that starts with one)."""
    mods = modules()
    graph = {}
    for name, path in mods.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text())
        docs = _docstrings(tree)
        edges = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name.startswith("moe_lab")}
            elif isinstance(node, ast.ImportFrom):
                source = _resolve(name, is_package, node.level, node.module) if node.level else node.module
                if not source or not source.startswith("moe_lab"):
                    continue
                for alias in node.names:
                    sub = f"{source}.{alias.name}"
                    edges.add(sub if sub in mods else source)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
                if _MODULE_STRING.fullmatch(node.value.strip()):
                    edges.add(_named_module(node.value.strip(), mods))
            elif isinstance(node, ast.JoinedStr) and node.values:
                head = node.values[0]
                if isinstance(head, ast.Constant) and isinstance(head.value, str) and \
                        re.match(r"moe_lab(\.\w+)*\.$", head.value):
                    edges.add(_named_module(head.value.rstrip("."), mods))
        graph[name] = {e for e in edges if e in mods and e != name}
    return graph


def test_every_module_belongs_to_a_part():
    stray = [m for m in modules() if not any(_in(m, p) for prefixes in PARTS.values() for p in prefixes)]
    assert not stray, f"modules in no part (add them to PARTS with a reason): {stray}"


def test_parts_import_only_the_allowed_ways():
    wrong = []
    for module, edges in all_edges().items():
        mine = part_of(module)
        for target in sorted(edges):
            if part_of(target) not in ALLOWED[mine]:
                wrong.append(f"{module} ({mine}) -> {target} ({part_of(target)})")
    assert not wrong, "imports against the allowed directions:\n" + "\n".join(wrong)


def test_the_edge_finder_sees_strings_and_lazy_imports(tmp_path, monkeypatch):
    package = tmp_path / "moe_lab"
    (package / "stages").mkdir(parents=True)
    (package / "workbook").mkdir()
    (package / "__init__.py").write_text("")
    (package / "stages" / "__init__.py").write_text("")
    (package / "workbook" / "__init__.py").write_text("")
    (package / "workbook" / "show.py").write_text("")
    (package / "workbook" / "helper.py").write_text("")
    (package / "stages" / "x.py").write_text(
        '"""Docstrings may name moe_lab.workbook.show freely."""\n'
        "import importlib\n\n\n"
        "def later():\n"
        "    from moe_lab.workbook import helper\n"
        '    return importlib.import_module("moe_lab.workbook.show"), helper\n')
    monkeypatch.setitem(globals(), "PACKAGE", package)
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    edges = all_edges()["moe_lab.stages.x"]
    assert edges == {"moe_lab.workbook.show", "moe_lab.workbook.helper"}
    assert part_of("moe_lab.stages.x") == "core" and "workbook" not in ALLOWED["core"]
    with pytest.raises(KeyError, match="belongs to no part"):  # a new top-level module is placed on purpose
        part_of("moe_lab.somewhere_new")


def test_the_drop_in_alone_loads_only_the_core():
    """``import moe_lab`` and one drop-in call load no inspection, measurement, workbook or EP module."""
    script = (
        "import sys, torch, moe_lab\n"
        "ids = torch.tensor([[5, 2, 9], [3, -1, 5]], dtype=torch.int32, device=moe_lab.backend.device())\n"
        "adjusted, counts = moe_lab.recompute_topk_ids_sum_expert_count(ids, 2, 4)\n"
        "assert counts.tolist() == [1, 1, 0, 2], counts\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('moe_lab'))))\n")
    env = dict(os.environ, MOE_LAB_QUIET="1", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                          timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = done.stdout.split()
    assert "moe_lab.stages.best" in loaded
    outside = [m for m in loaded if part_of(m) != "core"]
    assert not outside, f"the drop-in loaded modules outside the core: {outside}"


# ----------------------------------------------------------------------------------------- process words

PROCESS_WORDS = re.compile(
    r"\bissue\s+#?\d+\b|\bowned by (the|this) (team|work|issue|session|engineer)\b|\bsection owned\b|"
    r"(?-i:\bTODO\b|\bFIXME\b|\bISSUE_)|\blater work\b|\bstage-\d\b|\bmaintainers?'?\b|/work/|"
    r"\bthis (round|session of work)\b|\bconditions met\b", re.I)
"""Words of how the project was made, not of what it is: issue numbers, owners, rounds, status."""

UPSTREAM_ISSUE = re.compile(r"\btriton\S* issue #\d+", re.I)
"""An upstream project's issue (``Triton issue #9050``) is a fact about Triton, not a process word."""


def _texts():
    """Every text a user or reader of the project sees: code, tests, tools, docs, notebooks (all cells)."""
    import json

    for path in [*PACKAGE.rglob("*.py"), *(ROOT / "tests").rglob("*.py"), *(ROOT / "tools").rglob("*"),
                 *(ROOT / "docs").glob("*.md"), ROOT / "README.md", ROOT / "data" / "README.md",
                 ROOT / "notebooks" / "README.md", ROOT / "Makefile", ROOT / "environment.yml",
                 ROOT / "pyproject.toml"]:
        if path.is_file() and path.suffix in (".py", ".md", ".sh", ".yml", ".toml", ""):
            yield path, path.read_text().splitlines()
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        yield path, [line for cell in cells for line in "".join(cell["source"]).splitlines()]


def test_no_process_words():
    found = []
    for path, lines in _texts():
        if path == Path(__file__).resolve():
            continue  # the pattern itself
        for number, line in enumerate(lines, 1):
            if PROCESS_WORDS.search(UPSTREAM_ISSUE.sub("", line)):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:100]}")
    assert not found, "process words in code, tests, docs or notebooks:\n" + "\n".join(found)


def test_the_process_word_net_catches_each_kind():
    for planted in ("fixed in issue 22", "see ISSUE_STAGES", "the stage-2 kernel", "the maintainers' report",
                    "/work/main/.venv", "18 of 23 conditions met", "left for later work"):
        assert PROCESS_WORDS.search(planted), planted
    for fine in ("expert 0, owned by rank 0", "Triton issue #9050", "(triton-lang/triton issue #9050)",
                 "the stage's kernel"):
        assert not PROCESS_WORDS.search(UPSTREAM_ISSUE.sub("", fine)), fine
