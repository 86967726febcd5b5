"""Is an exercise's answer visible before the learner has tried it? Two checks, one command.

**On screen after Run All** (:mod:`.onscreen`): the student edition run top to bottom in path order, and
for each exercise the fraction of its answer lines a learner has on screen, from its own notebook or
an earlier one, before its check passes (at most a fifth); a prediction's measured answer only after a
prediction is recorded. The command prints, per exercise, the fraction and where::

    python -m moe_lab.workbook.exercises.hidden                   # generate and run the student edition
    python -m moe_lab.workbook.exercises.hidden student/*.ipynb   # notebooks as they are (stored outputs)
    python -m moe_lab.workbook.exercises.hidden --run DIR/*.ipynb # run these first (copies untouched)

**Spec first, answer after** (:func:`leaks`, in either edition, on stored outputs): for every cell that
checks exercise ``name`` (``check("name", ...)``), no earlier cell of its notebook may show the answer,
in its source, in markdown or in a stored output:

* a ``show_source`` / ``show_diff`` / ``show_side_by_side`` / ``inspect.getsource`` of a library kernel,
  or ``solution(name)``,
  that answers it (:attr:`Exercise.answer_kernels`, or its stage by name);
* the shipped answer's distinctive lines (:func:`moe_lab.workbook.exercises.answers.answer`, less the lines an
  earlier exercise's answer has): half of them, at least three, anywhere in the earlier cells;
* a formula that answers it (:attr:`Exercise.answer_formulas`, compared without spaces).

The learner's own solution (between ``# BEGIN SOLUTION`` markers) is not counted.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

from moe_lab.workbook.exercises import onscreen
from moe_lab.workbook.exercises.catalogue import EXERCISES, Exercise
from moe_lab.workbook.markers import without_solutions as _without_solutions

_CHECK = re.compile(r"\bcheck\(\s*['\"](\w+)['\"]")
_SHOW = re.compile(r"\b(show_source|show_diff|show_side_by_side|getsource|solution)\s*\(([^\n]*)")


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


_squash = onscreen.squash


def _distinctive_lines(ex: Exercise) -> list[str]:
    """The answer's lines that no earlier exercise's answer has (the prelude every kernel shares, the
    load and the local test, is what a learner reads before every exercise) nor what it builds on."""
    from moe_lab.workbook.exercises.answers import answer

    earlier = set()
    for other in EXERCISES.values():
        if other.name == ex.name:
            break
        earlier.update(_lines(answer(other.name)))
    for ref in ex.builds_on:  # shown before the exercise on purpose: the step it builds on
        earlier.update(_lines(ref))
    return [ln for ln in _lines(answer(ex.name)) if ln not in earlier]


def _lines(ref) -> list[str]:
    """The code lines of ``ref`` (see :func:`.onscreen.code_lines`); none when it cannot be shown."""
    try:
        return onscreen.code_lines(onscreen.source_of(ref))
    except Exception:  # an answer the library cannot show is one that cannot leak from it
        return []


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
    import argparse
    import tempfile
    from pathlib import Path

    import nbformat

    parser = argparse.ArgumentParser(
        prog="python -m moe_lab.workbook.exercises.hidden",
        description="How much of each exercise's answer a learner has on screen after Run All, and where "
                    "(exit status 1 when an exercise shows more than a fifth, or a prediction is answered "
                    "before it is made).")
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to read as they are, in path order (default: generate the student "
                             "edition and run it top to bottom)")
    parser.add_argument("--run", action="store_true",
                        help="run the given notebooks top to bottom first (the files are not changed)")
    parser.add_argument("--kernel", default=None, help="Jupyter kernel name (default: the notebook's)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell (default 600)")
    args = parser.parse_args(argv)
    notebooks = sorted(args.notebooks, key=lambda p: p.name)
    found: list[Leak] = []
    if not notebooks:
        from moe_lab.workbook.student import make_student_edition

        with tempfile.TemporaryDirectory() as tmp:
            outcome = make_student_edition(out_dir=Path(tmp) / "student")
            written = [p for p in outcome.written if p.suffix == ".ipynb"]
            print(f"running the student edition ({len(written)} notebooks) ...", flush=True)
            screens = onscreen.run(written, kernel_name=args.kernel, timeout=args.timeout)
    elif args.run:
        screens = onscreen.run(notebooks, kernel_name=args.kernel, timeout=args.timeout)
    else:
        screens = []
        for path in notebooks:
            nb = nbformat.read(path, as_version=4)
            screens.append(onscreen.screen(nb, path.stem))
            found += leaks(nb, str(path))
    report = onscreen.scan(screens)
    print(report)
    for leak in found:
        print(leak)
    if notebooks and not args.run:
        print(f"{len(found)} answer(s) shown before their check cell in {len(notebooks)} notebook(s)")
    return 0 if report.ok and not found else 1


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["Leak", "leaks", "cell_leaks", "main"]
