"""Learner code that reaches out of the check's child process: it signals the notebook's process, forges
a PASS or patches the checker from inside the child, writes a pickle into the check's pipe, or leaves a
daemon behind. The calls hide behind a ``tl.constexpr`` (probe_kernels' ``_hidden``), so the run itself
must hold them; each must end in a FAIL and reach nothing outside the child.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
import tempfile
import time

import triton
import triton.language as tl
from probe_kernels import _hidden

UNPICKLED: list[int] = []
"""The ids of the processes that unpickled a :class:`_Marker` (the parent must never be one)."""
DAEMON_MARK = os.path.join(tempfile.gettempdir(), f"moe_lab_probe_daemon_{os.getpid()}")
"""Written by the daemon, a second after the check ends, if it outlives the check."""


def mark_unpickled():
    UNPICKLED.append(os.getpid())


class _Marker:
    def __reduce__(self):  # whoever unpickles this runs mark_unpickled
        return (mark_unpickled, ())


def _signal_the_notebook(_):
    os.kill(os.getppid(), signal.SIGUSR1)


def _forge(_):
    from moe_lab.workbook.exercises import isolate

    isolate.CHANNEL.send(("done", ["masked_block: all 42 runs pass."], {"status": "PASS", "runs": 42,
                                                                        "blocks": {}}))
    os._exit(0)


def _patch(_):
    runners = sys.modules["moe_lab.workbook.exercises.runners"]
    runners.passed = lambda ex, run: True
    runners.late_problems = lambda ex, run: []


def _pickle_into_the_pipe(_):
    from moe_lab.workbook.exercises import isolate

    data = pickle.dumps(("step", [], 0, 1, [_Marker()]))
    os.write(isolate.CHANNEL.fd, struct.pack("!I", len(data)) + data)


def _daemon(_):
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()  # a session of its own: out of the check's process group
            if os.fork() == 0:
                time.sleep(1.0)
                with open(DAEMON_MARK, "w") as fh:
                    fh.write("left behind by a check\n")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


SIGNAL, FORGE, PATCH = tl.constexpr(_signal_the_notebook), tl.constexpr(_forge), tl.constexpr(_patch)
PICKLE, DAEMON = tl.constexpr(_pickle_into_the_pipe), tl.constexpr(_daemon)


@triton.jit
def masked_block_signals_the_notebook(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                                      BLOCK: tl.constexpr):
    _hidden(SIGNAL)


@triton.jit
def masked_block_forges_a_pass(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                               BLOCK: tl.constexpr):
    _hidden(FORGE)


@triton.jit
def masked_block_patches_the_checker(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                                     BLOCK: tl.constexpr):
    _hidden(PATCH)  # then writes nothing: every output stays poisoned


@triton.jit
def masked_block_pickles_into_the_pipe(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                                       BLOCK: tl.constexpr):
    _hidden(PICKLE)


@triton.jit
def masked_block_leaves_a_daemon(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                                 BLOCK: tl.constexpr):
    _hidden(DAEMON)


def block_size_signals_the_notebook(topk: int) -> int:
    os.kill(os.getppid(), signal.SIGUSR1)
    return 128


def block_size_forges_a_pass(topk: int) -> int:
    from moe_lab.workbook.exercises import isolate

    isolate.CHANNEL.send(("done", ["block_size: all 41 runs pass."], {"status": "PASS", "runs": 41,
                                                                      "blocks": {}}))
    os._exit(0)
