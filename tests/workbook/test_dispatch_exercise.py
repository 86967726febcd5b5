"""The stable_rank exercise's checker: passes the shipped answer, catches each planted mistake."""

from __future__ import annotations

import pytest
import triton
import triton.language as tl

from moe_lab.workbook.exercises import stable_rank as exercise

answer = exercise.stable_rank_kernel  # the shipped answer, as the checker's solution() shows it


@triton.jit
def counts_itself(adjusted_ptr, rank_ptr, tile_count_ptr, num_total, num_local,
                  BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    pid = tl.program_id(0)
    slot = pid * BLOCK + tl.arange(0, BLOCK)
    inside = slot < num_total
    expert = tl.load(adjusted_ptr + slot, mask=inside, other=-1)
    local = (expert >= 0) & inside
    bins = tl.arange(0, NUM_BINS)
    hit = (expert[:, None] == bins[None, :]) & local[:, None]
    upto = tl.cumsum(hit.to(tl.int32), axis=0)
    rank = tl.sum(tl.where(hit, upto, 0), axis=1)  # planted: the slot counts itself
    tl.store(rank_ptr + slot, tl.where(local, rank, -1), mask=inside)
    tl.store(tile_count_ptr + pid * NUM_BINS + bins, tl.sum(hit.to(tl.int32), axis=0))


@triton.jit
def forgets_padding(adjusted_ptr, rank_ptr, tile_count_ptr, num_total, num_local,
                    BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    pid = tl.program_id(0)
    slot = pid * BLOCK + tl.arange(0, BLOCK)
    inside = slot < num_total
    expert = tl.load(adjusted_ptr + slot, mask=inside, other=-1)
    local = (expert >= 0) & inside
    bins = tl.arange(0, NUM_BINS)
    hit = (expert[:, None] == bins[None, :]) & local[:, None]
    upto = tl.cumsum(hit.to(tl.int32), axis=0)
    rank = tl.sum(tl.where(hit, upto, 0), axis=1) - 1
    tl.store(rank_ptr + slot, rank, mask=local)  # planted: -1 slots never stored
    tl.store(tile_count_ptr + pid * NUM_BINS + bins, tl.sum(hit.to(tl.int32), axis=0))


@triton.jit
def no_counts(adjusted_ptr, rank_ptr, tile_count_ptr, num_total, num_local,
              BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    pid = tl.program_id(0)
    slot = pid * BLOCK + tl.arange(0, BLOCK)
    inside = slot < num_total
    expert = tl.load(adjusted_ptr + slot, mask=inside, other=-1)
    local = (expert >= 0) & inside
    bins = tl.arange(0, NUM_BINS)
    hit = (expert[:, None] == bins[None, :]) & local[:, None]
    upto = tl.cumsum(hit.to(tl.int32), axis=0)
    rank = tl.sum(tl.where(hit, upto, 0), axis=1) - 1
    tl.store(rank_ptr + slot, tl.where(local, rank, -1), mask=inside)


@triton.jit
def stub(adjusted_ptr, rank_ptr, tile_count_ptr, num_total, num_local,
         BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    pass  # YOUR CODE HERE


def test_the_answer_passes():
    result = exercise.check("stable_rank", answer)
    assert result.passed and result.status == "PASS" and "every case passes" in result.text


@pytest.mark.parametrize("kernel,symptom", [
    (counts_itself, "counts_self"), (forgets_padding, "poison_rank"), (no_counts, "tile_count")])
def test_planted_mistakes_fail_with_their_hint(kernel, symptom):
    result = exercise.check("stable_rank", kernel)
    assert not result.passed and exercise.SYMPTOMS[symptom] in result.text


def test_stub_is_not_done_and_signature_is_checked():
    assert exercise.check("stable_rank", stub).status == "NOT DONE"

    @triton.jit
    def wrong(adjusted_ptr, rank_ptr, num_total, BLOCK: tl.constexpr):
        pass

    result = exercise.check("stable_rank", wrong)
    assert not result.passed and "expected" in result.text


def test_spec_matches_the_worked_example():
    import torch

    rank, count = exercise.spec(torch.tensor([1, -1, 1, 0, 1, 0]), 8, 2)
    assert rank.tolist() == [0, -1, 1, 0, 2, 1] and count.tolist() == [[2, 3]]
    with pytest.raises(ValueError, match="level"):
        exercise.hint(4)
    with pytest.raises(ValueError, match="stable_rank"):
        exercise.check("ticket", answer)


def test_picture_shows_the_worked_example():
    text = exercise.picture([1, -1, 1, 0, 1, 0], 2).text.splitlines()
    assert len(text) == 7 and text[5].split()[-1] == "2" and text[2].split()[-1] == "-1"
