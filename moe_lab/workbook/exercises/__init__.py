"""Exercise checkers for the notebooks: write a kernel in a cell, then ``check("<name>", kernel)``.

    check("masked_block", my_kernel)      # a PASS/FAIL block: cases, first failure, a hint
    check("masked_block", my_kernel, hint=2)   # ... plus the level-2 hint on failure
    hint("masked_block", 1)               # a nudge; 2 more specific; 3 nearly the answer
    example("masked_block")               # the spec's worked example: ids, start, num_local -> outputs
    solution("masked_block")              # the shipped answer, only when asked
    progress()                            # which exercises passed in this kernel session
    predict("relaxed", faster_at_1_token=True, faster_at_1M_tokens=False); reveal("relaxed")
    predicted("launch_bound")             # what was predicted for a notebook's question
    after_check("masked_block", ...)      # the shipped answer, once this session's check passed
    after_prediction("relaxed", ...)      # what answers a prediction, once one is recorded
    debug_kernel()                        # the debugging puzzle's planted-bug kernel (source)

Each checker runs the learner's code on the adversarial inputs of :func:`moe_lab.verify.adversarial_cases`
with poisoned outputs (a slot the kernel never wrote shows up), compares with the PyTorch reference and,
at the first failure, reports the case, its input, the expected and actual values and a hint aimed at
the classic mistake. It never raises for a learner's mistake: a compile error, a wrong signature, an
endless loop, a ``SystemExit``, the student stub ("not done yet") all end in a FAIL block.

Where it runs:

* the learner's code runs in a child process forked for the check (:mod:`.isolate`, on Linux), so an
  endless loop that swallows every exception, a sleep, ``os._exit`` or a crash ends in a FAIL block and
  the notebook's kernel stays alive; a real Ctrl-C (Jupyter's Stop button) still stops the check;
* there every kernel runs in Triton's interpreter on CPU tensors, under an *address check*
  (:mod:`.address`): each load, store, atomic (cas and xchg included) and histogram is compared with
  the buffers the kernel was given, so a missing mask is reported even when the numbers come out
  right, and a wild address is dropped instead of crashing Python. What a GPU may do and the
  interpreter does not is made to happen or read from what the kernel asks for: programs run in
  several orders, another program's add lands before a compare-and-swap, and the memory order and
  scope of every atomic are checked (:mod:`.cases`, :mod:`.launch`);
* with a GPU (``moe_lab.backend.has_gpu()``), once the interpreter pass has passed, every case also runs
  compiled on the GPU, in the notebook's process, with the same poison and guard zones; the report
  reads the same on both, so a notebook's stored output holds.

Modules: :mod:`.catalogue` (the exercises, answer marks), :mod:`.hints`, :mod:`.cases`, :mod:`.source`
(stub, signature, helpers, host help), :mod:`.address`, :mod:`.isolate`, :mod:`.sandbox`, :mod:`.launch`
(one launch on one case), :mod:`.diagnose`, :mod:`.report` (:class:`CheckResult`), :mod:`.runners`,
:mod:`.learn` (hints, examples, progress, predictions), :mod:`.answers` (the shipped answers).
"""

from __future__ import annotations

import contextlib

from moe_lab import backend, interp
from moe_lab.workbook.exercises import gpu_compile, isolate, learn, report, sandbox
from moe_lab.workbook.exercises.address import GUARD
from moe_lab.workbook.exercises.catalogue import EXERCISES, HINTS, MARKER, Exercise, exercise
from moe_lab.workbook.exercises.diagnose import error_line
from moe_lab.workbook.exercises.gated import after_check, after_prediction
from moe_lab.workbook.exercises.learn import example, hint, predict, predicted, progress, reveal, solution
from moe_lab.workbook.exercises.report import CheckResult, collecting, say, say_level
from moe_lab.workbook.exercises.runners import CASE_GROUPS, check_block_size, check_kernel, check_on_gpu
from moe_lab.workbook.exercises.source import (
    calls_itself,
    host_help,
    is_stub,
    not_a_kernel,
    python_helpers,
    signature_problem,
)


def check(name: str, obj, *, hint: int = 0) -> CheckResult:
    """Run exercise ``name`` on ``obj`` (the learner's kernel, or function for ``block_size``).

    Returns a :class:`CheckResult`: truthy when every case passes, shown as one PASS/FAIL block. With
    ``hint=1..3`` a failure also shows that level of hint. Raises only for an unknown ``name`` or a bad
    ``hint`` level (a ValueError saying what to pass).
    """
    ex = exercise(name)
    hint = learn.hint_level(hint, 0, "hint must be 0 (none) or a level 1, 2 or 3")
    with collecting() as lines:
        status = _run(ex, obj, hint)
    passed = status == "PASS"
    if status != "NOT DONE":
        learn.PASSED[name] = passed
    result = CheckResult(name, passed, lines, status)
    if passed and name in learn.PREDICTIONS_MADE:
        result.lines += ["", str(learn.reveal(name))]
    return result


def _run(ex: Exercise, obj, level: int) -> str:
    """The interpreter pass where the learner's code cannot reach the notebook, then the GPU pass (with a
    GPU) or the compile for a GPU (without one)."""
    bar = report.Progress(ex.name)

    def on_message(kind, payload):
        if kind == "lines":
            for line in payload:
                say(line)
        else:
            bar.update(*payload)

    try:
        if isolate.ISOLATED:
            outcome = _trusted(ex, isolate.run(_interpret, ex, obj, level, budget_s=sandbox.BUDGET_S,
                                               on_message=on_message))
        else:
            outcome = _interpret(ex, obj, level)
        status = outcome["status"]
        compiled = ex.is_kernel and (not ex.runner or bool(ex.gpu_runner))  # the GPU pass compiles it
        if status == "PASS" and backend.has_gpu():
            status = "PASS" if _on_gpu(ex, obj, level, outcome) else "FAIL"
            if status == "PASS" and compiled:
                say("  ok    compiles for a GPU")  # the same words as without a GPU: the same report
        if status == "PASS" and ex.is_kernel and not (backend.has_gpu() and compiled):
            status = "PASS" if gpu_compile.check(ex, obj, level, bar) else "FAIL"
    except isolate.Stopped as stop:
        report.report_stopped(ex, stop, level)
        return "FAIL"
    except RuntimeError as err:  # the check's own child failed: say so, in one block
        say(f"  FAIL  the check could not finish: {err}")
        return "FAIL"
    finally:
        bar.close()
    if status == "PASS":
        say(f"{ex.name}: all {outcome['runs']} runs pass." if outcome["runs"] else
            f"{ex.name}: every case passes.")
    return status


def _trusted(ex: Exercise, outcome) -> dict:
    """The child's result, as plain data the parent holds to: a known status, a run count, and (block_size)
    blocks that keep the rule for every topk. Raises RuntimeError for anything else."""
    from moe_lab.workbook.exercises.runners import BLOCK_SIZE_TOPKS, block_problem

    if not (isinstance(outcome, dict) and outcome.get("status") in ("PASS", "FAIL", "NOT DONE")):
        raise RuntimeError("its process sent a result that is not one")
    runs, blocks = outcome.get("runs", 0), outcome.get("blocks") or {}
    if not (isinstance(runs, int) and runs >= 0 and isinstance(blocks, dict)
            and all(str(k).isdigit() and type(v) is int for k, v in blocks.items())):
        raise RuntimeError("its process sent a result that is not one")
    blocks = {int(k): v for k, v in blocks.items()}
    if outcome["status"] == "PASS" and ex.name == "block_size":
        wrong = [t for t in BLOCK_SIZE_TOPKS if t not in blocks or block_problem(t, blocks[t])]
        if wrong or not runs:
            raise RuntimeError(f"its process reported a PASS whose blocks do not keep the rule (topk "
                               f"{', '.join(map(str, wrong[:4])) or 'none run'}): the code under test "
                               f"interfered with the check")
    return {"status": outcome["status"], "runs": runs, "blocks": blocks}


def _interpret(ex: Exercise, obj, level: int) -> dict:
    """Everything that runs or inspects the learner's object (in the check's child process, when there
    is one): ``{"status", "runs", "blocks"}``."""
    with collecting() if isolate.in_child() else contextlib.nullcontext():
        try:
            if is_stub(obj):
                say(f"{ex.name}: not done yet: {ex.todo}.")
                return {"status": "NOT DONE"}
            if ex.runner:
                return {"status": _run_own(ex, obj, level), "runs": 0}
            if not ex.is_kernel:
                outcome = check_block_size(ex, obj, level)
            else:
                refused = _refused(ex, obj, level)
                if refused:
                    return {"status": "FAIL"}
                outcome = check_kernel(ex, obj, level)
        except Exception as err:  # an object the checker cannot even inspect: the learner's, reported
            say(f"  FAIL  the check could not run this object: {error_line(err)}")
            return {"status": "FAIL"}
    return {"status": "PASS" if outcome.ok else "FAIL", "runs": outcome.runs, "blocks": outcome.blocks}


def _refused(ex: Exercise, obj, level: int) -> bool:
    """The kernel as given, before it runs: a bare kernel, the signature, no Python helpers, no call of
    itself, no host help. Says the refusal block and returns True when something is wrong."""
    problem = not_a_kernel(obj) if ex.params else ""
    if problem and not ex.runner:
        say(f"{ex.name}: {problem}")
        return True
    refusals = [("signature", problem)] if problem else []
    wrong = signature_problem(ex, obj) if ex.params and not problem else ""
    if wrong:
        refusals.append(("signature", f"parameters: {wrong}; expected {ex.signature}"))
    helpers = python_helpers(obj) if interp.is_kernel(obj) else []
    if helpers:
        refusals.append(("python_helper", f"calls plain Python function(s) {', '.join(helpers)}, which "
                                          f"cannot compile for a GPU"))
    cycle = calls_itself(obj) if interp.is_kernel(obj) else []
    if cycle:
        refusals.append(("recursion", f"the kernel calls itself: {' -> '.join(cycle)}"))
    host = host_help(obj)
    if host:
        refusals.append(("host_help", f"the kernel carries {host}"))
    if not refusals:
        return False
    say(f"{ex.name}: read before running")
    say("  FAIL  the kernel as given (not run)")
    for _key, detail in refusals:
        say(f"    found: {detail}")
    for key in dict.fromkeys(key for key, _ in refusals):
        say(f"  hint: {ex.hint(key)}")
    if level:
        say_level(ex, level)
    return True


def _run_own(ex: Exercise, obj, level: int) -> str:
    """An exercise with its own checker (``Exercise.runner``): the common refusals, then its runner."""
    import importlib

    if (interp.is_kernel(obj) or ex.params) and _refused(ex, obj, level):
        return "FAIL"
    module, _, function = ex.runner.partition(":")
    runner = getattr(importlib.import_module(module), function)
    try:
        ok = sandbox.call(runner, ex, obj, level, budget_s=6 * sandbox.BUDGET_S)
    except sandbox.OutOfTime:
        say(f"  FAIL  did not finish: check your loop bounds ({sandbox.BUDGET_S:g} s budget)")
        return "FAIL"
    except Exception as err:
        say(f"  FAIL  raised {error_line(err)}")
        return "FAIL"
    return "PASS" if ok else "FAIL"


def _on_gpu(ex: Exercise, obj, level: int, outcome: dict) -> bool:
    """The GPU pass, in the notebook's process (the interpreter pass passed, and refused nothing)."""
    if ex.runner:
        if not ex.gpu_runner:
            return True
        import importlib

        module, _, function = ex.gpu_runner.partition(":")
        return bool(getattr(importlib.import_module(module), function)(ex, obj, level))
    return check_on_gpu(ex, obj, level, outcome.get("blocks"))


def debug_kernel():
    """The debugging puzzle's kernel, as source to copy into a cell (``buggy_kernel()`` runs it)."""
    from moe_lab.workbook.exercises.answers import DEBUG_SOURCE
    from moe_lab.workbook.show import Code

    return Code(DEBUG_SOURCE.rstrip("\n"), "python", "the debugging puzzle: find the bug by printing")


def buggy_kernel():
    """The debugging puzzle's kernel, ready to launch (in the interpreter: ``print`` works inside)."""
    from moe_lab.workbook.exercises.answers import buggy_kernel as make

    return make()


__all__ = ["check", "hint", "solution", "progress", "example", "predict", "predicted", "reveal",
           "after_check", "after_prediction", "debug_kernel", "buggy_kernel", "CheckResult", "EXERCISES",
           "HINTS", "Exercise", "MARKER", "CASE_GROUPS", "GUARD"]
