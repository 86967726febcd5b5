"""Hostile and unusual learner code for the exercise checker: each probe is one change from a solution.

``PROBES`` lists ``(exercise, probe name, object, verdict, text the report must contain)``; the verdict
is ``"PASS"`` or ``"FAIL"``. A kernel here that calls ``os._exit`` or sleeps hides the call from the
source scan (through a ``tl.constexpr`` wrapped in a jitted helper the scan cannot read), so that the
run itself must hold it. Import this module after ``moe_lab`` (tests/conftest.py does).
"""

from __future__ import annotations

import os
import time

import triton
import triton.language as tl

# ------------------------------------------------------------------------------ small-number shortcuts


@triton.jit
def masked_block_first_8_programs(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                                  BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    if pid < 8:  # PROBE: programs 8 and up do nothing
        offs = pid * BLOCK + tl.arange(0, BLOCK)
        in_bounds = offs < num_total
        ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
        is_local = (ids >= start) & (ids < start + num_local)
        adjusted = tl.where(is_local, ids - start, -1)
        tl.store(adjusted_ptr + offs, adjusted, mask=in_bounds)
        tl.atomic_add(count_ptr + adjusted, 1, mask=is_local)


@triton.jit
def masked_block_first_600_slots(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                                 BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = (offs < num_total) & (offs < 600)  # PROBE: slots 600 and up are never touched
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    is_local = (ids >= start) & (ids < start + num_local)
    adjusted = tl.where(is_local, ids - start, -1)
    tl.store(adjusted_ptr + offs, adjusted, mask=in_bounds)
    tl.atomic_add(count_ptr + adjusted, 1, mask=is_local)


@triton.jit
def masked_block_small_start(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                             BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    is_local = (ids >= start) & (ids < start + num_local) & (start < 512)  # PROBE: large ranks count nothing
    adjusted = tl.where(is_local, ids - start, -1)
    tl.store(adjusted_ptr + offs, adjusted, mask=in_bounds)
    tl.atomic_add(count_ptr + adjusted, 1, mask=is_local)


@triton.jit
def decode_nine_tiles(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                      BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    counts = tl.full([NUM_BINS], 0, tl.int32)
    for tile in range(0, 9):  # PROBE: a fixed number of tiles, 576 slots at BLOCK=64
        offs = tile * BLOCK + tl.arange(0, BLOCK)
        in_bounds = offs < num_total
        ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
        local = (ids >= start) & (ids < start + num_local)
        local_expert = tl.where(local, ids - start, -1)
        tl.store(adjusted_ptr + offs, local_expert, mask=in_bounds)
        counts += tl.histogram(local_expert.to(tl.int32), NUM_BINS, mask=local)
    bins = tl.arange(0, NUM_BINS)
    tl.store(count_ptr + bins, counts, mask=bins < num_local)


# ------------------------------------------------------------------------------------ program order


@triton.jit
def ticket_program_zero_stores(ids_ptr, adjusted_ptr, count_ptr, scratch_ptr, num_total, start, num_local,
                               BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
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
    if ticket == tl.num_programs(0) - 1:
        tl.atomic_xchg(scratch_ptr + NUM_BINS, 0)
    if tl.program_id(0) == 0:  # PROBE: program 0 stores the totals, whatever its ticket
        totals = tl.atomic_xchg(scratch_ptr + bins, tl.full([NUM_BINS], 0, tl.int32), mask=bins < num_local)
        tl.store(count_ptr + bins, totals, mask=bins < num_local)


# --------------------------------------------------------------------------------- memory scope


@triton.jit
def relaxed_cta_scope(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    is_local = (ids >= start) & (ids < start + num_local)
    adjusted = tl.where(is_local, ids - start, -1)
    tl.store(adjusted_ptr + offs, adjusted, mask=in_bounds)
    tl.atomic_add(count_ptr + adjusted, 1, mask=is_local, sem="relaxed", scope="cta")  # PROBE


@triton.jit
def ticket_cta_scope(ids_ptr, adjusted_ptr, count_ptr, scratch_ptr, num_total, start, num_local,
                     BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    local = (ids >= start) & (ids < start + num_local)
    local_expert = tl.where(local, ids - start, -1)
    tl.store(adjusted_ptr + offs, local_expert, mask=in_bounds)
    hist = tl.histogram(local_expert.to(tl.int32), NUM_BINS, mask=local)
    bins = tl.arange(0, NUM_BINS)
    tl.atomic_add(scratch_ptr + bins, hist, mask=(bins < num_local) & (hist > 0))
    tl.debug_barrier()
    ticket = tl.atomic_add(scratch_ptr + NUM_BINS, 1, scope="cta")  # PROBE: orders nothing across SMs
    if ticket == tl.num_programs(0) - 1:
        totals = tl.atomic_xchg(scratch_ptr + bins, tl.full([NUM_BINS], 0, tl.int32), mask=bins < num_local)
        tl.store(count_ptr + bins, totals, mask=bins < num_local)
        tl.atomic_xchg(scratch_ptr + NUM_BINS, 0)


# ------------------------------------------------------------------------------------ the specs


def block_size_one(topk: int) -> int:
    return 1  # PROBE: a power of two, far from the rule


def block_size_256(topk: int) -> int:
    return 256  # PROBE: a power of two, 4x the rule at topk 16


def block_size_512_small_topk(topk: int) -> int:
    return 512 if topk <= 2 else triton.next_power_of_2(min(256, 1024 // topk))  # PROBE: past 256


def block_size_from_the_library(topk: int) -> int:
    from moe_lab.stages import tl_full

    return tl_full.block_size(topk)  # PROBE: the answer, imported


@triton.jit
def block_histogram_adds_zeros(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                               BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    local = (ids >= start) & (ids < start + num_local)
    local_expert = tl.where(local, ids - start, -1)
    tl.store(adjusted_ptr + offs, local_expert, mask=in_bounds)
    hist = tl.histogram(local_expert.to(tl.int32), NUM_BINS, mask=local)
    bins = tl.arange(0, NUM_BINS)
    tl.atomic_add(count_ptr + bins, hist, mask=bins < num_local)  # PROBE: zero counts added too


@triton.jit
def block_histogram_per_slot_atomics(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                                     BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    local = (ids >= start) & (ids < start + num_local)
    local_expert = tl.where(local, ids - start, -1)
    tl.store(adjusted_ptr + offs, local_expert, mask=in_bounds)
    tl.atomic_add(count_ptr + local_expert, 1, mask=local)  # PROBE: one atomic per slot, no histogram


# ------------------------------------------------------------------------ code that must not escape


def _swallowed(seconds):
    """Stands for a learner's Python loop that swallows every exception, the time-out's included."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            time.sleep(0.01)
        except BaseException:  # noqa: BLE001 - the probe: nothing may stop this loop from inside
            pass


def _bare(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            time.sleep(0.01)
        except:  # noqa: E722 - the probe
            pass


SWALLOW = tl.constexpr(_swallowed)  # called inside the kernels below: a constexpr hides it from the scan
BARE = tl.constexpr(_bare)
SLEEP = tl.constexpr(time.sleep)
EXIT = tl.constexpr(os._exit)


@triton.jit
def _hidden(what: tl.constexpr):
    what(3600)  # in the interpreter this is plain Python: sleeps, swallows or exits


@triton.jit
def masked_block_swallows_base_exception(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                                         BLOCK: tl.constexpr):
    _hidden(SWALLOW)


@triton.jit
def masked_block_swallows_bare_except(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                                      BLOCK: tl.constexpr):
    _hidden(BARE)


@triton.jit
def masked_block_sleeps(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local, BLOCK: tl.constexpr):
    _hidden(SLEEP)


@triton.jit
def masked_block_exits(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local, BLOCK: tl.constexpr):
    _hidden(EXIT)


@triton.jit
def masked_block_calls_os_exit(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                               BLOCK: tl.constexpr):
    os._exit(3)  # PROBE: an attribute call, in plain sight


@triton.jit
def masked_block_calls_time_sleep(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                                  BLOCK: tl.constexpr):
    time.sleep(3600)  # PROBE


def block_size_exits(topk: int) -> int:
    os._exit(3)


def block_size_sleeps(topk: int) -> int:
    time.sleep(3600)
    return 128


def block_size_swallows(topk: int) -> int:
    _swallowed(3600)
    return 128


# --------------------------------------------------------------------------- unusual but correct


@triton.jit
def masked_block_cas_retry_loop(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                                BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    is_local = (ids >= start) & (ids < start + num_local)
    adjusted = tl.where(is_local, ids - start, -1)
    tl.store(adjusted_ptr + offs, adjusted, mask=in_bounds)
    target = count_ptr + tl.where(is_local, adjusted, 0)
    todo = is_local
    while tl.sum(todo.to(tl.int32), axis=0) > 0:  # retry until every local lane's swap went through
        old = tl.load(target, mask=todo, other=0)
        seen = tl.atomic_cas(target, old, old + todo.to(tl.int32))  # +0 where done: a no-op swap
        todo = todo & (seen != old)


# ------------------------------------------------------------------------------- misfiring hints


@triton.jit
def debug_slot_bound_off_by_one(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                                BLOCK: tl.constexpr):
    first = tl.program_id(0) * BLOCK
    for i in range(BLOCK):
        slot = first + i
        if slot <= num_total:  # PROBE: one slot past the end
            expert = tl.load(ids_ptr + slot)
            if (expert >= start) & (expert < start + num_local):
                tl.store(adjusted_ptr + slot, expert - start)
                tl.atomic_add(count_ptr + (expert - start), 1)
            else:
                tl.store(adjusted_ptr + slot, -1)


@triton.jit
def block_histogram_early_int32(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                                BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1).to(tl.int32)  # PROBE: 2**40 becomes 0
    local = (ids >= start) & (ids < start + num_local)
    local_expert = tl.where(local, ids - start, -1)
    tl.store(adjusted_ptr + offs, local_expert, mask=in_bounds)
    hist = tl.histogram(local_expert, NUM_BINS, mask=local)
    bins = tl.arange(0, NUM_BINS)
    tl.atomic_add(count_ptr + bins, hist, mask=(bins < num_local) & (hist > 0))


@triton.jit
def decode_unmasked_count_store(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
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
    tl.store(count_ptr + bins, counts)  # PROBE: bins >= num_local are not counters


@triton.jit
def stable_rank_other_zero(adjusted_ptr, rank_ptr, tile_count_ptr, num_total, num_local,
                           BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    pid = tl.program_id(0)
    slot = pid * BLOCK + tl.arange(0, BLOCK)
    inside = slot < num_total
    expert = tl.load(adjusted_ptr + slot, mask=inside, other=0)  # PROBE: padding reads as expert 0
    local = expert >= 0
    bins = tl.arange(0, NUM_BINS)
    hit = (expert[:, None] == bins[None, :]) & local[:, None]
    upto = tl.cumsum(hit.to(tl.int32), axis=0)
    rank = tl.sum(tl.where(hit, upto, 0), axis=1) - 1
    tl.store(rank_ptr + slot, tl.where(local, rank, -1), mask=inside)
    tl.store(tile_count_ptr + pid * NUM_BINS + bins, tl.sum(hit.to(tl.int32), axis=0))


# (exercise, probe, object, verdict, text the report must contain)
PROBES = [
    ("masked_block", "work only in programs 0..7", masked_block_first_8_programs, "FAIL",
     "a slot was never stored"),
    ("masked_block", "mask offs < 600", masked_block_first_600_slots, "FAIL", "a slot was never stored"),
    ("masked_block", "count only when start < 512", masked_block_small_start, "FAIL",
     "start <= id < start + num_local, for every start"),
    ("decode", "a fixed range(0, 9) of tiles", decode_nine_tiles, "FAIL", "a slot was never stored"),
    ("ticket", "totals stored by program 0", ticket_program_zero_stores, "FAIL", "take a ticket"),
    ("relaxed", 'scope="cta" on the counting atomic', relaxed_cta_scope, "FAIL", "different SMs"),
    ("ticket", 'scope="cta" on the ticket', ticket_cta_scope, "FAIL", "different SMs"),
    ("block_size", "return 1", block_size_one, "FAIL", "min(256, 1024 // topk)"),
    ("block_size", "return 256", block_size_256, "FAIL", "min(256, 1024 // topk)"),
    ("block_size", "512 for topk 1-2", block_size_512_small_topk, "FAIL", "at most 256"),
    ("block_size", "the library's own block_size", block_size_from_the_library, "FAIL",
     "write the rule yourself"),
    ("block_histogram", "zero counts added", block_histogram_adds_zeros, "FAIL", "hist > 0"),
    ("block_histogram", "one atomic per slot", block_histogram_per_slot_atomics, "FAIL", "tl.histogram"),
    ("masked_block", "a loop around except BaseException", masked_block_swallows_base_exception, "FAIL",
     "did not finish"),
    ("masked_block", "a loop around a bare except", masked_block_swallows_bare_except, "FAIL",
     "did not finish"),
    ("masked_block", "time.sleep hidden in a helper", masked_block_sleeps, "FAIL", "did not finish"),
    ("masked_block", "os._exit hidden in a helper", masked_block_exits, "FAIL",
     "ended the Python process"),
    ("masked_block", "os._exit in plain sight", masked_block_calls_os_exit, "FAIL", "os._exit"),
    ("masked_block", "time.sleep in plain sight", masked_block_calls_time_sleep, "FAIL", "time.sleep"),
    ("block_size", "os._exit in block_size", block_size_exits, "FAIL", "ended the Python process"),
    ("block_size", "time.sleep in block_size", block_size_sleeps, "FAIL", "did not finish"),
    ("block_size", "a swallowing loop in block_size", block_size_swallows, "FAIL", "did not finish"),
    ("masked_block", "a compare-and-swap retry loop", masked_block_cas_retry_loop, "PASS", "runs pass"),
    ("debug", "slot <= num_total", debug_slot_bound_off_by_one, "FAIL", "slot < num_total"),
    ("block_histogram", "ids cast to int32 before the range test", block_histogram_early_int32, "FAIL",
     "cast"),
    ("decode", "the count store not masked", decode_unmasked_count_store, "FAIL",
     "tl.store(count_ptr + bins, counts, mask=bins < num_local)"),
    ("stable_rank", "other=0", stable_rank_other_zero, "FAIL", "other=-1"),
]
"""Each probe with the verdict and the words it must get from ``check``."""

SLOW = {"a loop around except BaseException", "a loop around a bare except", "time.sleep hidden in a helper",
        "time.sleep in block_size", "a swallowing loop in block_size"}
"""Probes that end only when the time budget stops them (the tests shorten the budget)."""
