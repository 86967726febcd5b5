"""``prepare_dispatch``: the contiguous grouped-GEMM layout in one to three launches, deterministic,
with no state between calls.

The kernels are in :mod:`.kernels` and :mod:`.blocks`, the launch rules in :mod:`.launch`, the host side
of a call in :mod:`.call`. A call's arguments are checked in full the first time its shape is seen (and
whenever an argument is not a plain tensor, int, str or bool); the call plan of the shape is kept. Each
call then allocates its outputs fresh, as views of one buffer (the int32 pieces, ``rows``,
``m_indices`` and the scales; exact sizing adds a small table of counts first), and launches the kept
binaries directly (:mod:`moe_lab.launcher`). The only host read is the exact-sizing mode's: the expert
totals, to size the outputs to ``M`` rows.

Nothing persists between calls: every buffer a kernel reads belongs to this call and is written
completely before it is read, so an interrupted call, two threads, two streams or two graphs replayed
at once cannot affect each other. The caches hold plans and compiled binaries, never tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from moe_lab.checks import INT32_MAX
from moe_lab.dispatch import blocks, call, inputs, launch

POISON: int | None = None
"""Test hook: when set, every fresh buffer (outputs and the counts table) is filled with this byte first."""


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
    the padding rows of ``rows`` and ``scales`` is the same bits on every run. The outputs are fresh
    on every call: views of one buffer the call allocates.
    """
    k = call.key(topk_ids, num_local, x, scales, align, padding, graph_safe)
    plan = call.find(k)  # the shape's plan, when a call of this shape passed every check before
    if plan is None or type(start) is not int or not 0 <= start <= INT32_MAX - num_local:  # noqa: E721
        a = inputs.check(topk_ids, start, num_local, x, scales, align, padding, needs_triton=True,
                         graph_safe=graph_safe)  # raises for any bad argument
        start = a.start  # a checked int (numpy ints and 0-d tensors take this path every call)
        if plan is None:
            plan = call.make(a, topk_ids, x, scales, padding == "skip", bool(graph_safe))
            call.keep(k, plan)
    return DispatchLayout(*plan.run(topk_ids, start, x, scales, POISON))


def run(p: launch.Plan, topk_ids, a: inputs.Args, x, scales, graph_safe: bool) -> DispatchLayout:
    """The tile design (:mod:`.kernels`) with launch plan ``p`` forced (arguments already checked)."""
    plan = call.CallPlan(p, a, topk_ids, x, scales, graph_safe)  # not kept: a forced plan is for tests
    return DispatchLayout(*plan.run(topk_ids, a.start, x, scales, POISON))


def run_blocks(p: blocks.BlockPlan, topk_ids, a: inputs.Args, x, scales, graph_safe: bool) -> DispatchLayout:
    """The token-block design (:mod:`.blocks`) with plan ``p`` forced (arguments already checked)."""
    plan = call.CallPlan(p, a, topk_ids, x, scales, graph_safe)  # not kept: a forced plan is for tests
    return DispatchLayout(*plan.run(topk_ids, a.start, x, scales, POISON))


__all__ = ["DispatchLayout", "prepare_dispatch", "run", "run_blocks", "POISON"]
