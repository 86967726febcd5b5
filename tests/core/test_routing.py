"""The seeded router outputs in ``moe_lab.routing``: reproducible, shaped like a real router's, and
with the skew each generator promises. Fixed seeds and sizes, so no statistical test here can flake."""

from __future__ import annotations

import math

import pytest
import torch

from moe_lab import routing


def expert_counts(ids: torch.Tensor, num_experts: int) -> torch.Tensor:
    return torch.bincount(ids[ids >= 0].long(), minlength=num_experts).double()


def chi_square(counts: torch.Tensor) -> float:
    expected = counts.mean()
    return float(((counts - expected) ** 2 / expected).sum())


def entropy(counts: torch.Tensor) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log()).sum())


def assert_distinct_per_row(ids: torch.Tensor):
    ordered = ids.sort(dim=1).values
    assert not (ordered[:, 1:] == ordered[:, :-1]).any(), "a token got the same expert twice"


@pytest.mark.parametrize("generator", ["uniform", "zipf", "hot_expert"])
def test_same_seed_same_ids(generator):
    make = getattr(routing, generator)
    a = make(300, 64, 6, seed=11)
    b = make(300, 64, 6, seed=11)
    c = make(300, 64, 6, seed=12)
    assert torch.equal(a, b)
    assert not torch.equal(a, c), "a different seed should give different ids"


def test_case_is_reproducible():
    a = routing.case("qwen3-moe", 200, distribution="zipf", ep_size=4, rank=1, pad_fraction=0.1, seed=5)
    b = routing.case("qwen3-moe", 200, distribution="zipf", ep_size=4, rank=1, pad_fraction=0.1, seed=5)
    assert torch.equal(a.topk_ids, b.topk_ids) and a.args()[1:] == b.args()[1:]


def test_dtype_follows_the_argument():
    assert routing.uniform(5, 8, 2).dtype == torch.int32
    assert routing.uniform(5, 8, 2, dtype=torch.int64).dtype == torch.int64
    assert torch.equal(routing.uniform(50, 8, 2, seed=3, dtype=torch.int64),
                       routing.uniform(50, 8, 2, seed=3).long())
    assert routing.case("mixtral", 7, ep_size=2, dtype=torch.int64).topk_ids.dtype == torch.int64


def test_uniform_distinct_and_even():
    num_tokens, num_experts, topk = 20000, 64, 8
    ids = routing.uniform(num_tokens, num_experts, topk, seed=1)
    assert ids.shape == (num_tokens, topk) and ids.dtype == torch.int32
    assert ids.min() >= 0 and ids.max() < num_experts
    assert_distinct_per_row(ids)
    counts = expert_counts(ids, num_experts)
    # Each expert's count is Binomial(20000, 1/8): mean 2500, sd 47. The chi-square statistic of a
    # uniform draw is about 55 (63 degrees of freedom); 120 is far in the tail, and the seed is fixed.
    assert chi_square(counts) < 120
    assert (counts / counts.mean() - 1).abs().max() < 0.10
    skewed = expert_counts(routing.zipf(num_tokens, num_experts, topk, s=0.5, seed=1), num_experts)
    assert chi_square(skewed) > 1000, "the bound must be able to tell a skewed router apart"


def test_zipf_skew_grows_with_s():
    num_experts, topk = 64, 6
    s_values = [0.0, 0.5, 1.0, 1.5, 2.0]
    entropies, top_shares = [], []
    for s in s_values:
        ids = routing.zipf(4096, num_experts, topk, s=s, seed=2)
        assert_distinct_per_row(ids)
        counts = expert_counts(ids, num_experts)
        entropies.append(entropy(counts))
        top_shares.append(float(counts.max() / counts.sum()))
    assert all(a > b for a, b in zip(entropies, entropies[1:])), entropies
    assert all(a < b for a, b in zip(top_shares, top_shares[1:])), top_shares
    assert entropies[0] > math.log(num_experts) - 0.01, "s=0 must be uniform"


def test_zipf_weights():
    w = routing.zipf_weights(16, 1.0, seed=0)
    assert torch.isclose(w.sum(), torch.tensor(1.0))
    assert torch.allclose(w.sort(descending=True).values * torch.arange(1, 17), w.max())  # 1 / rank
    assert torch.allclose(routing.zipf_weights(16, 0.0), torch.full((16,), 1 / 16))
    with pytest.raises(ValueError, match=r"s must be >= 0, got -0\.5"):
        routing.zipf_weights(16, -0.5)


@pytest.mark.parametrize("hot", [0, 17, 63])
def test_hot_expert_in_every_row(hot):
    ids = routing.hot_expert(500, 64, 8, hot=hot, seed=4)
    assert ((ids == hot).sum(dim=1) == 1).all(), "the hot expert must be in every token's top-k, once"
    assert_distinct_per_row(ids)
    others = expert_counts(ids[ids != hot], 64)
    assert others[hot] == 0 and (others > 0).sum() > 50, "the other slots spread over the other experts"
    with pytest.raises(ValueError, match=r"hot=64 must be an expert id in \[0, 64\)"):
        routing.hot_expert(5, 64, 8, hot=64)


def test_pad_rows():
    ids = routing.uniform(10, 16, 4, seed=0, dtype=torch.int64)
    padded = routing.pad_rows(ids, 3)
    assert padded.shape == (13, 4) and padded.dtype == torch.int64
    assert torch.equal(padded[:10], ids)
    assert (padded[10:] == -1).all()
    assert torch.equal(routing.pad_rows(ids, 0), ids)
    with pytest.raises(ValueError, match=r"num_rows must be >= 0, got -1"):
        routing.pad_rows(ids, -1)


@pytest.mark.parametrize("preset_name", list(routing.PRESETS))
@pytest.mark.parametrize("distribution", routing.DISTRIBUTIONS)
def test_case_for_every_preset(preset_name, distribution):
    preset = routing.PRESETS[preset_name]
    ep_size = 2 if preset.num_experts == 8 else 4
    rank = ep_size - 1
    case = routing.case(preset_name, 96, distribution=distribution, ep_size=ep_size, rank=rank,
                        pad_fraction=0.25, seed=9)
    num_local = preset.num_experts // ep_size
    assert case.num_local == num_local and case.start == rank * num_local
    assert case.preset is preset and case.ep_size == ep_size and case.rank == rank
    assert case.args() == (case.topk_ids, case.start, case.num_local)
    ids = case.topk_ids
    assert ids.shape == (96, preset.topk) and ids.dtype == torch.int32
    real, pad = ids[:72], ids[72:]
    assert (pad == -1).all(), "pad_fraction=0.25 of 96 rows: the last 24 rows are -1"
    assert real.min() >= 0 and real.max() < preset.num_experts
    assert_distinct_per_row(real)
    if distribution == "hot":
        assert ((real == case.start).sum(dim=1) == 1).all(), "hot: this rank's first expert in every row"


def test_presets():
    assert {p: (routing.PRESETS[p].num_experts, routing.PRESETS[p].topk) for p in routing.PRESETS} == {
        "mixtral": (8, 2), "deepseek-v2-lite": (64, 6), "deepseek-v3": (256, 8), "qwen3-moe": (128, 8)}


@pytest.mark.parametrize("preset_name, ep_size", [("mixtral", 3), ("deepseek-v2-lite", 6), ("deepseek-v3", 0),
                                                  ("qwen3-moe", -2)])
def test_ep_size_must_divide_the_experts(preset_name, ep_size):
    with pytest.raises(ValueError, match=rf"ep_size={ep_size} must be a positive divisor of "
                                         rf"{preset_name}'s "
                                         rf"{routing.PRESETS[preset_name].num_experts} experts"):
        routing.case(preset_name, 16, ep_size=ep_size)


@pytest.mark.parametrize("rank", [-1, 8, 9])
def test_rank_must_be_in_the_group(rank):
    with pytest.raises(ValueError, match=rf"rank={rank} must be in \[0, ep_size=8\)"):
        routing.case("deepseek-v3", 16, ep_size=8, rank=rank)


def test_bad_case_arguments():
    with pytest.raises(ValueError, match=r"unknown preset 'gpt-5'; choose one of: mixtral"):
        routing.case("gpt-5", 16)
    with pytest.raises(ValueError, match=r"unknown distribution 'normal'"):
        routing.case("mixtral", 16, ep_size=2, distribution="normal")
    with pytest.raises(ValueError, match=r"pad_fraction must be in \[0, 1\], got 1\.5"):
        routing.case("mixtral", 16, ep_size=2, pad_fraction=1.5)
    with pytest.raises(ValueError, match=r"topk must be in \[1, num_experts=8\], got 9"):
        routing.uniform(4, 8, 9)
    with pytest.raises(ValueError, match=r"num_tokens must be >= 0, got -4"):
        routing.uniform(-4, 8, 2)
