"""``relaxed``: ``scalar_atomic`` with ``sem="relaxed"`` atomics.

What changed: one keyword. By default Triton's ``tl.atomic_add`` is ``acq_rel`` at GPU scope: on
NVIDIA it becomes ``atom.global.gpu.acq_rel.add``, which orders every earlier and later memory access
of the thread around the atomic. Counting needs none of that ordering: nobody reads a counter until
the kernel is over, and the end of a kernel orders everything anyway. ``sem="relaxed"`` emits
``atom.global.gpu.relaxed.add``, a lone ``REDG`` in sm_90 SASS where ``acq_rel`` needs a fence and a
cache invalidation around an ``ATOMG`` (notebook 04 shows both). On the recorded H100 run it saves
about 0.6 us per call at every size under graph replay (2.09 against 2.68 us at one token, 499.95
against 500.51 us at a million tokens): a fixed saving, large for a tiny call, nothing for a big one.
It does not remove the contention on the counters' L2 line: that takes ``block_histogram``.
"""

from __future__ import annotations

import triton
import triton.language as tl

from moe_lab.stages._kernel import PER_SLOT, TILES, Kernel
from moe_lab.stages.tl_full import block_size


@triton.jit
def relaxed_kernel(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                   BLOCK: tl.constexpr):
    slot = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)  # this program's tile of slots
    valid_slot = slot < num_total  # the last tile runs past the end
    expert = tl.load(ids_ptr + slot, mask=valid_slot, other=-1)  # -1 past the end: never local
    local = (expert >= start) & (expert < start + num_local) & valid_slot
    local_expert = tl.where(local, expert - start, -1)  # remote ids and padding both become -1
    tl.store(adjusted_ptr + slot, local_expert, mask=valid_slot)
    tl.atomic_add(count_ptr + local_expert, 1, mask=local, sem="relaxed")  # read only after the kernel


KERNEL = Kernel(relaxed_kernel, grid=TILES, writes=PER_SLOT, sem="relaxed",
                args=("ids", "adjusted", "counts", "num_total", "start", "num_local"),
                block=lambda topk, num_total: block_size(topk),
                constexprs=lambda block, topk, num_local: {"BLOCK": block})


def launch(topk_ids, adjusted, counts, start, num_local, **overrides):
    """Launch on prepared buffers (counts must be zeroed) by ``KERNEL``'s rule; ``best`` uses it."""
    KERNEL.launch(topk_ids, adjusted, counts, start, num_local, **overrides)


def run(topk_ids, start, num_local):
    return KERNEL.run(topk_ids, start, num_local, stage="relaxed")
