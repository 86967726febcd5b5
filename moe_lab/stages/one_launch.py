"""``one_launch``: many programs, one launch, no memset: the last program writes the counts.

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

The scratch is state that outlives a call, so who may share it is the whole safety argument (the
details are in :func:`scratch`): on the CPU each call gets a fresh one; on a GPU each (device, stream)
keeps its own, since launches on one stream never overlap and a launch that starts always finishes,
re-zeroing it; each launch captured into a CUDA graph gets one that nothing else touches. So threads,
streams, graphs replayed side by side, several devices and interrupted calls are all safe, and the
common case (eager calls on one stream, or graph replays) keeps one launch and no memset.
"""

from __future__ import annotations

import threading

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


SCRATCH_SIZE = MAX_BINS + 1  # MAX_BINS accumulators, then the ticket
SPARES = 8
"""Pre-zeroed scratches kept per device for CUDA-graph capture (made by eager calls, outside capture)."""

_LOCK = threading.Lock()  # guards the three tables below; taken only on a table miss or in capture
_BY_STREAM: dict[tuple[int, int], torch.Tensor] = {}  # (device index, raw stream handle) -> scratch
_SPARE: dict[int, list[torch.Tensor]] = {}  # device index -> pre-zeroed scratches for captures
_CAPTURED: list[torch.Tensor] = []  # scratches baked into CUDA graphs: kept for the process


def _raw_stream(index: int) -> int:
    """The handle of the current CUDA stream of device ``index`` (the stream Triton launches on)."""
    raw = getattr(torch._C, "_cuda_getCurrentRawStream", None)
    return raw(index) if raw is not None else torch.cuda.current_stream(index).cuda_stream


def scratch(device: torch.device) -> torch.Tensor:
    """A zeroed accumulator (``MAX_BINS`` counters + a ticket) that no concurrent launch shares.

    What is guaranteed, and why:

    * **CPU (the interpreter)**: a fresh zeroed scratch per call. Allocating 4 KB is cheap there, and
      a call interrupted half-way (Ctrl-C, the Stop button) leaves nothing behind for the next one.
      Interpreted launches are one at a time anyway (``moe_lab.interp.LOCK``).
    * **CUDA, eager**: one scratch per (device, stream), kept. Launches on one stream run one after
      another, and every launch that starts runs to completion, its last program zeroing the scratch
      again; so threads sharing a stream are safe, two streams (or two devices) get two scratches,
      and a Python interrupt cannot leave a scratch dirty (it can only stop a launch from being made).
    * **CUDA graph capture**: every captured launch gets a scratch of its own that nothing else ever
      uses, kept alive for the rest of the process (4 KB per captured launch), so graphs replayed
      concurrently on different streams never share one. Replays of one graph are ordered by CUDA,
      and each replay leaves the scratch zeroed for the next. The scratch comes from a pool of
      ``SPARES`` pre-zeroed spares that eager calls on the device fill; when the pool is empty
      (no eager call before capturing), it is allocated with ``torch.zeros`` inside the capture:
      still correct, at the cost of one memset node in the graph.

    Not covered: the same stream handle reused by a new stream while work from a destroyed one is
    still running (PyTorch's stream pool never destroys its streams).
    """
    if device.type != "cuda":
        return torch.zeros(SCRATCH_SIZE, dtype=torch.int32, device=device)
    index = device.index if device.index is not None else torch.cuda.current_device()
    if torch.cuda.is_current_stream_capturing():
        with _LOCK:
            spares = _SPARE.get(index)
            buffer = spares.pop() if spares else None
        if buffer is None:  # allocated inside the capture: a memset node zeroes it on every replay
            buffer = torch.zeros(SCRATCH_SIZE, dtype=torch.int32, device=device)
        with _LOCK:
            _CAPTURED.append(buffer)
        return buffer
    key = (index, _raw_stream(index))
    buffer = _BY_STREAM.get(key)  # a dict read is atomic under the GIL: no lock on the hot path
    if buffer is None:
        with _LOCK:
            buffer = _BY_STREAM.get(key)
            if buffer is None:
                buffer = torch.zeros(SCRATCH_SIZE, dtype=torch.int32, device=device)
                _BY_STREAM[key] = buffer
                spares = _SPARE.setdefault(index, [])
                while len(spares) < SPARES:
                    spares.append(torch.zeros(SCRATCH_SIZE, dtype=torch.int32, device=device))
    return buffer


def grid_size(num_total: int, device: torch.device, block: int,
              programs_per_sm: int = PROGRAMS_PER_SM) -> int:
    """One program per tile, capped at ``programs_per_sm`` per SM (they then loop over tiles)."""
    return max(1, min(triton.cdiv(num_total, block), programs_per_sm * sm_count(device)))


def launch(topk_ids, adjusted, counts, start, num_local, *, block=None, num_warps=None,
           programs_per_sm=PROGRAMS_PER_SM, scratch_buffer=None, **sems):
    """Launch on prepared buffers; ``counts`` needs no zeroing (the last program stores them all).

    ``sems`` (``ADD_SEM=``, ``TICKET_SEM=``) exist to measure what the ordering costs; the defaults
    (relaxed adds, acq_rel ticket) are the cheapest correct choice. ``scratch_buffer``: a zeroed
    ``SCRATCH_SIZE`` int32 tensor to use instead of :func:`scratch`'s (the stress tool passes one).
    """
    num_total = topk_ids.numel()
    block = block or tile_size(num_total)
    num_warps = num_warps or (4 if block <= 1024 else 8)
    device = topk_ids.device
    grid = grid_size(num_total, device, block, programs_per_sm)
    if device.type == "cuda" and device.index is not None and device.index != torch.cuda.current_device():
        with torch.cuda.device(device):  # Triton launches on the current device's current stream
            return launch(topk_ids, adjusted, counts, start, num_local, block=block, num_warps=num_warps,
                          programs_per_sm=programs_per_sm, scratch_buffer=scratch_buffer, **sems)
    if scratch_buffer is None:
        scratch_buffer = scratch(device)
    one_launch_kernel[(grid,)](topk_ids, adjusted, counts, scratch_buffer, num_total, start, num_local,
                               BLOCK=block, NUM_BINS=num_bins(num_local), TICKET=MAX_BINS,
                               num_warps=num_warps, **sems)


def run(topk_ids, start, num_local):
    start, num_local, adjusted, counts = prepare(topk_ids, start, num_local, stage="one_launch",
                                                 zero_counts=False, check=check_bins)
    if topk_ids.numel() == 0:
        counts.zero_()
    else:
        launch(topk_ids, adjusted, counts, start, num_local)
    return adjusted, counts
