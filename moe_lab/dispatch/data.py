"""Inputs for the dispatch layout: routed ids with ``-1`` padding, fp8 rows and their scales."""

from __future__ import annotations

import torch

from moe_lab.dispatch.inputs import GROUP


def make_inputs(num_tokens: int, topk: int, num_experts: int, *, hidden: int = 256, packed: bool = False,
                id_dtype=torch.int32, pad_rows: int = 0, seed: int = 0, device=None):
    """``(topk_ids, x, scales)``: distinct experts per token drawn uniformly from ``num_experts``; the
    last ``pad_rows`` tokens are all ``-1`` (how routers pad short batches before an all-gather)."""
    g = torch.Generator().manual_seed(seed)
    if num_tokens:
        ids = torch.rand(num_tokens, num_experts, generator=g).argsort(dim=1)[:, :topk]
    else:
        ids = torch.empty(0, topk, dtype=torch.int64)
    ids = ids.to(id_dtype).contiguous()
    if pad_rows:
        ids[num_tokens - pad_rows:] = -1
    x = torch.randint(0, 256, (num_tokens, hidden), generator=g, dtype=torch.uint8).view(torch.float8_e4m3fn)
    groups = hidden // GROUP
    if packed:
        scales = torch.randint(-2**31, 2**31 - 1, (num_tokens, (groups + 3) // 4), generator=g,
                               dtype=torch.int32)
    else:
        scales = torch.rand(num_tokens, groups, generator=g) + 0.5
    if device is not None:
        ids, x, scales = ids.to(device), x.to(device), scales.to(device)
    return ids, x, scales
