"""Running an exercise's cases: the groups, the interpreter pass and the GPU pass, each exercise's launch."""

from __future__ import annotations

import operator

import torch
import triton

from moe_lab import backend, interp, verify
from moe_lab.workbook.exercises import sandbox
from moe_lab.workbook.exercises.catalogue import Exercise
from moe_lab.workbook.exercises.diagnose import error_line
from moe_lab.workbook.exercises.launch import launch, passed
from moe_lab.workbook.exercises.report import report_failure, say

# Groups of adversarial cases, in the order they run: the safest first, so a kernel with a wild index
# fails on small random ids before it meets INT32_MAX. Case names not listed here (added to
# moe_lab.verify later) run last, in a group of their own; "empty input" launches nothing and is skipped.
CASE_GROUPS: list[tuple[str, tuple[str, ...]]] = [
    ("random ids", ("random ids, topk=",)),
    ("padding and tails", ("start=0, tail block", "all padding (-1)", "one token", "block boundary +1")),
    ("expert ranges", ("only remote ids", "one local expert", "num_local not a power of two",
                       "256 local experts", "ids past the expert range")),
    ("contention and int64", ("every slot on one expert", "int64 ids past int32")),
]
SKIPPED_CASES = ("empty input",)
NAIVE_TOKENS = 13
TICKET_GPU_TRIALS = 200
"""Launches on fresh data the ticket exercise gets on a GPU, where programs really run at once."""


def grouped_cases(max_tokens: int | None = None) -> list[tuple[str, list[verify.Case]]]:
    """The adversarial cases in CASE_GROUPS order; with ``max_tokens``, each cut to its first rows."""
    cases = [c for c in verify.adversarial_cases() if c.name not in SKIPPED_CASES]
    if max_tokens:
        cases = [c if c.topk_ids.shape[0] <= max_tokens else
                 verify.Case(c.name, c.topk_ids[:max_tokens].contiguous(), c.start, c.num_local,
                             f"{c.why} (here its first {max_tokens} of {c.topk_ids.shape[0]} tokens)")
                 for c in cases]
    groups, used = [], set()
    for title, patterns in CASE_GROUPS:
        members = []
        for p in patterns:
            for c in cases:
                if c.name not in used and (c.name == p or (p.endswith("=") and c.name.startswith(p))):
                    members.append(c)
                    used.add(c.name)
        if members:
            groups.append((title, members))
    rest = [c for c in cases if c.name not in used]
    if rest:
        groups.append(("more cases", rest))
    return groups


def _passes(kernel) -> list[tuple[str, object, torch.device, bool]]:
    """(label, kernel, device, address-checked) for each place this kernel runs."""
    out = [("interpreter", interp.interpreted(kernel), torch.device("cpu"), True)]
    if backend.has_gpu():
        out.append(("GPU", kernel, torch.device("cuda"), False))
    return out


def run_groups(ex: Exercise, kernel, blocks_for, max_tokens: int | None = None, hint_level: int = 0) -> bool:
    passes = _passes(kernel)
    total = 0
    for title, members in grouped_cases(max_tokens):
        for case in members:
            for block in blocks_for(case):
                for where, k, device, checked in passes:
                    run = launch(ex, k, case, device, checked=checked, block=block)
                    if not passed(ex, run):
                        say(f"  FAIL  {title}")
                        report_failure(ex, run, f" on the {where}" if where == "GPU" else "", hint_level)
                        return False
                total += 1
        say(f"  ok    {title} ({len(members)} case{'s' if len(members) > 1 else ''})")
    say(f"{ex.name}: all {total} runs pass.")
    return True


def check_kernel(ex: Exercise, kernel, hint_level: int = 0) -> bool:
    from moe_lab.stages import tl_full

    name = ex.name
    if name == "naive":
        # one scalar at a time is slow in the interpreter: each case keeps its first 13 tokens
        # (three full programs of 4 tokens and a tail program with one)
        say(f"naive: adversarial cases (first {NAIVE_TOKENS} tokens each), poisoned outputs, "
            f"TOKENS_PER_PROGRAM=4")
        return run_groups(ex, kernel, lambda c: [None], max_tokens=NAIVE_TOKENS, hint_level=hint_level)
    if name in ("masked_block", "debug", "relaxed"):
        say(f"{name}: adversarial cases, poisoned outputs, BLOCK = tl_full.block_size(topk)")
        return run_groups(ex, kernel, lambda c: [tl_full.block_size(c.topk)], hint_level=hint_level)
    if name == "block_histogram":
        say("block_histogram: adversarial cases, poisoned outputs, BLOCK=256 and BLOCK=64, "
            "NUM_BINS = next_power_of_2(num_local)")
        return run_groups(ex, kernel, lambda c: [256, 64], hint_level=hint_level)
    if name == "decode":
        say("decode: adversarial cases, poisoned outputs and counters, one program, BLOCK=64, "
            "NUM_BINS = next_power_of_2(num_local)")
        return run_groups(ex, kernel, lambda c: [64], hint_level=hint_level)
    if name == "ticket":
        say("ticket: adversarial cases, poisoned outputs and counters, zeroed scratch, BLOCK=64, "
            "programs run last-id-first")
        say("  note: the interpreter runs programs one after another, so no race can show here; the "
            "checker")
        say("  runs them in reverse order and checks the ordering a GPU needs (tl.debug_barrier() "
            "before an")
        say("  acq_rel ticket, totals read with an atomic). On a GPU, without them a program can take "
            "the last")
        say("  ticket before another program's adds are visible, and the counts come out short.")
        if not _has_barrier(kernel):
            say("  FAIL  ordering")
            say("    found: no tl.debug_barrier() in the kernel: one thread of a program can take its "
                "ticket while")
            say("    its sibling threads are still adding their part of the histogram")
            say(f"  hint: {ex.hint('ticket_ordering')}")
            return False
        ok = run_groups(ex, kernel, lambda c: [64], hint_level=hint_level)
        if ok and backend.has_gpu():
            ok = _ticket_on_gpu(ex, kernel)
        return ok
    raise ValueError(f"no kernel runner for exercise {name!r}")


def _has_barrier(kernel) -> bool:
    from moe_lab.workbook.exercises.source import source

    return "debug_barrier" in (source(kernel) or "")


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


def check_block_size(ex: Exercise, fn, hint_level: int = 0) -> bool:
    from moe_lab.stages import tl_full

    if interp.is_kernel(fn) or not callable(fn):
        say(f"block_size: expected a plain Python function def block_size(topk) -> int, "
            f"got {type(fn).__name__}")
        return False
    say("block_size: a power of two for topk 1..16, then tl_full_kernel with that BLOCK on the cases")
    blocks, wrong = {}, []
    topks = sorted(set(range(1, 17)) | {c.topk for _, cases in grouped_cases() for c in cases})
    for topk in topks:
        try:
            b = sandbox.call(fn, topk)
        except sandbox.OutOfTime:
            say(f"  FAIL  block_size({topk}) did not finish: check your loop bounds")
            return False
        except NotImplementedError:
            say(f"block_size: not done yet: {ex.todo}.")
            return False
        except Exception as err:
            say(f"  FAIL  block_size({topk}) raised {error_line(err)}")
            return False
        if isinstance(b, bool) or not _is_int(b):
            say(f"  FAIL  block_size({topk}) returned {b!r} ({type(b).__name__}), not an int")
            say(f"  hint: {ex.hint('block_not_int')}")
            return False
        b = operator.index(b)
        if b < 1 or b > 1024:
            say(f"  FAIL  block_size({topk}) returned {b}")
            say(f"  hint: {ex.hint('block_out_of_range')}")
            return False
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
        return False
    say(f"  ok    powers of two for topk 1..16 (topk 6 -> {blocks[6]}, topk 8 -> {blocks[8]})")
    return run_groups(ex, tl_full.tl_full_kernel, lambda c: [blocks[c.topk]], hint_level=hint_level)


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


__all__ = ["CASE_GROUPS", "SKIPPED_CASES", "NAIVE_TOKENS", "grouped_cases", "run_groups", "check_kernel",
           "check_block_size"]
