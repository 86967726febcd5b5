"""Probes a hostile or unusual learner tries on the checker (tests/workbook/probe_kernels.py): each gets
the right verdict and the words its mistake needs; nothing the learner's code does (an endless loop that
swallows the time-out, a sleep, ``os._exit``) reaches the process that runs the check."""

from __future__ import annotations

import os
import sys
import time

import interrupting
import probe_kernels as P
import pytest

from moe_lab import backend
from moe_lab.workbook import exercises
from moe_lab.workbook.exercises import gpu_compile, isolate, report, sandbox

FAST = [p for p in P.PROBES if p[1] not in P.SLOW]
SLOW = [p for p in P.PROBES if p[1] in P.SLOW]


def _verdict(exercise, obj):
    result = exercises.check(exercise, obj)
    return result.status, result.text


@pytest.mark.parametrize("exercise, probe, obj, verdict, words", FAST, ids=[f"{p[0]}: {p[1]}" for p in FAST])
def test_probe_gets_its_verdict_and_words(exercise, probe, obj, verdict, words):
    status, text = _verdict(exercise, obj)
    assert status == verdict, f"{probe}: {status}\n{text}"
    assert words in text, f"{probe}: expected {words!r} in\n{text}"
    if verdict == "FAIL":
        assert "hint: " in text and "runs pass" not in text


@pytest.mark.parametrize("exercise, probe, obj, verdict, words", SLOW, ids=[f"{p[0]}: {p[1]}" for p in SLOW])
def test_code_that_never_returns_is_stopped_from_outside(monkeypatch, exercise, probe, obj, verdict, words):
    """A loop that swallows every exception (the time-out's too) or a long sleep: the child that runs it
    is killed after the budget, and the report names the case that was running."""
    if not isolate.ISOLATED:
        pytest.skip("checks run in a forked child on Linux only")
    monkeypatch.setattr(sandbox, "BUDGET_S", 1.5)
    begin = time.monotonic()
    status, text = _verdict(exercise, obj)
    assert status == "FAIL" and words in text, text
    assert "found: stopped after 1.5 s without progress" in text, text
    assert time.monotonic() - begin < 60


def test_the_process_survives_exits_and_keeps_checking():
    """os._exit in a kernel and in block_size end only the check's child: this process goes on, and the
    next check passes."""
    if not isolate.ISOLATED:
        pytest.skip("checks run in a forked child on Linux only")
    me = os.getpid()
    for exercise, obj in (("masked_block", P.masked_block_exits), ("block_size", P.block_size_exits)):
        status, text = _verdict(exercise, obj)
        assert status == "FAIL" and "ended the Python process it ran in (exit status" in text, text
        assert "this notebook is still alive" in text
    assert os.getpid() == me
    assert exercises.check("masked_block", P.masked_block_cas_retry_loop)


def test_a_real_interrupt_stops_the_check_and_its_child():
    """Ctrl-C (Jupyter's Stop button) while the child runs an endless loop: KeyboardInterrupt reaches
    the caller and no child is left running."""
    if not isolate.ISOLATED:
        pytest.skip("a forked child")
    out, left = interrupting.press_ctrl_c_during("probe_kernels", "masked_block_swallows_base_exception")
    assert "interrupted" in out, out
    assert not left, f"processes left running: {left}"


def test_a_long_check_shows_that_it_is_running(monkeypatch):
    """The scalar debug answer takes seconds in the interpreter: the check reports its progress (a
    tqdm bar after report.PROGRESS_DELAY_S) and closes the bar at the end; the report is unchanged."""
    from moe_lab.workbook.exercises.answers import debug_answer

    seen = []

    class Recorder:
        def __init__(self, name):
            seen.append(("open", name))

        def update(self, done, total):
            seen.append(("update", done, total))

        def status(self, what, now=False):
            seen.append(("status", what))

        def close(self):
            seen.append(("close",))

    monkeypatch.setattr(report, "Progress", Recorder)
    monkeypatch.setattr(gpu_compile, "_CACHE", {})  # compiled afresh: the line says so
    result = exercises.check("debug", debug_answer)
    assert result, result.text
    updates = [s for s in seen if s[0] == "update"]
    if isolate.ISOLATED:
        assert updates and updates[-1][2] >= 20 and updates[-1][1] == updates[-1][2] - 1
    if not backend.has_gpu():
        assert ("status", "compiling the kernel for a GPU (sm_90, no GPU needed)") in seen, seen
    assert seen[0] == ("open", "debug") and seen[-1] == ("close",)
    assert "running" not in result.text


def test_hint_levels_climb_and_agree_with_the_spec():
    """Level 1 points without giving the construction; block_histogram's level 3 keeps the spec's
    "only non-zero counts"."""
    rank = exercises.EXERCISES["stable_rank"].levels
    assert "cumsum" not in rank[0] and "hit =" not in rank[0] and "tl." not in rank[0]
    assert "tl.cumsum" in rank[1]
    for ex in exercises.EXERCISES.values():
        first = ex.levels[0]
        assert not any(code in first for code in ("= tl.", "tl.atomic", "tl.store(", "tl.load(")), ex.name
    assert "hist > 0" in exercises.EXERCISES["block_histogram"].levels[2]
    assert "hist > 0" in exercises.EXERCISES["block_histogram"].hint("bins_unmasked")


def test_the_block_size_spec_is_stated_as_the_check_holds_it():
    ex = exercises.EXERCISES["block_size"]
    assert "at most 256" in ex.launch and "rule / 2 < block < 2 * rule" in ex.launch
    assert exercises.check("block_size", lambda topk: 128 if topk == 6 else
                           1 << (min(256, 1024 // topk) - 1).bit_length())  # rounding 170 down is allowed


def test_the_hidden_calls_really_are_hidden_from_the_source_scan():
    """The probes that must be stopped at run time are not refused before running (else the tests above
    would test the scan, not the child)."""
    from moe_lab.workbook.exercises.source import python_helpers

    for kernel in (P.masked_block_exits, P.masked_block_sleeps, P.masked_block_swallows_base_exception):
        assert python_helpers(kernel) == []
    assert python_helpers(P.masked_block_calls_os_exit) == ["os._exit"]
    assert python_helpers(P.masked_block_calls_time_sleep) == ["time.sleep"]
    assert sys.modules["probe_kernels"] is P
