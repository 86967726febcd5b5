"""The path the fused dispatch layout replaces, written here from its documented behaviour.

An inference engine's contiguous grouped-GEMM path goes from ``topk_ids`` to the first GEMM by:

1. the recombination kernel, with the memset of its counters (the ``scalar_atomic`` stage);
2. the counts copied to the host, rounded up to ``align`` rows there, and uploaded again;
3. the minimum and maximum of the adjusted ids read on the host (two more blocking reads), a clamp;
4. :func:`prefix_kernel`: one program per expert builds the exclusive prefix of the aligned counts
   and fills ``m_indices`` in blocks of ``align`` rows, with no mask (right only because every count
   is already a multiple of ``align``);
5. :func:`scatter_kernel`: each local slot takes its destination row with an atomic on its expert's
   running start (so the order of rows inside an expert changes from run to run) and copies the fp8
   row and its scales;
6. a transposing copy that puts the scales in the column-major layout the GEMM wants.

:func:`run` does all of it (three host round trips); :func:`device_part` is steps 1, 4, 5 and 6 on
buffers sized beforehand, which is what a CUDA graph of the chain can hold.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from moe_lab.dispatch import inputs
from moe_lab.dispatch.op import DispatchLayout
from moe_lab.stages import scalar_atomic


@triton.jit
def prefix_kernel(aligned_ptr, start_ptr, m_ptr, num_local, ALIGN: tl.constexpr, BINS: tl.constexpr):
    expert = tl.program_id(0)
    bins = tl.arange(0, BINS)
    aligned = tl.load(aligned_ptr + bins, mask=bins < num_local, other=0)
    starts = tl.cumsum(aligned, axis=0) - aligned  # every program computes the whole prefix...
    tl.store(start_ptr + bins, starts, mask=bins < num_local)  # ...and stores all of it
    tl.debug_barrier()  # the stores above come from other threads: without this the load can be stale
    first = tl.load(start_ptr + expert)
    rows = tl.load(aligned_ptr + expert)
    for row in range(0, rows, ALIGN):
        tl.store(m_ptr + first + row + tl.arange(0, ALIGN), expert)  # no mask: rows is a multiple of ALIGN


@triton.jit
def scatter_kernel(num_tokens, topk, start_ptr, adjusted_ptr, x_ptr, x_stride, scales_ptr, s_stride0,
                   s_stride1, rows_ptr, out_scales_ptr, index_ptr, hidden, scale_cols,
                   HIDDEN_BLOCK: tl.constexpr, SCALE_BLOCK: tl.constexpr):
    cols = tl.arange(0, HIDDEN_BLOCK)
    g = tl.arange(0, SCALE_BLOCK)
    for token in range(tl.program_id(0), num_tokens, tl.num_programs(0)):
        row = tl.load(x_ptr + token * x_stride + cols, mask=cols < hidden)
        sc = tl.load(scales_ptr + token * s_stride0 + g * s_stride1, mask=g < scale_cols)
        for k in range(topk):
            expert = tl.load(adjusted_ptr + token * topk + k)
            if expert >= 0:
                dest = tl.atomic_add(start_ptr + expert, 1)  # whichever slot comes first takes the row
                tl.store(index_ptr + token * topk + k, dest)
                tl.store(rows_ptr + dest.to(tl.int64) * hidden + cols, row, mask=cols < hidden)
                tl.store(out_scales_ptr + dest * scale_cols + g, sc, mask=g < scale_cols)
            else:
                tl.store(index_ptr + token * topk + k, -1)


def buffers(topk_ids, num_local, x, scales, num_rows: int) -> dict:
    """The chain's outputs for ``num_rows`` rows (sized on the host, from the counts)."""
    device = topk_ids.device
    cols = scales.shape[1]
    return {"rows": torch.empty(num_rows, x.shape[1], dtype=x.dtype, device=device),
            "row_scales": torch.empty(num_rows, cols, dtype=scales.dtype, device=device),
            "gemm_scales": torch.empty(cols, inputs.aligned_stride(num_rows), dtype=scales.dtype,
                                       device=device).t()[:num_rows],
            "m_indices": torch.empty(num_rows, dtype=torch.int32, device=device),
            "index": torch.empty(topk_ids.shape, dtype=torch.int32, device=device),
            "starts": torch.empty(num_local, dtype=torch.int32, device=device)}


def device_part(topk_ids, start, num_local, x, scales, aligned_counts, out: dict, *, align: int = 128,
                scatter_programs: int = 8192):
    """Steps 1, 4, 5 and 6 on prepared buffers: no host read. Returns ``(adjusted, counts)``."""
    adjusted, counts = scalar_atomic.run(topk_ids, start, num_local)
    _place(adjusted, num_local, x, scales, aligned_counts, out, align, scatter_programs)
    return adjusted, counts


def _place(adjusted, num_local, x, scales, aligned_counts, out, align, scatter_programs=8192):
    """Steps 4, 5 and 6: prefix, atomic scatter, scale transposition."""
    num_tokens, topk = adjusted.shape
    prefix_kernel[(num_local,)](aligned_counts, out["starts"], out["m_indices"], num_local, ALIGN=align,
                                BINS=triton.next_power_of_2(num_local))
    if num_tokens:
        scatter_kernel[(min(num_tokens, scatter_programs),)](
            num_tokens, topk, out["starts"], adjusted, x.view(torch.uint8), x.stride(0), scales,
            scales.stride(0), scales.stride(1), out["rows"].view(torch.uint8), out["row_scales"],
            out["index"], x.shape[1], scales.shape[1], HIDDEN_BLOCK=triton.next_power_of_2(x.shape[1]),
            SCALE_BLOCK=triton.next_power_of_2(scales.shape[1]), num_warps=8)
    out["gemm_scales"].copy_(out["row_scales"])  # the separate pass that aligns the scales for the GEMM


def run(topk_ids, start, num_local, x, scales, *, align: int = 128) -> DispatchLayout:
    """The whole chain, host round trips included; padding rows of ``m_indices`` carry their expert."""
    a = inputs.check(topk_ids, start, num_local, x, scales, align, "expert", needs_triton=True)
    adjusted, counts = scalar_atomic.run(topk_ids, a.start, a.num_local)
    host = counts.cpu().tolist()  # round trip 1: the counts to the host
    aligned = [(c + a.align - 1) // a.align * a.align for c in host]
    aligned_counts = torch.tensor(aligned, dtype=torch.int32, device=topk_ids.device)
    lowest, highest = int(adjusted.min()), int(adjusted.max())  # round trips 2 and 3
    if lowest < -1 or highest >= a.num_local:
        adjusted = adjusted.clamp(-1, a.num_local - 1)
    num_rows = sum(aligned)
    out = buffers(topk_ids, a.num_local, x, scales, num_rows)
    _place(adjusted, a.num_local, x, scales, aligned_counts, out, a.align)
    offsets = torch.tensor([0] + aligned, dtype=torch.int64).cumsum(0).to(torch.int32).to(topk_ids.device)
    return DispatchLayout(adjusted, counts, offsets, out["index"], out["m_indices"], out["rows"],
                          out["gemm_scales"], num_rows)
