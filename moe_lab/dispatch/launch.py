"""Launch rules of the dispatch layout: one place decides block sizes and grids.

The copy works on *token blocks*: ``block_tokens`` tokens (all their top-k slots), one row of ``x`` per
token loaded once and stored to each of its local slots' rows. A program of the layout launch takes one
block and every ``col_blocks``-th chunk of ``copy_cols`` columns of its rows: many programs at small
sizes (latency), one per block at large sizes (each reads the table once, not seven times).

The table launch (two-launch path) counts the slots of each tile of ``tile_blocks`` blocks; it keeps
``tiles * bins`` (the coarse table every layout program reads) at most ``TABLE`` entries. A layout
program counts the slots of its own tile before its block itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import triton

MAX_BINS = 1024
"""Most local experts the register histograms hold."""
ONE_HOT = 4096
"""Elements of the one-hot tiles of a block (``[slots, bins]``): bounds ``block_tokens``."""
RANK_ONE_HOT = 1024
"""Elements of one ranking step's ``[slots, bins]`` one-hot tile (8 a thread at 4 warps): a block is
ranked in steps of ``rank_slots`` slots, carrying the counts, to keep the registers (and so the
programs resident on an SM) where the copy needs them."""
MAX_BLOCK_TOKENS = 4
"""Most tokens in a block on the two-launch path (4 tokens of top-8: 32 slots, a 4 KB copy step of
1024 columns). Measured on an H100 at DeepSeek-V3 EP8 sizes, 4 beat 8 and 16 from 1024 to 32768
tokens: more, lighter programs in flight."""
SINGLE_BLOCK_TOKENS = (4, 16)
"""Fewest and most tokens in a block on the single-launch path, where it is ``num_tokens // 32``: every
program there counts all the slots, so larger batches take fewer, larger blocks (measured on an H100:
4 tokens best at 64 and 128 tokens, 8 at 256, 16 at 512)."""
COPY_COLS = 1024
"""Most bytes of a row in one copy step."""
COPY_BYTES = 16384
"""Bytes of ``x`` one copy step loads (``block_tokens`` rows x ``copy_cols``): 32 registers a thread
at 4 warps, so many programs stay resident and many loads are in flight."""
WIDE_PROGRAMS = 1024
"""Up to this many (block, column chunk) programs, every chunk gets its own program; above, one program
per block loops over the chunks of its rows."""
TABLE = 2048
"""Most entries in the coarse table of tile histograms that every layout program reads."""
NUM_WARPS = 4
"""Warps of a layout program (two-launch path)."""
SINGLE_WARPS = 4
"""Warps of a layout program on the single-launch path."""
SINGLE_SLOTS = 4096
"""Calls with at most this many slots (512 tokens of top-8) take one launch in the graph-safe mode:
every program counts all slots itself (SCAN at a time) instead of reading tables a first launch wrote."""
SCAN = 1024
"""Slots per step of a layout program's count on the two-launch path (its tile before its block)."""
SINGLE_SCAN = 4096
"""Most slots per step of the count on the single-launch path (the whole batch at 512 tokens of top-8:
one step instead of four)."""
FILL_ROWS = 4096
"""Rows past the last expert block that one tail program marks ``-1`` (graph-safe mode)."""
FILL_BLOCK = 1024
"""``m_indices`` entries a fill program writes per step."""


@dataclass(frozen=True)
class Plan:
    bins: int           # power of two >= num_local
    topk_p2: int        # power of two >= topk
    block_tokens: int   # tokens per block (a power of two)
    blocks: int         # token blocks
    copy_cols: int      # columns of x per copy step
    chunks: int         # copy steps per row
    col_blocks: int     # layout programs per block (each takes every col_blocks-th chunk)
    rank_slots: int     # slots per ranking step (divides block_tokens * topk_p2)
    tile_blocks: int    # blocks per tile of the table launch
    tiles: int          # programs of the table launch (rows of the coarse table)
    table_rows: int     # rows of the coarse table read per step in the layout launch
    fill_programs: int  # tail programs of the graph-safe mode
    fill_block: int     # rows per step of a fill program
    scan: int           # slots per step of a layout program's count
    single: bool        # one launch (every program counts every slot) instead of two


def _pow2_floor(n: int) -> int:
    return 1 << (max(1, n).bit_length() - 1)


def plan(num_tokens: int, topk: int, num_local: int, hidden: int, rows_cap: int,
         single: bool = False) -> Plan:
    bins = triton.next_power_of_2(num_local)
    if bins > MAX_BINS:
        raise ValueError(f"num_local_experts={num_local} is more than the {MAX_BINS} local experts the "
                         f"dispatch layout keeps in register histograms; split the experts into groups")
    kp = triton.next_power_of_2(max(topk, 1))
    most = max(1, ONE_HOT // bins // kp)  # the block's one-hot tiles stay within ONE_HOT elements
    if single:  # every program counts all slots: fewer programs for larger batches
        low, high = SINGLE_BLOCK_TOKENS
        block_tokens = min(most, high, max(low, _pow2_floor(num_tokens // 32)))
    else:
        block_tokens = min(most, MAX_BLOCK_TOKENS)
    blocks = triton.cdiv(num_tokens, block_tokens)
    copy_cols = min(COPY_COLS, triton.next_power_of_2(hidden),
                    _pow2_floor(max(16, COPY_BYTES // block_tokens)))
    chunks = triton.cdiv(hidden, copy_cols)
    col_blocks = chunks if blocks * chunks <= WIDE_PROGRAMS else 1
    tile_blocks = max(1, triton.cdiv(blocks, max(1, TABLE // bins)))
    tiles = max(1, triton.cdiv(blocks, tile_blocks))
    return Plan(bins=bins, topk_p2=kp, block_tokens=block_tokens, blocks=blocks, copy_cols=copy_cols,
                chunks=chunks, col_blocks=col_blocks,
                rank_slots=min(block_tokens * kp, max(1, RANK_ONE_HOT // bins)), tile_blocks=tile_blocks,
                tiles=tiles,
                table_rows=max(1, TABLE // 2 // bins), fill_programs=max(1, triton.cdiv(rows_cap, FILL_ROWS)),
                fill_block=FILL_BLOCK, single=single,
                scan=min(SINGLE_SCAN, triton.next_power_of_2(max(16, num_tokens * topk))) if single else SCAN)
