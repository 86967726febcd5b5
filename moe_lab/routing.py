"""Seeded router outputs to feed the kernels: what ``topk_ids`` look like in real MoE inference.

A router scores every expert for every token and keeps the ``topk`` best, so one token's ids are
*distinct*. The generators below draw ``topk`` distinct experts per token with the Gumbel-top-k
trick (sampling without replacement in proportion to a weight per expert):

* :func:`uniform`: every expert equally likely;
* :func:`zipf`: expert popularity falls off as ``1 / rank**s`` (``s=0`` is uniform; real routers
  without load balancing look like ``s`` around 1);
* :func:`hot_expert`: one expert is in every token's top-k (the worst case for one counter);
* :func:`pad_rows`: whole rows of ``-1`` appended, as an all-gather pads short batches.

:data:`PRESETS` names the models the workbook uses and :func:`case` builds one rank's view.
Everything is seeded and generated on the CPU first, so a seed gives the same ids on any machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

_CHUNK = 1 << 16  # tokens per generation chunk: bounds memory at num_experts * 64K floats


@dataclass(frozen=True)
class Preset:
    name: str
    num_experts: int
    topk: int
    note: str

    def num_local(self, ep_size: int) -> int:
        if ep_size <= 0 or self.num_experts % ep_size:
            raise ValueError(f"ep_size={ep_size} must be a positive divisor of {self.name}'s "
                             f"{self.num_experts} experts, so every rank owns the same number")
        return self.num_experts // ep_size

    def ep_sizes(self) -> list[int]:
        """The EP group sizes that split this preset's experts evenly (every divisor of num_experts)."""
        return [d for d in range(1, self.num_experts + 1) if self.num_experts % d == 0]

    def start(self, rank: int, ep_size: int) -> int:
        if not 0 <= rank < ep_size:
            raise ValueError(f"rank={rank} must be in [0, ep_size={ep_size})")
        return rank * self.num_local(ep_size)


PRESETS: dict[str, Preset] = {p.name: p for p in [
    Preset("mixtral", 8, 2, "Mixtral 8x7B: 8 experts, top-2"),
    Preset("deepseek-v2-lite", 64, 6, "DeepSeek-V2-Lite: 64 routed experts, top-6"),
    Preset("deepseek-v3", 256, 8, "DeepSeek-V3: 256 routed experts, top-8"),
    Preset("qwen3-moe", 128, 8, "Qwen3-MoE (30B-A3B / 235B-A22B): 128 experts, top-8"),
]}

DISTRIBUTIONS = ("uniform", "zipf", "hot")


def preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}") from None


def _check(num_tokens: int, num_experts: int, topk: int) -> None:
    if num_tokens < 0:
        raise ValueError(f"num_tokens must be >= 0, got {num_tokens}")
    if not 1 <= topk <= num_experts:
        raise ValueError(f"topk must be in [1, num_experts={num_experts}], got {topk}")


def _weighted_topk(num_tokens, log_weights, topk, seed, dtype, device):
    """Draw ``topk`` distinct experts per token, expert e with probability ~ exp(log_weights[e])."""
    _check(num_tokens, log_weights.numel(), topk)
    gen = torch.Generator().manual_seed(seed)
    out = torch.empty(num_tokens, topk, dtype=dtype)
    for lo in range(0, num_tokens, _CHUNK):
        hi = min(lo + _CHUNK, num_tokens)
        u = torch.rand(hi - lo, log_weights.numel(), generator=gen).clamp_(1e-12, 1.0)
        keys = log_weights - torch.log(-torch.log(u))  # + Gumbel noise
        out[lo:hi] = keys.topk(topk, dim=1).indices.to(dtype)
    return out.to(device)


def weighted(num_tokens, weights, topk, *, seed=0, dtype=torch.int32, device="cpu"):
    """``topk`` distinct experts per token, expert e drawn in proportion to ``weights[e]`` (>= 0).

    Keep ``weights`` fixed and change ``seed`` to draw new tokens from the same popularity, e.g. on
    each rank of an EP group (:func:`zipf` shuffles its popularity with its seed).
    """
    weights = torch.as_tensor(weights, dtype=torch.float64)
    if weights.dim() != 1 or (weights < 0).any() or (weights > 0).sum() < topk:
        raise ValueError(f"weights must be a 1-D tensor of >= 0 values with at least topk={topk} "
                         f"positive entries, got shape {tuple(weights.shape)}")
    return _weighted_topk(num_tokens, weights.log().float(), topk, seed, dtype, device)


def uniform(num_tokens, num_experts, topk, *, seed=0, dtype=torch.int32, device="cpu"):
    """Every expert equally likely, ``topk`` distinct experts per token."""
    return _weighted_topk(num_tokens, torch.zeros(num_experts), topk, seed, dtype, device)


def zipf_weights(num_experts: int, s: float, *, seed: int = 0) -> torch.Tensor:
    """Probabilities ~ 1/rank**s, with the ranks shuffled over experts (hot experts land on any rank)."""
    if s < 0:
        raise ValueError(f"zipf exponent s must be >= 0, got {s}")
    ranks = torch.randperm(num_experts, generator=torch.Generator().manual_seed(seed + 7919)) + 1
    w = ranks.double() ** -s
    return (w / w.sum()).float()


def zipf(num_tokens, num_experts, topk, *, s=1.2, seed=0, dtype=torch.int32, device="cpu"):
    """Skewed popularity: expert weights ~ 1/rank**s (``s=0`` is uniform)."""
    return _weighted_topk(num_tokens, zipf_weights(num_experts, s, seed=seed).log(), topk, seed,
                          dtype, device)


def hot_expert(num_tokens, num_experts, topk, *, hot=0, seed=0, dtype=torch.int32, device="cpu"):
    """Expert ``hot`` is in every token's top-k; the other ``topk - 1`` are uniform."""
    if not 0 <= hot < num_experts:
        raise ValueError(f"hot={hot} must be an expert id in [0, {num_experts})")
    logw = torch.zeros(num_experts)
    logw[hot] = math.inf
    return _weighted_topk(num_tokens, logw, topk, seed, dtype, device)


def pad_rows(topk_ids: torch.Tensor, num_rows: int) -> torch.Tensor:
    """``topk_ids`` followed by ``num_rows`` rows of ``-1``, as an all-gather pads a short batch."""
    if num_rows < 0:
        raise ValueError(f"num_rows must be >= 0, got {num_rows}")
    pad = torch.full((num_rows, topk_ids.shape[1]), -1, dtype=topk_ids.dtype, device=topk_ids.device)
    return torch.cat([topk_ids, pad])


@dataclass
class RankInput:
    """One rank's input: the gathered ``topk_ids`` and the expert range this rank owns."""
    topk_ids: torch.Tensor
    start: int
    num_local: int
    preset: Preset
    distribution: str
    ep_size: int
    rank: int

    def args(self):
        return self.topk_ids, self.start, self.num_local


def case(preset_name="deepseek-v3", num_tokens=1024, *, distribution="uniform", ep_size=8, rank=0,
         pad_fraction=0.0, zipf_s=1.2, seed=0, dtype=torch.int32, device="cpu") -> RankInput:
    """Router output for a model preset, seen from ``rank`` of an EP group of ``ep_size``.

    ``pad_fraction`` of the rows (rounded down) are ``-1`` padding at the end, as after an
    all-gather of uneven batches. ``distribution`` is one of :data:`DISTRIBUTIONS`; for ``"hot"`` the
    hot expert is this rank's first expert, so its counter takes every token.
    """
    p = preset(preset_name)
    num_local, start = p.num_local(ep_size), p.start(rank, ep_size)
    if not 0.0 <= pad_fraction <= 1.0:
        raise ValueError(f"pad_fraction must be in [0, 1], got {pad_fraction}")
    padded = int(num_tokens * pad_fraction)
    real = num_tokens - padded
    if distribution == "uniform":
        ids = uniform(real, p.num_experts, p.topk, seed=seed, dtype=dtype)
    elif distribution == "zipf":
        ids = zipf(real, p.num_experts, p.topk, s=zipf_s, seed=seed, dtype=dtype)
    elif distribution == "hot":
        ids = hot_expert(real, p.num_experts, p.topk, hot=start, seed=seed, dtype=dtype)
    else:
        raise ValueError(f"unknown distribution {distribution!r}; choose one of {DISTRIBUTIONS}")
    ids = pad_rows(ids, padded).to(device)
    return RankInput(ids, start, num_local, p, distribution, ep_size, rank)
