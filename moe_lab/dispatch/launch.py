"""Launch rules of the dispatch layout: one place decides tile sizes and grids.

The first launch splits the slots into at most ``max_tiles`` tiles; each program walks its tile in
sub-tiles of ``rank_block`` slots. The second launch re-reads the whole table of tile histograms in
every program (that is how it needs no state between launches), so ``tiles * bins`` is kept small.
"""

from __future__ import annotations

from dataclasses import dataclass

import triton

MAX_BINS = 1024
"""Most local experts the register histograms hold."""
ONE_HOT = 4096
"""Elements of the ``[slots, bins]`` one-hot tiles: big enough to stream, small enough for registers."""
TABLE = 4096
"""Most entries in the table of tile histograms that every second-launch program reads."""
COPY_COLS = 1024
"""Bytes of a row that one second-launch program copies (7168-byte rows: 7 programs per tile)."""
COPY_BYTES = 4096
"""Bytes one copy step moves: ``COPY_BYTES // COPY_COLS`` rows at a time. 4096 keeps the second
launch near 84 registers a thread on sm_90 (16384 needs 242: two programs per SM instead of six)."""
SINGLE_SLOTS = 4096
"""Graph-safe calls with at most this many slots (512 tokens of top-8) take one launch: every program
counts all slots itself (SCAN at a time) instead of reading a table that a first launch wrote."""
SCAN = 1024
"""Slots per step of that count."""
FILL_ROWS = 4096
"""Rows past the last expert block that one tail program marks ``-1`` (graph-safe mode)."""
FILL_BLOCK = 1024
"""``m_indices`` entries a fill program writes per step."""


@dataclass(frozen=True)
class Plan:
    bins: int          # power of two >= num_local
    rank_block: int    # slots per sub-tile in the first launch
    tile: int          # slots per tile (a multiple of rank_block)
    tiles: int         # programs of the first launch
    copy_cols: int     # columns of x per copy program
    col_blocks: int    # copy programs per tile
    copy_rows: int     # rows per copy step
    table_rows: int     # rows of the tile table read per step in the second launch
    fill_programs: int  # tail programs of the graph-safe mode
    fill_block: int     # rows per step of a fill program


def plan(num_slots: int, num_local: int, hidden: int, rows_cap: int) -> Plan:
    bins = triton.next_power_of_2(num_local)
    if bins > MAX_BINS:
        raise ValueError(f"num_local_experts={num_local} is more than the {MAX_BINS} local experts the "
                         f"dispatch layout keeps in register histograms; split the experts into groups")
    rank_block = max(16, min(256, ONE_HOT // bins))
    max_tiles = max(1, min(256, TABLE // bins))
    tiles = max(1, min(max_tiles, triton.cdiv(num_slots, rank_block)))
    tile = triton.cdiv(triton.cdiv(max(num_slots, 1), tiles), rank_block) * rank_block
    tiles = max(1, triton.cdiv(num_slots, tile))
    copy_cols = min(COPY_COLS, triton.next_power_of_2(hidden))
    return Plan(bins=bins, rank_block=rank_block, tile=tile, tiles=tiles, table_rows=max(1, TABLE // 2 // bins),
                copy_cols=copy_cols,
                col_blocks=triton.cdiv(hidden, copy_cols), copy_rows=max(1, COPY_BYTES // copy_cols),
                fill_programs=max(1, triton.cdiv(rows_cap, FILL_ROWS)), fill_block=FILL_BLOCK)
