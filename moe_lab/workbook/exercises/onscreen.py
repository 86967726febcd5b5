"""What a learner has on screen after *Run All*: how much of each exercise's answer, and where.

The student edition is run as a learner runs it, every notebook top to bottom in path order (:func:`run`),
and its screen read (:func:`screen`): each cell's source, markdown included, and its outputs (stream text,
``text/plain``, ``text/html`` as the text it renders, ``text/markdown``, errors). Then, per exercise
(:func:`scan`):

* its **answer lines** are the code lines of its shipped answer (:func:`.answers.answer`), less the lines
  of what it builds on (:attr:`.Exercise.builds_on`: the previous stage the lesson shows on purpose, such
  as ``row_loop`` before ``naive``, and the debugging puzzle's own buggy kernel), and, as a second form,
  each of its answer formulas (:attr:`.Exercise.answer_formulas`) as one line;
* the **fraction on screen** is the share of those lines (of the form that shows most) that stand in a
  cell of its own notebook or of any earlier one. The student edition's checks never pass, so everything
  a *Run All* shows counts: an answer that waits for its check is not on screen.

At most :data:`BAR` of an exercise's answer lines may be on screen. A prediction (:data:`.learn.QUESTIONS`)
is answered by the recorded medians it compares: no cell may show both before the cell that records a
prediction (or, when none does, anywhere up to the end of the prediction's notebook).
"""

from __future__ import annotations

import html
import importlib
import io
import re
import tokenize
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from moe_lab.workbook.exercises.catalogue import EXERCISES, Exercise
from moe_lab.workbook.markers import without_solutions

BAR = 0.2
"""The largest fraction of an exercise's answer lines that may be on screen before its check passes."""

MIN_CHARS = 12
"""An answer line shorter than this (without spaces), such as ``else:``, gives nothing away."""

_SKIP_TOKENS = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                tokenize.ENCODING, tokenize.ENDMARKER}
_OP = tokenize.OP
_TRAILING_COMMENT = re.compile(r"(?<=\S)[ \t]+#[ \t].*$", re.M)


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def screen_lines(text: str) -> list[str]:
    """``text`` as squashed lines (no spaces, no trailing comments), a line whose brackets are still
    open joined with the next ones (a statement over several lines is one line here, at most 8)."""
    out, buf, depth, count = [], "", 0, 0
    for line in _TRAILING_COMMENT.sub("", text).split("\n"):
        part = squash(line)
        buf, count = buf + part, count + 1
        depth += sum(map(part.count, "([{")) - sum(map(part.count, ")]}"))
        if depth <= 0 or count >= 8:
            out.append(buf)
            buf, depth, count = "", 0, 0
    return out + ([buf] if buf else [])


_GOES_ON = set("&|+-*/%<>=!([^~@")  # after one of these, the statement on screen is a longer one


def shows(line: str, answer: str) -> bool:
    """Whether a squashed screen ``line`` holds the squashed statement ``answer`` whole: not as the start
    or the end of a longer expression (``x = a & b`` does not show ``x = a``)."""
    start = line.find(answer)
    while start >= 0:
        before = line[start - 1] if start else ""
        end = start + len(answer)
        after, then = line[end:end + 1], line[end + 1:end + 2]
        whole_left = not (before.isalnum() or before == "_")
        whole_right = not (after.isalnum() or after == "_" or after in _GOES_ON
                           or (after == "." and (then.islower() or then == "_")))
        if whole_left and whole_right:
            return True
        start = line.find(answer, start + 1)
    return False


# --------------------------------------------------------------------------------------------- code

def code_lines(code: str) -> list[str]:
    """The statements of ``code`` that could give an answer away, squashed (no spaces, no comments),
    once each, in order: not a decorator, ``def`` or ``class`` line, docstring, nor shorter than
    :data:`MIN_CHARS`. A statement over several lines is one line here."""
    import textwrap

    lines, current = [], []
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(textwrap.dedent(code)).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return []
    for tok in tokens:
        if tok.type in (tokenize.NEWLINE, tokenize.ENDMARKER) or (tok.type, tok.string) == (_OP, ";"):
            if current:
                lines.append(current)
            current = []
        elif tok.type not in _SKIP_TOKENS:
            current.append(tok)
    kept = []
    for toks in lines:
        first = toks[0]
        docstring = len(toks) == 1 and first.type == tokenize.STRING
        if first.string in ("@", "def", "class", "async") or docstring:
            continue
        text = "".join(t.string for t in toks)
        if len(text) >= MIN_CHARS and text not in kept:
            kept.append(text)
    return kept


def source_of(ref) -> str:
    """The source text of ``ref``: an object, a text, or ``"module:attribute"`` naming either."""
    if isinstance(ref, str) and ":" in ref and "\n" not in ref:
        module, _, attribute = ref.partition(":")
        ref = importlib.import_module(module)
        for part in attribute.split("."):
            ref = getattr(ref, part)
    if isinstance(ref, str):
        return ref
    from moe_lab.workbook.show import source

    return source(ref)[0]


def answer_forms(ex: Exercise) -> list[tuple[str, list[str]]]:
    """``[(what, answer lines)]``: the shipped answer less what the exercise builds on, then each formula."""
    from moe_lab.workbook.exercises.answers import answer

    scaffold = {line for ref in ex.builds_on for line in code_lines(source_of(ref))}
    shipped = answer(ex.name)
    name = getattr(getattr(shipped, "fn", shipped), "__name__", ex.name)
    lines = [ln for ln in code_lines(source_of(shipped)) if ln not in scaffold]
    forms = [(f"the shipped answer ({name})", lines)]
    for formula in dict.fromkeys(squash(f) for f in ex.answer_formulas):
        forms.append((f"the formula {formula}", [formula]))
    return [(what, lines) for what, lines in forms if lines]


# ------------------------------------------------------------------------------------------- screen

class _Text(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts, self._skip = [], 0

    def handle_starttag(self, tag, attrs):
        self._skip += tag in ("script", "style")

    def handle_endtag(self, tag):
        self._skip -= tag in ("script", "style") and self._skip > 0

    def handle_data(self, data):
        if not self._skip:
            self.parts.append(data)


def html_text(markup: str) -> str:
    """The text ``markup`` shows (tags and scripts gone, entities resolved)."""
    parser = _Text()
    parser.feed(markup)
    parser.close()
    return html.unescape("".join(parser.parts))


def _joined(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def cell_text(cell) -> str:
    """What one cell puts on screen: its source (less a solution between markers: the learner's own
    code) and its outputs as text."""
    source = _joined(cell.get("source", ""))
    parts = [without_solutions(source) if cell.get("cell_type") == "code" else source]
    for out in cell.get("outputs", []) or []:
        kind = out.get("output_type")
        if kind == "stream":
            parts.append(_joined(out.get("text", "")))
        elif kind == "error":
            parts.append(re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(out.get("traceback", []))))
        data = out.get("data") or {}
        for mime in ("text/plain", "text/markdown"):
            if mime in data:
                parts.append(_joined(data[mime]))
        if "text/html" in data:
            parts.append(html_text(_joined(data["text/html"])))
    return "\n".join(parts)


@dataclass
class Screen:
    """One notebook after *Run All*: its name and what each cell shows."""

    name: str
    cells: list[str]
    error: str | None = None

    @property
    def prefix(self) -> str:
        return self.name[:2]


def screen(nb, name: str, error: str | None = None) -> Screen:
    cells = nb.cells if hasattr(nb, "cells") else nb["cells"]
    return Screen(name, [cell_text(c) for c in cells], error)


def run(paths, *, kernel_name: str | None = None, timeout: int = 600) -> list[Screen]:
    """Run every notebook of ``paths`` top to bottom, in path order (a fresh kernel each, as a learner
    opening one after the other), and read their screens."""
    from moe_lab.workbook.book import execute, kernel_environment

    kernel_environment()
    screens = []
    for path in sorted(map(Path, paths), key=lambda p: p.name):
        nb, error, _ = execute(path, timeout=timeout, kernel_name=kernel_name)
        screens.append(screen(nb, path.stem, error))
    return screens


# -------------------------------------------------------------------------------------------- scan

@dataclass
class OnScreen:
    """How much of one exercise's answer a learner has on screen, and where."""

    exercise: str
    notebook: str
    form: str
    lines: list[str]
    seen: dict[str, tuple[str, int]] = field(default_factory=dict)
    """Answer line -> (notebook, cell) where it is first on screen."""

    @property
    def fraction(self) -> float:
        return len(self.seen) / len(self.lines) if self.lines else 0.0

    @property
    def over(self) -> bool:
        return self.fraction > BAR + 1e-9

    def where(self) -> str:
        counts: dict[tuple[str, int], int] = {}
        for spot in self.seen.values():
            counts[spot] = counts.get(spot, 0) + 1
        return "; ".join(f"{nb} cell {cell} ({n} line{'s' if n > 1 else ''})"
                         for (nb, cell), n in sorted(counts.items())) or "-"

    def __str__(self) -> str:
        mark = "  MORE THAN A FIFTH" if self.over else ""
        return (f"{self.exercise:<16} {self.notebook:<4} {len(self.seen):>3} of {len(self.lines):<3} "
                f"({self.fraction:4.0%}){mark}  {self.form}: {self.where()}")


def exercise_on_screen(ex: Exercise, screens: list[Screen]) -> OnScreen | None:
    """The answer form of ``ex`` that shows most on ``screens`` up to its own notebook (None when its
    notebook is not among them)."""
    upto = [s for s in screens if s.prefix <= ex.notebook]
    if not any(s.prefix == ex.notebook for s in upto):
        return None
    cells = [(s.name, i, screen_lines(text)) for s in upto for i, text in enumerate(s.cells)]
    best = None
    for form, lines in answer_forms(ex):
        found = OnScreen(ex.name, ex.notebook, form, lines)
        for line in lines:
            spot = next(((nb, i) for nb, i, shown in cells if any(shows(s, line) for s in shown)), None)
            if spot:
                found.seen[line] = spot
        if best is None or found.fraction > best.fraction:
            best = found
    return best


@dataclass
class Prediction:
    """Whether a prediction's measured answer is on screen before a prediction is recorded."""

    exercise: str
    recorded: tuple[str, int] | None
    answered: list[tuple[str, int, str]]
    """(notebook, cell, question) for each cell that shows the measured answer too early."""

    def __str__(self) -> str:
        made = (f"recorded in {self.recorded[0]} cell {self.recorded[1]}" if self.recorded
                else "never recorded")
        if not self.answered:
            return (f"prediction {self.exercise}: its measured answer is not on screen before it is made "
                    f"({made})")
        spots = "; ".join(f"{nb} cell {i} ({q})" for nb, i, q in self.answered)
        return f"prediction {self.exercise}: ANSWERED ON SCREEN before it is made ({made}): {spots}"


def _numbers(value: float) -> re.Pattern:
    return re.compile(rf"(?<![\d.]){re.escape(f'{value:.2f}')}(?!\d)")


def prediction_on_screen(name: str, screens: list[Screen]) -> Prediction | None:
    from moe_lab.workbook.exercises.learn import QUESTIONS, _recorded

    ex = EXERCISES[name]
    upto = [s for s in screens if s.prefix <= ex.notebook]
    if not any(s.prefix == ex.notebook for s in upto):
        return None
    questions = QUESTIONS[name]
    rows, _ = _recorded({s for q in questions for s in (q.stage, q.baseline)})
    answers = []
    for q in questions:
        medians = []
        for stage in (q.stage, q.baseline):
            sel = rows[(rows["stage"] == stage) & (rows["num_tokens"] == q.num_tokens)]
            if len(sel):
                medians.append(_numbers(float(sel["median_us"].median())))
        if len(medians) == 2:
            answers.append((q.key, medians))
    said = f"{name}: prediction recorded"
    answered, recorded = [], None
    for s in upto:
        for i, text in enumerate(s.cells):
            if said in text:
                recorded = (s.name, i)
                break
            answered += [(s.name, i, key) for key, pats in answers if all(p.search(text) for p in pats)]
        if recorded:
            break
    return Prediction(name, recorded, answered)


@dataclass
class Report:
    exercises: list[OnScreen]
    predictions: list[Prediction]
    errors: list[str]

    @property
    def ok(self) -> bool:
        return not self.errors and not any(e.over for e in self.exercises) and \
            not any(p.answered for p in self.predictions)

    def __str__(self) -> str:
        head = (f"{'exercise':<16} {'nb':<4} answer lines on screen after Run All, before the check passes "
                f"(bar: {BAR:.0%})")
        lines = [head] + [str(e) for e in self.exercises] + [str(p) for p in self.predictions]
        lines += [f"did not run to the end: {e}" for e in self.errors]
        return "\n".join(lines)


def scan(screens: list[Screen]) -> Report:
    """Every exercise and prediction whose notebook is among ``screens`` (given in path order)."""
    from moe_lab.workbook.exercises.learn import QUESTIONS

    exercises = [found for ex in EXERCISES.values() if (found := exercise_on_screen(ex, screens))]
    predictions = [found for name in QUESTIONS  # an exercise's prediction: its answer is recorded data
                   if name in EXERCISES and (found := prediction_on_screen(name, screens))]
    errors = [f"{s.name}: {s.error.splitlines()[-1] if s.error.strip() else s.error}"
              for s in screens if s.error]
    return Report(exercises, predictions, errors)


__all__ = ["BAR", "code_lines", "source_of", "answer_forms", "html_text", "cell_text", "Screen", "screen",
           "run", "OnScreen", "Prediction", "Report", "scan"]
