"""``handoff``: many programs and no last one: the first program to arrive zeroes the counts for all.

What changed from ``one_launch``: there the programs add into a scratch accumulator and the last one
to finish copies it into ``expert_count``. Finding out who is last costs every program a release fence
and a ticket, and the last one an exchange: round trips to L2 that come after the work, on the path of
every call. Here the counts themselves are the accumulator. Each program takes an arrival number (one
atomic, issued while its first tile loads); the first to arrive zeroes ``expert_count`` and raises a
flag; every program adds its tile histograms into the counts once it sees the flag, which by then was
raised long ago. Nobody waits at the end: the launch is over when the last add lands.

The state is two words of the stream's scratch (:func:`moe_lab.stages.one_launch.scratch` says who
shares one): the arrivals (low 16 bits) under a generation count, and the flag, which holds the
generation whose counts are zeroed. The last program to arrive moves to the next generation and
clears the arrivals, so nothing is reset at the end of a call and the flag left by the previous call
never matches. A program only ever waits for the first arriver, which is running by then: no program
waits for one that may not have started.

Measured on an H200 under CUDA-graph replay (``python -m moe_lab.measure.midsize``): 10 to 20% faster than
``one_launch`` from 8K to 2M slots, and still about twice a copy of the same bytes, the round trips of
the arrival, the fence and the flag being most of a mid-size call.
"""

from __future__ import annotations

import triton
import triton.language as tl

from moe_lab.stages import one_launch
from moe_lab.stages._kernel import PER_BIN_FLAG, PERSISTENT, Kernel
from moe_lab.stages.block_histogram import check_bins, num_bins

MAX_PROGRAMS = 65535  # arrivals are counted in 16 bits


@triton.jit
def handoff_kernel(ids_ptr, adjusted_ptr, count_ptr, scratch_ptr, num_total, start, num_local,
                   BLOCK: tl.constexpr, NUM_BINS: tl.constexpr, STATE: tl.constexpr):
    pid = tl.program_id(0)
    num_programs = tl.num_programs(0)
    arrivals_ptr = scratch_ptr + STATE  # low 16 bits: programs arrived; above: the generation
    flag_ptr = scratch_ptr + STATE + 1  # the generation whose counts are zeroed
    slot = pid * BLOCK + tl.arange(0, BLOCK)  # the first tile, loaded before anything waits
    valid_slot = slot < num_total  # the last tile runs past the end
    expert = tl.load(ids_ptr + slot, mask=valid_slot, other=-1)  # -1 past the end: never local
    arrival = tl.atomic_add(arrivals_ptr, 1, sem="relaxed")  # its round trip overlaps the load's
    raised = ((arrival >> 16) + 1) & 0xFFFF  # the flag that says "zeroed in this generation"
    bins = tl.arange(0, NUM_BINS)
    is_bin = bins < num_local  # NUM_BINS is num_local rounded up to a power of two
    if (arrival & 0xFFFF) == 0:  # first to arrive: zero the counts, then raise the flag
        tl.store(count_ptr + bins, tl.full([NUM_BINS], 0, tl.int32), mask=is_bin)
        tl.debug_barrier()  # every thread's zeros come before the flag
        tl.atomic_xchg(flag_ptr, raised, sem="release")  # release: the zeros are seen before the flag
    if (arrival & 0xFFFF) == num_programs - 1:  # last to arrive: next generation, arrivals back to 0
        tl.atomic_add(arrivals_ptr, 65536 - num_programs, sem="relaxed")
    local = (expert >= start) & (expert < start + num_local) & valid_slot
    local_expert = tl.where(local, expert - start, -1)  # remote ids and padding both become -1
    tl.store(adjusted_ptr + slot, local_expert, mask=valid_slot)
    counts = tl.histogram(local_expert.to(tl.int32), NUM_BINS, mask=local)  # this program's, in registers
    for tile in range(pid + num_programs, (num_total + BLOCK - 1) // BLOCK, num_programs):  # persistent
        slot = tile * BLOCK + tl.arange(0, BLOCK)  # BLOCK consecutive slots: coalesced loads
        valid_slot = slot < num_total
        expert = tl.load(ids_ptr + slot, mask=valid_slot, other=-1)
        local = (expert >= start) & (expert < start + num_local) & valid_slot
        local_expert = tl.where(local, expert - start, -1)
        tl.store(adjusted_ptr + slot, local_expert, mask=valid_slot)
        counts += tl.histogram(local_expert.to(tl.int32), NUM_BINS, mask=local)
    seen = tl.atomic_add(flag_ptr, 0, sem="acquire")  # acquire: the zeros are seen before our adds
    while seen != raised:  # raised long ago, almost always: one read
        seen = tl.atomic_add(flag_ptr, 0, sem="acquire")
    tl.atomic_add(count_ptr + bins, counts, mask=is_bin & (counts > 0), sem="relaxed")  # one per bin


KERNEL = Kernel(handoff_kernel, grid=PERSISTENT, writes=PER_BIN_FLAG, sem="relaxed",
                args=("ids", "adjusted", "counts", "scratch", "num_total", "start", "num_local"),
                block=lambda topk, num_total: one_launch.tile_size(num_total),
                constexprs=lambda block, topk, num_local: {"BLOCK": block, "NUM_BINS": num_bins(num_local),
                                                           "STATE": one_launch.HANDOFF_STATE},
                num_warps=one_launch.num_warps, programs_per_sm=one_launch.PROGRAMS_PER_SM,
                max_programs=MAX_PROGRAMS, check=check_bins,
                scratch=lambda device, stream=None: one_launch.scratch(device, stream), ir_slots=1 << 17)


def launch(topk_ids, adjusted, counts, start, num_local, *, scratch_buffer=None, **overrides):
    """Launch on prepared buffers by ``KERNEL``'s rule; ``counts`` needs no zeroing (the first program
    zeroes it). ``overrides``: ``block=``, ``num_warps=``, ``programs_per_sm=`` for tuning;
    ``scratch_buffer``: a ``SCRATCH_SIZE`` int32 tensor to use instead of the stream's (zeroed, or
    left by earlier handoff launches)."""
    KERNEL.launch(topk_ids, adjusted, counts, start, num_local, scratch=scratch_buffer, **overrides)


def run(topk_ids, start, num_local):
    return KERNEL.run(topk_ids, start, num_local, stage="handoff")


def state_is_clean(scratch) -> bool:
    """Whether ``scratch`` is ready for the next launch: no arrivals, the flag at the generation."""
    arrivals, flag = scratch[one_launch.HANDOFF_STATE:one_launch.HANDOFF_STATE + 2].tolist()
    return arrivals & 0xFFFF == 0 and flag == (arrivals >> 16) & 0xFFFF
