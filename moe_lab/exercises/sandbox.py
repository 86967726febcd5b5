"""Running learner code so that nothing it does escapes: time budget, exits, interrupts, printing.

* **time budget.** While learner code runs, a trace function (``sys.settrace``) checks a deadline at
  every Python call and at every line of the learner's own file, and raises :class:`OutOfTime` once it
  has passed. It works in any thread (a Jupyter kernel's main thread, pytest, a worker thread) and
  needs no signal. Time spent inside one numpy call is not interrupted, but the interpreter runs a
  kernel as many small calls, so an endless loop stops within a moment of its deadline.
* **exits and interrupts.** ``SystemExit`` and ``KeyboardInterrupt`` raised by learner code are caught
  and reported. A real interrupt (Ctrl-C, Jupyter's Stop button) is told apart by a SIGINT handler
  installed for the duration (main thread only) and still stops the check.
* **printing.** What the kernel prints (``print``, ``tl.device_print``) is kept out of the report, so a
  check's output stays deterministic; the report says how many lines were held back.
"""

from __future__ import annotations

import contextlib
import io
import signal
import sys
import threading
import time

BUDGET_S = 20.0
"""Seconds one launch may take in the interpreter before it is stopped."""


class OutOfTime(BaseException):
    """Raised inside learner code when its time budget is spent (a BaseException: ``except
    Exception`` in the learner's code cannot swallow it)."""


class LearnerExit(Exception):
    """The learner's code raised SystemExit or KeyboardInterrupt itself."""

    def __init__(self, original: BaseException):
        super().__init__(f"the kernel raised {type(original).__name__}")
        self.original = original


class _Deadline:
    def __init__(self, seconds: float, filename: str | None):
        self.at = time.monotonic() + seconds
        self.filename = filename

    def _check(self):
        if time.monotonic() > self.at:
            raise OutOfTime()

    def local(self, frame, event, arg):
        if event == "line":
            self._check()
        return self.local

    def global_(self, frame, event, arg):
        self._check()
        if self.filename and frame.f_code.co_filename == self.filename:
            return self.local  # the learner's own lines: an endless `while True: pass` shows here
        return None


def _filename(obj) -> str | None:
    fn = getattr(obj, "fn", obj)
    code = getattr(fn, "__code__", None)
    return code.co_filename if code is not None else None


@contextlib.contextmanager
def _real_interrupts():
    """Yield a one-element list that becomes ``[True]`` when a real SIGINT arrives."""
    seen = [False]
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum, frame):
        seen[0] = True
        if callable(previous):
            previous(signum, frame)
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not allowed here (an embedded interpreter): treat every interrupt as real
        yield [True]
        return
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, previous)


class Output:
    """What the learner's code printed during the check (held back from the report)."""

    def __init__(self):
        self.buffer = io.StringIO()

    @property
    def lines(self) -> int:
        return len(self.buffer.getvalue().splitlines())


def call(fn, *args, budget_s: float | None = None, source_of=None, output: Output | None = None, **kwargs):
    """``fn(*args, **kwargs)`` under the time budget, with exits caught and printing held back.

    Raises :class:`OutOfTime` when the budget runs out, :class:`LearnerExit` for a SystemExit or
    KeyboardInterrupt the learner's code raised itself, ``KeyboardInterrupt`` for a real interrupt,
    and whatever else the code raised.
    """
    deadline = _Deadline(BUDGET_S if budget_s is None else budget_s, _filename(source_of if source_of is not None else fn))
    out = output or Output()
    previous = sys.gettrace()
    with _real_interrupts() as interrupted:
        try:
            with contextlib.redirect_stdout(out.buffer), contextlib.redirect_stderr(out.buffer):
                sys.settrace(deadline.global_)
                try:
                    return fn(*args, **kwargs)
                finally:
                    sys.settrace(previous)
        except (SystemExit, KeyboardInterrupt) as err:
            if isinstance(err, KeyboardInterrupt) and interrupted[0]:
                raise
            raise LearnerExit(err) from None


__all__ = ["BUDGET_S", "OutOfTime", "LearnerExit", "Output", "call"]
