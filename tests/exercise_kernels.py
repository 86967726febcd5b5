"""Solutions and planted mistakes for the exercise checkers (moe_lab.exercises), as real Triton kernels.

Each ``MISTAKES[exercise]`` entry is ``(mistake name, kernel or function, text the checker's hint must
contain)``: the classic ways to get the exercise wrong, one change each from the solution.
Import this module after ``moe_lab`` (tests/conftest.py does), so the backend is chosen first.
"""

from __future__ import annotations

import triton
import triton.language as tl

from moe_lab.stages.naive import naive_kernel

# ---------------------------------------------------------------------------------------------- naive


# The solution is the library's own stage-2 kernel: the exercise asks the learner to rebuild it.
naive_solution = naive_kernel


@triton.jit
def naive_no_token_guard(ids_ptr, adjusted_ptr, count_ptr, num_tokens, topk, start, num_local,
                         TOKENS_PER_PROGRAM: tl.constexpr):
    pid = tl.program_id(0)
    for i in range(TOKENS_PER_PROGRAM):
        token = pid * TOKENS_PER_PROGRAM + i
        for k in range(topk):  # MISTAKE: no `if token < num_tokens`, the last program runs past the end
            slot = token * topk + k
            expert = tl.load(ids_ptr + slot)
            if (expert >= start) & (expert < start + num_local):
                tl.store(adjusted_ptr + slot, expert - start)
                tl.atomic_add(count_ptr + (expert - start), 1)
            else:
                tl.store(adjusted_ptr + slot, -1)


@triton.jit
def naive_no_subtract(ids_ptr, adjusted_ptr, count_ptr, num_tokens, topk, start, num_local,
                      TOKENS_PER_PROGRAM: tl.constexpr):
    pid = tl.program_id(0)
    for i in range(TOKENS_PER_PROGRAM):
        token = pid * TOKENS_PER_PROGRAM + i
        if token < num_tokens:
            for k in range(topk):
                slot = token * topk + k
                expert = tl.load(ids_ptr + slot)
                if (expert >= start) & (expert < start + num_local):
                    tl.store(adjusted_ptr + slot, expert)  # MISTAKE: global id, start not subtracted
                    tl.atomic_add(count_ptr + expert, 1)
                else:
                    tl.store(adjusted_ptr + slot, -1)


@triton.jit
def naive_no_upper_bound(ids_ptr, adjusted_ptr, count_ptr, num_tokens, topk, start, num_local,
                         TOKENS_PER_PROGRAM: tl.constexpr):
    pid = tl.program_id(0)
    for i in range(TOKENS_PER_PROGRAM):
        token = pid * TOKENS_PER_PROGRAM + i
        if token < num_tokens:
            for k in range(topk):
                slot = token * topk + k
                expert = tl.load(ids_ptr + slot)
                if expert >= start:  # MISTAKE: other ranks' experts (>= start + num_local) counted
                    tl.store(adjusted_ptr + slot, expert - start)
                    tl.atomic_add(count_ptr + (expert - start), 1)
                else:
                    tl.store(adjusted_ptr + slot, -1)


@triton.jit
def naive_no_else_store(ids_ptr, adjusted_ptr, count_ptr, num_tokens, topk, start, num_local,
                        TOKENS_PER_PROGRAM: tl.constexpr):
    pid = tl.program_id(0)
    for i in range(TOKENS_PER_PROGRAM):
        token = pid * TOKENS_PER_PROGRAM + i
        if token < num_tokens:
            for k in range(topk):
                slot = token * topk + k
                expert = tl.load(ids_ptr + slot)
                if (expert >= start) & (expert < start + num_local):
                    tl.store(adjusted_ptr + slot, expert - start)
                    tl.atomic_add(count_ptr + (expert - start), 1)
                # MISTAKE: no else branch, non-local slots never get their -1


@triton.jit
def naive_plain_store_count(ids_ptr, adjusted_ptr, count_ptr, num_tokens, topk, start, num_local,
                            TOKENS_PER_PROGRAM: tl.constexpr):
    pid = tl.program_id(0)
    for i in range(TOKENS_PER_PROGRAM):
        token = pid * TOKENS_PER_PROGRAM + i
        if token < num_tokens:
            for k in range(topk):
                slot = token * topk + k
                expert = tl.load(ids_ptr + slot)
                if (expert >= start) & (expert < start + num_local):
                    tl.store(adjusted_ptr + slot, expert - start)
                    # MISTAKE: read-modify-write without an atomic; right in the (serial) interpreter,
                    # a race between programs on a GPU
                    c = tl.load(count_ptr + (expert - start))
                    tl.store(count_ptr + (expert - start), c + 1)
                else:
                    tl.store(adjusted_ptr + slot, -1)


@triton.jit
def naive_stub(ids_ptr, adjusted_ptr, count_ptr, num_tokens, topk, start, num_local,
               TOKENS_PER_PROGRAM: tl.constexpr):
    pass  # YOUR CODE HERE


# ----------------------------------------------------------------------------------------- block_size


def block_size_solution(topk: int) -> int:
    return triton.next_power_of_2(min(256, 1024 // topk))


def block_size_not_power_of_two(topk: int) -> int:
    return min(256, 1024 // topk)  # MISTAKE: 170 for topk 6


def block_size_float(topk: int) -> int:
    return min(256, 1024 / topk)  # MISTAKE: true division gives a float


def block_size_stub(topk: int) -> int:
    raise NotImplementedError("YOUR CODE HERE: return a power-of-two block size")


# --------------------------------------------------------------------------------------- masked_block


@triton.jit
def masked_block_solution(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                          BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    is_local = (ids >= start) & (ids < start + num_local)
    adjusted = tl.where(is_local, ids - start, -1)
    tl.store(adjusted_ptr + offs, adjusted, mask=in_bounds)
    tl.atomic_add(count_ptr + adjusted, 1, mask=is_local)


@triton.jit
def masked_block_no_mask(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                         BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ids = tl.load(ids_ptr + offs)  # MISTAKE: no mask on the load ...
    is_local = (ids >= start) & (ids < start + num_local)
    adjusted = tl.where(is_local, ids - start, -1)
    tl.store(adjusted_ptr + offs, adjusted)  # ... nor on the store
    tl.atomic_add(count_ptr + adjusted, 1, mask=is_local)


@triton.jit
def masked_block_no_store_mask(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                               BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    is_local = (ids >= start) & (ids < start + num_local)
    adjusted = tl.where(is_local, ids - start, -1)
    tl.store(adjusted_ptr + offs, adjusted)  # MISTAKE: the tail lanes write past the end
    tl.atomic_add(count_ptr + adjusted, 1, mask=is_local)


@triton.jit
def masked_block_other_zero(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                            BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=0)  # MISTAKE: padding reads as expert 0
    is_local = (ids >= start) & (ids < start + num_local)
    adjusted = tl.where(is_local, ids - start, -1)
    tl.store(adjusted_ptr + offs, adjusted, mask=in_bounds)
    tl.atomic_add(count_ptr + adjusted, 1, mask=is_local)


@triton.jit
def masked_block_no_subtract(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                             BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    is_local = (ids >= start) & (ids < start + num_local)
    adjusted = tl.where(is_local, ids, -1)  # MISTAKE: start not subtracted
    tl.store(adjusted_ptr + offs, adjusted, mask=in_bounds)
    tl.atomic_add(count_ptr + adjusted, 1, mask=is_local)


@triton.jit
def masked_block_no_upper_bound(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                                BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    is_local = ids >= start  # MISTAKE: remote ids (>= start + num_local) kept and counted
    adjusted = tl.where(is_local, ids - start, -1)
    tl.store(adjusted_ptr + offs, adjusted, mask=in_bounds)
    tl.atomic_add(count_ptr + adjusted, 1, mask=is_local)


@triton.jit
def masked_block_unmasked_atomic(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                                 BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    is_local = (ids >= start) & (ids < start + num_local)
    adjusted = tl.where(is_local, ids - start, -1)
    tl.store(adjusted_ptr + offs, adjusted, mask=in_bounds)
    tl.atomic_add(count_ptr + adjusted, 1, mask=in_bounds)  # MISTAKE: -1 slots add to count_ptr[-1]


@triton.jit
def masked_block_tail_never_stored(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                                   BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    is_local = (ids >= start) & (ids < start + num_local)
    adjusted = tl.where(is_local, ids - start, -1)
    tl.store(adjusted_ptr + offs, adjusted, mask=is_local)  # MISTAKE: the -1 slots are never written
    tl.atomic_add(count_ptr + adjusted, 1, mask=is_local)


@triton.jit
def masked_block_python_range(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                              BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK // 3 * 2)  # MISTAKE: not a power of two
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    is_local = (ids >= start) & (ids < start + num_local)
    adjusted = tl.where(is_local, ids - start, -1)
    tl.store(adjusted_ptr + offs, adjusted, mask=in_bounds)
    tl.atomic_add(count_ptr + adjusted, 1, mask=is_local)


@triton.jit
def masked_block_wrong_signature(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                                 BLOCK_SIZE: tl.constexpr):  # MISTAKE: the constexpr is named BLOCK
    offs = tl.program_id(0) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    is_local = (ids >= start) & (ids < start + num_local)
    adjusted = tl.where(is_local, ids - start, -1)
    tl.store(adjusted_ptr + offs, adjusted, mask=in_bounds)
    tl.atomic_add(count_ptr + adjusted, 1, mask=is_local)


@triton.jit
def masked_block_stub(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                      BLOCK: tl.constexpr):
    pass  # YOUR CODE HERE


# ------------------------------------------------------------------------------------ block_histogram


@triton.jit
def block_histogram_solution(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                             BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    local = (ids >= start) & (ids < start + num_local)
    local_expert = tl.where(local, ids - start, -1)
    tl.store(adjusted_ptr + offs, local_expert, mask=in_bounds)
    hist = tl.histogram(local_expert.to(tl.int32), NUM_BINS, mask=local)
    bins = tl.arange(0, NUM_BINS)
    tl.atomic_add(count_ptr + bins, hist, mask=(bins < num_local) & (hist > 0))


@triton.jit
def block_histogram_no_hist_mask(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                                 BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    local = (ids >= start) & (ids < start + num_local)
    local_expert = tl.where(local, ids - start, -1)
    tl.store(adjusted_ptr + offs, local_expert, mask=in_bounds)
    hist = tl.histogram(local_expert.to(tl.int32), NUM_BINS)  # MISTAKE: -1 is not masked out
    bins = tl.arange(0, NUM_BINS)
    tl.atomic_add(count_ptr + bins, hist, mask=(bins < num_local) & (hist > 0))


@triton.jit
def block_histogram_bins_unmasked(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                                  BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    local = (ids >= start) & (ids < start + num_local)
    local_expert = tl.where(local, ids - start, -1)
    tl.store(adjusted_ptr + offs, local_expert, mask=in_bounds)
    hist = tl.histogram(local_expert.to(tl.int32), NUM_BINS, mask=local)
    bins = tl.arange(0, NUM_BINS)
    tl.atomic_add(count_ptr + bins, hist)  # MISTAKE: bins num_local..NUM_BINS-1 are past the counters


@triton.jit
def block_histogram_other_zero(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                               BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=0)  # MISTAKE: padding reads as expert 0
    local = (ids >= start) & (ids < start + num_local)
    local_expert = tl.where(local, ids - start, -1)
    tl.store(adjusted_ptr + offs, local_expert, mask=in_bounds)
    hist = tl.histogram(local_expert.to(tl.int32), NUM_BINS, mask=local)
    bins = tl.arange(0, NUM_BINS)
    tl.atomic_add(count_ptr + bins, hist, mask=(bins < num_local) & (hist > 0))


@triton.jit
def block_histogram_no_mask(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                            BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ids = tl.load(ids_ptr + offs)  # MISTAKE: no mask on the load ...
    local = (ids >= start) & (ids < start + num_local)
    local_expert = tl.where(local, ids - start, -1)
    tl.store(adjusted_ptr + offs, local_expert)  # ... nor on the store
    hist = tl.histogram(local_expert.to(tl.int32), NUM_BINS, mask=local)
    bins = tl.arange(0, NUM_BINS)
    tl.atomic_add(count_ptr + bins, hist, mask=(bins < num_local) & (hist > 0))


@triton.jit
def block_histogram_no_subtract(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                                BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    local = (ids >= start) & (ids < start + num_local)
    local_expert = tl.where(local, ids, -1)  # MISTAKE: start not subtracted
    tl.store(adjusted_ptr + offs, local_expert, mask=in_bounds)
    hist = tl.histogram(local_expert.to(tl.int32), NUM_BINS, mask=local)
    bins = tl.arange(0, NUM_BINS)
    tl.atomic_add(count_ptr + bins, hist, mask=(bins < num_local) & (hist > 0))


@triton.jit
def block_histogram_no_upper_bound(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                                   BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    local = ids >= start  # MISTAKE: remote ids (>= start + num_local) kept and counted
    local_expert = tl.where(local, ids - start, -1)
    tl.store(adjusted_ptr + offs, local_expert, mask=in_bounds)
    hist = tl.histogram(local_expert.to(tl.int32), NUM_BINS, mask=local)
    bins = tl.arange(0, NUM_BINS)
    tl.atomic_add(count_ptr + bins, hist, mask=(bins < num_local) & (hist > 0))


@triton.jit
def block_histogram_store_counts(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                                 BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    local = (ids >= start) & (ids < start + num_local)
    local_expert = tl.where(local, ids - start, -1)
    tl.store(adjusted_ptr + offs, local_expert, mask=in_bounds)
    hist = tl.histogram(local_expert.to(tl.int32), NUM_BINS, mask=local)
    bins = tl.arange(0, NUM_BINS)
    old = tl.load(count_ptr + bins, mask=bins < num_local, other=0)
    tl.store(count_ptr + bins, old + hist, mask=bins < num_local)  # MISTAKE: no atomic, programs race


@triton.jit
def block_histogram_stub(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                         BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    pass  # YOUR CODE HERE


SOLUTIONS = {
    "naive": naive_solution,
    "block_size": block_size_solution,
    "masked_block": masked_block_solution,
    "block_histogram": block_histogram_solution,
}

STUBS = {
    "naive": naive_stub,
    "block_size": block_size_stub,
    "masked_block": masked_block_stub,
    "block_histogram": block_histogram_stub,
}

# (exercise, mistake, planted code, text the printed hint must contain)
MISTAKES = [
    ("naive", "missing bounds check (if token < num_tokens)", naive_no_token_guard, "if token < num_tokens"),
    ("naive", "start not subtracted", naive_no_subtract, "subtract start"),
    ("naive", "remote ids counted (no upper bound)", naive_no_upper_bound, "upper bound check"),
    ("naive", "non-local slots never stored", naive_no_else_store, "store -1 in the else branch"),
    ("naive", "counts updated without an atomic", naive_plain_store_count, "tl.atomic_add"),
    ("block_size", "non-power-of-two block (170 for topk 6)", block_size_not_power_of_two,
     "next_power_of_2"),
    ("block_size", "float block size", block_size_float, "return an int"),
    ("masked_block", "missing mask on load and store", masked_block_no_mask, "mask the load"),
    ("masked_block", "missing mask on the store", masked_block_no_store_mask, "mask the store"),
    ("masked_block", "other=0 counts padding into expert 0", masked_block_other_zero,
     "padded slots loaded as 0? use other=-1 or mask the atomic with the in-bounds mask"),
    ("masked_block", "start not subtracted", masked_block_no_subtract, "subtract start"),
    ("masked_block", "remote ids counted (no upper bound)", masked_block_no_upper_bound, "upper bound check"),
    ("masked_block", "atomic masked with the in-bounds mask only", masked_block_unmasked_atomic,
     "mask the atomic with the local mask"),
    ("masked_block", "non-local slots never stored", masked_block_tail_never_stored,
     "a slot was never stored"),
    ("masked_block", "non-power-of-two tl.arange", masked_block_python_range, "power of two"),
    ("masked_block", "wrong parameter name", masked_block_wrong_signature, "keep the parameters"),
    ("block_histogram", "tl.histogram without mask=", block_histogram_no_hist_mask, "tl.histogram needs mask="),
    ("block_histogram", "bins >= num_local not masked", block_histogram_bins_unmasked,
     "mask bins >= num_local"),
    ("block_histogram", "other=0 counts padding into expert 0", block_histogram_other_zero,
     "padded slots loaded as 0?"),
    ("block_histogram", "missing mask on load and store", block_histogram_no_mask, "mask the load"),
    ("block_histogram", "start not subtracted", block_histogram_no_subtract, "subtract start"),
    ("block_histogram", "remote ids counted (no upper bound)", block_histogram_no_upper_bound,
     "upper bound check"),
    ("block_histogram", "counts stored without an atomic", block_histogram_store_counts, "tl.atomic_add"),
]


@triton.jit
def masked_block_done_but_marker_left(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                                      BLOCK: tl.constexpr):
    # YOUR CODE HERE  (the learner kept the comment and wrote the body below it)
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    is_local = (ids >= start) & (ids < start + num_local)
    adjusted = tl.where(is_local, ids - start, -1)
    tl.store(adjusted_ptr + offs, adjusted, mask=in_bounds)
    tl.atomic_add(count_ptr + adjusted, 1, mask=is_local)
