"""Probes the interpreter alone passes but a GPU would not run right, and correct kernels that must pass
(the format of ``PROBES`` is probe_kernels.py's): kernels Triton cannot compile, tickets taken out of
order, kernels right for one launch only, a capped compare-and-swap loop, counts written with
``tl.atomic_xchg`` (right), and mistakes whose message used to misfit (``MISFITS``).
"""

from __future__ import annotations

import logging
import sys
import time

import triton
import triton.language as tl

LOG = logging.getLogger("moe_lab.probe")
SEEN: list = []
ZERO = 0  # a plain int global: the interpreter reads it, Triton's compiler refuses it
SYSEXIT = tl.constexpr(sys.exit)  # a constexpr hides the call from the source scan

# ------------------------------------------------------------------------- what a GPU cannot compile


@triton.jit
def naive_break(ids_ptr, adjusted_ptr, count_ptr, num_tokens, topk, start, num_local,
                TOKENS_PER_PROGRAM: tl.constexpr):
    pid = tl.program_id(0)
    for i in range(TOKENS_PER_PROGRAM):
        token = pid * TOKENS_PER_PROGRAM + i
        if token >= num_tokens:
            break  # PROBE: natural Python, no GPU kernel
        for k in range(topk):
            slot = token * topk + k
            expert = tl.load(ids_ptr + slot)
            if (expert >= start) & (expert < start + num_local):
                tl.store(adjusted_ptr + slot, expert - start)
                tl.atomic_add(count_ptr + (expert - start), 1)
            else:
                tl.store(adjusted_ptr + slot, -1)


@triton.jit
def naive_early_return(ids_ptr, adjusted_ptr, count_ptr, num_tokens, topk, start, num_local,
                       TOKENS_PER_PROGRAM: tl.constexpr):
    pid = tl.program_id(0)
    for i in range(TOKENS_PER_PROGRAM):
        token = pid * TOKENS_PER_PROGRAM + i
        if token >= num_tokens:
            return  # PROBE: a return inside a loop
        for k in range(topk):
            slot = token * topk + k
            expert = tl.load(ids_ptr + slot)
            if (expert >= start) & (expert < start + num_local):
                tl.store(adjusted_ptr + slot, expert - start)
                tl.atomic_add(count_ptr + (expert - start), 1)
            else:
                tl.store(adjusted_ptr + slot, -1)


@triton.jit
def masked_block_logger_call(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                             BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    LOG.debug("tile loaded")  # PROBE: a method of a plain Python object
    is_local = (ids >= start) & (ids < start + num_local)
    adjusted = tl.where(is_local, ids - start, -1)
    tl.store(adjusted_ptr + offs, adjusted, mask=in_bounds)
    tl.atomic_add(count_ptr + adjusted, 1, mask=is_local)


@triton.jit
def masked_block_list_append(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                             BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    SEEN.append(1)  # PROBE: a list's method
    is_local = (ids >= start) & (ids < start + num_local)
    adjusted = tl.where(is_local, ids - start, -1)
    tl.store(adjusted_ptr + offs, adjusted, mask=in_bounds)
    tl.atomic_add(count_ptr + adjusted, 1, mask=is_local)


@triton.jit
def masked_block_local_alias(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                             BLOCK: tl.constexpr):
    pause = time.sleep  # PROBE: a local alias hides the call from the source scan
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    pause(0)
    is_local = (ids >= start) & (ids < start + num_local)
    adjusted = tl.where(is_local, ids - start, -1)
    tl.store(adjusted_ptr + offs, adjusted, mask=in_bounds)
    tl.atomic_add(count_ptr + adjusted, 1, mask=is_local)


@triton.jit
def masked_block_plain_global(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                              BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK) + ZERO  # PROBE: not a tl.constexpr
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    is_local = (ids >= start) & (ids < start + num_local)
    adjusted = tl.where(is_local, ids - start, -1)
    tl.store(adjusted_ptr + offs, adjusted, mask=in_bounds)
    tl.atomic_add(count_ptr + adjusted, 1, mask=is_local)


# --------------------------------------------------------------------- a ticket taken out of order


@triton.jit
def _tile_histogram(ids_ptr, adjusted_ptr, num_total, start, num_local, BLOCK: tl.constexpr,
                    NUM_BINS: tl.constexpr):
    """A ticket kernel's first half, as the answer has it: the tile's outputs stored, its histogram."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    local = (ids >= start) & (ids < start + num_local)
    local_expert = tl.where(local, ids - start, -1)
    tl.store(adjusted_ptr + offs, local_expert, mask=in_bounds)
    return tl.histogram(local_expert.to(tl.int32), NUM_BINS, mask=local)


@triton.jit
def _last_program_stores(ticket, count_ptr, scratch_ptr, num_local, NUM_BINS: tl.constexpr):
    """A ticket kernel's end, as the answer has it: the last program stores the totals, clears the scratch."""
    bins = tl.arange(0, NUM_BINS)
    if ticket == tl.num_programs(0) - 1:
        totals = tl.atomic_xchg(scratch_ptr + bins, tl.full([NUM_BINS], 0, tl.int32), mask=bins < num_local)
        tl.store(count_ptr + bins, totals, mask=bins < num_local)
        tl.atomic_xchg(scratch_ptr + NUM_BINS, 0)


@triton.jit
def ticket_taken_before_the_adds(ids_ptr, adjusted_ptr, count_ptr, scratch_ptr, num_total, start, num_local,
                                 BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    hist = _tile_histogram(ids_ptr, adjusted_ptr, num_total, start, num_local, BLOCK, NUM_BINS)
    bins = tl.arange(0, NUM_BINS)
    tl.debug_barrier()
    ticket = tl.atomic_add(scratch_ptr + NUM_BINS, 1)  # PROBE: the ticket before this program's adds
    tl.atomic_add(scratch_ptr + bins, hist, mask=bins < num_local)
    _last_program_stores(ticket, count_ptr, scratch_ptr, num_local, NUM_BINS)


@triton.jit
def ticket_barrier_in_a_comment(ids_ptr, adjusted_ptr, count_ptr, scratch_ptr, num_total, start, num_local,
                                BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    hist = _tile_histogram(ids_ptr, adjusted_ptr, num_total, start, num_local, BLOCK, NUM_BINS)
    bins = tl.arange(0, NUM_BINS)
    tl.atomic_add(scratch_ptr + bins, hist, mask=bins < num_local)
    # tl.debug_barrier() goes here   <- PROBE: the barrier only in a comment
    ticket = tl.atomic_add(scratch_ptr + NUM_BINS, 1)
    _last_program_stores(ticket, count_ptr, scratch_ptr, num_local, NUM_BINS)


@triton.jit
def ticket_barrier_after_the_ticket(ids_ptr, adjusted_ptr, count_ptr, scratch_ptr, num_total, start,
                                    num_local, BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    hist = _tile_histogram(ids_ptr, adjusted_ptr, num_total, start, num_local, BLOCK, NUM_BINS)
    bins = tl.arange(0, NUM_BINS)
    tl.atomic_add(scratch_ptr + bins, hist, mask=bins < num_local)
    ticket = tl.atomic_add(scratch_ptr + NUM_BINS, 1)
    tl.debug_barrier()  # PROBE: after the ticket, it orders nothing that matters
    _last_program_stores(ticket, count_ptr, scratch_ptr, num_local, NUM_BINS)


# ------------------------------------------------------------------------- right for one launch only


@triton.jit
def naive_four_tokens_per_program(ids_ptr, adjusted_ptr, count_ptr, num_tokens, topk, start, num_local,
                                  TOKENS_PER_PROGRAM: tl.constexpr):
    pid = tl.program_id(0)
    for i in range(TOKENS_PER_PROGRAM):
        token = pid * 4 + i  # PROBE: 4 where TOKENS_PER_PROGRAM belongs
        if token < num_tokens:
            for k in range(topk):
                slot = token * topk + k
                expert = tl.load(ids_ptr + slot)
                if (expert >= start) & (expert < start + num_local):
                    tl.store(adjusted_ptr + slot, expert - start)
                    tl.atomic_add(count_ptr + (expert - start), 1)
                else:
                    tl.store(adjusted_ptr + slot, -1)


@triton.jit
def naive_topk_at_most_16(ids_ptr, adjusted_ptr, count_ptr, num_tokens, topk, start, num_local,
                          TOKENS_PER_PROGRAM: tl.constexpr):
    pid = tl.program_id(0)
    for i in range(TOKENS_PER_PROGRAM):
        token = pid * TOKENS_PER_PROGRAM + i
        if token < num_tokens:
            for k in range(16):  # PROBE: slots past a token's 16th are never touched
                if k < topk:
                    slot = token * topk + k
                    expert = tl.load(ids_ptr + slot)
                    if (expert >= start) & (expert < start + num_local):
                        tl.store(adjusted_ptr + slot, expert - start)
                        tl.atomic_add(count_ptr + (expert - start), 1)
                    else:
                        tl.store(adjusted_ptr + slot, -1)


@triton.jit
def decode_tiles_of_64(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                       BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    counts = tl.full([NUM_BINS], 0, tl.int32)
    for tile in range(0, (num_total + BLOCK - 1) // BLOCK):
        offs = tile * 64 + tl.arange(0, BLOCK)  # PROBE: 64 where BLOCK belongs
        in_bounds = offs < num_total
        ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
        local = (ids >= start) & (ids < start + num_local)
        local_expert = tl.where(local, ids - start, -1)
        tl.store(adjusted_ptr + offs, local_expert, mask=in_bounds)
        counts += tl.histogram(local_expert.to(tl.int32), NUM_BINS, mask=local)
    bins = tl.arange(0, NUM_BINS)
    tl.store(count_ptr + bins, counts, mask=bins < num_local)


@triton.jit
def ticket_tiles_of_64(ids_ptr, adjusted_ptr, count_ptr, scratch_ptr, num_total, start, num_local,
                       BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    offs = tl.program_id(0) * 64 + tl.arange(0, BLOCK)  # PROBE: 64 where BLOCK belongs
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    local = (ids >= start) & (ids < start + num_local)
    local_expert = tl.where(local, ids - start, -1)
    tl.store(adjusted_ptr + offs, local_expert, mask=in_bounds)
    hist = tl.histogram(local_expert.to(tl.int32), NUM_BINS, mask=local)
    bins = tl.arange(0, NUM_BINS)
    tl.atomic_add(scratch_ptr + bins, hist, mask=bins < num_local)
    tl.debug_barrier()
    ticket = tl.atomic_add(scratch_ptr + NUM_BINS, 1)
    _last_program_stores(ticket, count_ptr, scratch_ptr, num_local, NUM_BINS)


@triton.jit
def stable_rank_32_bins(adjusted_ptr, rank_ptr, tile_count_ptr, num_total, num_local,
                        BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    pid = tl.program_id(0)
    slot = pid * BLOCK + tl.arange(0, BLOCK)
    inside = slot < num_total
    expert = tl.load(adjusted_ptr + slot, mask=inside, other=-1)
    local = (expert >= 0) & inside
    bins = tl.arange(0, 32)  # PROBE: 32 columns whatever num_local; experts >= 32 are never ranked
    hit = (expert[:, None] == bins[None, :]) & local[:, None]
    upto = tl.cumsum(hit.to(tl.int32), axis=0)
    rank = tl.sum(tl.where(hit, upto, 0), axis=1) - 1
    tl.store(rank_ptr + slot, tl.where(local, rank, -1), mask=inside)
    tl.store(tile_count_ptr + pid * NUM_BINS + bins, tl.sum(hit.to(tl.int32), axis=0),
             mask=bins < NUM_BINS)


# ----------------------------------------------------------------------- a cap on compare-and-swap


@triton.jit
def masked_block_cas_capped(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                            BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    is_local = (ids >= start) & (ids < start + num_local)
    adjusted = tl.where(is_local, ids - start, -1)
    tl.store(adjusted_ptr + offs, adjusted, mask=in_bounds)
    target = count_ptr + tl.where(is_local, adjusted, 0)
    todo = is_local
    tries = 0
    while (tl.sum(todo.to(tl.int32), axis=0) > 0) & (tries < BLOCK + 2):  # PROBE: gives up after BLOCK + 2
        old = tl.load(target, mask=todo, other=0)
        seen = tl.atomic_cas(target, old, old + todo.to(tl.int32))
        todo = todo & (seen != old)
        tries += 1


# ---------------------------------------------------------------- right, or wrong with a fitting message


@triton.jit
def ticket_counts_by_xchg(ids_ptr, adjusted_ptr, count_ptr, scratch_ptr, num_total, start, num_local,
                          BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    hist = _tile_histogram(ids_ptr, adjusted_ptr, num_total, start, num_local, BLOCK, NUM_BINS)
    bins = tl.arange(0, NUM_BINS)
    tl.atomic_add(scratch_ptr + bins, hist, mask=bins < num_local)
    tl.debug_barrier()
    ticket = tl.atomic_add(scratch_ptr + NUM_BINS, 1)
    if ticket == tl.num_programs(0) - 1:
        totals = tl.atomic_xchg(scratch_ptr + bins, tl.full([NUM_BINS], 0, tl.int32), mask=bins < num_local)
        tl.atomic_xchg(count_ptr + bins, totals, mask=bins < num_local)  # right: an atomic store
        tl.atomic_xchg(scratch_ptr + NUM_BINS, 0)


@triton.jit
def decode_counts_by_xchg(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                          BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    counts = tl.full([NUM_BINS], 0, tl.int32)
    for tile in range(0, (num_total + BLOCK - 1) // BLOCK):
        offs = tile * BLOCK + tl.arange(0, BLOCK)
        in_bounds = offs < num_total
        ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
        local = (ids >= start) & (ids < start + num_local)
        local_expert = tl.where(local, ids - start, -1)
        tl.store(adjusted_ptr + offs, local_expert, mask=in_bounds)
        counts += tl.histogram(local_expert.to(tl.int32), NUM_BINS, mask=local)
    bins = tl.arange(0, NUM_BINS)
    tl.atomic_xchg(count_ptr + bins, counts, mask=bins < num_local)  # right: an atomic store


@triton.jit
def _calls(what: tl.constexpr):
    what(0)  # in the interpreter this is plain Python


@triton.jit
def masked_block_sys_exit(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local, BLOCK: tl.constexpr):
    _calls(SYSEXIT)


@triton.jit
def masked_block_calls_itself(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                              BLOCK: tl.constexpr):
    masked_block_calls_itself(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local, BLOCK)


@triton.jit
def masked_block_no_pid_offset(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                               BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)  # PROBE: pid * BLOCK forgotten, every program works on slots 0..BLOCK-1
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    is_local = (ids >= start) & (ids < start + num_local)
    adjusted = tl.where(is_local, ids - start, -1)
    tl.store(adjusted_ptr + offs, adjusted, mask=in_bounds)
    tl.atomic_add(count_ptr + adjusted, 1, mask=is_local)


@triton.jit
def decode_no_tile_offset(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                          BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    counts = tl.full([NUM_BINS], 0, tl.int32)
    for tile in range(0, (num_total + BLOCK - 1) // BLOCK):  # noqa: B007 - the probe: tile goes unused
        offs = tl.arange(0, BLOCK)  # PROBE: tile * BLOCK forgotten, every step reads the first tile
        in_bounds = offs < num_total
        ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
        local = (ids >= start) & (ids < start + num_local)
        local_expert = tl.where(local, ids - start, -1)
        tl.store(adjusted_ptr + offs, local_expert, mask=in_bounds)
        counts += tl.histogram(local_expert.to(tl.int32), NUM_BINS, mask=local)
    bins = tl.arange(0, NUM_BINS)
    tl.store(count_ptr + bins, counts, mask=bins < num_local)


# (exercise, probe, object, verdict, text the report must contain)
PROBES = [
    ("naive", "break out of the token loop", naive_break, "FAIL", "cannot leave a loop early"),
    ("naive", "return inside the token loop", naive_early_return, "FAIL", "cannot leave a loop early"),
    ("masked_block", "a logger call, LOG.debug", masked_block_logger_call, "FAIL", "calls LOG.debug"),
    ("masked_block", "a list's append", masked_block_list_append, "FAIL", "calls SEEN.append"),
    ("masked_block", "pause = time.sleep; pause(0)", masked_block_local_alias, "FAIL", "calls time.sleep"),
    ("masked_block", "a plain int global", masked_block_plain_global, "FAIL", "only tl.constexpr globals"),
    ("ticket", "the ticket before the adds", ticket_taken_before_the_adds, "FAIL",
     "added into the scratch after taking its ticket"),
    ("ticket", "tl.debug_barrier() only in a comment", ticket_barrier_in_a_comment, "FAIL",
     "with no tl.debug_barrier() between"),
    ("ticket", "tl.debug_barrier() after the ticket", ticket_barrier_after_the_ticket, "FAIL",
     "then tl.debug_barrier()"),
    ("naive", "pid * 4 for TOKENS_PER_PROGRAM", naive_four_tokens_per_program, "FAIL",
     "passes with TOKENS_PER_PROGRAM=4"),
    ("naive", "range(16) over a token's slots", naive_topk_at_most_16, "FAIL", "topk=20"),
    ("decode", "tile * 64 for tile * BLOCK", decode_tiles_of_64, "FAIL", "passes with BLOCK=64"),
    ("ticket", "pid * 64 for pid * BLOCK", ticket_tiles_of_64, "FAIL", "passes with BLOCK=64"),
    ("stable_rank", "32 one-hot columns", stable_rank_32_bins, "FAIL", "never a fixed number"),
    ("masked_block", "a compare-and-swap loop capped at BLOCK + 2 tries", masked_block_cas_capped, "FAIL",
     "no cap on the tries"),
    ("ticket", "the totals written with tl.atomic_xchg", ticket_counts_by_xchg, "PASS", "runs pass"),
    ("decode", "the counts written with tl.atomic_xchg", decode_counts_by_xchg, "PASS", "runs pass"),
    ("masked_block", "sys.exit hidden in a helper", masked_block_sys_exit, "FAIL", "asked Python to stop"),
    ("masked_block", "a kernel that calls itself", masked_block_calls_itself, "FAIL", "cannot call itself"),
    ("masked_block", "offs without pid * BLOCK", masked_block_no_pid_offset, "FAIL",
     "offs = pid * BLOCK + tl.arange(0, BLOCK)"),
    ("decode", "offs without tile * BLOCK", decode_no_tile_offset, "FAIL",
     "offs = tile * BLOCK + tl.arange(0, BLOCK)"),
]
"""Each probe with the verdict and the words it must get from ``check``."""

MISFITS = {"sys.exit hidden in a helper": "read Triton's message above",
           "a kernel that calls itself": "a loop that never ends",
           "offs without pid * BLOCK": "check the store mask / loop bounds",
           "offs without tile * BLOCK": "check the store mask / loop bounds",
           "the totals written with tl.atomic_xchg": "use an atomic",
           "the counts written with tl.atomic_xchg": "use an atomic"}
"""Words a probe's report must no longer contain: the message that used to misfit its mistake."""
