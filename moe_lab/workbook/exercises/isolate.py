"""Running the learner's code where it can be stopped from outside: a forked child process.

A check runs the learner's code (the kernel in Triton's interpreter, ``block_size``) in a child process
forked for the check, so nothing that code does reaches the notebook's process: an endless loop that
swallows every exception, a ``time.sleep`` without end, ``os._exit``, a crash. The parent waits on a
pipe; each program the interpreter starts and each launch the checker makes sends a message, and when
none comes for :data:`moe_lab.workbook.exercises.sandbox.BUDGET_S` seconds (or the whole check takes
more than :data:`CHECK_BUDGET_S`) the parent kills the child (SIGKILL cannot be caught) and reports a
time-out; when the child ends without its result, the parent reports how it ended. Either way the
report names the case that was running.

What the child may and may not touch:

* it writes nothing to the notebook: every file descriptor it inherited (Jupyter's sockets among them)
  is closed but its end of the pipe, its stdout and stderr go to ``/dev/null``, what the kernel prints
  is counted by :func:`moe_lab.workbook.exercises.sandbox.call`, and it leaves with ``os._exit`` (no
  atexit handlers, no finalisers of objects it shares with the parent);
* it runs torch on one thread (a thread pool does not survive ``fork``), never touches CUDA (the
  interpreter pass runs on CPU tensors; a GPU pass runs afterwards, in the parent), and ignores
  SIGINT: a real Ctrl-C (Jupyter's Stop button signals the whole process group) stops the parent,
  which kills the child and lets the interrupt through;
* on Linux it dies with the parent (``PR_SET_PDEATHSIG``) and leads a process group of its own, which
  the parent kills as a whole when the check ends; before the learner's code runs it confines itself
  (:mod:`.confine`, Linux on x86-64 and AArch64): it cannot signal the notebook or any other process
  outside its group, nor trace one, and what it starts cannot leave the group (``setsid``), so a
  daemon the learner's code starts goes with it;
* its messages are JSON (read as plain data: a message cannot run code in the parent), checked for
  their shape, and a result that does not hold is refused (:func:`moe_lab.workbook.exercises.check`
  also compiles a kernel that passed from its source in a process of its own, :mod:`.gpu_compile`,
  so a PASS forged from inside the child does not survive for a kernel).

Where ``fork`` is not available (Windows) or not safe with the libraries loaded (macOS), the code runs
in the calling process under :func:`sandbox.call`'s watchdog instead, which stops an ordinary endless
loop but not one that swallows the time-out, nor an exit; :data:`ISOLATED` says which.

What deliberately hostile code can still do (the check stops mistakes, not an attacker who runs code
as you): anything the notebook's user may do to files, the network or the machine's memory and CPU
while it runs; without the confinement (another OS or CPU, or a kernel that refuses seccomp filters:
:data:`CONFINED` says whether the last child was confined) also signal the notebook's process and
leave a process behind; send a forged result for ``block_size``, whose function is plain Python
(the parent checks that the blocks it reports hold the rule, nothing more); and whatever code run in
the notebook itself before the check does (it can replace ``check``). A message from the child is
not authenticated: a key would have to live in the child's memory, which the learner's code can
read.
"""

from __future__ import annotations

import gc
import json
import os
import select
import signal
import struct
import sys
import threading
import time
import warnings

from moe_lab import interp
from moe_lab.workbook.exercises import confine

ISOLATED = sys.platform.startswith("linux") and hasattr(os, "fork")
"""True where checks run the learner's code in a forked child (Linux)."""

CHECK_BUDGET_S = 300.0
"""Seconds a whole check may take before it is stopped, however often its programs report progress."""

BEAT_S = 0.2
"""Least interval between two "still running" messages of the child."""

_HEADER = struct.Struct("!I")
MESSAGE_LIMIT = 1 << 24
"""Bytes one message may take; a longer one is not the checker's."""

CONFINED: bool | None = None
"""Whether the last check's child confined itself (:mod:`.confine`); ``None`` before the first check."""


class Stopped(Exception):
    """The child did not deliver its result. ``header``: the report lines of the step that was running
    (what to show above "found: ..."), ``how``: ``"time"`` (killed after the budget), ``"total"``
    (the whole check ran too long) or ``"exit"`` (it ended by itself), ``status``: how it ended."""

    def __init__(self, how: str, header: list[str], status: str = "", seconds: float = 0.0):
        super().__init__(f"the learner's code was stopped ({how}: {status or seconds})")
        self.how, self.header, self.status, self.seconds = how, list(header), status, seconds


class _Channel:
    """The child's end of the pipe: length-prefixed JSON."""

    def __init__(self, fd: int):
        self.fd = fd
        self.lines: list[str] | None = None  # the report lines of the running check (report.collecting)
        self.sent = 0
        self.last = 0.0

    def new_lines(self) -> list[str]:
        if self.lines is None:
            return []
        out = self.lines[self.sent:]
        self.sent = len(self.lines)
        return out

    def send(self, message) -> None:
        data = json.dumps(message).encode()
        data = _HEADER.pack(len(data)) + data
        while data:
            data = data[os.write(self.fd, data):]
        self.last = time.monotonic()


CHANNEL: _Channel | None = None
"""Set in the child only: where its messages go."""


def in_child() -> bool:
    return CHANNEL is not None


def attach(lines: list[str]) -> None:
    """In the child, the report lines that the messages carry to the parent (report.collecting)."""
    if CHANNEL is not None:
        CHANNEL.lines, CHANNEL.sent = lines, 0


def step(done: int, total: int, header: list[str] | None = None) -> None:
    """Before the learner's code runs once more: restart the parent's budget, report progress, and say
    which report lines to show (``header``) if this step never returns."""
    if CHANNEL is not None:
        CHANNEL.send(("step", CHANNEL.new_lines(), done, total, list(header or [])))


def beat() -> None:
    """The learner's code is still making progress (a new program started): restart the budget."""
    if CHANNEL is not None and time.monotonic() - CHANNEL.last > BEAT_S:
        CHANNEL.send(("beat",))


def _die_with_parent() -> None:
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _child(fd: int, fn, args) -> None:
    """The child's whole life: run ``fn(*args)``, send the result, leave with ``os._exit``."""
    global CHANNEL
    code = 70
    try:
        os.setpgid(0, 0)  # a group of its own: the parent kills it and whatever it started at once
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles a real interrupt
        _die_with_parent()
        gc.disable()  # no finaliser of an object shared with the parent (a Jupyter socket) runs here
        null = os.open(os.devnull, os.O_RDWR)
        for target in (0, 1, 2):
            os.dup2(null, target)
        os.closerange(3, fd)  # what it inherited (Jupyter's sockets): out of the learner's reach
        os.closerange(fd + 1, 1 << 20)
        confined = confine.confine()  # before any learner code: no signals out of its group, no setsid
        import io

        sys.stdout = sys.stderr = io.StringIO()
        import torch

        torch.set_num_threads(1)
        CHANNEL = _Channel(fd)
        CHANNEL.send(("confined", [], confined))
        result = fn(*args)
        CHANNEL.send(("done", CHANNEL.new_lines(), result))
        code = 0
    except BaseException as err:  # noqa: BLE001 - anything at all: the parent reports it
        try:
            if CHANNEL is not None:
                CHANNEL.send(("raised", CHANNEL.new_lines(), f"{type(err).__name__}: {err}"[:300]))
        except BaseException:  # noqa: BLE001
            pass
        code = 1
    finally:
        os._exit(code)


def _kill(pid: int) -> None:
    """SIGKILL to the child's process group (the child and what it started), else to the child."""
    for kill, target in ((os.killpg, pid), (os.kill, pid)):
        try:
            kill(target, signal.SIGKILL)
            return
        except (ProcessLookupError, PermissionError):
            continue


def _status(pid: int) -> str:
    """How the child ended, in words (it has ended, or is killed now); its process group goes too."""
    for _ in range(100):  # a second to end by itself (its exit status is what the report says)
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            break
        time.sleep(0.01)
    _kill(pid)  # before reaping: the group still has its id, and whatever the learner's code started goes
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return f"killed by signal {name}"
    return f"exit status {os.WEXITSTATUS(status)}"


_SHAPES = {"beat": (), "confined": (list, bool), "step": (list, int, int, list), "done": (list, object),
           "raised": (list, str)}


def _message(data: bytes):
    """A message of the child's as a list, or ``None`` when ``data`` is not one (wrong JSON or shape)."""
    try:
        message = json.loads(data.decode())
    except (ValueError, UnicodeDecodeError):
        return None
    if not (isinstance(message, list) and message and message[0] in _SHAPES):
        return None
    shape = _SHAPES[message[0]]
    if len(message) != 1 + len(shape) or not all(isinstance(v, t) for v, t in zip(message[1:], shape)):
        return None
    lines = [m for m in message[1:] if isinstance(m, list)]
    if not all(isinstance(line, str) for part in lines for line in part):
        return None
    return message


class _Interrupts:
    """While the parent waits for its child: SIGINT unblocked in this (main) thread and raising
    ``KeyboardInterrupt``, as Python's default handler does, unless the process ignores SIGINT on
    purpose; ``restore()`` puts back what was there. Elsewhere than the main thread it does nothing."""

    def __init__(self):
        self.previous = self.blocked = None
        if threading.current_thread() is not threading.main_thread():
            return
        handler = signal.getsignal(signal.SIGINT)
        if handler is signal.SIG_IGN:
            return
        try:
            self.previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        except ValueError:  # not allowed here (an embedded interpreter)
            return
        self.blocked = signal.SIGINT in signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

    def restore(self) -> None:
        if self.blocked:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def run(fn, *args, budget_s: float, on_message=None, total_s: float | None = None):
    """``fn(*args)`` in a forked child; its result (plain data: it travels as JSON).

    ``on_message(kind, payload)`` gets ``("lines", [...])`` for the report lines the child said and
    ``("progress", (done, total))`` for its steps. Raises :class:`Stopped` when the child takes more
    than ``budget_s`` between two messages (or ``total_s`` in all) or ends without a result;
    ``KeyboardInterrupt`` (a real one) after killing the child; ``RuntimeError`` when the child's own
    code (not the learner's) raised.
    """
    global CONFINED
    total = CHECK_BUDGET_S if total_s is None else total_s
    notify = on_message or (lambda kind, payload: None)
    read, write = os.pipe()
    with interp.LOCK:  # no other thread is inside Triton's interpreter while the process is copied
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)  # 3.12: fork with threads
            pid = os.fork()
    if pid == 0:
        os.close(read)
        _child(write, fn, args)  # never returns
    os.close(write)
    try:
        os.setpgid(pid, pid)  # set on both sides: whichever runs first, the group exists before a kill
    except OSError:
        pass
    reaped = False
    interrupts = _Interrupts()  # a real Ctrl-C stops the wait below, whatever handler the process has
    try:
        start = time.monotonic()
        deadline = start + budget_s
        header: list[str] = []
        buffer = b""
        while True:
            now = time.monotonic()
            if now >= min(deadline, start + total):
                how = "time" if deadline <= start + total else "total"
                _kill(pid)
                _status(pid)
                reaped = True
                raise Stopped(how, header, seconds=budget_s if how == "time" else total)
            ready, _, _ = select.select([read], [], [], min(deadline, start + total) - now)
            if not ready:
                continue
            chunk = os.read(read, 1 << 16)
            if not chunk:  # the child ended without its result
                status = _status(pid)
                reaped = True
                raise Stopped("exit", header, status)
            buffer += chunk
            while len(buffer) >= _HEADER.size:
                (size,) = _HEADER.unpack_from(buffer)
                if size <= MESSAGE_LIMIT and len(buffer) < _HEADER.size + size:
                    break
                data = buffer[_HEADER.size:_HEADER.size + size]
                message = _message(data) if size <= MESSAGE_LIMIT else None
                if message is None:  # not a message of the checker's: the learner's code wrote into the pipe
                    _kill(pid)
                    _status(pid)
                    reaped = True
                    raise Stopped("exit", header, "it wrote into the checker's own pipe, so the check "
                                                  "stopped it")
                buffer = buffer[_HEADER.size + size:]
                deadline = time.monotonic() + budget_s
                kind = message[0]
                if kind == "beat":
                    continue
                if message[1]:
                    notify("lines", message[1])
                if kind == "confined":
                    CONFINED = message[2]
                elif kind == "step":
                    header = message[4]
                    notify("progress", (message[2], message[3]))
                elif kind == "done":
                    _status(pid)
                    reaped = True
                    return message[2]
                elif kind == "raised":
                    _status(pid)
                    reaped = True
                    raise RuntimeError(f"the checker failed in its child process: {message[2]}")
    finally:
        interrupts.restore()
        os.close(read)
        if not reaped:  # an interrupt, or an error of our own: never leave the child running
            _kill(pid)
            _status(pid)


__all__ = ["ISOLATED", "CHECK_BUDGET_S", "MESSAGE_LIMIT", "CONFINED", "Stopped", "in_child", "attach", "step",
           "beat", "run"]
