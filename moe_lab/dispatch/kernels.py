"""The Triton kernels of the dispatch layout for small and middle batches: a count, and the layout.

The slots are cut into *tiles* of ``TILE_TOKENS`` tokens (all their top-k slots). A slot's destination
row is ``offsets[e] + before[e] + rank``: ``offsets`` from the totals of every expert, ``before`` the
slots of ``e`` in earlier tiles, ``rank`` its place among its tile's slots of ``e``. No atomics: rows
inside an expert come in slot order and the bits are the same every run.

:func:`layout_kernel` learns the totals and ``before`` from one of two sources (``SOURCE``):

* ``FROM_IDS``: every program counts all the slots itself (one launch, small batches);
* ``FROM_TABLE``: :func:`table_kernel` stored each tile's counts; every program sums the whole table
  (two launches).

A program copies ``COPY_COLS`` columns of its tile's rows. Every buffer a kernel reads was written
completely earlier in the same call; no program reads what another program of its launch wrote.
Large batches take the token-block design of :mod:`.blocks`.
"""

from __future__ import annotations

import triton
import triton.language as tl

FROM_IDS, FROM_TABLE = 0, 1
"""Where :func:`layout_kernel` takes the expert totals and the slots before its tile from."""

@triton.jit(do_not_specialize=["num_total", "start", "num_local", "num_tiles", "tile_slots"])
def table_kernel(ids_ptr, table_ptr, num_total, start, num_local, num_tiles, tile_slots,
                 BINS: tl.constexpr, SCAN: tl.constexpr, BY_TILE: tl.constexpr):
    tile = tl.program_id(0)
    seen = tl.full([BINS], 0, tl.int32)  # slots of each expert in this tile
    for first in range(0, tile_slots, SCAN):
        slot = tile * tile_slots + first + tl.arange(0, SCAN)
        inside = (slot < num_total) & (first + tl.arange(0, SCAN) < tile_slots)  # guard both ends
        expert = tl.load(ids_ptr + slot, mask=inside, other=-1)
        local = (expert >= start) & (expert < start + num_local) & inside
        seen += tl.histogram(tl.where(local, expert - start, 0).to(tl.int32), BINS, mask=local)
    # every bin stored, zeros included, so the table is fully written: row `tile` of a [num_tiles, BINS]
    # table (the token blocks), or column `tile` of a [BINS, num_tiles] one (the tile design)
    bins = tl.arange(0, BINS)
    tl.store(table_ptr + (tile * BINS + bins if BY_TILE else bins * num_tiles + tile), seen)


@triton.jit
def _totals_and_before(ids_ptr, table_ptr, num_total, start, num_local, num_tiles, tile,
                       first_slot, bins, SOURCE: tl.constexpr, BINS: tl.constexpr, SCAN: tl.constexpr,
                       TABLE_STEP: tl.constexpr):
    """``(totals, before)``: every expert's slots, and its slots before ``first_slot`` (tile ``tile``)."""
    totals = tl.full([BINS], 0, tl.int32)
    before = tl.full([BINS], 0, tl.int32)
    if SOURCE == 0:  # FROM_IDS: count every slot (those before the tile separately)
        for first in range(0, num_total, SCAN):
            slot = first + tl.arange(0, SCAN)
            inside = slot < num_total
            expert = tl.load(ids_ptr + slot, mask=inside, other=-1)
            local = (expert >= start) & (expert < start + num_local) & inside
            e = tl.where(local, expert - start, 0).to(tl.int32)
            totals += tl.histogram(e, BINS, mask=local)
            before += tl.histogram(e, BINS, mask=local & (slot < first_slot))
    else:  # FROM_TABLE: sum the [BINS, num_tiles] table, the columns before the tile apart
        for first in range(0, num_tiles, TABLE_STEP):
            t = first + tl.arange(0, TABLE_STEP)
            seen = tl.load(table_ptr + bins[:, None] * num_tiles + t[None, :], mask=(t < num_tiles)[None, :],
                           other=0)
            totals += tl.sum(seen, axis=1)
            before += tl.sum(tl.where((t < tile)[None, :], seen, 0), axis=1)
    return totals, before


@triton.jit(do_not_specialize=["num_tokens", "start", "num_local", "num_tiles", "rows_cap", "s_stride0",
                               "s_stride1", "scale_stride"])
def layout_kernel(ids_ptr, adjusted_ptr, index_ptr, table_ptr, count_ptr, offsets_ptr, m_ptr,
                  x_ptr, x_stride, scales_ptr, s_stride0, s_stride1, rows_ptr, out_scales_ptr, scale_stride,
                  num_tokens, start, num_local, num_tiles, rows_cap,
                  SOURCE: tl.constexpr, TOPK: tl.constexpr, KP: tl.constexpr, BINS: tl.constexpr,
                  TILE_TOKENS: tl.constexpr, HIDDEN: tl.constexpr, COPY_COLS: tl.constexpr,
                  SCALE_COLS: tl.constexpr, SCALE_BLOCK: tl.constexpr, SCALE_SPAN: tl.constexpr,
                  ALIGN: tl.constexpr, SCAN: tl.constexpr, TABLE_STEP: tl.constexpr,
                  FILL_ROWS: tl.constexpr, FILL_BLOCK: tl.constexpr, SKIP_PADDING: tl.constexpr):
    pid = tl.program_id(0)
    CHUNKS: tl.constexpr = (HIDDEN + COPY_COLS - 1) // COPY_COLS
    bins = tl.arange(0, BINS)
    num_total = num_tokens * TOPK
    copy_programs = tl.cdiv(num_tokens, TILE_TOKENS) * CHUNKS
    tile = pid // CHUNKS  # fill programs (pid >= copy_programs) have a tile past the last one
    chunk = pid % CHUNKS
    if pid < copy_programs:
        # the tile's ids as [token, k]: which tokens have a local slot is known before any counting
        t = tile * TILE_TOKENS + tl.arange(0, TILE_TOKENS)
        k = tl.arange(0, KP)
        valid = (t < num_tokens)[:, None] & (k < TOPK)[None, :]
        slot = t[:, None] * TOPK + k[None, :]
        expert = tl.load(ids_ptr + slot, mask=valid, other=-1)
        local = (expert >= start) & (expert < start + num_local) & valid
        needed = tl.max(local.to(tl.int32), axis=1) > 0  # tokens with a local slot: the only rows read
        t64 = t.to(tl.int64)  # 64-bit: rows * hidden passes 2**31 bytes
        cols = chunk * COPY_COLS + tl.arange(0, COPY_COLS)
        col_ok = cols < HIDDEN
        # issued now, used last: the row load overlaps the counting and ranking below
        row = tl.load(x_ptr + t64[:, None] * x_stride + cols[None, :],
                      mask=needed[:, None] & col_ok[None, :])
        g = tl.arange(0, SCALE_BLOCK)
        g_mine = (g < SCALE_COLS) & (g * SCALE_SPAN // COPY_COLS == chunk)  # scale columns of this chunk
        sc = tl.load(scales_ptr + t64[:, None] * s_stride0 + g[None, :] * s_stride1,
                     mask=needed[:, None] & g_mine[None, :])
        totals, before = _totals_and_before(ids_ptr, table_ptr, num_total, start, num_local, num_tiles, tile,
                                            tile * TILE_TOKENS * TOPK, bins, SOURCE, BINS, SCAN, TABLE_STEP)
        aligned = (totals + ALIGN - 1) // ALIGN * ALIGN  # each expert's block rounded up to ALIGN rows
        base = tl.cumsum(aligned, axis=0) - aligned + before  # first row of each expert for this tile
        # stable rank: a running count down a one-hot [slot, expert] tile, slots in token-major order
        local_expert = tl.where(local, expert - start, -1)
        flat = tl.reshape(local_expert, [TILE_TOKENS * KP])
        hit = (flat.to(tl.int32)[:, None] == bins[None, :]) & (flat >= 0)[:, None]
        upto = tl.cumsum(hit.to(tl.int32), axis=0)  # rank inside the tile, plus one
        dest = tl.sum(tl.where(hit, upto - 1 + base[None, :], 0), axis=1)
        dest = tl.reshape(tl.where(flat >= 0, dest, -1), [TILE_TOKENS, KP])  # back to [token, k]
        if chunk == 0:
            tl.store(index_ptr + slot, dest, mask=valid)
            tl.store(adjusted_ptr + slot, local_expert, mask=valid)
        for kk in tl.static_range(TOPK):  # the row loaded once goes to each local slot of its token
            d = tl.sum(tl.where(k[None, :] == kk, dest, 0), axis=1).to(tl.int64)  # column kk, per token
            tl.store(rows_ptr + d[:, None] * HIDDEN + cols[None, :], row,
                     mask=(d >= 0)[:, None] & col_ok[None, :])
            # scales column-major (MN-major): column g of row r at g * scale_stride + r
            tl.store(out_scales_ptr + g[None, :].to(tl.int64) * scale_stride + d[:, None], sc,
                     mask=(d >= 0)[:, None] & g_mine[None, :])
    else:
        totals, before = _totals_and_before(ids_ptr, table_ptr, num_total, start, num_local, num_tiles,
                                            num_tiles, num_total, bins, SOURCE, BINS, SCAN, TABLE_STEP)
        aligned = (totals + ALIGN - 1) // ALIGN * ALIGN
        starts = tl.cumsum(aligned, axis=0) - aligned
        fill = pid - copy_programs
        if fill == 0:  # one program publishes the counts and offsets (there is one even at N = 0)
            is_bin = bins < num_local
            tl.store(count_ptr + bins, totals, mask=is_bin)
            tl.store(offsets_ptr + bins, starts, mask=is_bin)
            tl.store(offsets_ptr + num_local, tl.sum(aligned, axis=0))
        fill_m_indices(m_ptr, fill, bins, starts, totals, aligned, num_local, rows_cap, FILL_ROWS, FILL_BLOCK,
                       SKIP_PADDING)


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


__all__ = ["FROM_IDS", "FROM_TABLE", "table_kernel", "layout_kernel", "fill_m_indices"]
