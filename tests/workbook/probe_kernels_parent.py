"""Probes that reach for the process running ``check``, not its child: globals whose attributes are
properties that end or stop the process that reads them, a forged ``src`` beside the code that really
runs, a default computed with a builtin, and a ticket whose last program reads the totals by adding 0.
The format of ``PROBES`` is probe_kernels.py's."""

from __future__ import annotations

import os
import time

import triton
import triton.language as tl

PARENT = os.getpid()  # the process that imports this file runs check(): it must never run the code below


class _EndsTheReader:
    """An object whose ``__class__`` ends the process that asks for it (outside a check's child)."""

    @property
    def __class__(self):
        if os.getpid() == PARENT:
            os._exit(77)
        return _EndsTheReader


class _StopsTheReader(type):
    """A metaclass whose ``__module__`` stops the process that asks for it."""

    @property
    def __module__(cls):
        if os.getpid() == PARENT:
            time.sleep(10**6)
        return "x"


class _Stopper(metaclass=_StopsTheReader):
    pass


ENDS = _EndsTheReader()


@triton.jit
def masked_block_names_an_ender(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                                BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    local = (ids >= start) & (ids < start + num_local)
    tl.store(adjusted_ptr + offs, tl.where(local, ids - start, -1), mask=in_bounds)
    tl.atomic_add(count_ptr + ids - start, 1, mask=local)
    if BLOCK < 0:  # never taken: only the name reaches the check
        x = ENDS  # noqa: F841


@triton.jit
def masked_block_names_a_stopper(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                                 BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    local = (ids >= start) & (ids < start + num_local)
    tl.store(adjusted_ptr + offs, tl.where(local, ids - start, -1), mask=in_bounds)
    tl.atomic_add(count_ptr + ids - start, 1, mask=local)
    if BLOCK < 0:
        x = _Stopper  # noqa: F841


@triton.jit
def debug_breaks_with_a_forged_src(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                                   BLOCK: tl.constexpr):
    first = tl.program_id(0) * BLOCK
    for i in range(BLOCK):
        slot = first + i
        if slot >= num_total:
            break  # what runs: a GPU compiler refuses it
        e = tl.load(ids_ptr + slot)
        if (e >= start) & (e < start + num_local):
            tl.store(adjusted_ptr + slot, e - start)
            tl.atomic_add(count_ptr + (e - start), 1)
        else:
            tl.store(adjusted_ptr + slot, -1)


try:  # the interpreter's function takes any attribute; a compiled kernel's src refuses one
    debug_breaks_with_a_forged_src.src = "def debug_breaks_with_a_forged_src(): pass\n"
except (AttributeError, TypeError):
    pass


@triton.jit
def masked_block_default_from_a_builtin(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                                        BLOCK: tl.constexpr = max(64, 1)):  # noqa: B008
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    local = (ids >= start) & (ids < start + num_local)
    tl.store(adjusted_ptr + offs, tl.where(local, ids - start, -1), mask=in_bounds)
    tl.atomic_add(count_ptr + ids - start, 1, mask=local)


@triton.jit
def ticket_totals_read_by_adding_zero(ids_ptr, adjusted_ptr, count_ptr, scratch_ptr, num_total, start,
                                      num_local, BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    slot = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    valid_slot = slot < num_total
    expert = tl.load(ids_ptr + slot, mask=valid_slot, other=-1)
    local = (expert >= start) & (expert < start + num_local)
    local_expert = tl.where(local, expert - start, -1)
    tl.store(adjusted_ptr + slot, local_expert, mask=valid_slot)
    tl.atomic_add(scratch_ptr + local_expert, 1, mask=local, sem="relaxed")
    tl.debug_barrier()
    ticket = tl.atomic_add(scratch_ptr + NUM_BINS, 1)
    if ticket == tl.num_programs(0) - 1:
        bins = tl.arange(0, NUM_BINS)
        is_bin = bins < num_local
        totals = tl.atomic_add(scratch_ptr + bins, 0, mask=is_bin, sem="relaxed")  # a read: adds nothing
        tl.store(count_ptr + bins, totals, mask=is_bin)
        tl.store(scratch_ptr + bins, 0, mask=is_bin)
        tl.store(scratch_ptr + NUM_BINS, 0)


PROBES = [
    ("masked_block", "a global whose __class__ ends the reader", masked_block_names_an_ender, "PASS",
     "runs pass"),
    ("masked_block", "a global whose metaclass stops the reader", masked_block_names_a_stopper, "FAIL",
     "compiling for a GPU"),
    ("debug", "a break, and a forged src without it", debug_breaks_with_a_forged_src, "FAIL", "Break"),
    ("masked_block", "BLOCK's default from max()", masked_block_default_from_a_builtin, "PASS", "runs pass"),
    ("ticket", "the totals read by adding 0", ticket_totals_read_by_adding_zero, "PASS", "runs pass"),
]
"""Each probe with the verdict and the words it must get from ``check``; the process running the check
must live through every one and return within a minute."""
