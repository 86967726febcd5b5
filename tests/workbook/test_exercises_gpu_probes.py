"""Probes the interpreter alone would pass but a GPU would not run right (probe_kernels_gpu.py), and
learner code that reaches out of the check's child (probe_escapes.py): each gets the right verdict and
the words its mistake needs, and nothing reaches the process that runs the check."""

from __future__ import annotations

import os
import signal
import time

import probe_escapes as E
import probe_kernels_gpu as G
import pytest

from moe_lab.workbook import exercises
from moe_lab.workbook.exercises import confine, isolate


@pytest.mark.parametrize("exercise, probe, obj, verdict, words", G.PROBES,
                         ids=[f"{p[0]}: {p[1]}" for p in G.PROBES])
def test_gpu_probe_gets_its_verdict_and_words(exercise, probe, obj, verdict, words):
    result = exercises.check(exercise, obj)
    assert result.status == verdict, f"{probe}: {result.status}\n{result.text}"
    assert words in result.text, f"{probe}: expected {words!r} in\n{result.text}"
    misfit = G.MISFITS.get(probe)
    assert not (misfit and misfit in result.text), f"{probe}: the old misfit {misfit!r} in\n{result.text}"
    if verdict == "FAIL":
        assert "hint: " in result.text and "runs pass" not in result.text


ESCAPES = [("masked_block", E.masked_block_signals_the_notebook, "the check forbids"),
           ("masked_block", E.masked_block_forges_a_pass, "FORGE is a plain Python function"),
           ("masked_block", E.masked_block_patches_the_checker, "PATCH is a plain Python function"),
           ("masked_block", E.masked_block_pickles_into_the_pipe, "wrote into the checker's own pipe"),
           ("masked_block", E.masked_block_leaves_a_daemon, "FAIL"),
           ("block_size", E.block_size_signals_the_notebook, "PermissionError"),
           ("block_size", E.block_size_forges_a_pass, "FAIL")]


@pytest.mark.parametrize("exercise, obj, words", ESCAPES,
                         ids=[getattr(e[1], "__name__", None) or e[1].fn.__name__ for e in ESCAPES])
def test_code_that_reaches_out_of_the_child_fails_and_reaches_nothing(exercise, obj, words):
    """A signal to the notebook's process, a forged PASS, a patched checker, a pickle in the pipe, a
    daemon in a session of its own: each check FAILs, this process gets no signal and unpickles
    nothing, and no process outlives the check."""
    if not (isolate.ISOLATED and confine.supported()):
        pytest.skip("checks run in a confined forked child on Linux (x86-64, AArch64) only")
    received = []
    previous = signal.signal(signal.SIGUSR1, lambda *_: received.append(1))
    try:
        result = exercises.check(exercise, obj)
        time.sleep(1.5)  # the daemon writes its mark a second after the check, if it is still alive
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert result.status == "FAIL" and words in result.text, result.text
    assert received == [] and E.UNPICKLED == []
    assert not os.path.exists(E.DAEMON_MARK)
    assert isolate.CONFINED is True
