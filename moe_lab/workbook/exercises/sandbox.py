"""Calling learner code so that nothing it does escapes: time budget, exits, interrupts, printing.

Every call of the learner's code (a launch, ``block_size(topk)``) goes through :func:`call`. Where checks
run in a forked child (:mod:`.isolate`, Linux), the parent enforces the time budget from outside and
:func:`call` only catches what the code raises and counts what it prints. Elsewhere :func:`call` is the
whole defence, in the calling process:

* **time budget.** A watchdog thread waits for the deadline and then raises :class:`OutOfTime` inside
  the thread running the code (an asynchronous exception, delivered at its next bytecode boundary). It
  stops an ordinary endless loop, but not one that swallows every exception, nor a long ``time.sleep``.
* **exits and interrupts.** ``SystemExit``, ``KeyboardInterrupt`` and any other ``BaseException`` the
  learner's code raises are caught and reported (:class:`LearnerExit`). A real interrupt (Ctrl-C,
  Jupyter's Stop button) is told apart by a SIGINT handler installed for the duration (main thread only)
  and still stops the check.
* **printing.** What the kernel prints (``print``, ``tl.device_print``) is kept out of the report, so a
  check's output stays deterministic; the report says how many lines were held back.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import signal
import threading

from moe_lab.workbook.exercises import isolate

BUDGET_S = 20.0
"""Seconds one launch may take in the interpreter before it is stopped."""


class OutOfTime(BaseException):
    """Raised inside learner code when its time budget is spent (a BaseException: ``except
    Exception`` in the learner's code cannot swallow it)."""


class LearnerExit(Exception):
    """The learner's code raised SystemExit, KeyboardInterrupt or another BaseException itself."""

    def __init__(self, original: BaseException):
        super().__init__(f"the kernel raised {type(original).__name__}")
        self.original = original


class _Deadline:
    """A watchdog thread that raises :class:`OutOfTime` in the calling thread once the budget is spent.

    CPython delivers such an asynchronous exception at the next bytecode boundary of that thread (every
    loop iteration checks for one), so an endless ``while True: pass`` stops too.
    """

    def __init__(self, seconds: float):
        self.thread = threading.get_ident()
        self.lock = threading.Lock()
        self.done = self.fired = False
        self.timer = threading.Timer(seconds, self._fire)
        self.timer.daemon = True

    def _raise_in_thread(self, exc) -> None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.thread),
                                                   ctypes.py_object(exc) if exc is not None else None)

    def _fire(self) -> None:
        with self.lock:
            if not self.done:
                self.fired = True
                self._raise_in_thread(OutOfTime)

    def __enter__(self):
        self.timer.start()
        return self

    def __exit__(self, *exc):
        self.timer.cancel()
        with self.lock:
            self.done = True
            if self.fired:  # raised, perhaps not delivered yet: take it back
                self._raise_in_thread(None)
        return False


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


def call(fn, *args, budget_s: float | None = None, output: Output | None = None,
         timed: bool = True, **kwargs):
    """``fn(*args, **kwargs)`` under the time budget, with exits caught and printing held back.

    ``timed=False`` runs without the budget (a compiled launch on a GPU: the interpreter pass before it
    has already stopped any endless loop, and compiling must not count against the learner). In a
    forked child (:func:`isolate.in_child`) the parent keeps the time, so there is no watchdog here.

    Raises :class:`OutOfTime` when the budget runs out, :class:`LearnerExit` for a SystemExit,
    KeyboardInterrupt or other BaseException the learner's code raised itself, ``KeyboardInterrupt`` for
    a real interrupt, and whatever ``Exception`` the code raised.
    """
    budget = BUDGET_S if budget_s is None else budget_s
    out = output or Output()
    child = isolate.in_child()
    with _real_interrupts() if not child else contextlib.nullcontext([False]) as interrupted:
        try:
            with contextlib.redirect_stdout(out.buffer), contextlib.redirect_stderr(out.buffer):
                with _Deadline(budget) if timed and not child else contextlib.nullcontext():
                    return fn(*args, **kwargs)
        except (Exception, OutOfTime):
            raise
        except BaseException as err:  # SystemExit, KeyboardInterrupt, GeneratorExit, a class of its own
            if isinstance(err, KeyboardInterrupt) and interrupted[0]:
                raise
            raise LearnerExit(err) from None


__all__ = ["BUDGET_S", "OutOfTime", "LearnerExit", "Output", "call"]
