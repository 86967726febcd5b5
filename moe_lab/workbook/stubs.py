"""The student edition's notebooks: solutions become stubs, outputs go, prose about the markers changes.

One code cell (:func:`strip_solutions`), one markdown cell (:func:`student_markdown`), one notebook
(:func:`student_notebook`), and the check that no solution survives outside its markers
(:func:`leaked_solutions`). The folder, its README and the command line are in
:mod:`moe_lab.workbook.student`, which describes the stubs.
"""

from __future__ import annotations

import re

import nbformat

from moe_lab.workbook.exercises.catalogue import MARKER
from moe_lab.workbook.markers import BEGIN, BEGIN_RE, END, END_RE, has_solution

KERNEL_STUB = f"pass  # {MARKER}"
TOP_LEVEL_STUB = f"pass  # {MARKER}"
# anything that looks like a marker but is not exactly one (`# begin solution`, `#BEGIN SOLUTIONS`,
# `# END-SOLUTION`): refused, or the solution under it would ship to students
_NEAR_MISS_RE = re.compile(r"^\s*#+\s*(begin|end|start|stop)[\s_-]*(of[\s_-]*)?solutions?\b", re.I)
_DEF_RE = re.compile(r"^(\s*)(?:async\s+)?def\s+(\w+)")
CHECK_RE = re.compile(r"\bcheck\(\s*['\"]")
"""A cell that checks an exercise."""
_OUTPUT_TAGS = {"nbval-check-output"}  # tags that make nbval compare a cell's output

STUDENT_NOTE = (
    "This is the **student edition**: each exercise is a code cell whose body is a stub "
    f"(`{KERNEL_STUB}` or `raise NotImplementedError(\"{MARKER}: ...\")`) for you to write, while the "
    "**solution edition** (`notebooks/`, opened by `make solutions`) holds the answers. The cell after "
    "each exercise checks your code with `check(...)` and, at the first failure, prints the input, what "
    "was expected, what you produced and a hint; `hint(name)` helps more, and `solution(name)` shows the "
    "shipped answer when you ask.")
"""What the student edition says in place of prose about the solution markers."""


class MarkerError(ValueError):
    """Solution markers that do not pair up (names the notebook and the cell)."""


# --------------------------------------------------------------------------------------------------
# one cell

def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _stub_for(before: list[str], indent: str) -> str:
    """The stub for a solution whose marker has ``indent``, given the cell's lines above it."""
    for i in range(len(before) - 1, -1, -1):
        m = _DEF_RE.match(before[i])
        if m and len(m.group(1)) < len(indent):
            decorators = []
            j = i - 1
            while j >= 0 and before[j].strip().startswith("@"):
                decorators.append(before[j].strip())
                j -= 1
            if any("jit" in d for d in decorators):
                return KERNEL_STUB
            return f'raise NotImplementedError("{MARKER}: write the body of {m.group(2)}")'
    return TOP_LEVEL_STUB


def _keyword_arguments(region: list[str]) -> list[str]:
    """The names, when ``region`` (which sits inside a call's parentheses) is nothing but keyword arguments
    (``a=True, b=False,``)."""
    import ast

    text = "\n".join(line for line in region if not line.strip().startswith("#")).strip()
    if not text:
        return []
    try:
        call = ast.parse(f"f({text})", mode="eval").body
    except SyntaxError:
        return []
    if not isinstance(call, ast.Call) or call.args or any(k.arg is None for k in call.keywords):
        return []
    return [k.arg for k in call.keywords]


def strip_solutions(source: str, where: str = "cell") -> tuple[str, list[list[str]]]:
    """``(student source, removed solutions)`` for one code cell's source: one list of lines per region.

    ``where`` names the cell in error messages (e.g. ``"notebooks/03_x.ipynb, cell 7"``).
    """
    lines = source.split("\n")
    out: list[str] = []
    removed: list[list[str]] = []
    i = 0
    for n, line in enumerate(lines):
        if _NEAR_MISS_RE.match(line) and not (BEGIN_RE.match(line) or END_RE.match(line)):
            raise MarkerError(f"{where}: line {n + 1} looks like a solution marker but is not one: "
                              f"{line.strip()!r}; write exactly {BEGIN!r} / {END!r}")
    while i < len(lines):
        line = lines[i]
        if END_RE.match(line):
            raise MarkerError(f"{where}: line {i + 1} has {END!r} without a {BEGIN!r} before it")
        if not BEGIN_RE.match(line):
            out.append(line)
            i += 1
            continue
        j = i + 1
        while j < len(lines) and not END_RE.match(lines[j]):
            if BEGIN_RE.match(lines[j]):
                raise MarkerError(f"{where}: line {j + 1} opens {BEGIN!r} again before the one on line "
                                  f"{i + 1} is closed with {END!r}")
            j += 1
        if j == len(lines):
            raise MarkerError(f"{where}: {BEGIN!r} on line {i + 1} is never closed with {END!r}")
        indent = _indent(line)
        code_before = [ln.split("#")[0].rstrip() for ln in lines[:i] if ln.split("#")[0].strip()]
        in_call = bool(code_before) and code_before[-1].endswith(("(", ","))
        keywords = _keyword_arguments(lines[i + 1:j]) if in_call else []
        if keywords:  # a prediction's answers inside a call: each becomes name=...
            out.append(indent + " ".join(f"{k}=...," for k in keywords))
        else:
            out.append(indent + _stub_for(lines[:i], indent))
        removed.append(lines[i + 1:j])
        i = j + 1
    return "\n".join(out), removed


# --------------------------------------------------------------------------------------------------
# one notebook

def student_notebook(nb, name: str = "notebook"):
    """``(student copy, removed solutions)`` of a notebook node (the input is not changed)."""
    nb = _deepcopy(nb)
    removed_all: list[list[str]] = []
    for index, cell in enumerate(nb.cells):
        cell.metadata.pop("execution", None)
        if cell.cell_type == "markdown":
            cell.source = student_markdown(cell.source)
        if cell.cell_type != "code":
            continue
        cell_id = cell.get("id")
        where = f"{name}, cell {index}" + (f" (id {cell_id})" if cell_id else "")
        exercise = has_solution(cell.source)
        source, removed = strip_solutions(cell.source, where)  # also refuses a stray END marker
        removed_all.extend(removed)
        cell.source = source
        cell.outputs = []
        cell.execution_count = None
        if exercise or CHECK_RE.search(source):
            tags = [t for t in cell.metadata.get("tags", []) if t not in _OUTPUT_TAGS]
            if tags:
                cell.metadata["tags"] = tags
            else:
                cell.metadata.pop("tags", None)
    nb.metadata.pop("widgets", None)
    jupytext = nb.metadata.get("jupytext")
    if isinstance(jupytext, dict):
        jupytext.pop("formats", None)  # no paired .py (with solutions) next to the student copy
        if not jupytext:
            nb.metadata.pop("jupytext")
    nb.metadata["moe_lab"] = {"edition": "student"}
    return nb, removed_all


_ITEM_RE = re.compile(r"^(\s*)([*+-]|\d+[.)])\s")


_FENCE_RE = re.compile(r"^\s*(```|~~~)")


def student_markdown(text: str) -> str:
    """Markdown for the student edition: a paragraph or list item that mentions the solution markers
    describes the solution edition, so it becomes :data:`STUDENT_NOTE` (a list item stays one). Code
    blocks are left as they are (a solution in one is a leak, refused by :func:`leaked_solutions`)."""
    if BEGIN not in text and END not in text:
        return text
    blocks: list[tuple[bool, list[str]]] = []  # (is a code block, lines)
    fenced = False
    for line in text.split("\n"):
        fence = _FENCE_RE.match(line) is not None
        item = _ITEM_RE.match(line)
        if fenced:
            blocks[-1][1].append(line)
            fenced = not fence
            continue
        if fence:
            blocks.append((True, [line]))
            fenced = True
            continue
        last = blocks[-1] if blocks else None
        starts = (last is None or last[0] or not line.strip() or not last[1][-1].strip()
                  or (item is not None and len(item.group(1)) == 0))
        if starts:
            blocks.append((False, [line]))
        else:
            last[1].append(line)
    out, noted = [], False
    for code, block in blocks:
        joined = "\n".join(block)
        if code or (BEGIN not in joined and END not in joined):
            out.append(joined)
        elif not noted:
            out.append(("* " + STUDENT_NOTE) if _ITEM_RE.match(block[0]) else STUDENT_NOTE)
            noted = True
    return "\n".join(out)


def _deepcopy(nb):
    return nbformat.from_dict(nbformat.reads(nbformat.writes(nb), as_version=4))


def _substantive(lines: list[str]) -> list[str]:
    """Lines that would give a solution away: not blank, not a comment, not a short keyword line."""
    return [ln.strip() for ln in lines if len(ln.strip()) >= 12 and not ln.strip().startswith("#")]


def leaked_solutions(nb, removed: list[list[str]]) -> list[list[str]]:
    """Solutions that ``nb`` still gives away: at least half of a solution's substantive lines (two or
    more) appear somewhere in the notebook's JSON text (a cell's source, a markdown cell, an output).
    A single common line, such as ``pid = tl.program_id(0)`` in a scaffold, is not a leak."""
    text = nbformat.writes(nb)
    leaks = []
    for region in removed:
        lines = _substantive(region)
        shown = [ln for ln in lines if ln in text or ln.replace('"', '\\"') in text]
        if len(shown) >= 2 and 2 * len(shown) >= len(lines):
            leaks.append(shown)
    return leaks



__all__ = ["MarkerError", "KERNEL_STUB", "TOP_LEVEL_STUB", "CHECK_RE", "STUDENT_NOTE", "strip_solutions",
           "student_markdown", "student_notebook", "leaked_solutions"]
