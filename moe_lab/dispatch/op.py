"""The dispatch layout in two launches, deterministic, with no state between calls.

Launch 1, one program per tile of slots (:func:`rank_kernel`): recombine the ids (the adjusted ids,
exactly as the drop-in), count each local expert's slots in the tile, give every local slot its
*stable rank* among the tile's slots of the same expert (a prefix sum of a one-hot tile:
``tl.cumsum``), and list the tile's local slots in order. The tile histograms go to a table.

Launch 2 (:func:`layout_kernel`): every program reads the whole (small) table of tile histograms and
rebuilds from it what it needs: the expert totals, their prefix rounded up to ``align``
(``offsets``), and the rows that tiles before its own give each expert. A slot's destination row is
then ``offsets[e] + rows of e in earlier tiles + rank``: no atomics, so the order inside an expert is
slot order and the bits are the same every run. Copy programs (one per tile and per 1024 columns)
copy the fp8 rows and scales; fill programs (one per expert, plus, in the graph-safe mode, some for
the rows past ``M``) write ``m_indices``.

Small graph-safe calls (at most ``launch.SINGLE_SLOTS`` slots) take *one* launch
(:func:`single_kernel`): every program counts all the slots itself with ``tl.histogram`` (those of
earlier chunks separately), ranks its own chunk, lists the chunk's local slots in a scratch of its own
and, after a ``tl.debug_barrier`` (other threads stored those entries), copies their rows.

Nothing persists between calls: the table and the slot lists live in a scratch buffer allocated per
call and written completely before it is read (nothing needs zeroing). Reading the table again in
every program is the price of that; the launch rules keep the table at most 4096 entries.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from . import inputs, launch
from .launch import FILL_ROWS, SCAN, Plan, plan

POISON: int | None = None
"""Test hook: when set, every fresh output and the scratch are filled with this byte first."""


@triton.jit
def rank_kernel(ids_ptr, adjusted_ptr, index_ptr, slot_list_ptr, rank_list_ptr, hist_ptr,
                num_total, start, num_local, tile_len,
                RANK_BLOCK: tl.constexpr, BINS: tl.constexpr):
    tile = tl.program_id(0)
    tile_start = tile * tile_len
    bins = tl.arange(0, BINS)
    seen = tl.full([BINS], 0, tl.int32)  # slots of each expert met so far in this tile
    seen_local = tl.sum(seen, axis=0)  # local slots met so far (a 0 of the right type)
    for sub in range(0, tile_len, RANK_BLOCK):  # tile_len is a multiple of RANK_BLOCK
        slot = tile_start + sub + tl.arange(0, RANK_BLOCK)
        valid = slot < num_total  # guard the last tile
        expert = tl.load(ids_ptr + slot, mask=valid, other=-1)
        local = (expert >= start) & (expert < start + num_local) & valid
        local_expert = tl.where(local, expert - start, -1)
        tl.store(adjusted_ptr + slot, local_expert, mask=valid)
        tl.store(index_ptr + slot, tl.full([RANK_BLOCK], -1, tl.int32), mask=valid & ~local)  # no row
        hit = (local_expert.to(tl.int32)[:, None] == bins[None, :]) & local[:, None]  # one-hot [slot, expert]
        hits = hit.to(tl.int32)
        upto = tl.cumsum(hits, axis=0)  # inclusive count of each expert down the sub-tile
        rank = tl.sum(tl.where(hit, upto - 1 + seen[None, :], 0), axis=1)  # earlier slots of my expert
        position = tl.cumsum(local.to(tl.int32), axis=0) - 1 + seen_local  # my place in the tile's list
        tl.store(slot_list_ptr + tile_start + position, slot, mask=local)
        tl.store(rank_list_ptr + tile_start + position, rank, mask=local)
        seen += tl.sum(hits, axis=0)
        seen_local += tl.sum(local.to(tl.int32), axis=0)
    tl.store(hist_ptr + tile * BINS + bins, seen)  # every bin, zeros included: the table is fully written


@triton.jit
def layout_kernel(adjusted_ptr, index_ptr, slot_list_ptr, rank_list_ptr, hist_ptr,
                  x_ptr, x_stride, scales_ptr, s_stride0, s_stride1, rows_ptr, out_scales_ptr,
                  scale_stride, count_ptr, offsets_ptr, m_ptr,
                  num_tiles, num_local, rows_cap, hidden, scale_cols, topk, align, tile_len,
                  BINS: tl.constexpr, TABLE_ROWS: tl.constexpr,
                  COPY_COLS: tl.constexpr, COPY_ROWS: tl.constexpr, COL_BLOCKS: tl.constexpr,
                  SCALE_BLOCK: tl.constexpr, FILL_ROWS: tl.constexpr, FILL_BLOCK: tl.constexpr,
                  SKIP_PADDING: tl.constexpr):
    pid = tl.program_id(0)
    bins = tl.arange(0, BINS)
    is_bin = bins < num_local  # bins past num_local exist only to make BINS a power of two
    copy_programs = num_tiles * COL_BLOCKS
    tile = pid // COL_BLOCKS
    totals = tl.full([BINS], 0, tl.int32)
    before = tl.full([BINS], 0, tl.int32)
    for first in range(0, num_tiles, TABLE_ROWS):  # every program reads the whole table: no shared state
        t = first + tl.arange(0, TABLE_ROWS)
        h = tl.load(hist_ptr + t[:, None] * BINS + bins[None, :], mask=(t < num_tiles)[:, None], other=0)
        totals += tl.sum(h, axis=0)
        before += tl.sum(tl.where((t < tile)[:, None], h, 0), axis=0)  # rows earlier tiles take
    aligned = (totals + align - 1) // align * align  # each expert's block rounded up to align rows
    ends = tl.cumsum(aligned, axis=0)  # inclusive prefix: where each block ends
    starts = ends - aligned  # exclusive prefix: where each block starts
    if pid < copy_programs:
        col_block = pid % COL_BLOCKS
        if pid == 0:  # one program publishes the counts and offsets
            tl.store(count_ptr + bins, totals, mask=is_bin)
            tl.store(offsets_ptr + bins, starts, mask=is_bin)
            tl.store(offsets_ptr + num_local, tl.sum(aligned, axis=0))
        base = starts + before  # first row of each expert for this tile's slots
        n_local = tl.sum(tl.load(hist_ptr + tile * BINS + bins), axis=0)
        cols = col_block * COPY_COLS + tl.arange(0, COPY_COLS)
        col_ok = cols < hidden
        g = tl.arange(0, SCALE_BLOCK)
        for first in range(0, n_local, COPY_ROWS):  # only the tile's local slots, in slot order
            i = first + tl.arange(0, COPY_ROWS)
            ok = i < n_local
            slot = tl.load(slot_list_ptr + tile * tile_len + i, mask=ok, other=0)
            rank = tl.load(rank_list_ptr + tile * tile_len + i, mask=ok, other=0)
            expert = tl.load(adjusted_ptr + slot, mask=ok, other=0).to(tl.int32)
            dest = tl.sum(tl.where(expert[:, None] == bins[None, :], base[None, :], 0), axis=1) + rank
            token = (slot // topk).to(tl.int64)  # 64-bit: rows * hidden passes 2**31 bytes
            row = dest.to(tl.int64)
            both = ok[:, None] & col_ok[None, :]
            v = tl.load(x_ptr + token[:, None] * x_stride + cols[None, :], mask=both)
            tl.store(rows_ptr + row[:, None] * hidden + cols[None, :], v, mask=both)
            if col_block == 0:  # the first column block also writes the index and the scales
                tl.store(index_ptr + slot, dest, mask=ok)
                sm = ok[:, None] & (g < scale_cols)[None, :]
                s = tl.load(scales_ptr + token[:, None] * s_stride0 + g[None, :] * s_stride1, mask=sm)
                # scales column-major (MN-major): column g of row r at g * scale_stride + r
                tl.store(out_scales_ptr + g[None, :].to(tl.int64) * scale_stride + row[:, None], s, mask=sm)
    else:
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


@triton.jit
def single_kernel(ids_ptr, adjusted_ptr, index_ptr, list_ptr, x_ptr, x_stride, scales_ptr, s_stride0,
                  s_stride1, rows_ptr, out_scales_ptr, scale_stride, count_ptr, offsets_ptr, m_ptr,
                  num_total, start, num_local, rows_cap, hidden, scale_cols, topk, align,
                  SCAN: tl.constexpr, CHUNK: tl.constexpr, BINS: tl.constexpr, COPY_COLS: tl.constexpr,
                  COPY_ROWS: tl.constexpr, COL_BLOCKS: tl.constexpr, SCALE_BLOCK: tl.constexpr,
                  FILL_ROWS: tl.constexpr, FILL_BLOCK: tl.constexpr, SKIP_PADDING: tl.constexpr):
    pid = tl.program_id(0)
    bins = tl.arange(0, BINS)
    is_bin = bins < num_local
    num_chunks = (num_total + CHUNK - 1) // CHUNK
    copy_programs = num_chunks * COL_BLOCKS
    chunk_start = (pid // COL_BLOCKS) * CHUNK
    totals = tl.full([BINS], 0, tl.int32)
    before = tl.full([BINS], 0, tl.int32)
    for first in range(0, num_total, SCAN):  # every program counts every slot: no second launch needed
        slot = first + tl.arange(0, SCAN)
        expert = tl.load(ids_ptr + slot, mask=slot < num_total, other=-1)
        local = (expert >= start) & (expert < start + num_local) & (slot < num_total)
        local_expert = tl.where(local, expert - start, 0).to(tl.int32)
        totals += tl.histogram(local_expert, BINS, mask=local)
        before += tl.histogram(local_expert, BINS, mask=local & (slot < chunk_start))  # earlier chunks
    aligned = (totals + align - 1) // align * align  # each expert's block rounded up to align rows
    ends = tl.cumsum(aligned, axis=0)
    starts = ends - aligned
    if pid < copy_programs:
        col_block = pid % COL_BLOCKS
        if pid == 0:  # one program publishes the counts and offsets
            tl.store(count_ptr + bins, totals, mask=is_bin)
            tl.store(offsets_ptr + bins, starts, mask=is_bin)
            tl.store(offsets_ptr + num_local, tl.sum(aligned, axis=0))
        slot = chunk_start + tl.arange(0, CHUNK)
        valid = slot < num_total
        expert = tl.load(ids_ptr + slot, mask=valid, other=-1)
        local = (expert >= start) & (expert < start + num_local) & valid
        local_expert = tl.where(local, expert - start, -1)
        hit = (local_expert.to(tl.int32)[:, None] == bins[None, :]) & local[:, None]  # one-hot
        upto = tl.cumsum(hit.to(tl.int32), axis=0)  # stable rank inside the chunk, plus one
        dest = tl.sum(tl.where(hit, upto - 1 + (starts + before)[None, :], 0), axis=1)
        if col_block == 0:
            tl.store(adjusted_ptr + slot, local_expert, mask=valid)
            tl.store(index_ptr + slot, tl.where(local, dest, -1), mask=valid)
        # list this chunk's local slots and rows in this program's own scratch, then read them back
        position = tl.cumsum(local.to(tl.int32), axis=0) - 1
        mine = list_ptr + pid * (2 * CHUNK)
        tl.store(mine + position, slot, mask=local)
        tl.store(mine + CHUNK + position, dest, mask=local)
        tl.debug_barrier()  # the loads below read entries other threads stored: wait for them
        n_local = tl.sum(local.to(tl.int32), axis=0)
        cols = col_block * COPY_COLS + tl.arange(0, COPY_COLS)
        col_ok = cols < hidden
        g = tl.arange(0, SCALE_BLOCK)
        for i0 in range(0, n_local, COPY_ROWS):
            i = i0 + tl.arange(0, COPY_ROWS)
            ok = i < n_local
            token = (tl.load(mine + i, mask=ok, other=0) // topk).to(tl.int64)
            row = tl.load(mine + CHUNK + i, mask=ok, other=0).to(tl.int64)
            both = ok[:, None] & col_ok[None, :]
            v = tl.load(x_ptr + token[:, None] * x_stride + cols[None, :], mask=both)
            tl.store(rows_ptr + row[:, None] * hidden + cols[None, :], v, mask=both)
            if col_block == 0:
                sm = ok[:, None] & (g < scale_cols)[None, :]
                sc = tl.load(scales_ptr + token[:, None] * s_stride0 + g[None, :] * s_stride1, mask=sm)
                tl.store(out_scales_ptr + g[None, :].to(tl.int64) * scale_stride + row[:, None], sc, mask=sm)
    else:
        fill_m_indices(m_ptr, pid - copy_programs, bins, starts, totals, aligned, num_local, rows_cap,
                       FILL_ROWS, FILL_BLOCK, SKIP_PADDING)


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
    """Build the contiguous grouped-GEMM layout of this rank's slots in two launches.

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

    ``graph_safe=False``: one host read between the launches (the tile histograms, a few KB) sizes
    ``rows``, ``scales`` and ``m_indices`` to exactly ``M`` rows (``num_rows``), the scales' column
    stride ``M`` rounded up to 4. ``graph_safe=True``: no host read at all; they have the worst-case
    ``N*topk + num_local*(align-1)`` rows (those past ``offsets[-1]`` are marked ``-1`` in
    ``m_indices``; hand the GEMM all of them), and ``num_rows`` is None. Either way the result is the
    same bits on every run.
    """
    a = inputs.check(topk_ids, start, num_local, x, scales, align, padding, needs_triton=True)
    if graph_safe and topk_ids.numel() <= launch.SINGLE_SLOTS:
        return _single_launch(topk_ids, a, x, scales, padding)
    first = first_launch(topk_ids, a)
    p, hist = first.plan, first.hist
    if graph_safe:
        rows_cap = inputs.max_rows(topk_ids.numel(), a.num_local, a.align)
    else:  # the one host read: the tile histograms, to size every output exactly
        totals = hist.view(p.tiles, p.bins)[:, :a.num_local].cpu().sum(0)
        rows_cap = int(((totals + a.align - 1) // a.align * a.align).sum())
    device = topk_ids.device
    counts = _empty(a.num_local, torch.int32, device)
    offsets = _empty(a.num_local + 1, torch.int32, device)
    stride = inputs.aligned_stride(rows_cap)
    m_indices = _empty(rows_cap, torch.int32, device)
    rows = _empty((rows_cap, a.hidden), torch.float8_e4m3fn, device)
    scale_store = _empty((a.scale_cols, stride), scales.dtype, device)
    x_bytes = x.view(torch.uint8)  # a byte copy: bit-exact, and the interpreter needs no fp8 support
    tail_programs = p.fill_programs if graph_safe else 0  # exact sizing leaves no tail to mark
    grid = p.tiles * p.col_blocks + a.num_local + tail_programs
    layout_kernel[(grid,)](first.adjusted, first.index, first.slot_list, first.rank_list, hist,
                           x_bytes, x.stride(0), scales, scales.stride(0), scales.stride(1),
                           rows.view(torch.uint8), scale_store, stride, counts, offsets, m_indices,
                           p.tiles, a.num_local, rows_cap, a.hidden, a.scale_cols, topk_ids.shape[1], a.align,
                           p.tile, BINS=p.bins, TABLE_ROWS=p.table_rows, COPY_COLS=p.copy_cols,
                           COPY_ROWS=p.copy_rows, COL_BLOCKS=p.col_blocks,
                           SCALE_BLOCK=triton.next_power_of_2(a.scale_cols), FILL_ROWS=FILL_ROWS,
                           FILL_BLOCK=p.fill_block, SKIP_PADDING=padding == "skip", num_warps=4)
    return DispatchLayout(first.adjusted, counts, offsets, first.index, m_indices, rows,
                          scale_store.t()[:rows_cap], None if graph_safe else rows_cap)


@dataclass
class FirstLaunch:
    """What launch 1 leaves for launch 2: its plan, the adjusted ids, ``output_index`` (``-1`` for the
    slots that are not local so far), and the call's scratch: slot lists, ranks, tile histograms."""
    plan: Plan
    adjusted: torch.Tensor
    index: torch.Tensor
    slot_list: torch.Tensor
    rank_list: torch.Tensor
    hist: torch.Tensor


def first_launch(topk_ids, a: inputs.Args) -> FirstLaunch:
    """Allocate the call's buffers and run :func:`rank_kernel` (``a`` from :func:`inputs.check`)."""
    device = topk_ids.device
    num_total = topk_ids.numel()
    p = plan(num_total, a.num_local, a.hidden, inputs.max_rows(num_total, a.num_local, a.align))
    adjusted = _empty(topk_ids.shape, topk_ids.dtype, device)
    index = _empty(topk_ids.shape, torch.int32, device)
    lists = max(num_total, 1)
    scratch = _empty(2 * lists + p.tiles * p.bins, torch.int32, device)
    slot_list, rank_list, hist = scratch[:lists], scratch[lists:2 * lists], scratch[2 * lists:]
    rank_kernel[(p.tiles,)](topk_ids, adjusted, index, slot_list, rank_list, hist, num_total, a.start,
                            a.num_local, p.tile, RANK_BLOCK=p.rank_block, BINS=p.bins, num_warps=4)
    return FirstLaunch(p, adjusted, index, slot_list, rank_list, hist)


def _single_launch(topk_ids, a: inputs.Args, x, scales, padding) -> DispatchLayout:
    """Small inputs, graph-safe: :func:`single_kernel`, every program counting every slot itself."""
    device = topk_ids.device
    num_total = topk_ids.numel()
    rows_cap = inputs.max_rows(num_total, a.num_local, a.align)
    p = plan(num_total, a.num_local, a.hidden, rows_cap)
    chunk = p.rank_block
    copy_programs = triton.cdiv(num_total, chunk) * p.col_blocks
    adjusted = _empty(topk_ids.shape, topk_ids.dtype, device)
    index = _empty(topk_ids.shape, torch.int32, device)
    counts = _empty(a.num_local, torch.int32, device)
    offsets = _empty(a.num_local + 1, torch.int32, device)
    m_indices = _empty(rows_cap, torch.int32, device)
    rows = _empty((rows_cap, a.hidden), torch.float8_e4m3fn, device)
    stride = inputs.aligned_stride(rows_cap)
    scale_store = _empty((a.scale_cols, stride), scales.dtype, device)
    lists = _empty(max(1, copy_programs) * 2 * chunk, torch.int32, device)  # each program's own list
    grid = copy_programs + a.num_local + p.fill_programs
    single_kernel[(grid,)](topk_ids, adjusted, index, lists, x.view(torch.uint8), x.stride(0), scales,
                           scales.stride(0), scales.stride(1), rows.view(torch.uint8), scale_store, stride,
                           counts, offsets, m_indices, num_total, a.start, a.num_local, rows_cap, a.hidden,
                           a.scale_cols, topk_ids.shape[1], a.align, SCAN=SCAN, CHUNK=chunk, BINS=p.bins,
                           COPY_COLS=p.copy_cols, COPY_ROWS=p.copy_rows, COL_BLOCKS=p.col_blocks,
                           SCALE_BLOCK=triton.next_power_of_2(a.scale_cols), FILL_ROWS=FILL_ROWS,
                           FILL_BLOCK=p.fill_block, SKIP_PADDING=padding == "skip", num_warps=4)
    return DispatchLayout(adjusted, counts, offsets, index, m_indices, rows, scale_store.t()[:rows_cap], None)
