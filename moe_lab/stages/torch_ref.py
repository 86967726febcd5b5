"""``torch``: the reference, in plain PyTorch (no Triton).

This is the contract every kernel is checked against:

* ``adjusted[t, k] = topk_ids[t, k] - start`` when ``start <= topk_ids[t, k] < start + num_local``,
  else ``-1`` (padding sentinels and experts owned by other ranks look the same afterwards);
* ``expert_count[e]`` = how many slots went to local expert ``e``, as int32.

It takes several full passes over the data (two compares, a where, a bincount on int64 and a cast),
which is why it is slow at scale; and on CUDA ``torch.bincount`` synchronises with the host (it reads
the input's minimum and maximum to size its output), so it cannot be captured in a CUDA graph. But it
is short enough to be obviously right, and it runs on any device, CPU tensors included.
"""

from __future__ import annotations

import torch

from moe_lab.checks import check_args


def run(topk_ids, start, num_local):
    start, num_local = check_args(topk_ids, start, num_local,
                                  stage="torch", needs_triton=False)
    local = (topk_ids >= start) & (topk_ids < start + num_local)
    adjusted = torch.where(local, topk_ids - start, torch.full_like(topk_ids, -1))
    # Shift by one so that -1 lands in bin 0, which we drop (bincount reads min/max on the host: a sync).
    counts = torch.bincount(adjusted.reshape(-1).long() + 1, minlength=num_local + 1)[1:]
    return adjusted, counts.to(torch.int32)
