"""Stage 8, ``one_launch``: many programs, one launch, no memset: the last program writes the counts.

``decode`` needs no memset because a single program owns every counter; that stops paying once one
SM cannot stream the input quickly (a few thousand slots). ``block_histogram`` spreads the work but
needs the counters zeroed first, a second launch that costs about a microsecond under CUDA-graph
replay, as much as the whole decode kernel.

What changed: the programs add their tile histograms into a small *scratch* accumulator that is
always zero between calls, then take a ticket (``tl.atomic_add`` on a counter, which returns the old
value). The program that draws the last ticket knows every other program has finished its adds: it
swaps the accumulator back to zero with ``tl.atomic_xchg`` (reading the totals in the same atomic),
*stores* them as ``expert_count`` and resets the ticket. One launch, no memset, any number of
programs, and the scratch is clean again for the next call or graph replay.

Ordering is what makes it correct: the adds may be ``relaxed``, because a barrier
(``tl.debug_barrier``) orders every thread's adds before its program's ticket, and the ticket is an
``acq_rel`` atomic at GPU scope: its release publishes the program's adds, its acquire (in the last
program) sees everyone's. The final reads are atomics too, so no stale cached value can be read. Making
the ticket relaxed as well is measurably faster and measurably wrong: the H200 sweep in tools/ caught
miscounts with it. Each acq_rel atomic costs a round trip to L2, which is why this stage, correct at
any size, still loses to ``decode`` on tiny inputs.

The scratch is allocated once per device and kept (see :func:`scratch`): call once before capturing
a CUDA graph, and do not run two calls at the same time on two streams of one device.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._launch import prepare
from .block_histogram import MAX_BINS, check_bins, num_bins, sm_count

PROGRAMS_PER_SM = 4


def tile_size(num_total: int) -> int:
    """About 128 tiles' worth of parallelism, tiles of 256 to 8192 slots (H200 sweep, tools/)."""
    return min(8192, max(256, triton.next_power_of_2(num_total // 128)))


@triton.jit
def one_launch_kernel(ids_ptr, adjusted_ptr, count_ptr, scratch_ptr, num_total, start, num_local,
                      BLOCK: tl.constexpr, NUM_BINS: tl.constexpr, TICKET: tl.constexpr,
                      ADD_SEM: tl.constexpr = "relaxed", TICKET_SEM: tl.constexpr = "acq_rel"):
    pid = tl.program_id(0)
    ticket_ptr = scratch_ptr + TICKET  # the ticket lives just after the MAX_BINS accumulators
    num_programs = tl.num_programs(0)
    counts = tl.full([NUM_BINS], 0, tl.int32)
    for tile in range(pid, (num_total + BLOCK - 1) // BLOCK, num_programs):
        slot = tile * BLOCK + tl.arange(0, BLOCK)
        valid_slot = slot < num_total
        expert = tl.load(ids_ptr + slot, mask=valid_slot, other=-1)
        local = (expert >= start) & (expert < start + num_local) & valid_slot
        local_expert = tl.where(local, expert - start, -1)
        tl.store(adjusted_ptr + slot, local_expert, mask=valid_slot)
        counts += tl.histogram(local_expert.to(tl.int32), NUM_BINS, mask=local)
    bins = tl.arange(0, NUM_BINS)
    is_bin = bins < num_local
    tl.atomic_add(scratch_ptr + bins, counts, mask=is_bin & (counts > 0), sem=ADD_SEM)
    tl.debug_barrier()  # every thread's adds come before this program's ticket
    ticket = tl.atomic_add(ticket_ptr, 1, sem=TICKET_SEM)
    if ticket == num_programs - 1:  # last program: everyone else's adds are done
        totals = tl.atomic_xchg(scratch_ptr + bins, tl.full([NUM_BINS], 0, tl.int32), mask=is_bin,
                                sem=ADD_SEM)
        tl.store(count_ptr + bins, totals, mask=is_bin)
        tl.atomic_xchg(ticket_ptr, 0, sem=ADD_SEM)


_SCRATCH: dict[str, torch.Tensor] = {}


def scratch(device: torch.device) -> torch.Tensor:
    """The zero-between-calls accumulator (MAX_BINS counters + a ticket) of this device.

    Allocated once, on first use, and kept: CUDA graphs captured later bake in its address, and
    every finished launch leaves it zeroed. Two launches *running at the same time* on different
    streams of one device would share it: keep calls on one stream (as inference engines do).
    """
    key = str(device)
    if key not in _SCRATCH:
        if device.type == "cuda" and torch.cuda.is_current_stream_capturing():
            raise RuntimeError("one_launch/best allocate a small persistent scratch buffer on their first "
                               "call on a device; call them once eagerly (a warm-up run) before capturing "
                               "a CUDA graph")
        _SCRATCH[key] = torch.zeros(MAX_BINS + 1, dtype=torch.int32, device=device)
    return _SCRATCH[key]


def grid_size(num_total: int, device: torch.device, block: int,
              programs_per_sm: int = PROGRAMS_PER_SM) -> int:
    """One program per tile, capped at ``programs_per_sm`` per SM (they then loop over tiles)."""
    return max(1, min(triton.cdiv(num_total, block), programs_per_sm * sm_count(device)))


def launch(topk_ids, adjusted, counts, start, num_local, *, block=None, num_warps=None,
           programs_per_sm=PROGRAMS_PER_SM, **sems):
    """Launch on prepared buffers; ``counts`` needs no zeroing (the last program stores them all).

    ``sems`` (``ADD_SEM=``, ``TICKET_SEM=``) exist to measure what the ordering costs; the defaults
    (relaxed adds, acq_rel ticket) are the cheapest correct choice.
    """
    num_total = topk_ids.numel()
    block = block or tile_size(num_total)
    num_warps = num_warps or (4 if block <= 1024 else 8)
    device = topk_ids.device
    grid = grid_size(num_total, device, block, programs_per_sm)
    one_launch_kernel[(grid,)](topk_ids, adjusted, counts, scratch(device), num_total, start, num_local,
                               BLOCK=block, NUM_BINS=num_bins(num_local), TICKET=MAX_BINS,
                               num_warps=num_warps, **sems)


def run(topk_ids, current_expert_start_id, num_local_experts):
    start, num_local, adjusted, counts = prepare(topk_ids, current_expert_start_id, num_local_experts,
                                                 stage="one_launch", zero_counts=False)
    check_bins(num_local, "one_launch")
    if topk_ids.numel() == 0:
        counts.zero_()
    else:
        launch(topk_ids, adjusted, counts, start, num_local)
    return adjusted, counts
