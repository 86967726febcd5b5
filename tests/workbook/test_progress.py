"""A long check says it is running, and the cell it runs in ends with the same outputs, fast or slow."""

from __future__ import annotations

import sys
import types

from moe_lab.workbook.exercises import report


class Handle:
    def __init__(self, shown: list):
        self.shown = shown

    def update(self, data, raw=False):
        self.shown.append(data["text/plain"])


def _fake_ipython(monkeypatch, shown: list):
    display = types.ModuleType("IPython.display")

    def show(data, raw=False, display_id=False):
        shown.append(data["text/plain"])
        return Handle(shown)

    display.display = show
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: object()  # inside a kernel
    ipython.display = display
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", display)


def test_a_fast_check_leaves_one_blank_display(monkeypatch):
    shown = []
    _fake_ipython(monkeypatch, shown)
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    bar = report.Progress("naive")
    bar.update(3, 10)  # well inside PROGRESS_DELAY_S
    bar.close()
    assert shown == [""]


def test_a_slow_check_says_so_then_blanks_its_line(monkeypatch):
    shown = []
    _fake_ipython(monkeypatch, shown)
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    bar = report.Progress("debug")
    bar.began -= report.PROGRESS_DELAY_S + 1  # the check has run long enough to say so
    bar.update(3, 10)
    bar.update(4, 10)  # too soon after the last update: not shown
    bar.shown_at -= 1
    bar.update(7, 10)
    bar.close()
    assert shown == ["", "check('debug') running: 3 of 10 runs", "check('debug') running: 7 of 10 runs", ""]


def test_tqdm_disable_keeps_the_line_blank(monkeypatch):
    shown = []
    _fake_ipython(monkeypatch, shown)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    bar = report.Progress("debug")
    bar.began -= report.PROGRESS_DELAY_S + 1
    bar.update(3, 10)
    bar.close()
    assert shown == [""]


def test_outside_a_notebook_nothing_is_shown(monkeypatch):
    monkeypatch.setitem(sys.modules, "IPython", None)
    bar = report.Progress("debug")
    bar.began -= report.PROGRESS_DELAY_S + 1
    bar.update(3, 10)
    bar.close()
    assert bar.handle is None and not bar.shown
