"""Running an exercise's cases: the interpreter pass, the GPU pass, and each exercise's launch plan.

The interpreter pass (:func:`check_kernel`, :func:`check_block_size`) runs where the check runs the
learner's code (a forked child, :mod:`.isolate`): it reports progress before every launch, with the
report lines to show should that launch never return. It returns an :class:`Outcome`; the GPU pass
(:func:`check_on_gpu`) runs afterwards in the notebook's process, only when the interpreter pass
passed, on the same cases.
"""

from __future__ import annotations

import operator
import os
import sys
from dataclasses import dataclass, field

import torch
import triton

import moe_lab
from moe_lab import interp, verify
from moe_lab.workbook.exercises import cases, isolate, sandbox
from moe_lab.workbook.exercises.cases import CASE_GROUPS, ORDERS, SKIPPED_CASES  # noqa: F401 (re-exported)
from moe_lab.workbook.exercises.catalogue import Exercise
from moe_lab.workbook.exercises.diagnose import error_line
from moe_lab.workbook.exercises.launch import Run, label, late_problems, launch, passed
from moe_lab.workbook.exercises.report import failure_header, report_failure, say
from moe_lab.workbook.exercises.source import library_calls

NAIVE_TOKENS = cases.SCALAR_TOKENS["naive"]
TICKET_GPU_TRIALS = 200
"""Launches on fresh data the ticket exercise gets on a GPU, where programs really run at once."""
BLOCK_SIZE_TOPKS = range(1, 17)
"""The top-k values the block_size exercise is asked about (its spec: 1 to 16)."""


@dataclass
class Outcome:
    """What the interpreter pass found: passed or not, how many runs, and (block_size) the blocks."""
    ok: bool
    runs: int = 0
    blocks: dict = field(default_factory=dict)


def _blocks(ex: Exercise, case: verify.Case, blocks: dict, turn: int) -> list:
    """The launches of one case: its BLOCKs (naive: its TOKENS_PER_PROGRAM); ``turn``: the case's place
    in the plan, so that the launches that vary go round the cases in turn."""
    from moe_lab.stages import decode, naive, one_launch, tl_full

    varied = cases.LAUNCHES.get(ex.name)
    if varied:
        choice = varied[turn % len(varied)]
        if choice is None:  # the library's own launch for this input
            own = {"naive": lambda n: naive.TOKENS_PER_PROGRAM, "decode": decode.tile_size,
                   "ticket": one_launch.tile_size}[ex.name]
            choice = own(case.topk_ids.numel())
        return [choice]
    if ex.name == "block_size":
        return [blocks[case.topk]]
    if ex.name == "block_histogram":
        return [256, 64]
    return [tl_full.block_size(case.topk)]  # masked_block, debug, relaxed


def plan(ex: Exercise, blocks: dict | None = None) -> list[tuple[str, list[tuple]]]:
    """``[(group title, [(case, block, order, seed), ...]), ...]``: every run of the check, in order.

    The ticket runs each case in every order of :data:`cases.ORDERS`; the others take the orders in
    turn, one per run. ``block`` is the run's BLOCK (naive: its TOKENS_PER_PROGRAM).
    """
    groups = cases.grouped_cases(ex.name, cases.SCALAR_TOKENS.get(ex.name))
    out, turn, index = [], 0, 0
    for title, members in groups:
        runs = []
        for case in members:
            for block in _blocks(ex, case, blocks or {}, index):
                several = ex.name == "ticket" and case.topk_ids.numel() > block  # more than one program
                for kind in (ORDERS if several else (ORDERS[turn % len(ORDERS)],)):
                    runs.append((case, block, kind, turn))
                    turn += 1
            index += 1
        out.append((title, runs))
    return out


def run_groups(ex: Exercise, kernel, hint_level: int = 0, blocks: dict | None = None) -> Outcome:
    """The interpreter pass: every run of :func:`plan`, address-checked, stopping at the first failure."""
    interpreted = interp.interpreted(kernel)
    groups = plan(ex, blocks)
    total, done, late = sum(len(runs) for _, runs in groups), 0, None
    for title, runs in groups:
        for case, block, kind, seed in runs:
            isolate.step(done, total, failure_header(ex, Run(case, label(ex, block, kind)), title, ""))
            run = launch(ex, interpreted, case, torch.device("cpu"), checked=True, block=block,
                         order_kind=kind, seed=seed)
            if not passed(ex, run):
                say(f"  FAIL  {title}")
                first = _one_launch_only(ex, interpreted, run, kind, seed)
                report_failure(ex, run, "", hint_level, first=first)
                return Outcome(False, done)
            if late is None and late_problems(ex, run):
                late = (title, run)
            done += 1
        count = len({c.name for c, *_ in runs})
        say(f"  ok    {title} ({count} case{'s' if count > 1 else ''})")
    if late is not None:  # right on every case, but not as the exercise's spec asks
        say(f"  FAIL  the exercise's spec, on {late[0]}")
        report_failure(ex, late[1], "", hint_level)
        return Outcome(False, done)
    return Outcome(True, total, dict(blocks or {}))


def _one_launch_only(ex: Exercise, kernel, run: Run, kind: str, seed: int) -> list[tuple[str, str]]:
    """``[("launch_fixed", what was seen)]`` when a run failed at a launch other than the exercise's first
    of :data:`cases.LAUNCHES` and the same case passes with that one: a number where the constexpr
    belongs. ``[]`` otherwise."""
    varied = cases.LAUNCHES.get(ex.name)
    block = run.per_program // run.case.topk if ex.name == "naive" else run.per_program
    if not varied or block == varied[0] or run.error is not None:
        return []
    again = launch(ex, kernel, run.case, torch.device("cpu"), checked=True, block=varied[0], order_kind=kind,
                   seed=seed)
    if not passed(ex, again):
        return []
    what = "TOKENS_PER_PROGRAM" if ex.name == "naive" else "BLOCK"
    return [("launch_fixed", f"the same case passes with {what}={varied[0]} but not with {what}={block}: the "
                             f"kernel holds for one launch only")]


def check_on_gpu(ex: Exercise, kernel, hint_level: int = 0, blocks: dict | None = None) -> bool:
    """The GPU pass: the same cases compiled on the GPU (each case and block once), then (ticket) the
    race trials. Runs in the notebook's process, after the interpreter pass passed."""
    from moe_lab.stages import tl_full

    if ex.name == "block_size":
        kernel = tl_full.tl_full_kernel
    seen = set()
    for title, runs in plan(ex, blocks):
        for case, block, _kind, _seed in runs:
            if (case.name, block) in seen:
                continue
            seen.add((case.name, block))
            run = launch(ex, kernel, case, torch.device("cuda"), checked=False, block=block)
            if not passed(ex, run):
                say(f"  FAIL  {title}")
                report_failure(ex, run, " on the GPU", hint_level)
                return False
    if ex.name == "ticket":
        return _ticket_on_gpu(ex, kernel)
    return True


def _intro(ex: Exercise) -> str:
    from moe_lab.stages import naive

    tile = "the library's tile for the size"
    own = {"naive": f"{naive.TOKENS_PER_PROGRAM} (the library's)", "decode": tile, "ticket": tile}
    varied = {name: ", ".join(own[name] if v is None else str(v) for v in values)
              for name, values in cases.LAUNCHES.items()}
    what = {"naive": f"adversarial cases (first {NAIVE_TOKENS} tokens each), large sizes and tails, poisoned "
                     f"outputs, TOKENS_PER_PROGRAM = {varied['naive']} in turn",
            "block_histogram": "adversarial cases, large sizes and tails, poisoned outputs, BLOCK=256 and "
                               "BLOCK=64, NUM_BINS = next_power_of_2(num_local)",
            "decode": f"adversarial cases, large sizes and tails, poisoned outputs and counters, one "
                      f"program, BLOCK = {varied['decode']} in turn, NUM_BINS = next_power_of_2(num_local)",
            "ticket": f"adversarial cases, large sizes and tails, poisoned outputs and counters, zeroed "
                      f"scratch, BLOCK = {varied['ticket']} in turn, every case in three program orders"}
    if ex.name == "debug":
        return (f"debug: adversarial cases (first {cases.SCALAR_TOKENS['debug']} tokens each), large sizes "
                f"and tails, poisoned outputs, BLOCK = tl_full.block_size(topk)")
    return f"{ex.name}: " + what.get(ex.name, "adversarial cases, large sizes and tails, poisoned outputs, "
                                              "BLOCK = tl_full.block_size(topk)")


def check_kernel(ex: Exercise, kernel, hint_level: int = 0) -> Outcome:
    """The interpreter pass of a kernel exercise (the exercise's launch, every case, every order)."""
    if ex.name not in cases.SIZES or ex.name == "block_size":
        raise ValueError(f"no kernel runner for exercise {ex.name!r}")
    say(_intro(ex))
    if ex.name != "ticket":
        return run_groups(ex, kernel, hint_level)
    say("  note: the interpreter runs programs one after another, so no race can show here; the checker")
    say("  runs them in several orders (the last to finish is not always the highest id, nor program 0),")
    say("  follows each program's steps (every add into the scratch, then tl.debug_barrier(), then the")
    say("  ticket) and checks the memory order and scope a GPU needs (an acq_rel, GPU-scoped ticket, totals")
    say("  read with an atomic). On a GPU, without them a program can take the last ticket before another")
    say("  program's adds are visible, and the counts come out short.")
    return run_groups(ex, kernel, hint_level)


def _ticket_on_gpu(ex: Exercise, kernel) -> bool:
    """Many launches on fresh data at once-per-launch sizes where programs race for real; says only
    what failed."""
    gen = torch.Generator().manual_seed(0)
    for trial in range(TICKET_GPU_TRIALS):
        ids = torch.randint(-1, 64, (4096, 8), generator=gen, dtype=torch.int32).cuda()
        start, num_local = 16, 32
        want_adj, want_cnt = verify.reference(ids, start, num_local)
        adjusted = torch.full_like(ids, verify.POISON)
        counts = torch.full((num_local,), verify.POISON, dtype=torch.int32, device="cuda")
        scratch = torch.zeros(num_local + 1, dtype=torch.int32, device="cuda")
        grid = (triton.cdiv(ids.numel(), 64),)
        kernel[grid](ids, adjusted, counts, scratch, ids.numel(), start, num_local, BLOCK=64, NUM_BINS=32)
        torch.cuda.synchronize()
        if not (torch.equal(adjusted, want_adj) and torch.equal(counts, want_cnt)) or bool(scratch.any()):
            say(f"  FAIL  GPU race trials: trial {trial + 1} of {TICKET_GPU_TRIALS} (32768 slots, "
                f"{grid[0]} programs) came out wrong")
            say(f"  hint: {ex.hint('ticket_ordering')}")
            return False
    return True  # silent when it passes: the report reads the same on every machine, GPU or not


# ------------------------------------------------------------------------------------------ block_size


def _calling_library(fn, topk):
    """``(fn(topk), the library functions it called)``: the learner's block_size, watched."""
    root = os.path.dirname(os.path.abspath(moe_lab.__file__)) + os.sep
    called = []

    def watch(frame, event, arg):
        if event == "call" and frame.f_code.co_filename.startswith(root):
            called.append(f"{frame.f_globals.get('__name__', '?')}.{frame.f_code.co_name}")

    def traced():
        sys.setprofile(watch)
        try:
            return fn(topk)
        finally:
            sys.setprofile(None)

    value = sandbox.call(traced)
    return value, called


def check_block_size(ex: Exercise, fn, hint_level: int = 0) -> Outcome:
    """The block_size exercise: its spec on topk 1..16, then the library's block kernel with its blocks."""
    from moe_lab.stages import tl_full

    if interp.is_kernel(fn) or not callable(fn):
        say(f"block_size: expected a plain Python function def block_size(topk) -> int, "
            f"got {type(fn).__name__}")
        return Outcome(False)
    say("block_size: for topk 1..16 a power of two, at most 256 and near min(256, 1024 // topk); then "
        "tl_full_kernel with that BLOCK on the cases")
    own = (getattr(fn, "__module__", "") or "").split(".")[0] == "moe_lab"  # the shipped answer itself
    used = [] if own else library_calls(fn)
    if used:
        return _refuse_library(ex, used)
    blocks, wrong = {}, []
    topks = sorted(set(BLOCK_SIZE_TOPKS)
                   | {c.topk for _, members in cases.grouped_cases("block_size") for c in members})
    for i, topk in enumerate(topks):
        isolate.step(i, len(topks), [f"  FAIL  block_size({topk})"])
        try:
            b, called = _calling_library(fn, topk)
        except sandbox.OutOfTime:
            say(f"  FAIL  block_size({topk}) did not finish: check your loop bounds")
            return Outcome(False)
        except NotImplementedError:
            say(f"block_size: not done yet: {ex.todo}.")
            return Outcome(False)
        except Exception as err:
            say(f"  FAIL  block_size({topk}) raised {error_line(err)}")
            return Outcome(False)
        if called and not own:
            return _refuse_library(ex, called)
        if isinstance(b, bool) or not _is_int(b):
            say(f"  FAIL  block_size({topk}) returned {b!r} ({type(b).__name__}), not an int")
            say(f"  hint: {ex.hint('block_not_int')}")
            return Outcome(False)
        b = operator.index(b)
        if b < 1 or b > 256:
            say(f"  FAIL  block_size({topk}) returned {b}: a block is 1 to 256 slots, at most 256")
            say(f"  hint: {ex.hint('block_out_of_range')}")
            return Outcome(False)
        blocks[topk] = b
        if b & (b - 1):
            wrong.append(topk)
    if wrong:
        topk = 6 if 6 in wrong else wrong[0]  # DeepSeek-V2-Lite's top-6 is the case that broke
        b = blocks[topk]
        note = f" (1024 // {topk} = {1024 // topk})" if b == 1024 // topk else ""
        say(f"  FAIL  block_size({topk}) returned {b}{note}: not a power of two")
        say(f"    not a power of two for topk {', '.join(map(str, wrong))}")
        said = _triton_on_block(b)
        if said:
            say(f"    Triton says, launching tl_full_kernel with BLOCK={b}: {said}")
        say(f"  hint: {ex.hint('block_not_power_of_two')}")
        return Outcome(False)
    for topk in topks:
        rule = min(256, 1024 // topk)
        if block_problem(topk, blocks[topk]):
            say(f"  FAIL  block_size({topk}) returned {blocks[topk]}; the rule min(256, 1024 // {topk}) "
                f"gives {rule}, so the block must lie in ({rule / 2:g}, {2 * rule})")
            say(f"  hint: {ex.hint('block_not_near')}")
            return Outcome(False)
    say(f"  ok    the launch rule for topk 1..16 (topk 6 -> {blocks[6]}, topk 8 -> {blocks[8]})")
    return run_groups(ex, tl_full.tl_full_kernel, hint_level, blocks)


def block_problem(topk: int, block: int) -> str:
    """The block_size spec for one topk: "" when ``block`` keeps it, else the symptom it breaks."""
    rule = min(256, 1024 // topk)
    if not 1 <= block <= 256:
        return "block_out_of_range"
    if block & (block - 1):
        return "block_not_power_of_two"
    return "" if rule / 2 < block < 2 * rule else "block_not_near"


def _refuse_library(ex: Exercise, used: list[str]) -> Outcome:
    say(f"  FAIL  block_size uses the library's own code: {', '.join(sorted(set(used))[:3])}")
    say(f"  hint: {ex.hint('block_from_library')}")
    return Outcome(False)


def _is_int(v) -> bool:
    try:
        operator.index(v)
        return True
    except TypeError:
        return False


def _triton_on_block(block: int) -> str:
    from moe_lab.stages import tl_full

    ids = torch.zeros((1, 8), dtype=torch.int32)
    adj, cnt = torch.empty_like(ids), torch.zeros(4, dtype=torch.int32)
    try:
        interp.interpreted(tl_full.tl_full_kernel)[(1,)](ids, adj, cnt, 8, 0, 4, BLOCK=block)
    except Exception as err:
        return error_line(err)
    return ""


__all__ = ["CASE_GROUPS", "SKIPPED_CASES", "NAIVE_TOKENS", "BLOCK_SIZE_TOPKS", "Outcome", "plan",
           "run_groups", "check_on_gpu", "check_kernel", "check_block_size", "block_problem"]
