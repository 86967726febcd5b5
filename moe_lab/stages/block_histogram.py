"""``block_histogram``: count in registers, then one atomic per expert per program.

What changed from ``scalar_atomic``: each program still remaps a tile of slots, but instead of one
global atomic per local slot it builds the tile's histogram on chip with
``tl.histogram(local_expert, NUM_BINS, mask=local)`` and adds it to the counters with *one*
vector atomic of ``num_local`` lanes (lanes whose count is 0 are masked off). A program that
handles 4096 slots of top-8 routing over 32 local experts issues at most 32 atomics instead of
~1024: the counters' L2 line stops being the bottleneck, and the kernel runs at the speed of its
loads and stores, near a plain copy.

Two details matter:

* ``mask=`` is not optional. What ``tl.histogram`` does with a value outside ``[0, NUM_BINS)`` is
  unspecified and depends on the Triton version and backend (Triton issue #9050): some builds fold it
  into a real bin (``-1`` in the last one), so remote ids and padding could be counted as a local
  expert; the installed version's compiled code, which notebook 05 shows, skips them.
* ``NUM_BINS`` must be a power of two (it is a ``tl.arange`` inside); it is ``num_local`` rounded
  up, and the extra bins are never stored.

The grid is *persistent* for large inputs: at most ``PROGRAMS_PER_SM`` programs per SM, each
looping over tiles and accumulating its histogram, so the number of atomics is fixed by the grid,
not the input size. (The kernels here use only Triton builtins, ``tl.full`` rather than ``tl.zeros``
and ``//`` rather than ``tl.cdiv``: those two are themselves ``@triton.jit`` helpers, and they break
under the interpreter when ``triton`` was imported before ``moe_lab`` chose it.) ``WRITE_COUNTS``
makes a one-program launch store the counts directly (no memset, no atomics): that is the
``decode`` stage.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from moe_lab.stages._kernel import PER_BIN, PERSISTENT, Kernel
from moe_lab.stages._launch import prepare

BLOCK = 8192
NUM_WARPS = 8
PROGRAMS_PER_SM = 4
MAX_BINS = 1024  # above this a register histogram stops making sense; `best` falls back


@triton.jit
def block_histogram_kernel(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                           BLOCK: tl.constexpr, NUM_BINS: tl.constexpr,
                           WRITE_COUNTS: tl.constexpr):
    pid = tl.program_id(0)
    num_tiles = (num_total + BLOCK - 1) // BLOCK  # not tl.cdiv: see the module docstring
    counts = tl.full([NUM_BINS], 0, tl.int32)  # this program's histogram, in registers
    for tile in range(pid, num_tiles, tl.num_programs(0)):  # persistent: every grid-th tile
        slot = tile * BLOCK + tl.arange(0, BLOCK)  # BLOCK consecutive slots: coalesced loads
        valid_slot = slot < num_total  # the last tile runs past the end
        expert = tl.load(ids_ptr + slot, mask=valid_slot, other=-1)  # -1 past the end: never local
        local = (expert >= start) & (expert < start + num_local) & valid_slot
        local_expert = tl.where(local, expert - start, -1)  # remote ids and padding both become -1
        tl.store(adjusted_ptr + slot, local_expert, mask=valid_slot)
        counts += tl.histogram(local_expert.to(tl.int32), NUM_BINS, mask=local)  # masked: -1 counts nowhere
    bins = tl.arange(0, NUM_BINS)
    if WRITE_COUNTS:  # a single program owns every counter: store, no atomics, no memset needed
        tl.store(count_ptr + bins, counts, mask=bins < num_local)  # zeros included
    else:  # one atomic per non-empty bin; relaxed: nobody reads a counter before the kernel ends
        tl.atomic_add(count_ptr + bins, counts, mask=(bins < num_local) & (counts > 0),
                      sem="relaxed")


_SM_COUNT: dict[int, int] = {}


def sm_count(device: torch.device) -> int:
    """Streaming multiprocessors of ``device`` (cached; 1 under the interpreter)."""
    if device.type != "cuda":
        return 1
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index not in _SM_COUNT:
        _SM_COUNT[index] = torch.cuda.get_device_properties(index).multi_processor_count
    return _SM_COUNT[index]


def num_bins(num_local: int) -> int:
    return triton.next_power_of_2(num_local)


def check_bins(num_local: int, stage: str) -> None:
    """Refuse more local experts than a register histogram holds (the histogram stages share this)."""
    if num_bins(num_local) > MAX_BINS:
        raise ValueError(f"{stage} keeps a histogram of num_local={num_local} bins in "
                         f"registers; it supports at most {MAX_BINS}. Use stage='best', which falls "
                         f"back to per-slot relaxed atomics for that many experts")


KERNEL = Kernel(block_histogram_kernel, grid=PERSISTENT, writes=PER_BIN, sem="relaxed",
                args=("ids", "adjusted", "counts", "num_total", "start", "num_local"),
                block=lambda topk, num_total: BLOCK,
                constexprs=lambda block, topk, num_local: {"BLOCK": block, "NUM_BINS": num_bins(num_local),
                                                           "WRITE_COUNTS": False},
                num_warps=lambda block: NUM_WARPS, programs_per_sm=PROGRAMS_PER_SM, check=check_bins)


def launch(topk_ids, adjusted, counts, start, num_local, *, block=BLOCK, num_warps=NUM_WARPS,
           programs_per_sm=PROGRAMS_PER_SM):
    """Launch on prepared buffers (counts must be zeroed). ``programs_per_sm=0``: one per tile."""
    num_total = topk_ids.numel()
    tiles = triton.cdiv(num_total, block)
    grid = tiles if programs_per_sm <= 0 else min(tiles, programs_per_sm * sm_count(topk_ids.device))
    block_histogram_kernel[(grid,)](topk_ids, adjusted, counts, num_total, start, num_local,
                                    BLOCK=block, NUM_BINS=num_bins(num_local), WRITE_COUNTS=False,
                                    num_warps=num_warps)


def run(topk_ids, start, num_local, *, block=BLOCK):
    start, num_local, adjusted, counts = prepare(topk_ids, start, num_local, stage="block_histogram",
                                                 check=check_bins)
    if topk_ids.numel():
        launch(topk_ids, adjusted, counts, start, num_local, block=block)
    return adjusted, counts
