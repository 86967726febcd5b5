"""The path the fused dispatch layout replaces: an inference engine's contiguous grouped-GEMM dispatch,
written here from what rtp-llm's public kernels do (``ep_kernels.py``: ``ep_scatter``,
``tma_align_input_scale``, ``recompute_topk_ids_sum_expert_count``, and the executor that calls them).

1. ``recompute``: the counters zeroed (a memset), then the recombination kernel (the ``scalar_atomic``
   stage: one atomic per local slot);
2. the counts copied to the host, rounded up to ``align`` rows there, uploaded again (pinned, async);
3. :func:`prefix_kernel` (``ep_scatter_1``): one program per expert; each builds the exclusive prefix of
   the aligned counts, stores all of it, reads its own start back and fills its block of ``m_indices``
   in unmasked steps of 128 rows (right because every aligned count is a multiple of 128);
4. :func:`scatter_kernel` (``ep_scatter_2``): ``min(num_tokens, 8192)`` programs of 8 warps striding over
   the tokens; a program loads a whole row (7168 bytes in an 8192-lane vector) and its scales, then for
   each local slot takes its row with an atomic on its expert's running start (so the order of rows
   inside an expert changes from run to run) and stores the row and its scales (row-major);
5. :func:`transpose_kernel` (``tma_align_input_scale``): the scales copied into the MN-major,
   16-byte-aligned layout the GEMM reads; ``min(rows, 8192)`` programs striding over the rows.

Two changes, both for correctness, neither for speed: the prefix kernel has a ``tl.debug_barrier()``
between storing the prefix and reading its own entry back (the store-then-load race of
:mod:`.race`), and the scatter kernel stores ``-1`` as the ``output_index`` of slots that are not
local (upstream leaves them unwritten and its gather skips them by their expert id).

:func:`run` does all of it, the host round trip included; :func:`device_part` is steps 1, 3 and 4 on
buffers sized beforehand (what a CUDA graph of the chain can hold) and :func:`transpose` is step 5, so
that the chain can be timed with and without it.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from moe_lab.dispatch import inputs
from moe_lab.dispatch.op import DispatchLayout
from moe_lab.stages import scalar_atomic

BLOCK_E = 128
"""Rows of ``m_indices`` one step of the prefix kernel stores (the GEMM's alignment)."""
SCATTER_PROGRAMS = 8192
"""Most programs of the scatter and the transpose (each strides over tokens or rows)."""
NUM_WARPS = 8
"""Warps of the prefix and scatter kernels."""


@triton.jit
def prefix_kernel(aligned_ptr, start_ptr, m_ptr, NUM_EXPERTS: tl.constexpr, BLOCK_E: tl.constexpr,
                  BLOCK_EXPERTS: tl.constexpr):
    expert = tl.program_id(0)
    e = tl.arange(0, BLOCK_EXPERTS)
    aligned = tl.load(aligned_ptr + e, mask=e < NUM_EXPERTS, other=0)
    starts = tl.cumsum(aligned, axis=0) - aligned  # every program computes the whole prefix...
    tl.store(start_ptr + e, starts, mask=e < NUM_EXPERTS)  # ...and stores all of it
    tl.debug_barrier()  # the load below may read another thread's store: wait for it
    first = tl.load(start_ptr + expert)
    rows = tl.load(aligned_ptr + expert)
    for row in tl.range(0, rows, BLOCK_E, num_stages=4):
        tl.store(m_ptr + first + row + tl.arange(0, BLOCK_E), expert)  # no mask: a multiple of BLOCK_E rows


@triton.jit
def scatter_kernel(num_tokens, start_ptr, x_ptr, x_stride0, scales_ptr, s_stride0, s_stride1, ids_ptr,
                   rows_ptr, row_scales_ptr, index_ptr,
                   TOPK: tl.constexpr, NUM_EXPERTS: tl.constexpr, HIDDEN: tl.constexpr,
                   HIDDEN_PAD: tl.constexpr, SCALE_COLS: tl.constexpr, SCALE_PAD: tl.constexpr):
    cols = tl.arange(0, HIDDEN_PAD)
    g = tl.arange(0, SCALE_PAD)
    pid, programs = tl.program_id(0), tl.num_programs(0)
    for step in range(0, tl.cdiv(num_tokens - pid, programs)):  # tokens pid, pid + programs, ...
        token = (pid + step * programs).to(tl.int64)
        row = tl.load(x_ptr + token * x_stride0 + cols, mask=cols < HIDDEN)  # the whole row, once
        sc = tl.load(scales_ptr + token * s_stride0 + g * s_stride1, mask=g < SCALE_COLS)
        for k in tl.range(0, TOPK, 1, num_stages=4):
            expert = tl.load(ids_ptr + token * TOPK + k)
            if (expert >= 0) & (expert < NUM_EXPERTS):
                dest32 = tl.atomic_add(start_ptr + expert, 1)  # whichever slot comes first takes the row
                dest = dest32.to(tl.int64)
                tl.store(index_ptr + token * TOPK + k, dest32)
                tl.store(rows_ptr + dest * HIDDEN + cols, row, mask=cols < HIDDEN)
                tl.store(row_scales_ptr + dest * SCALE_COLS + g, sc, mask=g < SCALE_COLS)
            else:
                tl.store(index_ptr + token * TOPK + k, -1)


@triton.jit
def transpose_kernel(in_ptr, out_ptr, num_rows, cols, in_stride0, in_stride1, out_stride_col,
                     SCALE_PAD: tl.constexpr):
    g = tl.arange(0, SCALE_PAD)
    for r in range(tl.program_id(0), num_rows, tl.num_programs(0)):
        sc = tl.load(in_ptr + r * in_stride0 + g * in_stride1, mask=g < cols)
        tl.store(out_ptr + g * out_stride_col + r, sc, mask=g < cols)  # column g of row r: MN-major


def buffers(topk_ids, num_local, x, scales, num_rows: int) -> dict:
    """The chain's buffers for ``num_rows`` rows (sized on the host, from the counts)."""
    device = topk_ids.device
    cols = scales.shape[1]
    return {"adjusted": torch.empty_like(topk_ids),
            "counts": torch.empty(num_local, dtype=torch.int32, device=device),
            "rows": torch.empty(num_rows, x.shape[1], dtype=x.dtype, device=device),
            "row_scales": torch.empty(num_rows, cols, dtype=scales.dtype, device=device),
            "gemm_scales": torch.empty(cols, inputs.aligned_stride(num_rows), dtype=scales.dtype,
                                       device=device).t()[:num_rows],
            "m_indices": torch.empty(num_rows, dtype=torch.int32, device=device),
            "index": torch.empty(topk_ids.shape, dtype=torch.int32, device=device),
            "starts": torch.empty(num_local, dtype=torch.int32, device=device)}


def recompute(topk_ids, start, num_local, out: dict) -> None:
    """Step 1: memset of the counters, then the recombination kernel."""
    out["counts"].zero_()
    if topk_ids.numel():
        scalar_atomic.launch(topk_ids, out["adjusted"], out["counts"], start, num_local)


def scatter(num_local, x, scales, aligned_counts, out: dict) -> None:
    """Steps 3 and 4: the prefix kernel, then the atomic scatter."""
    num_tokens, topk = out["adjusted"].shape
    prefix_kernel[(num_local,)](aligned_counts, out["starts"], out["m_indices"], NUM_EXPERTS=num_local,
                                BLOCK_E=BLOCK_E, BLOCK_EXPERTS=triton.next_power_of_2(num_local),
                                num_warps=NUM_WARPS)
    if num_tokens:
        hidden, cols = x.shape[1], scales.shape[1]
        scatter_kernel[(min(num_tokens, SCATTER_PROGRAMS),)](
            num_tokens, out["starts"], x.view(torch.uint8), x.stride(0), scales, scales.stride(0),
            scales.stride(1), out["adjusted"], out["rows"].view(torch.uint8), out["row_scales"], out["index"],
            TOPK=topk, NUM_EXPERTS=num_local, HIDDEN=hidden, HIDDEN_PAD=triton.next_power_of_2(hidden),
            SCALE_COLS=cols, SCALE_PAD=triton.next_power_of_2(cols), num_warps=NUM_WARPS)


def transpose(out: dict) -> None:
    """Step 5: the row-major scales into the GEMM's MN-major layout (``out["gemm_scales"]``)."""
    src, dst = out["row_scales"], out["gemm_scales"]
    num_rows, cols = src.shape
    if num_rows:
        transpose_kernel[(min(num_rows, SCATTER_PROGRAMS),)](
            src, dst, num_rows, cols, src.stride(0), src.stride(1), dst.stride(1),
            SCALE_PAD=triton.next_power_of_2(cols))


def device_part(topk_ids, start, num_local, x, scales, aligned_counts, out: dict) -> None:
    """Steps 1, 3 and 4 on prepared buffers (``aligned_counts`` on the device): no host read."""
    recompute(topk_ids, start, num_local, out)
    scatter(num_local, x, scales, aligned_counts, out)


def run(topk_ids, start, num_local, x, scales, *, align: int = 128) -> DispatchLayout:
    """The whole chain, host round trip included; padding rows of ``m_indices`` carry their expert."""
    if align != BLOCK_E:
        raise ValueError(f"the chain fills m_indices in unmasked steps of {BLOCK_E} rows: align must be "
                         f"{BLOCK_E}, got {align}")
    a = inputs.check(topk_ids, start, num_local, x, scales, align, "expert", needs_triton=True)
    device = topk_ids.device
    counts = torch.zeros(a.num_local, dtype=torch.int32, device=device)
    adjusted = torch.empty_like(topk_ids)
    if topk_ids.numel():
        scalar_atomic.launch(topk_ids, adjusted, counts, a.start, a.num_local)
    aligned = [(c + align - 1) // align * align for c in counts.tolist()]  # the round trip to the host
    host = torch.tensor(aligned, dtype=torch.int32, pin_memory=device.type == "cuda")
    out = buffers(topk_ids, a.num_local, x, scales, sum(aligned))
    out["adjusted"], out["counts"] = adjusted, counts
    scatter(a.num_local, x, scales, host.to(device, non_blocking=True), out)
    transpose(out)
    offsets = torch.tensor([0] + aligned, dtype=torch.int64).cumsum(0).to(torch.int32).to(device)
    return DispatchLayout(adjusted, counts, offsets, out["index"], out["m_indices"], out["rows"],
                          out["gemm_scales"], sum(aligned))
