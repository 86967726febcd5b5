"""The shipped answer of every exercise, and the planted-bug kernel of the debugging puzzle.

Where the library's own stage kernel has the exercise's signature it is the answer (``naive``,
``masked_block``, ``relaxed``, ``block_size``); the others are written here with the exercise's
signature. :func:`moe_lab.workbook.exercises.solution` shows them, only when asked.
"""

from __future__ import annotations

import linecache

import triton
import triton.language as tl


@triton.jit
def block_histogram_answer(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                           BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    slot = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)  # this program's BLOCK flat slots
    valid_slot = slot < num_total  # the last block runs past the end
    expert = tl.load(ids_ptr + slot, mask=valid_slot, other=-1)  # padding reads as -1: never local
    local = (expert >= start) & (expert < start + num_local)  # this rank's experts only
    local_expert = tl.where(local, expert - start, -1)
    tl.store(adjusted_ptr + slot, local_expert, mask=valid_slot)
    hist = tl.histogram(local_expert.to(tl.int32), NUM_BINS, mask=local)  # masked: -1 in no bin
    bins = tl.arange(0, NUM_BINS)  # NUM_BINS is num_local rounded up to a power of two
    tl.atomic_add(count_ptr + bins, hist, mask=(bins < num_local) & (hist > 0))  # one add per expert


@triton.jit
def decode_answer(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                  BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    counts = tl.full([NUM_BINS], 0, tl.int32)  # the totals live in registers
    for tile in range(0, (num_total + BLOCK - 1) // BLOCK):  # the one program walks every tile
        slot = tile * BLOCK + tl.arange(0, BLOCK)
        valid_slot = slot < num_total
        expert = tl.load(ids_ptr + slot, mask=valid_slot, other=-1)
        local = (expert >= start) & (expert < start + num_local)
        local_expert = tl.where(local, expert - start, -1)
        tl.store(adjusted_ptr + slot, local_expert, mask=valid_slot)
        counts += tl.histogram(local_expert.to(tl.int32), NUM_BINS, mask=local)
    bins = tl.arange(0, NUM_BINS)
    tl.store(count_ptr + bins, counts, mask=bins < num_local)  # every counter stored, zeros too


@triton.jit
def ticket_answer(ids_ptr, adjusted_ptr, count_ptr, scratch_ptr, num_total, start, num_local,
                  BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    slot = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    valid_slot = slot < num_total
    expert = tl.load(ids_ptr + slot, mask=valid_slot, other=-1)
    local = (expert >= start) & (expert < start + num_local)
    local_expert = tl.where(local, expert - start, -1)
    tl.store(adjusted_ptr + slot, local_expert, mask=valid_slot)
    hist = tl.histogram(local_expert.to(tl.int32), NUM_BINS, mask=local)
    bins = tl.arange(0, NUM_BINS)
    is_bin = bins < num_local
    tl.atomic_add(scratch_ptr + bins, hist, mask=is_bin & (hist > 0), sem="relaxed")  # ordered below
    tl.debug_barrier()  # every thread's adds come before this program's ticket
    ticket = tl.atomic_add(scratch_ptr + NUM_BINS, 1)  # acq_rel: publishes our adds, sees earlier ones
    if ticket == tl.num_programs(0) - 1:  # the last ticket: every other program has added
        totals = tl.atomic_xchg(scratch_ptr + bins, tl.full([NUM_BINS], 0, tl.int32), mask=is_bin)
        tl.store(count_ptr + bins, totals, mask=is_bin)  # read and cleared in one atomic step
        tl.atomic_xchg(scratch_ptr + NUM_BINS, 0)  # the ticket too: clean for the next launch


@triton.jit
def debug_answer(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local, BLOCK: tl.constexpr):
    first = tl.program_id(0) * BLOCK  # this program's BLOCK consecutive flat slots
    for i in range(BLOCK):
        slot = first + i
        if slot < num_total:  # the last program's block runs past the end
            expert = tl.load(ids_ptr + slot)
            if (expert >= start) & (expert < start + num_local):  # the fix: the range moves with start
                tl.store(adjusted_ptr + slot, expert - start)
                tl.atomic_add(count_ptr + (expert - start), 1)
            else:
                tl.store(adjusted_ptr + slot, -1)


DEBUG_SOURCE = '''\
@triton.jit
def buggy_kernel(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local, BLOCK: tl.constexpr):
    first = tl.program_id(0) * BLOCK
    for i in range(BLOCK):
        slot = first + i
        if slot < num_total:
            expert = tl.load(ids_ptr + slot)
            if (expert >= start) & (expert < num_local):
                tl.store(adjusted_ptr + slot, expert - start)
                tl.atomic_add(count_ptr + (expert - start), 1)
            else:
                tl.store(adjusted_ptr + slot, -1)
'''
"""The debugging puzzle's kernel: right on rank 0, wrong on every rank with start > 0
(find it by printing)."""


def buggy_kernel():
    """The planted-bug kernel as a ``@triton.jit`` object (runs in the interpreter on CPU)."""
    filename = "<moe_lab debug puzzle>"
    # Triton reads a kernel's source through inspect, which finds it in linecache
    linecache.cache[filename] = (len(DEBUG_SOURCE), None, DEBUG_SOURCE.splitlines(True), filename)
    namespace = {"triton": triton, "tl": tl}
    exec(compile(DEBUG_SOURCE, filename, "exec"), namespace)
    return namespace["buggy_kernel"]


def answer(name: str):
    """The object whose source answers exercise ``name``."""
    import importlib

    from moe_lab.stages import naive, relaxed, tl_full
    from moe_lab.workbook.exercises.catalogue import EXERCISES

    own = EXERCISES[name].answer if name in EXERCISES else ""
    if own:  # an exercise with its own module names its answer
        module, _, attribute = own.partition(":")
        return getattr(importlib.import_module(module), attribute)
    return {
        "naive": naive.naive_kernel,
        "debug": debug_answer,
        "block_size": tl_full.block_size,
        "masked_block": tl_full.tl_full_kernel,
        "relaxed": relaxed.relaxed_kernel,
        "block_histogram": block_histogram_answer,
        "decode": decode_answer,
        "ticket": ticket_answer,
    }[name]


__all__ = ["block_histogram_answer", "decode_answer", "ticket_answer", "debug_answer", "DEBUG_SOURCE",
           "buggy_kernel", "answer"]
