"""How long each notebook takes a learner, estimated from its content with one stated model.

The model (calibrated on a learner walk: PyTorch-fluent, new to Triton):

* prose is read at :data:`WORDS_PER_MINUTE` words a minute (markdown text, outside tables and code);
* code is read at :data:`SECONDS_PER_CODE_LINE` seconds a line: the non-blank lines of code cells, of
  code blocks in markdown and of code a cell displays (``show_source``, ``show_diff``: highlighted code);
* a figure, a table (a markdown table, or an HTML table in an output) or a long printed listing
  (:data:`LISTING_LINES` lines or more of other output) takes :data:`MINUTES_PER_ITEM` minute each;
  shorter printed output is read with the cell that prints it;
* an exercise takes its own minutes (:attr:`.Exercise.minutes`, from reading its spec to a passing
  check, so the cells of its stub and its check are not counted again);
* a prediction (a ``predict(...)`` cell: reading the question and committing to an answer) takes
  :data:`MINUTES_PER_PREDICTION` minute, its cell's code included;
* what a learner reads once a check passes or a prediction is recorded counts too: each
  ``after_check(name)`` / ``after_prediction(name)`` cell reveals a walk-through
  (``walkthroughs/<name>.md``, ``walkthroughs/<name>.prediction.md``; none for
  ``after_check(..., walkthrough=False)``), counted by the same rules from the file itself (its words,
  the lines of the sources it embeds, a minute per table), whether or not the notebook's stored
  outputs show it; what such a cell shows besides (a table, a listing) is counted from its outputs.

Only the path part of a notebook counts towards the path: everything from a markdown heading that
starts with ``Take-home`` (``## Take-home: ...``) to the end of the notebook is take-home, estimated
apart. The three-hour path is notebooks :data:`PATH` plus one break of :data:`BREAK_MINUTES`.

    python -m moe_lab.workbook.timetable                  # every notebook of the checkout
    python -m moe_lab.workbook.timetable notebooks/05_*.ipynb
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

WORDS_PER_MINUTE = 180
SECONDS_PER_CODE_LINE = 3
MINUTES_PER_ITEM = 1
MINUTES_PER_PREDICTION = 1
"""A ``predict(...)`` cell: reading the question and committing to an answer."""
LISTING_LINES = 10
"""Printed output of at least this many lines is a listing (a minute)."""
CODE_DISPLAY = 'class="moe-lab-code"'
"""What marks displayed code in an output's HTML (:mod:`moe_lab.workbook.show`)."""
PATH = ("00", "01", "02", "03", "04", "05", "06", "07")
"""The three-hour path, by notebook number; the others are take-home."""
BREAK_MINUTES = 10
PLAN_MINUTES = 180
"""What the path is planned to take, exercises and the break included."""

_TAKE_HOME = re.compile(r"^#+\s*Take-home\b", re.I | re.M)
_CHECK = re.compile(r"\bcheck\(\s*['\"](\w+)['\"]")
_REVEAL = re.compile(r"\bafter_(check|prediction)\(\s*['\"](\w+)['\"]")
_PREDICT = re.compile(r"(?<![\w.])predict\(\s*['\"]\w+['\"]")
_FENCE = re.compile(r"^\s*(```|~~~)")
_IMAGE_MD = re.compile(r"!\[[^\]]*\]\([^)]*\)|<img\b[^>]*>", re.I)
_TAGS = re.compile(r"<[^>]+>")
_WORD = re.compile(r"[^\W_][\w'’.-]*", re.U)


@dataclass
class Part:
    """The counts of one part (the path part, or the take-home part) of a notebook."""

    words: int = 0
    code_lines: int = 0
    items: int = 0
    """Figures, tables and long listings."""
    predictions: int = 0
    """``predict(...)`` cells."""
    exercises: tuple[str, ...] = ()

    @property
    def exercise_minutes(self) -> int:
        from moe_lab.workbook.exercises.catalogue import EXERCISES

        return sum(EXERCISES[name].minutes for name in self.exercises if name in EXERCISES)

    @property
    def minutes(self) -> float:
        return (self.words / WORDS_PER_MINUTE + self.code_lines * SECONDS_PER_CODE_LINE / 60
                + self.items * MINUTES_PER_ITEM + self.predictions * MINUTES_PER_PREDICTION
                + self.exercise_minutes)

    def __bool__(self) -> bool:
        return bool(self.words or self.code_lines or self.items or self.predictions or self.exercises)


@dataclass
class Estimate:
    notebook: str
    path: Part
    take_home: Part

    @property
    def on_path(self) -> bool:
        return self.notebook[:2] in PATH

    @property
    def minutes(self) -> int:
        """The estimate of the notebook's path part, in whole minutes (the whole notebook off the path)."""
        part = self.path.minutes + (0 if self.on_path else self.take_home.minutes)
        return int(math.floor(part + 0.5))

    @property
    def take_home_minutes(self) -> int:
        return int(math.floor(self.take_home.minutes + 0.5)) if self.on_path else 0


def _source(cell) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _markdown(text: str, part: Part) -> None:
    fenced = False
    table = False
    prose = []
    for line in text.split("\n"):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            part.code_lines += bool(line.strip())
            continue
        is_row = line.lstrip().startswith("|")
        if is_row and not table:
            part.items += 1  # a markdown table
        table = is_row
        if not is_row:
            part.items += len(_IMAGE_MD.findall(line))
            prose.append(_IMAGE_MD.sub(" ", line))
    part.words += len(_WORD.findall(_TAGS.sub(" ", "\n".join(prose))))


def _outputs(cell, part: Part, shown_already: frozenset = frozenset()) -> None:
    """Count a cell's outputs; ``shown_already``: the plain text of walk-through parts counted from their
    file (:func:`_walkthroughs`), and markdown outputs (a walk-through's text) are skipped as well."""
    for out in cell.get("outputs", []) or []:
        data = out.get("data") or {}
        if any(mime.startswith("image/") for mime in data):
            part.items += 1
            continue
        html = data.get("text/html", "")
        html = "".join(html) if isinstance(html, list) else html
        text = out.get("text", "") if out.get("output_type") == "stream" else data.get("text/plain", "")
        text = "".join(text) if isinstance(text, list) else text
        if shown_already and ("text/markdown" in data or text in shown_already):
            continue  # a walk-through part, counted from its file
        lines = [ln for ln in text.split("\n") if ln.strip()]
        if CODE_DISPLAY in html:
            part.code_lines += len(lines)  # code shown from the library: read as code
        elif "<table" in html or len(lines) >= LISTING_LINES:
            part.items += 1


def _walkthroughs(source: str, part: Part) -> frozenset:
    """Count the walk-throughs that the ``after_check`` / ``after_prediction`` calls of a cell reveal;
    returns the plain text of their parts (to skip in the cell's stored outputs)."""
    from moe_lab.workbook.exercises import gated

    shown = set()
    calls = list(_REVEAL.finditer(source))
    for i, call in enumerate(calls):
        args = source[call.end():calls[i + 1].start() if i + 1 < len(calls) else len(source)]
        if call[1] == "check" and re.search(r"walkthrough\s*=\s*False", args):
            continue
        suffix = ".md" if call[1] == "check" else ".prediction.md"
        for piece in gated._parts(gated.WALKTHROUGHS / f"{call[2]}{suffix}"):
            if isinstance(piece, gated.Markdown):
                _markdown(piece.text, part)
            else:  # a source it embeds, read as code
                part.code_lines += sum(1 for ln in piece.text.split("\n") if ln.strip())
            shown.add(repr(piece))
    return frozenset(shown)


def estimate(nb: dict, name: str) -> Estimate:
    """The counts and minutes of notebook ``nb`` (a notebook as JSON), split at its take-home heading."""
    from moe_lab.workbook.markers import has_solution

    path, home = Part(), Part()
    part = path
    exercises = {id(path): [], id(home): []}
    for cell in nb.get("cells", []):
        source = _source(cell)
        if cell.get("cell_type") == "markdown":
            found = _TAKE_HOME.search(source)
            if found and part is path:
                _markdown(source[:found.start()], path)
                part, source = home, source[found.start():]
            _markdown(source, part)
            continue
        if cell.get("cell_type") != "code":
            continue
        checked = _CHECK.findall(source)
        exercises[id(part)] += checked
        predictions = len(_PREDICT.findall(source))
        part.predictions += predictions
        if not (checked or predictions or has_solution(source) or "YOUR CODE HERE" in source):
            part.code_lines += sum(1 for ln in source.split("\n") if ln.strip())
        _outputs(cell, part, _walkthroughs(source, part))
    path.exercises = tuple(dict.fromkeys(exercises[id(path)]))
    home.exercises = tuple(dict.fromkeys(exercises[id(home)]))
    return Estimate(name, path, home)


def estimate_file(path: Path) -> Estimate:
    return estimate(json.loads(Path(path).read_text()), Path(path).stem)


def path_minutes(estimates: list[Estimate]) -> int:
    """The path's estimate: its notebooks' path parts plus the break."""
    return sum(e.minutes for e in estimates if e.on_path) + BREAK_MINUTES


def table(estimates: list[Estimate]) -> str:
    rows = [f"{'notebook':<38} {'words':>6} {'code lines':>10} {'fig/tab/list':>12} {'predictions':>11} "
            f"{'exercise min':>12} {'estimate':>8}  take-home part"]
    for e in estimates:
        home = (f"{e.take_home_minutes} min" if e.take_home else "-") if e.on_path else "(take-home notebook)"
        p = e.path if e.on_path else _merged(e.path, e.take_home)
        rows.append(f"{e.notebook:<38} {p.words:>6} {p.code_lines:>10} {p.items:>12} {p.predictions:>11} "
                    f"{p.exercise_minutes:>12} {e.minutes:>5} min  {home}")
    on_path = [e for e in estimates if e.on_path]
    if on_path:
        total = path_minutes(estimates)
        rows.append(f"path {PATH[0]}-{PATH[-1]}: {total - BREAK_MINUTES} min + a {BREAK_MINUTES}-minute "
                    f"break = {total} min (planned: {PLAN_MINUTES})"
                    + ("" if len(on_path) == len(PATH) else f"; only {len(on_path)} of its notebooks given"))
    return "\n".join(rows)


def _merged(a: Part, b: Part) -> Part:
    return Part(a.words + b.words, a.code_lines + b.code_lines, a.items + b.items,
                a.predictions + b.predictions, a.exercises + b.exercises)


def main(argv=None) -> int:
    import argparse

    from moe_lab import paths

    parser = argparse.ArgumentParser(prog="python -m moe_lab.workbook.timetable",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks to estimate (default: every notebook of the checkout's notebooks/)")
    args = parser.parse_args(argv)
    try:
        chosen = args.notebooks or sorted(paths.notebooks().glob("[0-9][0-9]_*.ipynb"))
    except paths.MissingFiles as err:
        print(f"moe_lab.workbook.timetable: {err}", file=sys.stderr)
        return 2
    print(table([estimate_file(p) for p in sorted(chosen, key=lambda p: p.name)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["WORDS_PER_MINUTE", "SECONDS_PER_CODE_LINE", "MINUTES_PER_ITEM", "MINUTES_PER_PREDICTION",
           "LISTING_LINES", "PATH",
           "BREAK_MINUTES", "PLAN_MINUTES", "Part", "Estimate", "estimate", "estimate_file", "path_minutes",
           "table", "main"]
