"""The exercise checkers (moe_lab.workbook.exercises) catch every planted mistake and pass every solution.

The kernels live in tests/workbook/exercise_kernels.py: one solution per exercise and, for each classic
mistake, a copy of the solution with that one mistake planted. Each test reads the report ``check`` returned.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import exercise_kernels as K
import pytest
import torch
import triton
import triton.language as tl

import moe_lab
from moe_lab import interp, verify
from moe_lab.workbook import exercises

REPO = Path(__file__).resolve().parents[2]


def _check(capsys, name, solution, **kw) -> tuple[bool, str]:
    result = exercises.check(name, solution, **kw)
    assert isinstance(result, exercises.CheckResult)
    assert capsys.readouterr().out == ""  # nothing printed: the result object is the report
    return bool(result), result.text + "\n"


@pytest.mark.parametrize("name", list(K.SOLUTIONS))
def test_solution_passes(capsys, name):
    ok, out = _check(capsys, name, K.SOLUTIONS[name])
    assert ok is True, out
    assert re.search(rf"^{name}: all \d+ runs pass\.$", out, re.M), out
    assert "FAIL" not in out and "hint" not in out


@pytest.mark.parametrize("name", list(K.STUBS))
def test_stub_says_not_done_yet_without_raising(capsys, name):
    ok, out = _check(capsys, name, K.STUBS[name])
    assert ok is False
    assert out.startswith(f"{name}: not done yet: ") and out.count("\n") == 1, out


def test_a_body_written_under_the_marker_comment_is_run(capsys):
    ok, out = _check(capsys, "masked_block", K.masked_block_done_but_marker_left)
    assert ok is True and "not done yet" not in out, out


@pytest.mark.parametrize("exercise, mistake, planted, hint", K.MISTAKES,
                         ids=[f"{m[0]}: {m[1]}" for m in K.MISTAKES])
def test_planted_mistake_is_caught_with_its_hint(capsys, exercise, mistake, planted, hint):
    ok, out = _check(capsys, exercise, planted)
    assert ok is False, f"{mistake} was not caught:\n{out}"
    assert "FAIL" in out, out
    hints = [line for line in out.splitlines() if line.startswith("  hint: ")]
    assert any(hint in line for line in hints), f"expected a hint containing {hint!r}:\n{out}"
    assert "runs pass" not in out


def test_every_exercise_in_the_spec_has_solution_stub_and_mistakes():
    assert list(exercises.EXERCISES) == ["naive", "debug", "block_size", "masked_block", "relaxed",
                                         "block_histogram", "decode", "ticket", "stable_rank"]
    planted = {m[0] for m in K.MISTAKES}
    # an exercise with a checker of its own has its planted mistakes beside it
    # (tests/workbook/test_dispatch_exercise.py)
    assert planted == {name for name, ex in exercises.EXERCISES.items() if not ex.runner}
    for ex in exercises.EXERCISES.values():
        assert ex.description and ex.signature and ex.launch
        assert all(key in exercises.HINTS for key in ex.symptoms)
        assert ex.hints and all(isinstance(v, str) and v for v in ex.hints.values())
    # the spec's symptom -> hint wording, which the notebooks and the guide quote
    table = exercises.EXERCISES["masked_block"].hints
    padded = "padded slots loaded as 0? use other=-1 or mask the atomic with the in-bounds mask"
    assert padded in table.values()
    unmasked = exercises.EXERCISES["block_histogram"].hint("histogram_unmasked")
    assert unmasked.startswith("tl.histogram needs mask=")


def test_the_spec_mistakes_are_all_planted():
    """The exercise contract lists the mistakes every checker must catch; each has a planted kernel."""
    kinds = {m[1] for m in K.MISTAKES}
    for needed in ["missing mask on load and store", "other=0 counts padding into expert 0",
                   "non-power-of-two block (170 for topk 6)", "start not subtracted",
                   "remote ids counted (no upper bound)", "tl.histogram without mask=",
                   "bins >= num_local not masked"]:
        assert needed in kinds


def test_other_zero_is_caught_on_the_tail_case_with_expected_and_actual(capsys):
    ok, out = _check(capsys, "masked_block", K.masked_block_other_zero)
    assert not ok
    assert "first failing case: 'start=0, tail block'" in out
    assert "input: topk_ids int32 [45, 6], start=0, num_local=4" in out
    expected = re.search(r"expert_count expected \[(.*)\]", out).group(1).split(", ")
    got = re.search(r"expert_count got      \[(.*)\]", out).group(1).split(", ")
    assert int(got[0]) > int(expected[0]) and got[1:] == expected[1:]


def test_block_size_reports_170_for_topk_6(capsys):
    ok, out = _check(capsys, "block_size", K.block_size_not_power_of_two)
    assert not ok
    assert "block_size(6) returned 170 (1024 // 6 = 170): not a power of two" in out
    assert "arange's range must be a power of 2" in out  # Triton's own words, shown to the learner


def test_output_is_deterministic_and_has_no_addresses(capsys):
    first = _check(capsys, "masked_block", K.masked_block_no_mask)[1]
    second = _check(capsys, "masked_block", K.masked_block_no_mask)[1]
    assert first == second
    failing_compile = _check(capsys, "masked_block", K.masked_block_python_range)[1]
    for out in (first, failing_compile):
        assert not re.search(r"0x[0-9a-f]{6,}|/tmp/|\.py\b|\d+\.\d+ ?(s|ms|us)\b", out), out
    assert "Triton said: ValueError: arange's range must be a power of 2" in failing_compile


def test_wild_addresses_are_dropped_not_executed(capsys):
    """A kernel that only misbehaves on ids far past the range (INT32_MAX, 2**40) would write gigabytes
    past expert_count; under the address check those lanes are reported and dropped, Python survives."""
    ok, out = _check(capsys, "masked_block", _wild_kernel)
    assert not ok
    assert "far outside the buffer (dropped)" in out
    # the interpreter is left as it was: the library's kernel still runs and passes in it
    if moe_lab.backend.INTERPRETER:
        assert verify.verify("tl_full")["ok"].all()
    else:  # the stages run compiled here: run tl_full's kernel in the interpreter ourselves
        from moe_lab.stages import tl_full

        for case in verify.adversarial_cases():
            ids = case.topk_ids.cpu().contiguous()
            if ids.numel() == 0:
                continue
            adjusted = torch.full_like(ids, verify.POISON)
            counts = torch.zeros(case.num_local, dtype=torch.int32)
            block = tl_full.block_size(case.topk)
            interp.interpreted(tl_full.tl_full_kernel)[(triton.cdiv(ids.numel(), block),)](
                ids, adjusted, counts, ids.numel(), case.start, case.num_local, BLOCK=block)
            want_adjusted, want_counts = verify.reference(ids, case.start, case.num_local)
            assert torch.equal(adjusted, want_adjusted) and torch.equal(counts, want_counts), case.name


@triton.jit
def _wild_kernel(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    is_local = (ids >= start) & (ids < start + num_local)
    adjusted = tl.where(is_local, ids - start, -1)
    tl.store(adjusted_ptr + offs, adjusted, mask=in_bounds)
    tl.atomic_add(count_ptr + adjusted, 1, mask=is_local)
    tl.atomic_add(count_ptr + (ids - start), 0, mask=in_bounds & (ids > start + 100000))


def test_address_check_is_removed_after_a_check(capsys):
    from triton.runtime import interpreter

    before = dict(interpreter.interpreter_builder.__dict__)
    _check(capsys, "block_histogram", K.block_histogram_bins_unmasked)
    after = interpreter.interpreter_builder.__dict__
    for name in ("create_masked_load", "create_masked_store", "create_atomic_rmw", "create_histogram"):
        assert (name in before) == (name in after)


def test_wrong_objects_are_reported_not_raised(capsys):
    ok, out = _check(capsys, "masked_block", K.block_size_solution)
    assert not ok and "put @triton.jit on the line above its def" in out
    ok, out = _check(capsys, "block_size", K.masked_block_solution)
    assert not ok and "expected a plain Python function" in out
    ok, out = _check(capsys, "naive", None)
    assert not ok and "expected a @triton.jit kernel" in out


def test_unknown_exercise_name_is_a_clear_error():
    with pytest.raises(ValueError, match="name must be one of 'naive', 'debug', 'block_size'"):
        exercises.check("nave", K.naive_solution)


def test_checker_on_compiled_kernel_objects_without_gpu(tmp_path):
    """On a GPU machine @triton.jit gives a compiled JITFunction, not an interpreted one; the checker
    then runs it in the interpreter (address check) and on the GPU. Here, with TRITON_INTERPRET=0 and no
    GPU, the first half of that path runs: solutions pass, mistakes are caught."""
    if moe_lab.backend.has_gpu():
        pytest.skip("a GPU is present: test_gpu_checks covers this path for real")
    script = (
        "import sys; sys.path.insert(0, 'tests/workbook')\n"
        "import moe_lab, exercise_kernels as K\n"
        "from triton.runtime.jit import JITFunction\n"
        "from moe_lab.workbook import exercises\n"
        "assert isinstance(K.masked_block_solution, JITFunction)\n"
        "for name, obj, want in [('masked_block', K.masked_block_solution, True),\n"
        "                        ('block_size', K.block_size_solution, True),\n"
        "                        ('ticket', K.ticket_solution, True),\n"
        "                        ('masked_block', K.masked_block_other_zero, False),\n"
        "                        ('block_histogram', K.block_histogram_no_hist_mask, False),\n"
        "                        ('masked_block', K.masked_block_load_store_counts, False),\n"
        "                        ('masked_block', K.masked_block_stub, False)]:\n"
        "    result = exercises.check(name, obj)\n"
        "    print(result)\n"
        "    assert bool(result) is want, name\n"
    )
    env = dict(os.environ, TRITON_INTERPRET="0", MOE_LAB_QUIET="1",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "padded slots loaded as 0?" in proc.stdout and "tl.histogram needs mask=" in proc.stdout
    assert "use an atomic" in proc.stdout
    assert "not done yet" in proc.stdout


@pytest.mark.gpu
def test_gpu_checks(capsys):
    """On a GPU: every solution passes both the interpreter pass and the GPU pass; mistakes are caught."""
    assert torch.cuda.is_available()
    for name, solution in K.SOLUTIONS.items():
        ok, out = _check(capsys, name, solution)
        assert ok, out
    for exercise, mistake, planted, hint in K.MISTAKES:
        ok, out = _check(capsys, exercise, planted)
        assert not ok and hint in out, f"{exercise}: {mistake}\n{out}"


def _toy_runner(ex, obj, hint_level):
    from moe_lab.workbook.exercises.report import say

    say(f"{ex.name}: obj({3}) = {obj(3)}")
    return obj(3) == 9


def test_an_exercise_with_its_own_runner_is_one_catalogue_entry(monkeypatch):
    """Another module adds an exercise with one entry: its runner reports through say()."""
    from dataclasses import replace

    toy = replace(exercises.EXERCISES["block_size"], name="square", notebook="10",
                  runner=f"{__name__}:_toy_runner", answer=f"{__name__}:_toy_runner")
    monkeypatch.setitem(exercises.EXERCISES, "square", toy)
    assert exercises.check("square", lambda x: x * x)
    result = exercises.check("square", lambda x: x + 1)
    assert not result and "square: obj(3) = 4" in result.text
    assert "_toy_runner" in str(exercises.solution("square"))
