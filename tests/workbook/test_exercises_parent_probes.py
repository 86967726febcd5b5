"""The process that runs ``check`` never runs the learner's code: not while it describes the kernel's
globals for the compile for a GPU, and not from an ``src`` set on the kernel (tests/workbook/
probe_kernels_parent.py)."""

from __future__ import annotations

import time

import probe_kernels_parent as P
import pytest

from moe_lab.workbook import exercises


@pytest.mark.parametrize("exercise, probe, obj, verdict, words", P.PROBES, ids=[p[1] for p in P.PROBES])
def test_the_checking_process_survives_and_gives_the_verdict(exercise, probe, obj, verdict, words):
    began = time.monotonic()
    result = exercises.check(exercise, obj)
    assert time.monotonic() - began < 60, f"{probe}: took {time.monotonic() - began:.0f} s"
    assert result.status == verdict, f"{probe}: {result.status}\n{result.text}"
    assert words in result.text, f"{probe}: expected {words!r} in\n{result.text}"
