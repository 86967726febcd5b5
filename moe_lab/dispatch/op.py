"""``prepare_dispatch``: the contiguous grouped-GEMM layout in one to three launches, deterministic,
with no state between calls.

The kernels are in :mod:`.kernels`, the launch rules in :mod:`.launch`. A call checks its arguments,
takes the plan of its shape (cached), allocates its outputs fresh (one int32 buffer carved into the
index, counts, offsets, scratch table, ``m_indices`` and scales, plus the rows) and launches the cached
binaries directly (:mod:`moe_lab.launcher`). The only host read is the exact-sizing mode's: the expert totals,
to size the outputs to ``M`` rows.

Nothing persists between calls: every buffer a kernel reads belongs to this call and is written
completely before it is read, so an interrupted call, two threads, two streams or two graphs replayed
at once cannot affect each other. The caches hold plans and compiled binaries, never tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from moe_lab.dispatch import blocks, inputs, launch
from moe_lab.dispatch.kernels import FROM_IDS

POISON: int | None = None
"""Test hook: when set, every fresh output and the scratch are filled with this byte first."""

PIECE = 4
"""int32 elements every piece of the carved buffer is rounded up to: 16-byte aligned pointers."""


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


def _round(n: int) -> int:
    return (n + PIECE - 1) // PIECE * PIECE


def _pool(elements: int, device) -> torch.Tensor:
    pool = torch.empty(elements, dtype=torch.int32, device=device)
    if POISON is not None:
        pool.view(torch.uint8).fill_(POISON)
    return pool


def _rows(num_rows: int, hidden: int, device) -> torch.Tensor:
    rows = torch.empty((num_rows, hidden), dtype=torch.uint8, device=device)  # fp8 bits, moved as bytes
    if POISON is not None:
        rows.fill_(POISON)
    return rows


def prepare_dispatch(topk_ids, start, num_local, x, scales, *, align: int = 128, padding: str = "expert",
                     graph_safe: bool = False) -> DispatchLayout:
    """Build the contiguous grouped-GEMM layout of this rank's slots.

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
    transposing pass. Padding rows of ``rows`` and ``scales`` are never written; ``m_indices`` marks them.

    ``graph_safe=False``: one host read (the expert totals, after the counting launches) sizes
    ``rows``, ``scales`` and ``m_indices`` to exactly ``M`` rows (``num_rows``). ``graph_safe=True``: no
    host read at all, so the call can be captured in a CUDA graph; the outputs have the worst-case
    ``N*topk + num_local*(align-1)`` rows (those past ``offsets[-1]`` are marked ``-1`` in
    ``m_indices``; hand the GEMM all of them), and ``num_rows`` is None. Either way every output except
    the padding rows of ``rows`` and ``scales`` is the same bits on every run.
    """
    a = inputs.check(topk_ids, start, num_local, x, scales, align, padding, needs_triton=True)
    num_tokens, topk = topk_ids.shape
    if launch.uses_blocks(num_tokens, topk, a.num_local):
        cap = inputs.max_rows(num_tokens * topk, a.num_local, a.align)
        bp = blocks.plan(num_tokens, topk, launch.bins_for(a.num_local), a.hidden, a.scale_cols,
                         padding == "skip", cap)
        return run_blocks(bp, topk_ids, a, x, scales, graph_safe)
    p = launch.plan(num_tokens, topk, a.num_local, a.hidden, a.scale_cols, a.packed, a.align,
                    padding == "skip", graph_safe)
    return run(p, topk_ids, a, x, scales, graph_safe)


def _call_buffers(topk_ids, a: inputs.Args, table_size: int, cap: int | None):
    """``(pool, after, index, adjusted, counts, offsets, table)``: one int32 buffer carved into the pieces
    every call has, plus (``cap`` rows, the graph-safe sizing) room for ``m_indices`` and the scales
    from offset ``after`` on; ``table`` is ``counts`` (never read) when ``table_size`` is 0."""
    num_tokens, topk = topk_ids.shape
    slots, L = num_tokens * topk, a.num_local
    own_adjusted = topk_ids.dtype == torch.int32  # int64 ids get int64 adjusted ids, allocated apart
    sizes = [_round(slots), _round(slots) if own_adjusted else 0, _round(L), _round(L + 1),
             _round(table_size)]
    after = sum(sizes)
    outputs = _round(cap) + a.scale_cols * inputs.aligned_stride(cap) if cap is not None else 0
    pool = _pool(after + outputs, topk_ids.device)
    at = [0]
    for n in sizes[:-1]:
        at.append(at[-1] + n)
    index = pool.as_strided((num_tokens, topk), (topk, 1), at[0])
    adjusted = (pool.as_strided((num_tokens, topk), (topk, 1), at[1]) if own_adjusted
                else torch.empty_like(topk_ids))
    if POISON is not None and not own_adjusted:
        adjusted.view(torch.uint8).fill_(POISON)
    counts = pool.as_strided((L,), (1,), at[2])
    offsets = pool.as_strided((L + 1,), (1,), at[3])
    table = pool.as_strided((table_size,), (1,), at[4]) if table_size else counts
    return pool, after, index, adjusted, counts, offsets, table


def _row_buffers(pool, after: int, rows_cap: int, a: inputs.Args, scales, device):
    """``(m_indices, out_scales, rows, stride)`` for ``rows_cap`` rows: in ``pool`` from ``after`` on, or,
    with ``pool`` None (exact sizing, known only now), in a fresh buffer."""
    stride = inputs.aligned_stride(rows_cap)
    if pool is None:
        pool, after = _pool(_round(rows_cap) + a.scale_cols * stride, device), 0
    m_indices = pool.as_strided((rows_cap,), (1,), after)
    store = pool.view(torch.float32) if scales.dtype == torch.float32 else pool
    out_scales = store.as_strided((rows_cap, a.scale_cols), (1, stride), after + _round(rows_cap))
    return m_indices, out_scales, _rows(rows_cap, a.hidden, device), stride


def _exact_rows(totals: list[int], align: int) -> int:
    return sum((c + align - 1) // align * align for c in totals)


def run(p: launch.Plan, topk_ids, a: inputs.Args, x, scales, graph_safe: bool) -> DispatchLayout:
    """Allocate and launch the tile design (:mod:`.kernels`) for plan ``p`` (arguments already checked)."""
    num_tokens, topk = topk_ids.shape
    slots, L = num_tokens * topk, a.num_local
    counted = p.source != FROM_IDS or not graph_safe  # the table launch runs
    pool, after, index, adjusted, counts, offsets, table = _call_buffers(
        topk_ids, a, p.bins * p.tiles if counted else 0, p.rows_cap if graph_safe else None)
    if counted:
        p.table(p.tiles, topk_ids, table, slots, a.start, L, p.tiles, p.tile_tokens * topk)
    if graph_safe:
        rows_cap = p.rows_cap
    else:  # the one host read: the expert totals, to size the outputs exactly
        rows_cap, pool = _exact_rows(table.cpu().view(p.bins, p.tiles)[:L].sum(1).tolist(), a.align), None
    m_indices, out_scales, rows, stride = _row_buffers(pool, after, rows_cap, a, scales, topk_ids.device)
    p.layout(p.grid, topk_ids, adjusted, index, table, counts, offsets, m_indices,
             x.view(torch.uint8), x.stride(0), scales, scales.stride(0), scales.stride(1), rows, out_scales,
             stride, num_tokens, a.start, L, p.tiles, rows_cap)
    return DispatchLayout(adjusted, counts, offsets, index, m_indices, rows.view(torch.float8_e4m3fn),
                          out_scales, None if graph_safe else rows_cap)


def run_blocks(p: blocks.BlockPlan, topk_ids, a: inputs.Args, x, scales, graph_safe: bool) -> DispatchLayout:
    """Allocate and launch the token-block design (:mod:`.blocks`) for plan ``p``."""
    num_tokens, topk = topk_ids.shape
    slots, L = num_tokens * topk, a.num_local
    cap = inputs.max_rows(slots, L, a.align)
    pool, after, index, adjusted, counts, offsets, coarse = _call_buffers(
        topk_ids, a, p.tiles * p.bins, cap if graph_safe else None)
    p.table(p.tiles, topk_ids, coarse, slots, a.start, L, p.tiles, p.tile_blocks * p.block_tokens * topk)
    if graph_safe:
        rows_cap = cap
    else:  # the one host read: the coarse table, to size the outputs exactly
        rows_cap, pool = _exact_rows(coarse.cpu().view(p.tiles, p.bins)[:, :L].sum(0).tolist(), a.align), None
    m_indices, out_scales, rows, stride = _row_buffers(pool, after, rows_cap, a, scales, topk_ids.device)
    grid = p.copy_programs + L + (p.tails if graph_safe else 0)
    p.layout(grid, topk_ids, adjusted, index, coarse, x.view(torch.uint8), x.stride(0), scales,
             scales.stride(0), scales.stride(1), rows, out_scales, stride, counts, offsets, m_indices,
             num_tokens, topk, a.start, L, p.tiles, p.tile_blocks, rows_cap, a.hidden, a.scale_cols, a.align)
    return DispatchLayout(adjusted, counts, offsets, index, m_indices, rows.view(torch.float8_e4m3fn),
                          out_scales, None if graph_safe else rows_cap)


__all__ = ["DispatchLayout", "prepare_dispatch", "run", "run_blocks", "POISON"]
