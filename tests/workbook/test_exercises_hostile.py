"""The checker survives hostile learner code: endless loops, wild atomics, exits, interrupts, wrong
signatures, plain Python helpers and host-side help are all reported in a FAIL block, never obeyed."""

from __future__ import annotations

import threading

import exercise_kernels as K
import interrupting
import pytest
import triton
import triton.language as tl

from moe_lab.workbook import exercises
from moe_lab.workbook.exercises import sandbox


def _report(name, obj, **kw) -> tuple[bool, str]:
    result = exercises.check(name, obj, **kw)
    return bool(result), result.text


@pytest.fixture
def short_budget(monkeypatch):
    monkeypatch.setattr(sandbox, "BUDGET_S", 1.0)


# ------------------------------------------------------------------------------------- time budget

@triton.jit
def endless_while(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    i = 0
    while i >= 0:  # never ends
        i += 1
    tl.store(adjusted_ptr + offs, offs, mask=offs < num_total)


@triton.jit
def endless_range(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local, BLOCK: tl.constexpr):
    for tile in range(0, num_total + 1000000000):  # a loop bound far past the input
        offs = tile * BLOCK + tl.arange(0, BLOCK)
        ids = tl.load(ids_ptr + offs, mask=offs < num_total, other=-1)
        tl.store(adjusted_ptr + offs, ids, mask=offs < num_total)


def endless_block_size(topk):
    while True:
        pass


@pytest.mark.parametrize("kernel", [endless_while, endless_range], ids=["while", "range"])
def test_an_endless_loop_is_stopped_with_the_loop_bounds_hint(short_budget, kernel):
    ok, out = _report("masked_block", kernel)
    assert not ok
    assert "did not finish: check your loop bounds" in out, out
    # the interpreter is usable again: a solution still passes
    assert exercises.check("masked_block", K.masked_block_solution)


def test_an_endless_block_size_is_stopped(short_budget):
    ok, out = _report("block_size", endless_block_size)
    assert not ok and "did not finish: check your loop bounds" in out, out


def test_a_real_interrupt_still_stops_the_check():
    """Ctrl-C (SIGINT) during a check stops it: KeyboardInterrupt reaches the caller."""
    out, left = interrupting.press_ctrl_c_during("test_exercises_hostile", "endless_while")
    assert "interrupted" in out, out
    assert not left, f"processes left running: {left}"


# ------------------------------------------------------------------------------- exits and interrupts

@triton.jit
def raises_system_exit(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local, BLOCK: tl.constexpr):
    raise SystemExit(3)


@triton.jit
def raises_keyboard_interrupt(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                              BLOCK: tl.constexpr):
    raise KeyboardInterrupt


@pytest.mark.parametrize("kernel, what", [(raises_system_exit, "SystemExit"),
                                          (raises_keyboard_interrupt, "KeyboardInterrupt")])
def test_exits_raised_by_learner_code_are_reported_not_obeyed(kernel, what):
    ok, out = _report("masked_block", kernel)
    assert not ok
    assert f"the kernel raised {what} (reported, not obeyed)" in out, out


# ------------------------------------------------------------------------------------ wild atomics

@triton.jit
def wild_cas(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    is_local = (ids >= start) & (ids < start + num_local)
    adjusted = tl.where(is_local, ids - start, -1)
    tl.store(adjusted_ptr + offs, adjusted, mask=in_bounds)
    tl.atomic_add(count_ptr + adjusted, 1, mask=is_local)
    tl.atomic_cas(count_ptr + 1000000000000, 0, 1)  # a terabyte past the counters


@triton.jit
def wild_xchg(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    is_local = (ids >= start) & (ids < start + num_local)
    adjusted = tl.where(is_local, ids - start, -1)
    tl.store(adjusted_ptr + offs, adjusted, mask=in_bounds)
    tl.atomic_add(count_ptr + adjusted, 1, mask=is_local)
    tl.atomic_xchg(count_ptr - 1000000000000 + offs, 7, mask=in_bounds)


@pytest.mark.parametrize("kernel", [wild_cas, wild_xchg], ids=["cas", "xchg"])
def test_wild_cas_and_xchg_are_dropped_not_executed(kernel):
    ok, out = _report("masked_block", kernel)
    assert not ok
    assert "far outside the buffer (dropped)" in out, out


# ------------------------------------------------------------------------------------- signatures

@triton.jit
def extra_constexpr(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local, BLOCK: tl.constexpr,
                    WARPS: tl.constexpr = 4):
    pass


@triton.jit
def block_not_constexpr(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local, BLOCK):
    pass


@triton.jit
def missing_num_local(ids_ptr, adjusted_ptr, count_ptr, num_total, start, BLOCK: tl.constexpr):
    pass


@triton.jit
def swapped_order(ids_ptr, adjusted_ptr, count_ptr, num_total, num_local, start, BLOCK: tl.constexpr):
    pass


@pytest.mark.parametrize("kernel, said", [
    (extra_constexpr, "unknown WARPS"),
    (block_not_constexpr, "BLOCK needs `: tl.constexpr`"),
    (missing_num_local, "missing num_local"),
    (swapped_order, "order ids_ptr, adjusted_ptr, count_ptr, num_total, num_local, start"),
], ids=["unknown constexpr", "constexpr-ness", "missing", "order"])
def test_the_signature_is_checked_against_the_exercise(kernel, said):
    ok, out = _report("masked_block", kernel)
    assert not ok
    assert said in out, out
    assert "keep the parameters exactly as given" in out
    assert "ok    " not in out  # refused before any case ran


# --------------------------------------------------------------------------------- python helpers

def plain_local(ids, start, num_local):
    return (ids >= start) & (ids < start + num_local)


@triton.jit
def jit_local(ids, start, num_local):
    return (ids >= start) & (ids < start + num_local)


@triton.jit
def calls_python_helper(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    is_local = plain_local(ids, start, num_local)
    adjusted = tl.where(is_local, ids - start, -1)
    tl.store(adjusted_ptr + offs, adjusted, mask=in_bounds)
    tl.atomic_add(count_ptr + adjusted, 1, mask=is_local)


@triton.jit
def calls_jit_helper(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    is_local = jit_local(ids, start, num_local)
    adjusted = tl.where(is_local, ids - start, -1)
    tl.store(adjusted_ptr + offs, adjusted, mask=in_bounds)
    tl.atomic_add(count_ptr + adjusted, 1, mask=is_local)


def test_a_plain_python_helper_is_caught():
    ok, out = _report("masked_block", calls_python_helper)
    assert not ok
    assert "calls plain Python function(s) plain_local" in out, out
    assert "make the helper a @triton.jit function too" in out


def test_a_jit_helper_is_fine():
    ok, out = _report("masked_block", calls_jit_helper)
    assert ok, out


# -------------------------------------------------------------------------------------- host help

def _empty_kernel_with_fixing_hook():
    @triton.jit
    def empty(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local, BLOCK: tl.constexpr):
        pass

    def fix_on_host(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local, BLOCK=None, **kw):
        from moe_lab import verify
        adjusted, counts = verify.reference(ids_ptr, start, num_local)
        adjusted_ptr.copy_(adjusted)
        count_ptr.copy_(counts)

    empty.add_pre_run_hook(fix_on_host)
    return empty


def test_a_pre_run_hook_that_fixes_the_output_is_refused():
    ok, out = _report("masked_block", _empty_kernel_with_fixing_hook())
    assert not ok
    assert "pre-run hook" in out and "no pre-run hooks" in out, out


def test_an_autotuned_kernel_is_refused_with_a_clear_message():
    tuned = triton.autotune(configs=[triton.Config({})], key=["num_total"])(K.masked_block_solution)
    ok, out = _report("masked_block", tuned)
    assert not ok and "expected the bare @triton.jit kernel" in out, out


# ------------------------------------------------------------------------------------ printing

def test_what_the_kernel_prints_is_held_back_from_the_report(capsys):
    from moe_lab.workbook.exercises.answers import DEBUG_SOURCE, buggy_kernel

    assert "device_print" not in DEBUG_SOURCE
    result = exercises.check("debug", _printing_kernel)
    assert not result
    assert capsys.readouterr().out == ""
    assert "(the kernel printed" in result.text and "held back here" in result.text
    assert not exercises.check("debug", buggy_kernel())


@triton.jit
def _printing_kernel(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local, BLOCK: tl.constexpr):
    slot = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    valid_slot = slot < num_total
    expert = tl.load(ids_ptr + slot, mask=valid_slot, other=0)
    tl.device_print("ids", expert)
    local = (expert >= start) & (expert < start + num_local)
    local_expert = tl.where(local, expert - start, -1)
    tl.store(adjusted_ptr + slot, local_expert, mask=valid_slot)
    tl.atomic_add(count_ptr + local_expert, 1, mask=local)


def test_the_time_budget_works_in_a_worker_thread(short_budget):
    """No signal is needed: the budget holds in any thread (a Jupyter kernel's, pytest's, a worker's)."""
    found = {}
    worker = threading.Thread(target=lambda: found.update(r=_report("masked_block", endless_while)))
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive()
    ok, out = found["r"]
    assert not ok and "did not finish: check your loop bounds" in out, out
