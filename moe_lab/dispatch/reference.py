"""The contract of the dispatch layout, in plain PyTorch: what every implementation must return.

From ``topk_ids`` (global expert ids, ``-1`` padding), the rank's experts ``[start, start + num_local)``,
the fp8 rows ``x`` and their scales, it builds the *contiguous* layout of a grouped GEMM: every local
expert owns a block of rows that starts on a multiple of ``align``; inside it, its slots' rows in slot
order (token by token, then by position in the top-k), then padding rows up to the next multiple.

Worked example: ``topk_ids = [[3, 0], [-1, 3], [2, 3]]``, ``start = 2``, ``num_local = 2``, ``align = 4``::

    adjusted_ids  = [[1, -1], [-1, 1], [0, 1]]        # id - start where local, else -1
    expert_count  = [1, 3]                              # slots per local expert
    offsets       = [0, 4, 8]                           # exclusive prefix of the counts rounded up to 4
    output_index  = [[4, -1], [-1, 5], [0, 6]]          # the row each slot's copy goes to
    m_indices     = [0, p, p, p, 1, 1, 1, p]            # p = 0/1 (padding="expert") or -1 ("skip")
    rows[0] = x[2]; rows[4] = x[0]; rows[5] = x[1]; rows[6] = x[2]   (scales likewise)

This module is the readable version: several passes and a Python-free but host-synchronising sort.
"""

from __future__ import annotations

import torch

from moe_lab.dispatch import inputs
from moe_lab.stages import torch_ref


def prepare_dispatch_reference(topk_ids, start, num_local, x, scales, *, align: int = 128,
                               padding: str = "expert") -> dict:
    """Every output of the dispatch layout as a dict of tensors with exactly ``M`` rows.

    Keys: ``adjusted_ids``, ``expert_count``, ``offsets`` (int32 ``[num_local + 1]``, last = ``M``),
    ``output_index`` (int32, shape of ``topk_ids``), ``m_indices`` (int32 ``[M]``), ``rows``
    (``[M, hidden]`` fp8), ``scales`` (``[M, cols]`` in the dtype of ``scales``; values only, the
    memory layout is the op's business) and ``real`` (bool ``[M]``: True where a row holds a slot's copy).
    """
    a = inputs.check(topk_ids, start, num_local, x, scales, align, padding, needs_triton=False)
    adjusted, counts = torch_ref.run(topk_ids, a.start, a.num_local)
    device = topk_ids.device
    aligned = (counts.long() + a.align - 1) // a.align * a.align
    offsets = torch.zeros(a.num_local + 1, dtype=torch.int64, device=device)
    offsets[1:] = torch.cumsum(aligned, 0)
    total = int(offsets[-1])
    flat = adjusted.reshape(-1).long()
    local = flat >= 0
    slot = torch.arange(flat.numel(), device=device)
    # stable order: sort the local slots by (expert, slot), rank = position inside the expert's run
    order = slot[local][torch.argsort(flat[local] * flat.numel() + slot[local])]
    experts = flat[order]
    first = offsets[:-1][experts] if order.numel() else experts
    rank = torch.arange(order.numel(), device=device) - torch.searchsorted(experts, experts)
    dest = first + rank
    output_index = torch.full_like(flat, -1)
    output_index[order] = dest
    row_expert = torch.repeat_interleave(torch.arange(a.num_local, device=device), aligned)
    in_block = torch.arange(total, device=device) - offsets[:-1][row_expert]
    real = in_block < counts.long()[row_expert]
    m_indices = row_expert.clone()
    if padding == "skip":
        m_indices[~real] = -1
    token = order // topk_ids.shape[1]
    rows = torch.zeros(total, a.hidden, dtype=torch.uint8, device=device)
    rows[dest] = x.view(torch.uint8)[token]
    out_scales = torch.zeros(total, a.scale_cols, dtype=scales.dtype, device=device)
    out_scales[dest] = scales[token]
    return {"adjusted_ids": adjusted, "expert_count": counts,
            "offsets": offsets.to(torch.int32),
            "output_index": output_index.view_as(topk_ids).to(torch.int32),
            "m_indices": m_indices.to(torch.int32), "rows": rows.view(torch.float8_e4m3fn),
            "scales": out_scales, "real": real}
