"""One launch of a learner's kernel on one case: guarded, poisoned buffers, then what came out."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
import triton

from moe_lab import verify
from moe_lab.workbook.exercises import cases, sandbox
from moe_lab.workbook.exercises.address import GUARD, AddressCheck, Buffer, Usage
from moe_lab.workbook.exercises.catalogue import Exercise

ZEROED_COUNTS = ("naive", "debug", "block_size", "masked_block", "relaxed", "block_histogram")
"""Exercises whose counters arrive zeroed (the kernel accumulates); the others get them poisoned."""

LATE = ("zero_adds", "not_aggregated")
"""Departures from the exercise's spec that do not make a result wrong: reported only once every run
has passed, so a kernel that is also wrong hears about that first."""

GPU_SCOPES = ("gpu", "system", "sys")
"""Atomic scopes that order an atomic against every program of the launch (``scope="cta"`` does not)."""


@dataclass
class Run:
    case: verify.Case
    label: str  # e.g. "BLOCK=256"
    error: BaseException | None = None
    adjusted: torch.Tensor | None = None
    counts: torch.Tensor | None = None
    scratch: torch.Tensor | None = None  # after the launch (ticket)
    events: list = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    guard_problems: list = field(default_factory=list)
    want_adjusted: torch.Tensor | None = None
    want_counts: torch.Tensor | None = None
    padded_slots: int = 0
    per_program: int = 0  # slots one program (decode: one step of its loop) owns
    num_bins: int = 0
    programs: int = 1
    checked: bool = False  # ran under the address check
    printed: int = 0  # lines the kernel printed (held back from the report)


def guarded(values: torch.Tensor, fill: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(whole, view)``: a copy of ``values`` with a guard zone on both sides filled with ``fill``."""
    flat = values.reshape(-1)
    whole = torch.full((GUARD + flat.numel() + GUARD,), fill, dtype=values.dtype, device=values.device)
    whole[GUARD:GUARD + flat.numel()] = flat
    return whole, whole[GUARD:GUARD + flat.numel()].view(values.shape)


def layout(ex: Exercise, num_tokens: int, topk: int, num_local: int, block: int | None):
    """``(grid, scalar args after the pointers, constexprs, num_bins)`` as the checker launches ``ex``."""
    num_total = num_tokens * topk
    bins = triton.next_power_of_2(num_local)
    if ex.name == "naive":  # block: TOKENS_PER_PROGRAM
        return (triton.cdiv(num_tokens, block),), (num_tokens, topk), {"TOKENS_PER_PROGRAM": block}, 0
    if ex.name == "decode":
        return (1,), (num_total,), {"BLOCK": block, "NUM_BINS": bins}, bins
    if ex.name in ("block_histogram", "ticket"):
        return (triton.cdiv(num_total, block),), (num_total,), {"BLOCK": block, "NUM_BINS": bins}, bins
    return (triton.cdiv(num_total, block),), (num_total,), {"BLOCK": block}, 0


def label(ex: Exercise, block: int | None, order_kind: str | None) -> str:
    """What the report says about a run besides its case: the block, and (ticket) the program order."""
    parts = [f"BLOCK={block}"] if ex.name in ("block_histogram", "decode", "ticket") else []
    if ex.name == "naive" and block:
        parts = [f"TOKENS_PER_PROGRAM={block}"]
    if ex.name == "ticket" and order_kind:
        parts.append(cases.describe_order(order_kind))
    return "; ".join(parts)


def launch(ex: Exercise, kernel, case: verify.Case, device, *, checked: bool, block: int | None,
           order_kind: str | None = None, seed: int = 0) -> Run:
    ids = case.topk_ids.to(device)
    num_tokens, topk = ids.shape
    num_total, start, num_local = ids.numel(), case.start, case.num_local
    grid, scalars, consts, bins = layout(ex, num_tokens, topk, num_local, block)
    run = Run(case, label(ex, block, order_kind), checked=checked, num_bins=bins, programs=grid[0])
    run.want_adjusted, run.want_counts = (t.cpu() for t in verify.reference(case.topk_ids.cpu(), start,
                                                                            num_local))
    # past the input's end lies a local id (a middle expert: not 0, not the last bin), so an unmasked
    # read shows up in the counts on a GPU too
    ids_whole, ids_view = guarded(ids, start + num_local // 2)
    adj_whole, adj_view = guarded(torch.full_like(ids, verify.POISON), verify.POISON)
    first = 0 if ex.name in ZEROED_COUNTS else verify.POISON
    cnt_whole, cnt_view = guarded(torch.full((num_local,), first, dtype=torch.int32, device=device),
                                  verify.POISON)
    ids_before = ids_whole.clone()
    pointers = [ids_view, adj_view, cnt_view]
    buffers = [Buffer("topk_ids", ids_view, False), Buffer("adjusted", adj_view, True),
               Buffer("expert_count", cnt_view, True)]
    scratch_whole = None
    if ex.name == "ticket":
        scratch_whole, scratch_view = guarded(torch.zeros(bins + 1, dtype=torch.int32, device=device),
                                              verify.POISON)
        pointers.append(scratch_view)
        buffers.append(Buffer("scratch", scratch_view, True))
    run.padded_slots = 0 if ex.name == "naive" else max(0, grid[0] * block - num_total)
    run.per_program = block * topk if ex.name == "naive" else block
    args = (*pointers, *scalars, start, num_local)
    if ex.name == "naive":
        args = (*pointers, num_tokens, topk, start, num_local)

    # on a GPU any program may run first or last, and another program's add may land between a read
    # and a compare-and-swap: the address check makes both happen here
    order = cases.order(order_kind, grid[0], seed) if order_kind else None
    contention = cases.contention(seed, grid[0]) if ex.name in ZEROED_COUNTS else 0
    watch = AddressCheck(buffers, order, interfere=contention)
    output = sandbox.Output()
    try:
        with watch.installed() if checked else contextlib.nullcontext():
            sandbox.call(lambda: kernel[grid](*args, **consts), output=output,
                         timed=device.type == "cpu")
        if device.type == "cuda":
            torch.cuda.synchronize()
    except (Exception, sandbox.OutOfTime) as err:  # the learner's code: report it, never raise
        run.error = err
        return run
    finally:
        run.printed = output.lines
    for i, extra in watch.phantom.items():  # take back the adds "another program" made
        cnt_view[i] -= extra
    run.events, run.usage = watch.events, watch.usage
    run.adjusted, run.counts = adj_view.cpu(), cnt_view.cpu()
    zones = [("adjusted", adj_whole, num_total), ("expert_count", cnt_whole, num_local)]
    if scratch_whole is not None:
        run.scratch = scratch_whole[GUARD:GUARD + bins + 1].cpu()
        zones.append(("scratch", scratch_whole, bins + 1))
    for name, whole, n in zones:
        outside = torch.cat([whole[:GUARD], whole[GUARD + n:]]).cpu()
        changed = (outside != verify.POISON).nonzero().flatten().tolist()
        if changed:
            idx = [i - GUARD if i < GUARD else n + (i - GUARD) for i in changed]
            run.guard_problems.append((name, idx))
    if not torch.equal(ids_whole.cpu(), ids_before.cpu()):
        run.guard_problems.append(("topk_ids", []))
    return run


def passed(ex: Exercise, run: Run) -> bool:
    if run.error is not None or run.events or run.guard_problems:
        return False
    if not (torch.equal(run.adjusted, run.want_adjusted) and torch.equal(run.counts, run.want_counts)):
        return False
    if run.scratch is not None and bool(run.scratch.any()):
        return False
    return not [key for key, _ in usage_problems(ex, run) if key not in LATE]


def late_problems(ex: Exercise, run: Run) -> list[tuple[str, str]]:
    """The :data:`LATE` problems of a run that passed."""
    return [(key, detail) for key, detail in usage_problems(ex, run) if key in LATE]


def usage_problems(ex: Exercise, run: Run) -> list[tuple[str, str]]:
    """Mistakes in how the counters were touched, even when the numbers came out right."""
    u, out = run.usage, []
    if not run.checked:
        return out
    accumulate = ex.name in ZEROED_COUNTS
    # accumulating, a compare-and-swap can be right (a retry loop: the interference in the address check
    # tests it); an exchange, or a load followed by a plain store, loses every update that lands in
    # between. Writing final counts (decode, ticket), an exchange is a store that happens to be atomic.
    other_ops = sorted(u.counts_atomic_ops - ({"add", "cas"} if accumulate else {"add", "xchg"}))
    stored = u.counts_stored_by | (set() if accumulate else u.counts_swapped_by)
    if (u.counts_loaded and (stored or not accumulate)) or other_ops:
        how = " and ".join(filter(None, ["tl.load" if u.counts_loaded else "",
                                         "tl.store" if u.counts_stored_by else "",
                                         ", ".join(f"atomic_{op}" for op in other_ops)]))
        out.append(("counts_rmw", f"expert_count was touched with {how}"))
    if accumulate and u.counts_stored_by and run.programs > 1:
        out.append(("counts_race", "tl.store into expert_count with more than one program"))
    if not accumulate and "add" in u.counts_atomic_ops:
        out.append(("counts_accumulated", "tl.atomic_add into expert_count"))
    narrow = sorted(u.scopes - set(GPU_SCOPES))
    if narrow and run.programs > 1:
        where = "the scratch" if ex.name == "ticket" else "expert_count"
        out.append(("atomic_scope", f"an atomic on {where} ran with scope=\"{narrow[0]}\", so it is atomic "
                                    f"and ordered only among the threads of one program; the "
                                    f"{run.programs} programs of this launch run on different SMs"))
    if ex.name == "relaxed" and u.counts_sems - {"relaxed"}:
        sems = ", ".join(sorted(u.counts_sems - {"relaxed"}))
        out.append(("not_relaxed", f"the counting atomic ran with sem={sems}"))
    if ex.name == "block_histogram":
        if u.counts_hit_twice:
            out.append(("not_aggregated", "one program added to one counter more than once"))
        if u.counts_zero_adds:
            out.append(("zero_adds", "the atomic added a count of 0 to a counter"))
    if ex.name == "ticket":
        if stored and stored != {u.last_program}:
            who = ", ".join(map(str, sorted(stored)))
            out.append(("counts_not_by_last", f"program(s) {who} stored expert_count; the last to "
                                              f"finish was program {u.last_program}"))
        if u.ticket_sems - {"acq_rel"}:
            out.append(("ticket_ordering", f"the ticket's tl.atomic_add ran with "
                                           f"sem={', '.join(sorted(u.ticket_sems))}"))
        if u.scratch_loaded:
            out.append(("ticket_ordering", "the scratch was read with tl.load"))
        for program, what in u.ticket_order[:1]:
            out.append(("ticket_order", f"program {program} {what}"))
    return out


__all__ = ["Run", "ZEROED_COUNTS", "LATE", "GPU_SCOPES", "guarded", "layout", "label", "launch", "passed",
           "late_problems", "usage_problems"]
