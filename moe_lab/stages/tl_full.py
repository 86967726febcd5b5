"""``tl_full``: flatten the ids, one masked power-of-two block per program.

What changed from ``naive``: the ``[num_tokens, topk]`` ids are treated as one flat array of
``num_total = num_tokens * topk`` slots. Each program loads ``BLOCK`` consecutive slots as one vector
(coalesced, every lane busy), masks the tail past ``num_total`` (loading ``other=-1`` there, a value
that is never local), remaps with ``tl.where`` and issues one vector ``tl.atomic_add`` with a vector
of ones, ``tl.full([BLOCK], 1, tl.int32)``, masked to the local slots.

``BLOCK`` follows the original: ``next_power_of_2(min(256, 1024 // topk))``. The older
``min(256, 1024 // topk)`` gave 170 for topk 6: not a power of two, so ``tl.arange(0, BLOCK)``
failed just as ``row_loop`` did; rounding up to 256 fixes it, since the mask covers the excess.

What it still pays: one global atomic per local slot, all aimed at ``num_local`` counters that sit
in one or two 128-byte L2 lines. ``block_histogram`` removes that.
"""

from __future__ import annotations

import triton
import triton.language as tl

from moe_lab.stages._kernel import PER_SLOT, TILES, Kernel


def block_size(topk: int) -> int:
    """The original launch rule: a power of two near 1024 // topk slots, at most 256."""
    return triton.next_power_of_2(max(1, min(256, 1024 // max(topk, 1))))


@triton.jit
def tl_full_kernel(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                   BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)  # flat slots: any topk, BLOCK a power of two
    in_bounds = offs < num_total  # the last block runs past the end
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)  # -1 past the end: never local
    is_local = (ids >= start) & (ids < start + num_local) & in_bounds
    adjusted = tl.where(is_local, ids - start, -1)  # remote ids and padding both become -1
    tl.store(adjusted_ptr + offs, adjusted, mask=in_bounds)
    tl.atomic_add(count_ptr + adjusted, tl.full([BLOCK], 1, tl.int32), mask=is_local)  # per local slot


KERNEL = Kernel(tl_full_kernel, grid=TILES, writes=PER_SLOT, sem="acq_rel",
                args=("ids", "adjusted", "counts", "num_total", "start", "num_local"),
                block=lambda topk, num_total: block_size(topk),
                constexprs=lambda block, topk, num_local: {"BLOCK": block})


def run(topk_ids, start, num_local):
    return KERNEL.run(topk_ids, start, num_local, stage="tl_full")
