"""Where an eager ``prepare_dispatch`` call spends its host time, piece by piece, on a GPU machine.

    python tools/dispatch_host_profile.py [TOKENS ...]

Each line is :func:`moe_lab.measure.timing.host_us` (wall time per call of back-to-back calls, one sync at the
end) of one piece of the call, at DeepSeek-V3 EP8 sizes, beside the drop-in on the same ids. The pieces
that launch the layout alone are timed only where the op takes one launch (nothing else to prepare).
"""

from __future__ import annotations

import sys

import torch

import moe_lab
from moe_lab.dispatch import inputs, launch, op
from moe_lab.measure import dispatch_bench as bench
from moe_lab.measure import timing

CALLS, REPEATS = 200, 3
"""Back-to-back calls per round, and rounds, of each piece (fewer than the benchmark's: a profile)."""


def pieces(num_tokens: int) -> dict:
    ids, x, scales = bench.routed(num_tokens, seed=num_tokens)
    start, local = bench.START, bench.NUM_LOCAL
    a = inputs.check(ids, start, local, x, scales, 128, "expert", needs_triton=True)
    p = launch.plan(num_tokens, bench.TOPK, local, bench.HIDDEN, a.scale_cols, False, 128, False, True)
    layout = op.prepare_dispatch(ids, start, local, x, scales, graph_safe=True)
    args = (ids, layout.adjusted_ids, layout.output_index, layout.expert_count, layout.expert_count,
            layout.offsets, layout.m_indices, x.view(torch.uint8), x.stride(0), scales, scales.stride(0),
            scales.stride(1), layout.rows.view(torch.uint8), layout.scales, layout.scales.stride(1),
            num_tokens, start, local, p.tiles, p.rows_cap)
    lay = p.layout
    timed = {
        "dropin (recompute_topk_ids_sum_expert_count)":
            lambda: moe_lab.recompute_topk_ids_sum_expert_count(ids, start, local),
        "inputs.check": lambda: inputs.check(ids, start, local, x, scales, 128, "expert", needs_triton=True),
        "launch.plan (cached)": lambda: launch.plan(num_tokens, bench.TOPK, local, bench.HIDDEN, a.scale_cols,
                                                    False, 128, False, True),
        "two allocations (pool, rows)": lambda: (
            torch.empty(p.rows_cap * 60, dtype=torch.int32, device="cuda"),
            torch.empty((p.rows_cap, bench.HIDDEN), dtype=torch.uint8, device="cuda")),
        "Launcher.key": lambda: lay.key(args),
        "prepare_dispatch(graph_safe=True)": lambda: op.prepare_dispatch(ids, start, local, x, scales,
                                                                         graph_safe=True),
        "prepare_dispatch(graph_safe=False)": lambda: op.prepare_dispatch(ids, start, local, x, scales),
    }
    if p.source == launch.FROM_IDS:  # a layout launch on its own reads only what this plan's call wrote
        timed["layout launch, cached binary"] = lambda: lay(p.grid, *args)
        timed["layout launch, Triton's path"] = lambda: lay.kernel[(p.grid,)](*args, **lay.constexprs,
                                                                              num_warps=lay.num_warps)
    return timed


def main(argv=None) -> int:
    sizes = [int(t) for t in (argv if argv is not None else sys.argv[1:])] or [64, 4096]
    timing.require_gpu("the host profile")
    for n in sizes:
        print(f"{n} tokens: wall us per call (median of {REPEATS} rounds of {CALLS} calls)")
        for name, fn in pieces(n).items():
            print(f"  {name:48} {timing.host_us(fn, calls=CALLS, repeats=REPEATS)[0]:8.1f}")
        if not launch.uses_blocks(n, bench.TOPK, bench.NUM_LOCAL):
            p = launch.plan(n, bench.TOPK, bench.NUM_LOCAL, bench.HIDDEN, bench.HIDDEN // 128, False, 128,
                            False, True)
            print(f"  binaries held by the layout launcher: {len(p.layout.binaries)} (one per input class)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
