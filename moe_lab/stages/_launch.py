"""Host-side plumbing shared by the Triton stages: check the arguments, allocate the outputs."""

from __future__ import annotations

import torch

from moe_lab.checks import check_args, check_outputs

POISON: int | None = None
"""Test hook: when set, fresh outputs are filled with this value (never 0) so unwritten slots show."""


def prepare(topk_ids, start, num_local, *, stage: str, zero_counts: bool = True,
            adjusted_out=None, expert_count_out=None, check=None):
    """Check inputs and return ``(start, num_local, adjusted, expert_count)`` ready for a launch.

    ``zero_counts`` fills the counts with 0 (stages that accumulate with atomics need that);
    stages that store every count themselves pass False and skip the memset. ``check(num_local,
    stage)``, if given, runs after the argument checks and before anything is allocated.
    """
    start, num_local = check_args(topk_ids, start, num_local, stage=stage)
    if check is not None:
        check(num_local, stage)
    check_outputs(topk_ids, num_local, adjusted_out, expert_count_out)
    adjusted = torch.empty_like(topk_ids) if adjusted_out is None else adjusted_out
    if expert_count_out is None:
        maker = torch.zeros if zero_counts else torch.empty
        counts = maker(num_local, dtype=torch.int32, device=topk_ids.device)
        if POISON is not None and not zero_counts:
            counts.fill_(POISON)
    else:
        counts = expert_count_out
        if zero_counts:
            counts.zero_()
    if POISON is not None and adjusted_out is None:
        adjusted.fill_(POISON)
    return start, num_local, adjusted, counts
