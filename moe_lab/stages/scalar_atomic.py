"""``scalar_atomic``: the same kernel as ``tl_full``, with the scalar ``1`` as atomic value.

What changed: ``tl.atomic_add(count_ptr + adjusted, 1, mask=is_local)`` instead of a vector of
ones, and clearer index names. This is the version rtp-llm ships. It was presented as an
efficiency fix; the compiler broadcasts the scalar to the same vector, and the generated PTX is the
same ``atom.global.gpu.acq_rel.add`` per element (notebook 04 diffs the two: no line of PTX or SASS
differs, and the recorded H100 timings are the same within noise). A readability change, not a speed-up.
"""

from __future__ import annotations

import triton
import triton.language as tl

from moe_lab.stages._kernel import PER_SLOT, TILES, Kernel
from moe_lab.stages.tl_full import block_size


@triton.jit
def scalar_atomic_kernel(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                         BLOCK: tl.constexpr):
    block_start = tl.program_id(0) * BLOCK
    slot = block_start + tl.arange(0, BLOCK)  # this program's tile of slots
    valid_slot = slot < num_total  # the last tile runs past the end
    expert = tl.load(ids_ptr + slot, mask=valid_slot, other=-1)  # -1 past the end: never local
    local = (expert >= start) & (expert < start + num_local) & valid_slot
    local_expert = tl.where(local, expert - start, -1)  # remote ids and padding both become -1
    tl.store(adjusted_ptr + slot, local_expert, mask=valid_slot)
    tl.atomic_add(count_ptr + local_expert, 1, mask=local)  # scalar 1, broadcast: same code as a vector


KERNEL = Kernel(scalar_atomic_kernel, grid=TILES, writes=PER_SLOT, sem="acq_rel",
                args=("ids", "adjusted", "counts", "num_total", "start", "num_local"),
                block=lambda topk, num_total: block_size(topk),
                constexprs=lambda block, topk, num_local: {"BLOCK": block})


def launch(topk_ids, adjusted, counts, start, num_local, **overrides):
    """Launch on prepared buffers (counts must be zeroed) by ``KERNEL``'s rule; the benchmarks use it."""
    KERNEL.launch(topk_ids, adjusted, counts, start, num_local, **overrides)


def run(topk_ids, start, num_local):
    return KERNEL.run(topk_ids, start, num_local, stage="scalar_atomic")
