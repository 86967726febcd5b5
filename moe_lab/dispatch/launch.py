"""Launch rules of the dispatch layout: one place decides the design, tiles and grids, once per shape.

Two designs share the outputs and the guarantees; the rules pick one by size (measured on an H200,
DeepSeek-V3 EP8, graph replay; docs/dispatch.md has the numbers):

* up to :data:`TABLE_TOKENS` tokens, the tile design of :mod:`.kernels`: tiles of ``tile_tokens``
  tokens, one layout program per tile and 1024 columns of its rows (``chunks`` per tile), plus one
  *fill* program per local expert (``m_indices``, the counts, the offsets) and, in the graph-safe mode,
  tail programs that mark the rows past the last expert block. The totals and each tile's earlier slots
  come from one of two sources (``source``):

  * ``FROM_IDS`` (one launch): every program counts all the slots; graph-safe calls of at most
    :data:`SINGLE_SLOTS` slots;
  * ``FROM_TABLE`` (two launches): the table launch stores each tile's counts, every layout program sums
    the table (at most :data:`TABLE` entries); every other call up to :data:`TABLE_TOKENS` tokens;

* above, the token-block design of :mod:`.blocks` (two launches: a coarse table, then blocks of 4
  tokens copying their rows in column chunks).

:func:`plan` is cached per shape (``functools.lru_cache``): a call of a shape seen before computes
nothing here. A :class:`Plan` holds numbers and :class:`moe_lab.launcher.Launcher` objects, never tensors.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import triton

from moe_lab.dispatch import kernels
from moe_lab.dispatch.inputs import MAX_BINS, max_rows
from moe_lab.dispatch.kernels import FROM_IDS, FROM_TABLE
from moe_lab.launcher import Launcher

ONE_HOT = 4096
"""Most elements of a tile's one-hot ``[slots, bins]`` ranking tile: bounds ``tile_tokens``."""
SINGLE_SLOTS = 1024
"""Graph-safe calls with at most this many slots (128 tokens of top-8) take one launch (``FROM_IDS``)."""
SINGLE_TILE_TOKENS = 4
"""Tokens in a tile on the one-launch path: many light programs (every one of them counts all slots)."""
TABLE_TILE_TOKENS = 16
"""Most tokens in a tile on the two-launch path: few tiles, so a small table for every program to sum."""
TABLE = 2048
"""Most entries of the ``[bins, tiles]`` table that every layout program sums (``FROM_TABLE``)."""
TABLE_TOKENS = 1024
"""Calls of up to this many tokens take the tile design; larger ones the token blocks of :mod:`.blocks`."""
COPY_COLS = 1024
"""Columns of a row one layout program copies (16-byte accesses, 8 bytes a thread per token at 4 warps)."""
NUM_WARPS = 4
"""Warps of a layout program."""
SCAN = 4096
"""Slots per step of a count (the table launch, and the one-launch layout programs)."""
FILL_ROWS = 4096
"""Rows past the last expert block that one tail program marks ``-1`` (graph-safe mode)."""
FILL_BLOCK = 1024
"""``m_indices`` entries a fill program writes per step."""
NAMES = {FROM_IDS: "one launch", FROM_TABLE: "two launches"}


@dataclass(frozen=True)
class Plan:
    source: int          # FROM_IDS or FROM_TABLE
    bins: int            # power of two >= num_local
    tile_tokens: int     # tokens per tile (a power of two)
    tiles: int           # tiles (columns of the table)
    chunks: int          # layout programs per tile (copy_cols columns each)
    rows_cap: int        # the worst-case rows (graph-safe sizing)
    copy_programs: int   # tiles * chunks
    fill_programs: int   # one per local expert, plus the tail programs of the graph-safe mode
    table: Launcher      # the table launch (unused on the one-launch path)
    layout: Launcher

    @property
    def grid(self) -> int:
        return self.copy_programs + self.fill_programs

    @property
    def name(self) -> str:
        return NAMES[self.source]


def _pow2_floor(n: int) -> int:
    return 1 << (max(1, n).bit_length() - 1)


def bins_for(num_local: int) -> int:
    bins = triton.next_power_of_2(num_local)
    if bins > MAX_BINS:
        raise ValueError(f"num_local={num_local} is more than the {MAX_BINS} local experts the dispatch "
                         f"layout keeps in register histograms; split the experts into groups")
    return bins


def uses_blocks(num_tokens: int, topk: int, num_local: int) -> bool:
    """True when a call of this shape takes the token-block design (:mod:`.blocks`)."""
    source, tile = choose(num_tokens, topk, num_local, False)
    return num_tokens > TABLE_TOKENS or triton.cdiv(num_tokens, tile) * bins_for(num_local) > TABLE


def choose(num_tokens: int, topk: int, num_local: int, graph_safe: bool) -> tuple[int, int]:
    """``(source, tile_tokens)`` of the tile design for a call of this shape (the module text's rules)."""
    bins = bins_for(num_local)
    kp = triton.next_power_of_2(max(topk, 1))
    most = max(1, ONE_HOT // bins // kp)  # the one-hot ranking tile stays within ONE_HOT elements
    if graph_safe and num_tokens * topk <= SINGLE_SLOTS:
        return FROM_IDS, min(most, SINGLE_TILE_TOKENS)
    return FROM_TABLE, min(most, TABLE_TILE_TOKENS)


@functools.lru_cache(maxsize=64)
def launcher(kernel_name: str, num_warps: int, **constexprs) -> Launcher:
    """One :class:`Launcher` per kernel and constexprs, shared by every shape that compiles the same."""
    return Launcher(getattr(kernels, kernel_name), constexprs, num_warps)


@functools.lru_cache(maxsize=256)
def plan(num_tokens: int, topk: int, num_local: int, hidden: int, scale_cols: int, packed: bool, align: int,
         skip_padding: bool, graph_safe: bool, source: int | None = None, tile_tokens: int | None = None,
         copy_cols: int = COPY_COLS, num_warps: int = NUM_WARPS) -> Plan:
    """The launches of one call shape in the tile design. ``source``/``tile_tokens``/``copy_cols``/
    ``num_warps`` override the rules (the tests and the benchmark use that)."""
    bins = bins_for(num_local)
    rule = choose(num_tokens, topk, num_local, graph_safe)
    source = rule[0] if source is None else source
    tile_tokens = rule[1] if tile_tokens is None else tile_tokens
    kp = triton.next_power_of_2(max(topk, 1))
    copy_cols = min(copy_cols, triton.next_power_of_2(hidden))
    tiles = max(1, triton.cdiv(num_tokens, tile_tokens))
    chunks = triton.cdiv(hidden, copy_cols)
    worst = max_rows(num_tokens * topk, num_local, align)
    tails = triton.cdiv(worst, FILL_ROWS) if graph_safe else 0  # exact sizing leaves no tail to mark
    layout = launcher(
        "layout_kernel", num_warps, SOURCE=source, TOPK=topk, KP=kp, BINS=bins, TILE_TOKENS=tile_tokens,
        HIDDEN=hidden, COPY_COLS=copy_cols, SCALE_COLS=scale_cols,
        SCALE_BLOCK=triton.next_power_of_2(scale_cols), SCALE_SPAN=128 * (4 if packed else 1), ALIGN=align,
        SCAN=min(SCAN, triton.next_power_of_2(max(16, num_tokens * topk))),
        TABLE_STEP=triton.next_power_of_2(min(tiles, max(1, TABLE // bins // 2))), FILL_ROWS=FILL_ROWS,
        FILL_BLOCK=FILL_BLOCK, SKIP_PADDING=skip_padding)
    table = launcher("table_kernel", 4, BINS=bins,
                     SCAN=min(SCAN, triton.next_power_of_2(max(16, tile_tokens * topk))), BY_TILE=False)
    return Plan(source=source, bins=bins, tile_tokens=tile_tokens, tiles=tiles, chunks=chunks, rows_cap=worst,
                copy_programs=tiles * chunks if num_tokens else 0, fill_programs=num_local + tails,
                table=table, layout=layout)


__all__ = ["Plan", "plan", "launcher", "choose", "uses_blocks", "bins_for", "FROM_IDS", "FROM_TABLE"]
