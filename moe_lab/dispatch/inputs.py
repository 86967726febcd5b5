"""Argument checks for the dispatch layout: bad input gets a clear error before any launch.

Every message names the argument, what was given, what is expected and how to fix it. No check
reads tensor values, so none of them syncs with the GPU (the graph-safe mode stays sync-free).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from moe_lab.checks import INT32_MAX, as_int, check_args, check_memory

GROUP = 128
"""Columns of ``x`` that share one scale (DeepSeek-V3's 1x128 fp8 quantisation groups)."""

MAX_BINS = 1024
"""Most local experts the dispatch layout takes: its register histograms hold this many bins."""

PADDING = ("expert", "skip")
"""How ``m_indices`` marks padding rows: the expert's own id, or ``-1`` (a grouped GEMM skips them)."""


@dataclass(frozen=True)
class Args:
    start: int
    num_local: int
    align: int
    hidden: int
    scale_cols: int
    packed: bool
    """True for ue8m0 scales packed four to an int32; False for fp32 scales."""


def check(topk_ids, start, num_local, x, scales, align, padding, *, needs_triton: bool,
          graph_safe: bool = False) -> Args:
    """Validate every argument of :func:`moe_lab.dispatch.prepare_dispatch`; return them as ints."""
    if not isinstance(graph_safe, (bool, np.bool_)):
        raise TypeError(f"graph_safe must be True or False, got {graph_safe!r} "
                        f"({type(graph_safe).__name__}); True: no host read, worst-case sizes (CUDA "
                        f"graphs); False: exact sizes")
    start, num_local = check_args(topk_ids, start, num_local, stage="dispatch", needs_triton=needs_triton)
    if needs_triton and num_local > MAX_BINS:  # the kernels' limit (the reference has none)
        raise ValueError(f"num_local={num_local} is more than the {MAX_BINS} local experts the dispatch "
                         f"layout keeps in register histograms; split this rank's experts into groups of at "
                         f"most {MAX_BINS}, one call per group (start advanced by the group size)")
    num_tokens = topk_ids.shape[0]
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor [num_tokens, hidden] of torch.float8_e4m3fn, got "
                        f"{type(x).__name__}")
    if x.dtype != torch.float8_e4m3fn:
        raise TypeError(f"x must hold torch.float8_e4m3fn rows, got {x.dtype}; quantise it first "
                        f"(1x128 groups, one scale per group)")
    if x.dim() != 2 or x.shape[0] != num_tokens:
        raise ValueError(f"x must be 2-D [num_tokens={num_tokens}, hidden], got shape {tuple(x.shape)}; "
                         f"it holds one row per row of topk_ids")
    hidden = x.shape[1]
    if hidden == 0 or hidden % GROUP:
        raise ValueError(f"x has hidden={hidden} columns; it must be a positive multiple of {GROUP} "
                         f"(one scale per {GROUP} columns)")
    if x.stride(1) != 1:
        raise ValueError(f"x must be contiguous along hidden (stride 1), got strides {tuple(x.stride())}; "
                         f"pass x.contiguous()")
    if x.device != topk_ids.device:
        raise ValueError(f"x is on {x.device} but topk_ids is on {topk_ids.device}; put both on one device")
    check_memory("x", x)
    if not isinstance(scales, torch.Tensor):
        raise TypeError(f"scales must be a torch.Tensor, got {type(scales).__name__}")
    groups = hidden // GROUP
    packed_cols = (groups + 3) // 4
    if scales.dtype == torch.float32:
        packed, want = False, groups
    elif scales.dtype == torch.int32:
        packed, want = True, packed_cols
    else:
        raise TypeError(f"scales must be torch.float32 [num_tokens, hidden/{GROUP}] or ue8m0 exponents "
                        f"packed four to a torch.int32 [num_tokens, ceil(hidden/{GROUP}/4)], "
                        f"got {scales.dtype}")
    if scales.dim() != 2 or tuple(scales.shape) != (num_tokens, want):
        kind = "int32 (packed ue8m0)" if packed else "float32"
        raise ValueError(f"scales ({kind}) must have shape ({num_tokens}, {want}) for x of shape "
                         f"{tuple(x.shape)}, got {tuple(scales.shape)}")
    if scales.device != topk_ids.device:
        raise ValueError(f"scales is on {scales.device} but topk_ids is on {topk_ids.device}; put both on "
                         f"one device")
    check_memory("scales", scales)
    align = as_int("align", align)
    if align <= 0 or align & (align - 1):
        raise ValueError(f"align must be a power of two >= 1 (rows per expert block of the grouped GEMM), "
                         f"got {align}; DeepGEMM's contiguous layout uses 128")
    rows = max_rows(topk_ids.numel(), num_local, align)
    if rows > INT32_MAX:
        raise ValueError(f"align={align} with num_local={num_local} and {topk_ids.numel()} slots can need "
                         f"{rows} rows, past the int32 offsets (at most 2**31 - 1 = {INT32_MAX}); use a "
                         f"smaller align (DeepGEMM's contiguous layout uses 128) or fewer slots per call")
    if not isinstance(padding, str) or padding not in PADDING:
        raise ValueError(f"padding must be one of {PADDING} ('expert': padding rows carry their expert's "
                         f"id; 'skip': they carry -1), got {padding!r}")
    return Args(start, num_local, align, hidden, want, packed)


def max_rows(num_slots: int, num_local: int, align: int) -> int:
    """Rows the layout can need at most: every slot local, every expert one row short of a block."""
    return num_slots + num_local * (align - 1)


def aligned_stride(rows: int) -> int:
    """Column stride of the scales: rows rounded up to 4 elements (16 bytes), as TMA needs (at least 4)."""
    return max(4, (rows + 3) // 4 * 4)
