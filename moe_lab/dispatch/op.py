"""The dispatch layout in at most two launches, deterministic, with no state between calls.

The work is cut into *token blocks* (``launch.plan``: a few tokens, all their top-k slots). A slot's
destination row is ``offsets[e] + (slots of e before its block) + (its rank among its block's slots of
e)``: no atomics, so rows inside an expert come in slot order and the bits are the same every run.

:func:`layout_kernel` does everything for one block and one share of its columns: it learns the expert
totals and the block's base, ranks the block's slots with a prefix sum of a one-hot tile
(``tl.cumsum``, 32 slots a step), writes the adjusted ids and ``output_index``, then loads each token's
fp8 row once (16-byte accesses, masked off for tokens with no local slot) and stores it to the row of
each of its local slots; the block's first program copies the scales into the GEMM's layout. Extra
programs write ``m_indices`` (one per expert, plus, in the graph-safe mode, some for the rows past ``M``).

Where the totals and the base come from:

* small graph-safe calls (at most ``launch.SINGLE_SLOTS`` slots): *one launch*; every program counts
  all the slots itself with ``tl.histogram`` (those before its block separately);
* otherwise two launches: :func:`table_kernel` counts each tile's slots into a coarse table (at most
  ``launch.TABLE`` entries). Every layout program reads all of it and counts the slots of its own tile
  before its block itself.

Nothing persists between calls: the table lives in a scratch buffer allocated per call and written
completely before it is read (nothing needs zeroing). A layout program reads back only what it stored
itself (after a barrier); no program reads what another program of its launch wrote.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from moe_lab.dispatch import inputs, launch
from moe_lab.dispatch.launch import Plan, plan

POISON: int | None = None
"""Test hook: when set, every fresh output and the scratch are filled with this byte first."""


@triton.jit
def table_kernel(ids_ptr, coarse_ptr, num_total, start, num_local, tile_slots,
                 BINS: tl.constexpr, SCAN: tl.constexpr):
    tile = tl.program_id(0)
    seen = tl.full([BINS], 0, tl.int32)  # slots of each expert in this tile
    for first in range(0, tile_slots, SCAN):
        slot = tile * tile_slots + first + tl.arange(0, SCAN)
        inside = (slot < num_total) & (first + tl.arange(0, SCAN) < tile_slots)  # guard both ends
        expert = tl.load(ids_ptr + slot, mask=inside, other=-1)
        local = (expert >= start) & (expert < start + num_local) & inside
        seen += tl.histogram(tl.where(local, expert - start, 0).to(tl.int32), BINS, mask=local)
    tl.store(coarse_ptr + tile * BINS + tl.arange(0, BINS), seen)  # every bin, zeros included: fully written


@triton.jit
def layout_kernel(ids_ptr, adjusted_ptr, index_ptr, coarse_ptr,
                  x_ptr, x_stride, scales_ptr, s_stride0, s_stride1, rows_ptr, out_scales_ptr,
                  scale_stride, count_ptr, offsets_ptr, m_ptr,
                  num_tokens, topk, start, num_local, num_tiles, tile_blocks, rows_cap, hidden,
                  scale_cols, align,
                  SINGLE: tl.constexpr, BLOCK_TOKENS: tl.constexpr, KP: tl.constexpr, BINS: tl.constexpr,
                  COPY_COLS: tl.constexpr, CHUNKS: tl.constexpr, COL_BLOCKS: tl.constexpr,
                  SCALE_BLOCK: tl.constexpr, TABLE_ROWS: tl.constexpr, SCAN: tl.constexpr,
                  RANK_SLOTS: tl.constexpr, FILL_ROWS: tl.constexpr, FILL_BLOCK: tl.constexpr,
                  SKIP_PADDING: tl.constexpr):
    pid = tl.program_id(0)
    bins = tl.arange(0, BINS)
    is_bin = bins < num_local  # bins past num_local exist only to make BINS a power of two
    num_total = num_tokens * topk
    num_blocks = (num_tokens + BLOCK_TOKENS - 1) // BLOCK_TOKENS
    copy_programs = num_blocks * COL_BLOCKS
    block = pid // COL_BLOCKS
    first_slot = tl.minimum(block * BLOCK_TOKENS * topk, num_total)  # fill programs: past the end, never read
    totals = tl.full([BINS], 0, tl.int32)
    before = tl.full([BINS], 0, tl.int32)  # slots of each expert before this block
    if SINGLE:  # every program counts every slot: no first launch needed
        for first in range(first_slot, num_total, SCAN):  # the slots from its block on...
            slot = first + tl.arange(0, SCAN)
            inside = slot < num_total
            expert = tl.load(ids_ptr + slot, mask=inside, other=-1)
            local = (expert >= start) & (expert < start + num_local) & inside
            totals += tl.histogram(tl.where(local, expert - start, 0).to(tl.int32), BINS, mask=local)
        scan_from = 0  # ...and those before it, below
    else:
        tile = block // tile_blocks
        for first in range(0, num_tiles, TABLE_ROWS):  # the coarse table: every program reads all of it
            t = first + tl.arange(0, TABLE_ROWS)
            h = tl.load(coarse_ptr + t[:, None] * BINS + bins[None, :], mask=(t < num_tiles)[:, None],
                        other=0)
            totals += tl.sum(h, axis=0)
            before += tl.sum(tl.where((t < tile)[:, None], h, 0), axis=0)  # slots earlier tiles hold
        scan_from = tile * tile_blocks * BLOCK_TOKENS * topk  # the slots of its own tile before its block
    for first in range(scan_from, first_slot, SCAN):
        slot = first + tl.arange(0, SCAN)
        inside = slot < first_slot
        expert = tl.load(ids_ptr + slot, mask=inside, other=-1)
        local = (expert >= start) & (expert < start + num_local) & inside
        before += tl.histogram(tl.where(local, expert - start, 0).to(tl.int32), BINS, mask=local)
    if SINGLE:
        totals += before
    aligned = (totals + align - 1) // align * align  # each expert's block rounded up to align rows
    ends = tl.cumsum(aligned, axis=0)  # inclusive prefix: where each block ends
    starts = ends - aligned  # exclusive prefix: where each block starts
    if pid < copy_programs:
        col_block = pid % COL_BLOCKS
        base = starts + before  # first row of each expert for this block's slots
        for sub in tl.static_range(0, BLOCK_TOKENS * KP, RANK_SLOTS):  # small one-hot tiles: few registers
            i = sub + tl.arange(0, RANK_SLOTS)  # the block's slots, token by token, top-k padded to KP
            token = block * BLOCK_TOKENS + i // KP
            valid = (token < num_tokens) & (i % KP < topk)
            slot = token * topk + i % KP
            expert = tl.load(ids_ptr + slot, mask=valid, other=-1)
            local = (expert >= start) & (expert < start + num_local) & valid
            local_expert = tl.where(local, expert - start, -1)
            # one-hot [slot, expert]
            hit = (local_expert.to(tl.int32)[:, None] == bins[None, :]) & local[:, None]
            upto = tl.cumsum(hit.to(tl.int32), axis=0)  # stable rank inside the sub-tile, plus one
            dest = tl.sum(tl.where(hit, upto - 1 + base[None, :], 0), axis=1)
            base += tl.sum(hit.to(tl.int32), axis=0)  # the next sub-tile's slots come after these
            # every program of the block stores the same index; it reads it back below, one top-k column
            # at a time, in the layout of the row tile (cheaper than moving values between threads)
            tl.store(index_ptr + slot, tl.where(local, dest, -1), mask=valid)
            if col_block == 0:
                tl.store(adjusted_ptr + slot, local_expert, mask=valid)
        tl.debug_barrier()  # the loads below read entries other threads stored: wait for them
        t = block * BLOCK_TOKENS + tl.arange(0, BLOCK_TOKENS)
        t_ok = t < num_tokens
        needed = t < 0  # tokens with a local slot: the only rows read
        for kk in tl.static_range(KP):
            row = tl.load(index_ptr + t * topk + kk, mask=t_ok & (t * 0 + kk < topk), other=-1)
            needed = needed | (row >= 0)
        t64 = t.to(tl.int64)  # 64-bit: rows * hidden passes 2**31 bytes
        if col_block == 0:  # the first program of a block copies the scales
            g = tl.arange(0, SCALE_BLOCK)
            g_ok = g < scale_cols
            sc = tl.load(scales_ptr + t64[:, None] * s_stride0 + g[None, :] * s_stride1,
                         mask=needed[:, None] & g_ok[None, :])
            for kk in tl.static_range(KP):
                row = tl.load(index_ptr + t * topk + kk, mask=t_ok & (t * 0 + kk < topk), other=-1)
                # scales column-major (MN-major): column g of row r at g * scale_stride + r
                column = out_scales_ptr + g[None, :].to(tl.int64) * scale_stride
                tl.store(column + row.to(tl.int64)[:, None], sc,
                         mask=(row >= 0)[:, None] & g_ok[None, :])
        for c in range(col_block, CHUNKS, COL_BLOCKS):
            cols = c * COPY_COLS + tl.arange(0, COPY_COLS)
            col_ok = cols < hidden
            v = tl.load(x_ptr + t64[:, None] * x_stride + cols[None, :],
                        mask=needed[:, None] & col_ok[None, :])
            for kk in tl.static_range(KP):  # the row loaded once goes to each local slot of its token
                row = tl.load(index_ptr + t * topk + kk, mask=t_ok & (t * 0 + kk < topk), other=-1)
                tl.store(rows_ptr + row.to(tl.int64)[:, None] * hidden + cols[None, :], v,
                         mask=(row >= 0)[:, None] & col_ok[None, :])
    else:
        if pid == copy_programs:  # one program publishes the counts and offsets (there is one at N = 0)
            tl.store(count_ptr + bins, totals, mask=is_bin)
            tl.store(offsets_ptr + bins, starts, mask=is_bin)
            tl.store(offsets_ptr + num_local, tl.sum(aligned, axis=0))
        fill_m_indices(m_ptr, pid - copy_programs, bins, starts, totals, aligned, num_local, rows_cap,
                       FILL_ROWS, FILL_BLOCK, SKIP_PADDING)


@triton.jit
def fill_m_indices(m_ptr, fill, bins, starts, totals, aligned, num_local, rows_cap,
                   FILL_ROWS: tl.constexpr, FILL_BLOCK: tl.constexpr, SKIP_PADDING: tl.constexpr):
    """Fill program ``fill``: below ``num_local``, expert ``fill``'s block of m_indices; above, a tail."""
    r_block = tl.arange(0, FILL_BLOCK)
    if fill < num_local:  # one program per expert writes its block of m_indices
        pick = bins == fill
        first = tl.sum(tl.where(pick, starts, 0), axis=0)
        real = tl.sum(tl.where(pick, totals, 0), axis=0)  # rows that hold a slot's copy
        size = tl.sum(tl.where(pick, aligned, 0), axis=0)
        for r0 in range(0, size, FILL_BLOCK):
            r = r0 + r_block
            if SKIP_PADDING:
                mark = tl.where(r < real, fill, -1)  # padding rows: -1, a grouped GEMM skips them
            else:
                mark = tl.full([FILL_BLOCK], 0, tl.int32) + fill  # padding rows: their expert
            tl.store(m_ptr + first + r, mark, mask=r < size)
    else:  # rows past the last block (graph-safe sizing) belong to no expert
        num_rows = tl.sum(aligned, axis=0)
        tail = fill - num_local
        for r0 in range(tail * FILL_ROWS, tail * FILL_ROWS + FILL_ROWS, FILL_BLOCK):
            r = r0 + r_block
            tl.store(m_ptr + r, tl.full([FILL_BLOCK], -1, tl.int32), mask=(r >= num_rows) & (r < rows_cap))


@dataclass
class DispatchLayout:
    """What :func:`prepare_dispatch` returns; see its docstring for each field."""
    adjusted_ids: torch.Tensor
    expert_count: torch.Tensor
    offsets: torch.Tensor
    output_index: torch.Tensor
    m_indices: torch.Tensor
    rows: torch.Tensor
    scales: torch.Tensor
    num_rows: int | None


def _empty(shape, dtype, device):
    t = torch.empty(shape, dtype=dtype, device=device)
    if POISON is not None:
        t.view(torch.uint8).fill_(POISON)
    return t


def prepare_dispatch(topk_ids, start, num_local, x, scales, *, align: int = 128, padding: str = "expert",
                     graph_safe: bool = False) -> DispatchLayout:
    """Build the contiguous grouped-GEMM layout of this rank's slots in one or two launches.

    Worked example (``align=4``, ``start=2``, ``num_local=2``)::

        topk_ids     = [[3, 0], [-1, 3], [2, 3]]
        adjusted_ids = [[1, -1], [-1, 1], [0, 1]]    expert_count = [1, 3]
        offsets      = [0, 4, 8]                      (last entry: M, the rows of the layout)
        output_index = [[4, -1], [-1, 5], [0, 6]]     (the row of each slot's copy; -1: not local)
        m_indices    = [0, p, p, p, 1, 1, 1, p]       (p: the expert, or -1 with padding="skip")
        rows[0] = x[2], rows[4] = x[0], rows[5] = x[1], rows[6] = x[2]; scales likewise

    ``x``: fp8 ``[N, hidden]`` (``hidden`` a multiple of 128); ``scales``: fp32 ``[N, hidden/128]``, or
    ue8m0 exponents packed four to an int32 ``[N, ceil(hidden/512)]``, any strides. The output
    ``scales`` has the same columns, written MN-major (column-major) with a column stride that is a
    multiple of 4 (16 bytes): the layout DeepGEMM's contiguous grouped GEMM takes without a
    transposing pass. Padding rows of ``rows`` and ``scales`` are not written; ``m_indices`` marks them.

    ``graph_safe=False``: two launches with one host read between them (the coarse table of tile
    histograms, at most 8 KB), which sizes ``rows``, ``scales`` and ``m_indices`` to exactly ``M`` rows
    (``num_rows``), the scales' column stride ``M`` rounded up to 4. ``graph_safe=True``: no host read
    at all, and one launch up to ``launch.SINGLE_SLOTS`` slots (two above); the outputs have the
    worst-case ``N*topk + num_local*(align-1)`` rows (those past ``offsets[-1]`` are marked ``-1`` in
    ``m_indices``; hand the GEMM all of them), and ``num_rows`` is None. Either way the result is the
    same bits on every run.
    """
    a = inputs.check(topk_ids, start, num_local, x, scales, align, padding, needs_triton=True,
                     graph_safe=graph_safe)
    device = topk_ids.device
    num_tokens, topk = topk_ids.shape
    cap = inputs.max_rows(topk_ids.numel(), a.num_local, a.align)
    p = plan(num_tokens, topk, a.num_local, a.hidden, cap,
             single=graph_safe and topk_ids.numel() <= launch.SINGLE_SLOTS)
    if p.single:
        rows_cap, coarse = cap, topk_ids  # no table: every program counts for itself
    else:
        coarse = first_launch(topk_ids, a, p).coarse
        if graph_safe:
            rows_cap = cap
        else:  # the one host read: the coarse table, to size every output exactly
            totals = coarse.view(p.tiles, p.bins)[:, :a.num_local].cpu().sum(0)
            rows_cap = int(((totals + a.align - 1) // a.align * a.align).sum())
    adjusted = _empty(topk_ids.shape, topk_ids.dtype, device)
    index = _empty(topk_ids.shape, torch.int32, device)
    counts = _empty(a.num_local, torch.int32, device)
    offsets = _empty(a.num_local + 1, torch.int32, device)
    stride = inputs.aligned_stride(rows_cap)
    m_indices = _empty(rows_cap, torch.int32, device)
    rows = _empty((rows_cap, a.hidden), torch.float8_e4m3fn, device)
    scale_store = _empty((a.scale_cols, stride), scales.dtype, device)
    tail_programs = p.fill_programs if graph_safe else 0  # exact sizing leaves no tail to mark
    grid = p.blocks * p.col_blocks + a.num_local + tail_programs
    layout_kernel[(grid,)](topk_ids, adjusted, index, coarse,
                           x.view(torch.uint8), x.stride(0), scales, scales.stride(0), scales.stride(1),
                           rows.view(torch.uint8), scale_store, stride, counts, offsets, m_indices,
                           num_tokens, topk, a.start, a.num_local, p.tiles, p.tile_blocks, rows_cap,
                           a.hidden, a.scale_cols, a.align,
                           SINGLE=p.single, BLOCK_TOKENS=p.block_tokens, KP=p.topk_p2, BINS=p.bins,
                           COPY_COLS=p.copy_cols, CHUNKS=p.chunks, COL_BLOCKS=p.col_blocks,
                           SCALE_BLOCK=triton.next_power_of_2(a.scale_cols), TABLE_ROWS=p.table_rows,
                           SCAN=p.scan, RANK_SLOTS=p.rank_slots, FILL_ROWS=launch.FILL_ROWS,
                           FILL_BLOCK=p.fill_block, SKIP_PADDING=padding == "skip",
                           num_warps=launch.SINGLE_WARPS if p.single else launch.NUM_WARPS)
    return DispatchLayout(adjusted, counts, offsets, index, m_indices, rows,
                          scale_store.t()[:rows_cap], None if graph_safe else rows_cap)


@dataclass
class FirstLaunch:
    """What the table launch leaves for the layout launch: its plan and the coarse table (per tile:
    its slots of each expert), in a scratch buffer of this call."""
    plan: Plan
    coarse: torch.Tensor


def first_launch(topk_ids, a: inputs.Args, p: Plan | None = None) -> FirstLaunch:
    """Allocate the call's table and run :func:`table_kernel` (``a`` from :func:`inputs.check`)."""
    num_tokens, topk = topk_ids.shape
    if p is None:
        cap = inputs.max_rows(topk_ids.numel(), a.num_local, a.align)
        p = plan(num_tokens, topk, a.num_local, a.hidden, cap)
    coarse = _empty(p.tiles * p.bins, torch.int32, topk_ids.device)
    table_kernel[(p.tiles,)](topk_ids, coarse, topk_ids.numel(), a.start, a.num_local,
                             p.tile_blocks * p.block_tokens * topk, BINS=p.bins, SCAN=launch.SCAN,
                             num_warps=4)
    return FirstLaunch(p, coarse)
