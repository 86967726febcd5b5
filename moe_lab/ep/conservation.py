"""The EP conservation law, checked on what every rank of a group computed.

Summed over the group, nothing may be lost or counted twice:

* the counts of all ranks, concatenated in rank order, equal the histogram of the non-sentinel ids;
* every non-sentinel slot is local on exactly one rank (and rewritten there to ``id - start``);
* ``-1`` padding is local nowhere.
"""

from __future__ import annotations

import torch


def _where(flat_positions: torch.Tensor, topk: int, limit: int) -> str:
    pos = flat_positions[:limit].tolist()
    more = f" and {flat_positions.numel() - limit} more" if flat_positions.numel() > limit else ""
    return ", ".join(f"(row {p // topk}, k {p % topk})" for p in pos) + more


def check_conservation(gathered_ids, counts_per_rank, starts, num_local, adjusted_per_rank=None, *,
                       limit: int = 5) -> list[str]:
    """Check the EP conservation law; return the violations as sentences (empty list: it holds).

    * ``gathered_ids``: ``[rows, topk]`` router output of the whole group, ``-1`` for padding;
    * ``counts_per_rank``: ``[world_size, num_local]``, rank ``r``'s ``expert_count``;
    * ``starts``: first global expert id of every rank; ``num_local``: experts per rank;
    * ``adjusted_per_rank`` (optional): ``[world_size, rows, topk]``, every rank's adjusted ids. With it,
      also checked: each non-sentinel slot is local (``!= -1``) on exactly one rank, with the value
      ``id - start`` there; sentinels are local nowhere.

    ``limit`` bounds how many examples each sentence lists. Works on CPU or GPU tensors.
    """
    ids = torch.as_tensor(gathered_ids)
    if ids.dim() != 2:
        raise ValueError(f"gathered_ids must be 2-D [rows, topk], got shape {tuple(ids.shape)}")
    counts = torch.as_tensor(counts_per_rank).to(ids.device).long()
    starts = [int(s) for s in starts]
    num_local = int(num_local)
    world = len(starts)
    if world == 0 or num_local <= 0:
        raise ValueError(f"starts must name at least one rank and num_local must be > 0, got "
                         f"starts={starts}, num_local={num_local}")
    if counts.shape != (world, num_local):
        raise ValueError(f"counts_per_rank must have shape (len(starts), num_local) = ({world}, "
                         f"{num_local}), got {tuple(counts.shape)}")
    topk = ids.shape[1]
    flat = ids.reshape(-1).long()
    problems = []

    negative = torch.nonzero(flat < -1).flatten()
    if negative.numel():
        problems.append(f"{negative.numel()} slots hold a negative id other than the -1 sentinel: "
                        f"{_where(negative, topk, limit)}")
    real = flat >= 0

    # Which rank owns each expert id (-1: nobody); ids at or past `span` are owned by nobody.
    span = max(s + num_local for s in starts)
    owner = torch.full((span,), -1, dtype=torch.long, device=ids.device)
    for rank, start in enumerate(starts):
        if (owner[start:start + num_local] >= 0).any():
            problems.append(f"rank {rank}'s experts [{start}, {start + num_local}) overlap another "
                            f"rank's: every expert must have exactly one owner")
        owner[start:start + num_local] = rank
    in_span = real & (flat < span)
    orphans = torch.nonzero(real & ((flat >= span) | (owner[flat.clamp(0, span - 1)] < 0))).flatten()
    if orphans.numel():
        problems.append(f"{orphans.numel()} slots route to experts that no rank owns (ids "
                        f"{sorted(set(flat[orphans[:limit]].tolist()))}): "
                        f"{_where(orphans, topk, limit)}")

    # Law 1: the counts, rank after rank, are the histogram of the non-sentinel ids.
    histogram = torch.bincount(flat[in_span], minlength=span)
    for rank, start in enumerate(starts):
        expected = histogram[start:start + num_local]
        wrong = torch.nonzero(counts[rank] != expected).flatten()
        if wrong.numel():
            shown = ", ".join(f"local expert {e} (global {start + e}): counted {int(counts[rank, e])}, "
                              f"histogram {int(expected[e])}" for e in wrong[:limit].tolist())
            more = f" and {wrong.numel() - limit} more" if wrong.numel() > limit else ""
            problems.append(f"rank {rank}: {shown}{more}")

    if adjusted_per_rank is None:
        return problems
    adjusted = torch.as_tensor(adjusted_per_rank).to(ids.device)
    if adjusted.shape != (world, *ids.shape):
        raise ValueError(f"adjusted_per_rank must have shape (world_size, *gathered_ids.shape) = "
                         f"({world}, {ids.shape[0]}, {topk}), got {tuple(adjusted.shape)}")
    adjusted = adjusted.reshape(world, -1).long()
    local = adjusted != -1
    owners = local.sum(0)
    # Law 2: each non-sentinel slot is local on exactly one rank; Law 3: sentinels nowhere.
    for mask, what in [(real & (owners == 0), "are local on no rank (lost)"),
                       (real & (owners > 1), "are local on several ranks (counted twice)"),
                       (~real & (owners > 0), "are -1 padding (or invalid ids) but local on some rank")]:
        bad = torch.nonzero(mask).flatten()
        if bad.numel():
            problems.append(f"{bad.numel()} slots {what}: {_where(bad, topk, limit)}")
    for rank, start in enumerate(starts):
        wrong = torch.nonzero(local[rank] & (adjusted[rank] + start != flat)).flatten()
        if wrong.numel():
            problems.append(f"rank {rank}: {wrong.numel()} local slots not rewritten to id - start "
                            f"(start {start}): {_where(wrong, topk, limit)}")
    return problems
