"""``naive``: every slot loaded, remapped, stored and counted one scalar at a time.

What changed from ``row_loop``: the inner ``tl.arange(0, TOPK)`` vector became a loop over
``topk`` scalars, so any topk works (6 included). What it cost: each program now runs a serial
chain of scalar steps. All 128 threads of its 4 warps walk the loop and load the same id; one of
them stores and adds, and every add is Triton's default ``acq_rel`` atomic, which the sm_90 code
wraps in barriers, a memory fence and a cache invalidation. The lanes and the coalescing are thrown
away, and each step waits for the last. Correct, and slow (notebook 02 shows the SASS).
"""

from __future__ import annotations

import triton
import triton.language as tl

from moe_lab.stages._kernel import PER_SLOT, TOKENS, Kernel

TOKENS_PER_PROGRAM = 32


@triton.jit
def naive_kernel(ids_ptr, adjusted_ptr, count_ptr, num_tokens, topk, start, num_local,
                 TOKENS_PER_PROGRAM: tl.constexpr):
    pid = tl.program_id(0)
    for i in range(TOKENS_PER_PROGRAM):
        token = pid * TOKENS_PER_PROGRAM + i
        if token < num_tokens:  # the last program's tokens run past the end
            for k in range(topk):  # a scalar loop: any topk works, one slot at a time
                slot = token * topk + k
                expert = tl.load(ids_ptr + slot)  # one scalar load: no coalescing, no vector lanes
                if (expert >= start) & (expert < start + num_local):
                    tl.store(adjusted_ptr + slot, expert - start)
                    tl.atomic_add(count_ptr + (expert - start), 1)  # one global atomic per local slot
                else:  # remote ids and padding both become -1
                    tl.store(adjusted_ptr + slot, -1)


KERNEL = Kernel(naive_kernel, grid=TOKENS, writes=PER_SLOT, sem="acq_rel",
                args=("ids", "adjusted", "counts", "num_tokens", "topk", "start", "num_local"),
                block=lambda topk, num_total: TOKENS_PER_PROGRAM * topk,
                constexprs=lambda block, topk, num_local: {"TOKENS_PER_PROGRAM": block // topk})


def run(topk_ids, start, num_local):
    return KERNEL.run(topk_ids, start, num_local, stage="naive")
