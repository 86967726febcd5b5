"""Is an exercise's answer visible before its check cell? (spec first, answer after)

For every cell that checks exercise ``name`` (``check("name", ...)``), no earlier cell may show the
answer, in its source, in markdown or in a stored output:

* a ``show_source`` / ``show_diff`` / ``show_side_by_side`` / ``inspect.getsource`` of a library kernel,
  or ``solution(name)``,
  that answers it (:attr:`Exercise.answer_kernels`, or its stage by name);
* the shipped answer's distinctive lines (:func:`moe_lab.workbook.exercises.answers.answer`, less the lines an
  earlier exercise's answer has): half of them, at least three, anywhere in the earlier cells;
* a formula that answers it (:attr:`Exercise.answer_formulas`, compared without spaces).

The learner's own solution (between ``# BEGIN SOLUTION`` markers) is not counted. Run it on notebooks:

    python -m moe_lab.workbook.exercises.hidden notebooks/*.ipynb
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

from moe_lab.workbook.exercises.catalogue import EXERCISES, Exercise

_CHECK = re.compile(r"\bcheck\(\s*['\"](\w+)['\"]")
_SHOW = re.compile(r"\b(show_source|show_diff|show_side_by_side|getsource|solution)\s*\(([^\n]*)")
_BEGIN, _END = "# BEGIN SOLUTION", "# END SOLUTION"


@dataclass(frozen=True)
class Leak:
    notebook: str
    exercise: str
    cell: int  # index of the earlier cell that shows the answer
    check_cell: int
    what: str

    def __str__(self) -> str:
        return (f"{self.notebook}: exercise {self.exercise!r} (checked in cell {self.check_cell}) is "
                f"answered earlier, in cell {self.cell}: {self.what}")


def _without_solutions(source: str) -> str:
    out, inside = [], False
    for line in source.split("\n"):
        stripped = line.strip()
        if stripped == _BEGIN:
            inside = True
        elif stripped == _END:
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out)


def _outputs_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []) or []:
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        for value in (out.get("data") or {}).values():
            if isinstance(value, list):
                value = "\n".join(map(str, value))
            parts.append(value if isinstance(value, str) else "")
    return "\n".join(parts)


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _distinctive_lines(ex: Exercise) -> list[str]:
    """The answer's lines that no earlier exercise's answer has (the prelude every kernel shares, the
    load and the local test, is what a learner reads before every exercise)."""
    import importlib

    from moe_lab.workbook.exercises.answers import answer

    earlier = set()
    for other in EXERCISES.values():
        if other.name == ex.name:
            break
        earlier.update(_lines(lambda name=other.name: answer(name)))
    for ref in ex.builds_on:  # shown before the exercise on purpose: the step it builds on
        module, _, attribute = ref.partition(":")
        earlier.update(_lines(lambda: getattr(importlib.import_module(module), attribute)))
    return [ln for ln in _lines(lambda: answer(ex.name)) if ln not in earlier]


def _lines(find) -> list[str]:
    """The code lines of the object ``find()`` returns, squashed (none when it cannot be shown)."""
    from moe_lab.workbook.show import source

    try:
        text, _ = source(find())
    except Exception:  # an answer the library cannot show is one that cannot leak from it
        return []
    lines = []
    for line in text.splitlines():
        code = line.split("  #")[0].strip()
        if len(code) < 20 or code.startswith(("#", "@", "def ", '"""')) or code.endswith(":"):
            continue
        if ":" in code and code.endswith(")") and "constexpr" in code:
            continue  # the rest of a signature
        lines.append(_squash(code))
    return lines


def _stage_names(ex: Exercise) -> list[str]:
    return [k[:-len("_kernel")] for k in ex.answer_kernels if k.endswith("_kernel")]


def cell_leaks(ex: Exercise, text: str, code: str) -> list[str]:
    """What in one earlier cell answers ``ex`` (``text``: everything it shows; ``code``: its source)."""
    found = []
    for call, args in _SHOW.findall(code):
        named = [k for k in ex.answer_kernels if k in args]
        names = _stage_names(ex) + ([ex.name] if call == "solution" else [])
        named += [f'"{s}"' for s in names if f'"{s}"' in args or f"'{s}'" in args]
        if named:
            found.append(f"{call}({args.strip()[:60]}) shows {named[0]}")
    squashed = _squash(text)
    for formula in ex.answer_formulas:
        if _squash(formula) in squashed:
            found.append(f"the formula {formula}")
            break
    lines = _distinctive_lines(ex)
    shown = [ln for ln in lines if ln in squashed]
    # half the distinctive lines, at least three; an answer with fewer than three is caught by the rest
    if len(shown) >= 3 and 2 * len(shown) >= len(lines):
        found.append(f"{len(shown)} of the {len(lines)} lines of the shipped answer")
    return found


def leaks(nb, name: str = "notebook") -> list[Leak]:
    """Every place ``nb`` (a notebook node) shows an exercise's answer before that exercise's check."""
    cells = nb.cells if hasattr(nb, "cells") else nb["cells"]
    shown: list[tuple[str, str]] = []  # (what the cell shows, its code) for the cells so far
    out: list[Leak] = []
    for index, cell in enumerate(cells):
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        if cell.get("cell_type") == "code":
            for ex_name in dict.fromkeys(_CHECK.findall(source)):
                ex = EXERCISES.get(ex_name)
                if ex is None:
                    continue
                for earlier, (text, code) in enumerate(shown):
                    for what in cell_leaks(ex, text, code):
                        out.append(Leak(name, ex_name, earlier, index, what))
        code = _without_solutions(source) if cell.get("cell_type") == "code" else ""
        text = (_without_solutions(source) if cell.get("cell_type") == "code" else source) + "\n" + \
            _outputs_text(cell)
        shown.append((text, code))
    return out


def main(argv=None) -> int:
    import nbformat

    paths = list(argv if argv is not None else sys.argv[1:])
    if not paths:
        print("usage: python -m moe_lab.workbook.exercises.hidden NOTEBOOK.ipynb ...", file=sys.stderr)
        return 2
    found = []
    for path in paths:
        found += leaks(nbformat.read(path, as_version=4), path)
    for leak in found:
        print(leak)
    print(f"{len(found)} answer(s) shown before their check cell in {len(paths)} notebook(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["Leak", "leaks", "cell_leaks", "main"]
