"""The check's report: lines collected while a check runs, then one PASS/FAIL block (:class:`CheckResult`).

The text is deterministic (no timings, no addresses), so a notebook cell that ends with a check can be
output-checked; in Jupyter the same text shows as one coloured block. A check that runs for more than
:data:`PROGRESS_DELAY_S` seconds also shows a progress bar while it runs (:class:`Progress`), which
disappears when it ends and is never part of the report.
"""

from __future__ import annotations

import contextlib
import contextvars
import html
import os
import sys
import time

import torch

from moe_lab import verify
from moe_lab.workbook.exercises import isolate
from moe_lab.workbook.exercises.catalogue import Exercise
from moe_lab.workbook.exercises.diagnose import diagnose
from moe_lab.workbook.exercises.launch import Run

_LINES: contextvars.ContextVar[list | None] = contextvars.ContextVar("moe_lab_check_lines", default=None)


def say(text: str = "") -> None:
    """Add a line to the report of the check that is running (printed when none is)."""
    lines = _LINES.get()
    if lines is None:
        print(text)
    else:
        lines.extend(str(text).split("\n"))


@contextlib.contextmanager
def collecting():
    lines: list[str] = []
    token = _LINES.set(lines)
    isolate.attach(lines)  # in a check's child process, these lines travel to the parent as they come
    try:
        yield lines
    finally:
        _LINES.reset(token)


class CheckResult:
    """What ``check`` found: truthy when every case passed; shows as one PASS/FAIL block.

    ``passed`` (bool), ``name`` (the exercise), ``status`` ("PASS", "FAIL" or "NOT DONE"), ``lines``
    (the report) and ``text`` (the report as one string).
    """

    def __init__(self, name: str, passed: bool, lines: list[str], status: str | None = None):
        self.name = name
        self.passed = bool(passed)
        self.status = status or ("PASS" if passed else "FAIL")
        self.lines = list(lines)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def __bool__(self) -> bool:
        return self.passed

    def __eq__(self, other):
        if isinstance(other, bool):
            return self.passed is other
        return NotImplemented

    __hash__ = None

    def __repr__(self) -> str:
        return f"{self.status}  {self.name}\n{self.text}"

    def __str__(self) -> str:
        return self.__repr__()

    def _repr_html_(self) -> str:
        colour = {"PASS": "#1a7f37", "FAIL": "#cf222e"}.get(self.status, "#9a6700")
        return (f'<div style="border-left:6px solid {colour};padding:4px 10px;margin:2px 0">'
                f'<b style="color:{colour}">{self.status}</b> <code>{html.escape(self.name)}</code>'
                f'<pre style="margin:4px 0 0 0;white-space:pre-wrap">{html.escape(self.text)}</pre></div>')


def fmt(v: int) -> str:
    return "POISON" if v == verify.POISON else str(v)


def row(t: torch.Tensor) -> str:
    return "[" + ", ".join(fmt(v) for v in t.tolist()) + "]"


PROGRESS_DELAY_S = 2.0
"""A check still running after this many seconds shows a progress bar."""


class Progress:
    """A line that says a long check is running (``check('debug') running: 12 of 29 runs``).

    In a notebook the check's cell always holds one blank display for it, made when the check starts; the
    line appears there only once the check has run :data:`PROGRESS_DELAY_S` seconds, and the display is
    blank again when the check ends, before the report. So a cell's saved outputs are the same whether
    the check was fast or slow (nbval compares them). ``TQDM_DISABLE=1`` keeps the line from appearing.
    Outside a notebook nothing is shown.
    """

    def __init__(self, name: str):
        self.name = name
        self.began = self.shown_at = time.monotonic()
        self.shown = False
        self.quiet = os.environ.get("TQDM_DISABLE", "").strip().lower() in ("1", "true", "yes", "on")
        ipython = sys.modules.get("IPython")
        self.handle = None
        if ipython is not None and ipython.get_ipython() is not None:
            from IPython.display import display

            self.handle = display({"text/plain": ""}, raw=True, display_id=True)

    def update(self, done: int, total: int) -> None:
        self.status(f"{done} of {total} runs")

    def status(self, what: str, *, now: bool = False) -> None:
        """Show ``check('name') running: <what>`` (``now``: even before the delay, e.g. a step that is
        about to take seconds)."""
        at = time.monotonic()
        if self.handle is None or self.quiet:
            return
        if not now and (at - self.began < PROGRESS_DELAY_S or (self.shown and at - self.shown_at < 0.25)):
            return  # not yet, or a few updates a second at most
        text = f"check({self.name!r}) running: {what}"
        self.handle.update({"text/plain": text, "text/html": f'<span style="color:#666">{html.escape(text)}'
                                                             f"</span>"}, raw=True)
        self.shown, self.shown_at = True, at

    def close(self) -> None:
        if self.handle is not None and self.shown:
            self.handle.update({"text/plain": ""}, raw=True)  # blank again, as when the check started
        self.shown = False


def case_lines(run: Run, kernel_where: str) -> list[str]:
    """The lines that name a run's case and show its input."""
    case = run.case
    ids = case.topk_ids.cpu()
    label = f" ({run.label})" if run.label else ""
    lines = [f"  first failing case: {case.name!r}{label}{kernel_where}"]
    if case.why:
        lines.append(f"    why this case: {case.why}")
    lines.append(f"    input: topk_ids {str(ids.dtype).replace('torch.', '')} {list(ids.shape)}, "
                 f"start={case.start}, num_local={case.num_local}")
    if 0 < ids.numel() <= 40:
        lines.append(f"      topk_ids = [{', '.join(row(r) for r in ids)}]")
    return lines


def failure_header(ex: Exercise, run: Run, title: str, kernel_where: str) -> list[str]:
    """What a report shows above "found: ..." when this run is the one that failed (or never returned)."""
    return [f"  FAIL  {title}"] + case_lines(run, kernel_where)


def report_failure(ex: Exercise, run: Run, kernel_where: str, hint_level: int = 0, first=()) -> None:
    """The report of a failed run: its case, what came out, what was found and the hints. ``first``:
    ``(symptom, what was seen)`` found outside the run itself, which explains the run better than what
    the run shows (said instead)."""
    for line in case_lines(run, kernel_where):
        say(line)
    case = run.case
    ids = case.topk_ids.cpu()
    problems = list(first) or diagnose(ex, run)
    if run.error is None:
        got, want = run.adjusted, run.want_adjusted
        if not torch.equal(got, want):
            bad = (got != want).nonzero()
            t, k = bad[0].tolist()
            say(f"    adjusted: {len(bad)} slot(s) wrong; first at [{t}, {k}]: input id "
                f"{ids[t, k].item()}, expected {want[t, k].item()}, got {fmt(got[t, k].item())}")
            for name, values in (("topk_ids", ids), ("expected", want), ("got     ", got)):
                say(f"      {name}[{t}] = {row(values[t])}")
        else:
            say("    adjusted: correct")
        gc, wc = run.counts, run.want_counts
        if not torch.equal(gc, wc):
            if case.num_local <= 32:
                say(f"    expert_count expected {row(wc)}")
                say(f"    expert_count got      {row(gc)}")
            else:
                diff = (gc != wc).nonzero().flatten().tolist()
                shown = ", ".join(f"[{e}] expected {wc[e].item()} got {fmt(gc[e].item())}" for e in diff[:5])
                more = f" (and {len(diff) - 5} more)" if len(diff) > 5 else ""
                say(f"    expert_count wrong at {shown}{more}")
        else:
            say("    expert_count: correct")
    if run.printed:
        say(f"    (the kernel printed {run.printed} line(s), held back here)")
    for _key, detail in problems:
        if detail:
            say(f"    found: {detail}")
    hints = []
    for key, _ in problems:
        if ex.hint(key) not in hints:
            hints.append(ex.hint(key))
    for text in hints:
        say(f"  hint: {text}")
    if hint_level:
        say_level(ex, hint_level)


def say_level(ex: Exercise, level: int) -> None:
    level = max(1, min(3, int(level)))
    say(f"  hint (level {level}): {ex.levels[level - 1]}")


def report_stopped(ex: Exercise, stop: isolate.Stopped, hint_level: int = 0) -> None:
    """The report of a check whose child process was stopped (time-out) or ended by the learner's code."""
    for line in stop.header or [f"  FAIL  {ex.name}"]:
        say(line)
    if stop.how == "exit":
        say(f"    found: your code ended the Python process it ran in ({stop.status}); reported, not obeyed")
        key = "process_exit"
    elif stop.how == "total":
        say(f"    found: the check as a whole ran for more than {stop.seconds:g} s")
        key = "timeout"
    else:
        say(f"    found: stopped after {stop.seconds:g} s without progress (a loop that never ends, or a "
            f"wait)")
        key = "timeout"
    say(f"  hint: {ex.hint(key)}")
    if hint_level:
        say_level(ex, hint_level)


__all__ = ["say", "collecting", "CheckResult", "fmt", "row", "PROGRESS_DELAY_S", "Progress", "case_lines",
           "failure_header", "report_failure", "report_stopped", "say_level"]
