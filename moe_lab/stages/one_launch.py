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
the ticket relaxed as well is measurably faster and measurably wrong: ``tools/tune_sems.py`` catches
miscounts with it. Each acq_rel atomic costs a round trip to L2, which is why this stage, correct at
any size, still loses to ``decode`` on tiny inputs.

The scratch is state that outlives a call, so who may share it is the whole safety argument (the
details are in :func:`scratch`): on the CPU each call gets a fresh one; on a GPU each (device, stream)
keeps its own, since launches on one stream never overlap and a launch that starts always finishes,
re-zeroing it; each captured CUDA graph gets one that nothing else touches. So threads,
streams, graphs replayed side by side, several devices and interrupted calls are all safe, and the
common case (eager calls on one stream, or graph replays) keeps one launch and no memset.
"""

from __future__ import annotations

import ctypes
import threading

import torch
import triton
import triton.language as tl

from moe_lab.stages._kernel import PER_BIN_TICKET, PERSISTENT, Kernel
from moe_lab.stages._launch import prepare
from moe_lab.stages.block_histogram import MAX_BINS, check_bins, num_bins, sm_count

PROGRAMS_PER_SM = 4


def tile_size(num_total: int) -> int:
    """About 128 tiles' worth of parallelism, tiles of 256 to 8192 slots (``tools/tune_one_launch.py``)."""
    return min(8192, max(256, triton.next_power_of_2(num_total // 128)))


@triton.jit
def one_launch_kernel(ids_ptr, adjusted_ptr, count_ptr, scratch_ptr, num_total, start, num_local,
                      BLOCK: tl.constexpr, NUM_BINS: tl.constexpr, TICKET: tl.constexpr,
                      ADD_SEM: tl.constexpr = "relaxed", TICKET_SEM: tl.constexpr = "acq_rel"):
    pid = tl.program_id(0)
    ticket_ptr = scratch_ptr + TICKET  # the ticket lives just after the MAX_BINS accumulators
    num_programs = tl.num_programs(0)
    counts = tl.full([NUM_BINS], 0, tl.int32)  # this program's histogram, in registers
    for tile in range(pid, (num_total + BLOCK - 1) // BLOCK, num_programs):  # persistent: every grid-th tile
        slot = tile * BLOCK + tl.arange(0, BLOCK)  # BLOCK consecutive slots: coalesced loads
        valid_slot = slot < num_total  # the last tile runs past the end
        expert = tl.load(ids_ptr + slot, mask=valid_slot, other=-1)  # -1 past the end: never local
        local = (expert >= start) & (expert < start + num_local) & valid_slot
        local_expert = tl.where(local, expert - start, -1)  # remote ids and padding both become -1
        tl.store(adjusted_ptr + slot, local_expert, mask=valid_slot)
        counts += tl.histogram(local_expert.to(tl.int32), NUM_BINS, mask=local)  # masked: -1 counts nowhere
    bins = tl.arange(0, NUM_BINS)
    is_bin = bins < num_local  # NUM_BINS is num_local rounded up to a power of two
    tl.atomic_add(scratch_ptr + bins, counts, mask=is_bin & (counts > 0), sem=ADD_SEM)  # one atomic per bin
    tl.debug_barrier()  # every thread's adds come before this program's ticket
    ticket = tl.atomic_add(ticket_ptr, 1, sem=TICKET_SEM)  # acq_rel: publishes our adds, sees theirs
    if ticket == num_programs - 1:  # last program: everyone else's adds are done
        totals = tl.atomic_xchg(scratch_ptr + bins, tl.full([NUM_BINS], 0, tl.int32), mask=is_bin,
                                sem=ADD_SEM)  # read the totals and leave zeros for the next call, atomically
        tl.store(count_ptr + bins, totals, mask=is_bin)  # every counter stored: no memset needed
        tl.atomic_xchg(ticket_ptr, 0, sem=ADD_SEM)  # the ticket back to zero too


def num_warps(block: int) -> int:
    """4 warps for tiles up to 1024 slots, 8 above (``tools/tune_one_launch.py``)."""
    return 4 if block <= 1024 else 8


KERNEL = Kernel(one_launch_kernel, grid=PERSISTENT, writes=PER_BIN_TICKET, sem="relaxed",
                args=("ids", "adjusted", "counts", "scratch", "num_total", "start", "num_local"),
                block=lambda topk, num_total: tile_size(num_total),
                constexprs=lambda block, topk, num_local: {"BLOCK": block, "NUM_BINS": num_bins(num_local),
                                                           "TICKET": MAX_BINS},
                num_warps=num_warps, programs_per_sm=PROGRAMS_PER_SM, check=check_bins, ir_slots=1 << 17)

SCRATCH_SIZE = MAX_BINS + 1  # MAX_BINS accumulators, then the ticket
SPARE_STRIDE = -(-SCRATCH_SIZE // 32) * 32  # spares start on 128-byte lines: counter e in line e // 32
SPARES = 64
"""Pre-zeroed scratches kept per device for CUDA-graph captures, refilled by eager calls (256 KB)."""

_LOCK = threading.Lock()  # guards the tables below; the eager hot path only reads them
_BY_STREAM: dict[tuple, torch.Tensor] = {}  # (device, stream) or (device, stream, capture id) -> scratch
_SPARE: dict[int, list[torch.Tensor]] = {}  # device index -> pre-zeroed scratches for captures


_CURRENT_RAW_STREAM = getattr(torch._C, "_cuda_getCurrentRawStream", None)  # what Triton itself asks


def _raw_stream(index: int) -> int:
    """The handle of the current CUDA stream of device ``index`` (the stream Triton launches on)."""
    if _CURRENT_RAW_STREAM is not None:
        return _CURRENT_RAW_STREAM(index)
    return torch.cuda.current_stream(index).cuda_stream


_CAPTURE_INFO: list = []  # [ctypes function or None], looked up once


def _capture_id(stream: int) -> int | None:
    """The id CUDA gives the capture running on ``stream`` (unique per captured graph), or None.

    Read with the driver's ``cuStreamGetCaptureInfo_v2(stream, &status, &id, NULL, NULL, NULL)``
    (CUDA 11.3 on); where only the unversioned symbol exists it is called with every optional output
    NULL, which each of its forms accepts. None where neither exists or no capture is active.
    """
    if not _CAPTURE_INFO:
        fn = None
        try:
            lib = ctypes.CDLL("libcuda.so.1")
            fn = getattr(lib, "cuStreamGetCaptureInfo_v2", None) or lib.cuStreamGetCaptureInfo
            fn.restype = ctypes.c_int
        except (OSError, AttributeError):
            fn = None
        _CAPTURE_INFO.append(fn)
    fn = _CAPTURE_INFO[0]
    if fn is None:
        return None
    status, capture = ctypes.c_int(0), ctypes.c_uint64(0)
    null = ctypes.c_void_p(None)
    try:
        rc = fn(ctypes.c_void_p(stream), ctypes.byref(status), ctypes.byref(capture), null, null, null, null)
    except (ctypes.ArgumentError, OSError):
        return None
    if rc != 0:
        return None
    return int(capture.value) if status.value == 1 else None  # 1: CU_STREAM_CAPTURE_STATUS_ACTIVE


def capture_ids_available() -> bool:
    """Whether graphs are told apart by their capture id (else each captured launch has its own scratch)."""
    _capture_id(0)  # looks the driver function up; stream 0 is never capturing
    return _CAPTURE_INFO[0] is not None


def _fill_spares(index: int, device: torch.device) -> None:
    """Top the device's pool of pre-zeroed capture scratches up to ``SPARES`` (one allocation)."""
    spares = _SPARE.setdefault(index, [])
    missing = SPARES - len(spares)
    if missing > 0:
        block = torch.zeros(missing, SPARE_STRIDE, dtype=torch.int32, device=device)
        spares.extend(row[:SCRATCH_SIZE] for row in block.unbind(0))


def scratch(device: torch.device) -> torch.Tensor:
    """A zeroed accumulator (``MAX_BINS`` counters + a ticket) that no concurrent launch shares.

    What is guaranteed, and why:

    * **CPU (the interpreter)**: a fresh zeroed scratch per call. Allocating 4 KB is cheap there, and
      a call interrupted half-way (Ctrl-C, the Stop button) leaves nothing behind for the next one.
      Interpreted launches run one at a time anyway (``moe_lab.interp.LOCK``).
    * **CUDA, eager**: one scratch per (device, stream), kept. Launches on one stream run one after
      another, and a launch that starts always runs to completion, its last program zeroing the
      scratch again; so threads sharing a stream are safe, two streams (or two devices) get two
      scratches, and a Python interrupt cannot leave a scratch dirty (it can only stop a launch from
      being made).
    * **CUDA graph capture**: each captured graph gets, per capturing stream, a scratch that nothing
      else uses (launches of one graph on one stream are ordered like eager ones), kept alive for the
      rest of the process (4 KB per graph). So graphs replayed concurrently on different streams
      never share one; replays of one graph are ordered by CUDA, and each leaves the scratch zeroed
      for the next. The graph is told apart by the capture id CUDA gives it; where the driver does
      not say, each captured launch gets a scratch of its own. Scratches come from a pool of
      ``SPARES`` pre-zeroed ones that eager calls on the device fill; when the pool is empty (no
      eager call on the device before capturing), one is allocated with ``torch.zeros`` inside the
      capture: still correct, at the cost of one memset node in the graph.

    Not covered: a stream handle reused by a new stream while a destroyed one still has work running
    (PyTorch's stream pool never destroys its streams).
    """
    if device.type != "cuda":
        return torch.zeros(SCRATCH_SIZE, dtype=torch.int32, device=device)
    index = device.index if device.index is not None else torch.cuda.current_device()
    stream = _raw_stream(index)
    if torch.cuda.is_current_stream_capturing():
        return _captured(index, device, stream)
    buffer = _BY_STREAM.get((index, stream))  # a dict read is atomic under the GIL: no lock here
    if buffer is None or len(_SPARE.get(index, ())) < SPARES:
        with _LOCK:
            buffer = _BY_STREAM.get((index, stream))
            if buffer is None:
                buffer = torch.zeros(SCRATCH_SIZE, dtype=torch.int32, device=device)
                _BY_STREAM[(index, stream)] = buffer
            _fill_spares(index, device)
    return buffer


def _captured(index: int, device: torch.device, stream: int) -> torch.Tensor:
    """The scratch of the graph being captured on ``stream`` (see :func:`scratch`)."""
    capture = _capture_id(stream)
    key = (index, stream, capture)
    with _LOCK:
        buffer = _BY_STREAM.get(key) if capture is not None else None
        if buffer is None:
            spares = _SPARE.get(index)
            buffer = spares.pop() if spares else None
            if buffer is None:  # allocated inside the capture: a memset node zeroes it on every replay
                buffer = torch.zeros(SCRATCH_SIZE, dtype=torch.int32, device=device)
            _BY_STREAM[key if capture is not None else (index, stream, "launch", id(buffer))] = buffer
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
    warps = num_warps or KERNEL.num_warps(block)
    device = topk_ids.device
    grid = grid_size(num_total, device, block, programs_per_sm)
    if device.type == "cuda" and device.index is not None and device.index != torch.cuda.current_device():
        with torch.cuda.device(device):  # Triton launches on the current device's current stream
            return launch(topk_ids, adjusted, counts, start, num_local, block=block, num_warps=warps,
                          programs_per_sm=programs_per_sm, scratch_buffer=scratch_buffer, **sems)
    if scratch_buffer is None:
        scratch_buffer = scratch(device)
    one_launch_kernel[(grid,)](topk_ids, adjusted, counts, scratch_buffer, num_total, start, num_local,
                               BLOCK=block, NUM_BINS=num_bins(num_local), TICKET=MAX_BINS,
                               num_warps=warps, **sems)


def run(topk_ids, start, num_local):
    start, num_local, adjusted, counts = prepare(topk_ids, start, num_local, stage="one_launch",
                                                 zero_counts=False, check=check_bins)
    if topk_ids.numel() == 0:
        counts.zero_()
    else:
        launch(topk_ids, adjusted, counts, start, num_local)
    return adjusted, counts
