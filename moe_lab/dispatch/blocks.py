"""The dispatch layout for large batches: token blocks, a coarse table, a row copy in column chunks.

Used by :func:`~moe_lab.dispatch.prepare_dispatch` past :data:`.launch.TABLE_TOKENS` tokens (measured on
an H200 to beat the tile design of :mod:`.kernels` there; see docs/dispatch.md). Two launches:

1. :func:`~.kernels.table_kernel` (``BY_TILE``): each *tile* (``tile_blocks`` blocks of ``block_tokens``
   tokens) stores its slots of each expert into a coarse ``[tiles, bins]`` table of at most :data:`TABLE`
   entries;
2. :func:`block_layout_kernel`: a program per block (and, while that makes at most
   :data:`WIDE_PROGRAMS` programs, per 1024-column chunk of its rows) reads the whole table (totals, and
   the slots of earlier tiles), counts the slots of its own tile before its block, ranks its block's
   slots in steps of a few slots, stores ``output_index``, and reads it back after a barrier one top-k
   column at a time, in the layout of the row tile: it then copies each token's row once to each of its
   local slots' rows. Every program of a block stores the same index and reads back what it stored itself.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import triton
import triton.language as tl

from moe_lab.dispatch import kernels
from moe_lab.dispatch.kernels import fill_m_indices
from moe_lab.launcher import Launcher

ONE_HOT = 4096
"""Elements of a block's one-hot tiles (``[slots, bins]``): bounds ``block_tokens``."""
RANK_ONE_HOT = 1024
"""Elements of one ranking step's one-hot tile: a block is ranked in steps of ``rank_slots`` slots."""
BLOCK_TOKENS = 4
"""Most tokens in a block (4 tokens of top-8: 32 slots, a 4 KB copy step of 1024 columns)."""
COPY_COLS = 1024
"""Most bytes of a row in one copy step."""
COPY_BYTES = 16384
"""Bytes of ``x`` one copy step loads at most (``block_tokens`` rows x ``copy_cols``)."""
WIDE_PROGRAMS = 1024
"""Up to this many (block, column chunk) programs, every chunk gets its own program; above, one program
per block loops over the chunks of its rows."""
TABLE = 2048
"""Most entries in the coarse table of tile counts that every layout program reads."""
SCAN = 1024
"""Slots per step of a count."""
FILL_ROWS = 4096
"""Rows past the last expert block that one tail program marks ``-1`` (graph-safe mode)."""
FILL_BLOCK = 1024
"""``m_indices`` entries a fill program writes per step."""


@triton.jit
def block_layout_kernel(ids_ptr, adjusted_ptr, index_ptr, coarse_ptr,
                        x_ptr, x_stride, scales_ptr, s_stride0, s_stride1, rows_ptr, out_scales_ptr,
                        scale_stride, count_ptr, offsets_ptr, m_ptr,
                        num_tokens, topk, start, num_local, num_tiles, tile_blocks, rows_cap, hidden,
                        scale_cols, align,
                        BLOCK_TOKENS: tl.constexpr, KP: tl.constexpr, BINS: tl.constexpr,
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
    tile = block // tile_blocks
    for first in range(0, num_tiles, TABLE_ROWS):  # the coarse table: every program reads all of it
        t = first + tl.arange(0, TABLE_ROWS)
        h = tl.load(coarse_ptr + t[:, None] * BINS + bins[None, :], mask=(t < num_tiles)[:, None],
                    other=0)
        totals += tl.sum(h, axis=0)
        before += tl.sum(tl.where((t < tile)[:, None], h, 0), axis=0)  # slots earlier tiles hold
    own_tile = tile * tile_blocks * BLOCK_TOKENS * topk
    for first in range(own_tile, first_slot, SCAN):  # the slots of its own tile before its block
        slot = first + tl.arange(0, SCAN)
        inside = slot < first_slot
        expert = tl.load(ids_ptr + slot, mask=inside, other=-1)
        local = (expert >= start) & (expert < start + num_local) & inside
        before += tl.histogram(tl.where(local, expert - start, 0).to(tl.int32), BINS, mask=local)
    aligned = (totals + align - 1) // align * align  # each expert's block rounded up to align rows
    starts = tl.cumsum(aligned, axis=0) - aligned  # exclusive prefix: where each block starts
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
                column = out_scales_ptr + g[None, :].to(tl.int64) * scale_stride  # MN-major scales
                tl.store(column + row.to(tl.int64)[:, None], sc, mask=(row >= 0)[:, None] & g_ok[None, :])
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


@dataclass(frozen=True)
class BlockPlan:
    bins: int
    block_tokens: int
    blocks: int
    col_blocks: int     # layout programs per block
    tile_blocks: int    # blocks per tile of the table launch
    tiles: int          # programs of the table launch (rows of the coarse table)
    copy_programs: int  # blocks * col_blocks
    tails: int          # tail programs of the graph-safe mode
    table: Launcher
    layout: Launcher


def _pow2_floor(n: int) -> int:
    return 1 << (max(1, n).bit_length() - 1)


@functools.lru_cache(maxsize=64)
def _launcher(name: str, num_warps: int, **constexprs) -> Launcher:
    return Launcher(globals()[name] if name in globals() else getattr(kernels, name), constexprs, num_warps)


@functools.lru_cache(maxsize=256)
def plan(num_tokens: int, topk: int, bins: int, hidden: int, scale_cols: int, skip_padding: bool,
         rows_cap: int) -> BlockPlan:
    """The launches of one call shape; ``rows_cap``: the worst-case rows (the tail programs' range)."""
    kp = triton.next_power_of_2(max(topk, 1))
    block_tokens = min(max(1, ONE_HOT // bins // kp), BLOCK_TOKENS)
    blocks = triton.cdiv(num_tokens, block_tokens)
    copy_cols = min(COPY_COLS, triton.next_power_of_2(hidden),
                    _pow2_floor(max(16, COPY_BYTES // block_tokens)))
    chunks = triton.cdiv(hidden, copy_cols)
    col_blocks = chunks if blocks * chunks <= WIDE_PROGRAMS else 1
    tile_blocks = max(1, triton.cdiv(blocks, max(1, TABLE // bins)))
    tiles = max(1, triton.cdiv(blocks, tile_blocks))
    layout = _launcher(
        "block_layout_kernel", 4, BLOCK_TOKENS=block_tokens, KP=kp, BINS=bins, COPY_COLS=copy_cols,
        CHUNKS=chunks, COL_BLOCKS=col_blocks, SCALE_BLOCK=triton.next_power_of_2(scale_cols),
        TABLE_ROWS=max(1, TABLE // 2 // bins), SCAN=SCAN,
        RANK_SLOTS=min(block_tokens * kp, max(1, RANK_ONE_HOT // bins)),
        FILL_ROWS=FILL_ROWS, FILL_BLOCK=FILL_BLOCK, SKIP_PADDING=skip_padding)
    return BlockPlan(bins=bins, block_tokens=block_tokens, blocks=blocks, col_blocks=col_blocks,
                     tile_blocks=tile_blocks, tiles=tiles, copy_programs=blocks * col_blocks,
                     tails=max(1, triton.cdiv(rows_cap, FILL_ROWS)),
                     table=_launcher("table_kernel", 4, BINS=bins, SCAN=SCAN, BY_TILE=True), layout=layout)


__all__ = ["BlockPlan", "plan", "block_layout_kernel"]
