"""``decode``: one program for small batches; counts stored, never accumulated.

At decode time a rank sees a few hundred slots, and every stage so far spends more time on
launches than on work: ``torch.zeros`` for the counts (a memset kernel), then the kernel, whose
atomics must wait for that memset. Under CUDA-graph replay, where launch cost on the CPU is gone,
that pair is what remains.

What changed: one program walks every tile of the input (the ``block_histogram`` kernel launched
with a grid of 1 and ``WRITE_COUNTS=True``), so it owns all ``num_local`` counters and simply
*stores* its final histogram, every counter, zeros included. No memset launch, no atomics, one
kernel. It is the right tool only while one SM can stream the input quickly, which is why ``best``
uses it up to ``MAX_SLOTS`` and a multi-program histogram above that.
"""

from __future__ import annotations

import triton

from moe_lab.stages._kernel import SINGLE, STORES, Kernel
from moe_lab.stages.block_histogram import block_histogram_kernel, check_bins, num_bins

MAX_SLOTS = 2048  # measured on an H200 (python -m moe_lab.measure.midsize --sweep): handoff wins from 4096
NUM_WARPS = 8


def tile_size(num_total: int) -> int:
    """One tile for inputs up to 2048 slots, else tiles of 2048 looped over by the program."""
    return min(2048, max(16, triton.next_power_of_2(num_total)))


KERNEL = Kernel(block_histogram_kernel, grid=SINGLE, writes=STORES, sem="",
                args=("ids", "adjusted", "counts", "num_total", "start", "num_local"),
                block=lambda topk, num_total: tile_size(num_total),
                constexprs=lambda block, topk, num_local: {"BLOCK": block, "NUM_BINS": num_bins(num_local),
                                                           "WRITE_COUNTS": True},
                num_warps=lambda block: NUM_WARPS, check=check_bins, ir_slots=MAX_SLOTS)


def launch(topk_ids, adjusted, counts, start, num_local, **overrides):
    """Launch on prepared buffers by ``KERNEL``'s rule (counts need no zeroing: every one is stored);
    overrides ``block=``, ``num_warps=`` for tuning."""
    KERNEL.launch(topk_ids, adjusted, counts, start, num_local, **overrides)


def run(topk_ids, start, num_local):
    return KERNEL.run(topk_ids, start, num_local, stage="decode")
