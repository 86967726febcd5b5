"""Solutions and planted mistakes for the exercise checkers (moe_lab.workbook.exercises), as Triton kernels.

Each ``MISTAKES[exercise]`` entry is ``(mistake name, kernel or function, text the checker's hint must
contain)``: the classic ways to get the exercise wrong, one change each from the solution.
Import this module after ``moe_lab`` (tests/conftest.py does), so the backend is chosen first.
"""

from __future__ import annotations

import triton
import triton.language as tl

from moe_lab.stages.naive import naive_kernel

# ---------------------------------------------------------------------------------------------- naive


# The solution is the library's own `naive` kernel: the exercise asks the learner to rebuild it.
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
     "round it up to a power of two"),
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
    ("block_histogram", "tl.histogram without mask=", block_histogram_no_hist_mask,
     "tl.histogram needs mask="),
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


# ---------------------------------------------------------------------------- read-modify-write mistakes


@triton.jit
def masked_block_load_store_counts(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                                   BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    is_local = (ids >= start) & (ids < start + num_local)
    adjusted = tl.where(is_local, ids - start, -1)
    tl.store(adjusted_ptr + offs, adjusted, mask=in_bounds)
    old = tl.load(count_ptr + adjusted, mask=is_local, other=0)  # MISTAKE: read-modify-write; two lanes
    tl.store(count_ptr + adjusted, old + 1, mask=is_local)  # on one expert keep one update


@triton.jit
def masked_block_xchg_counts(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                             BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    is_local = (ids >= start) & (ids < start + num_local)
    adjusted = tl.where(is_local, ids - start, -1)
    tl.store(adjusted_ptr + offs, adjusted, mask=in_bounds)
    old = tl.load(count_ptr + adjusted, mask=is_local, other=0)
    tl.atomic_xchg(count_ptr + adjusted, old + 1, mask=is_local)  # MISTAKE: an atomic, but not an add


@triton.jit
def masked_block_cas_counts(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                            BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    is_local = (ids >= start) & (ids < start + num_local)
    adjusted = tl.where(is_local, ids - start, -1)
    tl.store(adjusted_ptr + offs, adjusted, mask=in_bounds)
    target = tl.where(is_local, adjusted, 0)
    old = tl.load(count_ptr + target, mask=is_local, other=0)
    tl.atomic_cas(count_ptr + target, old, old + is_local.to(tl.int32))  # MISTAKE: cas of a stale read


# ------------------------------------------------------------------------------------------------ relaxed


@triton.jit
def relaxed_solution(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    is_local = (ids >= start) & (ids < start + num_local)
    adjusted = tl.where(is_local, ids - start, -1)
    tl.store(adjusted_ptr + offs, adjusted, mask=in_bounds)
    tl.atomic_add(count_ptr + adjusted, 1, mask=is_local, sem="relaxed")


@triton.jit
def relaxed_stub(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local, BLOCK: tl.constexpr):
    pass  # YOUR CODE HERE


@triton.jit
def relaxed_default_sem(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    is_local = (ids >= start) & (ids < start + num_local)
    adjusted = tl.where(is_local, ids - start, -1)
    tl.store(adjusted_ptr + offs, adjusted, mask=in_bounds)
    tl.atomic_add(count_ptr + adjusted, 1, mask=is_local)  # MISTAKE: the default sem, acq_rel


@triton.jit
def relaxed_unmasked_atomic(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                            BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    is_local = (ids >= start) & (ids < start + num_local)
    adjusted = tl.where(is_local, ids - start, -1)
    tl.store(adjusted_ptr + offs, adjusted, mask=in_bounds)
    tl.atomic_add(count_ptr + adjusted, 1, mask=in_bounds, sem="relaxed")  # MISTAKE: -1 slots counted


# ------------------------------------------------------------------------------------------------- decode


@triton.jit
def decode_solution(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                    BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    counts = tl.full([NUM_BINS], 0, tl.int32)
    for tile in range(0, (num_total + BLOCK - 1) // BLOCK):
        offs = tile * BLOCK + tl.arange(0, BLOCK)
        in_bounds = offs < num_total
        ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
        local = (ids >= start) & (ids < start + num_local)
        local_expert = tl.where(local, ids - start, -1)
        tl.store(adjusted_ptr + offs, local_expert, mask=in_bounds)
        counts += tl.histogram(local_expert.to(tl.int32), NUM_BINS, mask=local)
    bins = tl.arange(0, NUM_BINS)
    tl.store(count_ptr + bins, counts, mask=bins < num_local)


@triton.jit
def decode_stub(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    pass  # YOUR CODE HERE


@triton.jit
def decode_atomic_counts(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                         BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    counts = tl.full([NUM_BINS], 0, tl.int32)
    for tile in range(0, (num_total + BLOCK - 1) // BLOCK):
        offs = tile * BLOCK + tl.arange(0, BLOCK)
        in_bounds = offs < num_total
        ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
        local = (ids >= start) & (ids < start + num_local)
        local_expert = tl.where(local, ids - start, -1)
        tl.store(adjusted_ptr + offs, local_expert, mask=in_bounds)
        counts += tl.histogram(local_expert.to(tl.int32), NUM_BINS, mask=local)
    bins = tl.arange(0, NUM_BINS)
    tl.atomic_add(count_ptr + bins, counts, mask=bins < num_local)  # MISTAKE: adds into poison


@triton.jit
def decode_nonzero_only(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                        BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    counts = tl.full([NUM_BINS], 0, tl.int32)
    for tile in range(0, (num_total + BLOCK - 1) // BLOCK):
        offs = tile * BLOCK + tl.arange(0, BLOCK)
        in_bounds = offs < num_total
        ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
        local = (ids >= start) & (ids < start + num_local)
        local_expert = tl.where(local, ids - start, -1)
        tl.store(adjusted_ptr + offs, local_expert, mask=in_bounds)
        counts += tl.histogram(local_expert.to(tl.int32), NUM_BINS, mask=local)
    bins = tl.arange(0, NUM_BINS)
    tl.store(count_ptr + bins, counts, mask=(bins < num_local) & (counts > 0))  # MISTAKE: zeros skipped


@triton.jit
def decode_first_tile_only(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                           BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    offs = tl.arange(0, BLOCK)  # MISTAKE: one tile, no loop over the rest of the input
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    local = (ids >= start) & (ids < start + num_local)
    local_expert = tl.where(local, ids - start, -1)
    tl.store(adjusted_ptr + offs, local_expert, mask=in_bounds)
    counts = tl.histogram(local_expert.to(tl.int32), NUM_BINS, mask=local)
    bins = tl.arange(0, NUM_BINS)
    tl.store(count_ptr + bins, counts, mask=bins < num_local)


@triton.jit
def decode_no_hist_mask(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                        BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    counts = tl.full([NUM_BINS], 0, tl.int32)
    for tile in range(0, (num_total + BLOCK - 1) // BLOCK):
        offs = tile * BLOCK + tl.arange(0, BLOCK)
        in_bounds = offs < num_total
        ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
        local = (ids >= start) & (ids < start + num_local)
        local_expert = tl.where(local, ids - start, -1)
        tl.store(adjusted_ptr + offs, local_expert, mask=in_bounds)
        counts += tl.histogram(local_expert.to(tl.int32), NUM_BINS)  # MISTAKE: -1 reaches a bin
    bins = tl.arange(0, NUM_BINS)
    tl.store(count_ptr + bins, counts, mask=bins < num_local)


# ------------------------------------------------------------------------------------------------- ticket


@triton.jit
def ticket_solution(ids_ptr, adjusted_ptr, count_ptr, scratch_ptr, num_total, start, num_local,
                    BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    local = (ids >= start) & (ids < start + num_local)
    local_expert = tl.where(local, ids - start, -1)
    tl.store(adjusted_ptr + offs, local_expert, mask=in_bounds)
    hist = tl.histogram(local_expert.to(tl.int32), NUM_BINS, mask=local)
    bins = tl.arange(0, NUM_BINS)
    tl.atomic_add(scratch_ptr + bins, hist, mask=bins < num_local)
    tl.debug_barrier()
    ticket = tl.atomic_add(scratch_ptr + NUM_BINS, 1)
    if ticket == tl.num_programs(0) - 1:
        totals = tl.atomic_xchg(scratch_ptr + bins, tl.full([NUM_BINS], 0, tl.int32), mask=bins < num_local)
        tl.store(count_ptr + bins, totals, mask=bins < num_local)
        tl.atomic_xchg(scratch_ptr + NUM_BINS, 0)


@triton.jit
def ticket_stub(ids_ptr, adjusted_ptr, count_ptr, scratch_ptr, num_total, start, num_local,
                BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    pass  # YOUR CODE HERE


@triton.jit
def ticket_highest_pid_is_last(ids_ptr, adjusted_ptr, count_ptr, scratch_ptr, num_total, start, num_local,
                               BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    local = (ids >= start) & (ids < start + num_local)
    local_expert = tl.where(local, ids - start, -1)
    tl.store(adjusted_ptr + offs, local_expert, mask=in_bounds)
    hist = tl.histogram(local_expert.to(tl.int32), NUM_BINS, mask=local)
    bins = tl.arange(0, NUM_BINS)
    tl.atomic_add(scratch_ptr + bins, hist, mask=bins < num_local)
    tl.debug_barrier()
    if tl.program_id(0) == tl.num_programs(0) - 1:  # MISTAKE: the highest id need not finish last
        totals = tl.atomic_xchg(scratch_ptr + bins, tl.full([NUM_BINS], 0, tl.int32), mask=bins < num_local)
        tl.store(count_ptr + bins, totals, mask=bins < num_local)


@triton.jit
def ticket_scratch_not_cleared(ids_ptr, adjusted_ptr, count_ptr, scratch_ptr, num_total, start, num_local,
                               BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    local = (ids >= start) & (ids < start + num_local)
    local_expert = tl.where(local, ids - start, -1)
    tl.store(adjusted_ptr + offs, local_expert, mask=in_bounds)
    hist = tl.histogram(local_expert.to(tl.int32), NUM_BINS, mask=local)
    bins = tl.arange(0, NUM_BINS)
    tl.atomic_add(scratch_ptr + bins, hist, mask=bins < num_local)
    tl.debug_barrier()
    ticket = tl.atomic_add(scratch_ptr + NUM_BINS, 1)
    if ticket == tl.num_programs(0) - 1:
        totals = tl.atomic_add(scratch_ptr + bins, 0, mask=bins < num_local)  # MISTAKE: read, not cleared
        tl.store(count_ptr + bins, totals, mask=bins < num_local)
        tl.atomic_xchg(scratch_ptr + NUM_BINS, 0)


@triton.jit
def ticket_relaxed_ticket(ids_ptr, adjusted_ptr, count_ptr, scratch_ptr, num_total, start, num_local,
                          BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    local = (ids >= start) & (ids < start + num_local)
    local_expert = tl.where(local, ids - start, -1)
    tl.store(adjusted_ptr + offs, local_expert, mask=in_bounds)
    hist = tl.histogram(local_expert.to(tl.int32), NUM_BINS, mask=local)
    bins = tl.arange(0, NUM_BINS)
    tl.atomic_add(scratch_ptr + bins, hist, mask=bins < num_local)
    tl.debug_barrier()
    ticket = tl.atomic_add(scratch_ptr + NUM_BINS, 1, sem="relaxed")  # MISTAKE: publishes nothing
    if ticket == tl.num_programs(0) - 1:
        totals = tl.atomic_xchg(scratch_ptr + bins, tl.full([NUM_BINS], 0, tl.int32), mask=bins < num_local)
        tl.store(count_ptr + bins, totals, mask=bins < num_local)
        tl.atomic_xchg(scratch_ptr + NUM_BINS, 0)


@triton.jit
def ticket_totals_by_load(ids_ptr, adjusted_ptr, count_ptr, scratch_ptr, num_total, start, num_local,
                          BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    local = (ids >= start) & (ids < start + num_local)
    local_expert = tl.where(local, ids - start, -1)
    tl.store(adjusted_ptr + offs, local_expert, mask=in_bounds)
    hist = tl.histogram(local_expert.to(tl.int32), NUM_BINS, mask=local)
    bins = tl.arange(0, NUM_BINS)
    tl.atomic_add(scratch_ptr + bins, hist, mask=bins < num_local)
    tl.debug_barrier()
    ticket = tl.atomic_add(scratch_ptr + NUM_BINS, 1)
    if ticket == tl.num_programs(0) - 1:
        totals = tl.load(scratch_ptr + bins, mask=bins < num_local, other=0)  # MISTAKE: may be stale
        tl.store(scratch_ptr + bins, tl.full([NUM_BINS], 0, tl.int32), mask=bins < num_local)
        tl.store(count_ptr + bins, totals, mask=bins < num_local)
        tl.atomic_xchg(scratch_ptr + NUM_BINS, 0)


@triton.jit
def ticket_no_barrier(ids_ptr, adjusted_ptr, count_ptr, scratch_ptr, num_total, start, num_local,
                      BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    local = (ids >= start) & (ids < start + num_local)
    local_expert = tl.where(local, ids - start, -1)
    tl.store(adjusted_ptr + offs, local_expert, mask=in_bounds)
    hist = tl.histogram(local_expert.to(tl.int32), NUM_BINS, mask=local)
    bins = tl.arange(0, NUM_BINS)
    tl.atomic_add(scratch_ptr + bins, hist, mask=bins < num_local)
    ticket = tl.atomic_add(scratch_ptr + NUM_BINS, 1)  # MISTAKE: no barrier before the ticket
    if ticket == tl.num_programs(0) - 1:
        totals = tl.atomic_xchg(scratch_ptr + bins, tl.full([NUM_BINS], 0, tl.int32), mask=bins < num_local)
        tl.store(count_ptr + bins, totals, mask=bins < num_local)
        tl.atomic_xchg(scratch_ptr + NUM_BINS, 0)


@triton.jit
def ticket_bins_unmasked(ids_ptr, adjusted_ptr, count_ptr, scratch_ptr, num_total, start, num_local,
                         BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    local = (ids >= start) & (ids < start + num_local)
    local_expert = tl.where(local, ids - start, -1)
    tl.store(adjusted_ptr + offs, local_expert, mask=in_bounds)
    hist = tl.histogram(local_expert.to(tl.int32), NUM_BINS, mask=local)
    bins = tl.arange(0, NUM_BINS)
    tl.atomic_add(scratch_ptr + bins, hist)
    tl.debug_barrier()
    ticket = tl.atomic_add(scratch_ptr + NUM_BINS, 1)
    if ticket == tl.num_programs(0) - 1:
        totals = tl.atomic_xchg(scratch_ptr + bins, tl.full([NUM_BINS], 0, tl.int32))
        tl.store(count_ptr + bins, totals)  # MISTAKE: bins >= num_local are not counters
        tl.atomic_xchg(scratch_ptr + NUM_BINS, 0)


# -------------------------------------------------------------------------------------------------- debug


@triton.jit
def debug_solution(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local, BLOCK: tl.constexpr):
    slot = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    valid_slot = slot < num_total
    expert = tl.load(ids_ptr + slot, mask=valid_slot, other=-1)
    local = (expert >= start) & (expert < start + num_local)
    local_expert = tl.where(local, expert - start, -1)
    tl.store(adjusted_ptr + slot, local_expert, mask=valid_slot)
    tl.atomic_add(count_ptr + local_expert, 1, mask=local)


@triton.jit
def debug_stub(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local, BLOCK: tl.constexpr):
    pass  # YOUR CODE HERE: the fixed kernel


def _debug_planted():
    from moe_lab.workbook.exercises import buggy_kernel

    return buggy_kernel()


debug_planted = _debug_planted()


SOLUTIONS.update(relaxed=relaxed_solution, decode=decode_solution, ticket=ticket_solution,
                 debug=debug_solution)
STUBS.update(relaxed=relaxed_stub, decode=decode_stub, ticket=ticket_stub, debug=debug_stub)

USE_AN_ATOMIC = "use an atomic"
MISTAKES += [
    ("masked_block", "read-modify-write with tl.load + tl.store", masked_block_load_store_counts,
     USE_AN_ATOMIC),
    ("masked_block", "read-modify-write with atomic_xchg", masked_block_xchg_counts, USE_AN_ATOMIC),
    ("masked_block", "read-modify-write with atomic_cas", masked_block_cas_counts, USE_AN_ATOMIC),
    ("debug", "the planted bug itself (the range's end not moved by start)", debug_planted,
     "start <= id < start + num_local"),
    ("debug", "missing mask on load and store", masked_block_no_mask, "mask the load"),
    ("relaxed", "the default sem (acq_rel)", relaxed_default_sem, 'sem="relaxed"'),
    ("relaxed", "atomic masked with the in-bounds mask only", relaxed_unmasked_atomic,
     "mask the atomic with the local mask"),
    ("relaxed", "read-modify-write with tl.load + tl.store", masked_block_load_store_counts, USE_AN_ATOMIC),
    ("decode", "counters accumulated into poison", decode_atomic_counts, "store its final histogram"),
    ("decode", "zero counters not stored", decode_nonzero_only, "zeros included"),
    ("decode", "one tile only, no loop", decode_first_tile_only, "a slot was never stored"),
    ("decode", "tl.histogram without mask=", decode_no_hist_mask, "tl.histogram needs mask="),
    ("ticket", "highest program id taken as last", ticket_highest_pid_is_last, "take a ticket"),
    ("ticket", "scratch not cleared", ticket_scratch_not_cleared, "back to zero"),
    ("ticket", "relaxed ticket", ticket_relaxed_ticket, "keep the ticket acq_rel"),
    ("ticket", "totals read with tl.load", ticket_totals_by_load, "not tl.load"),
    ("ticket", "no barrier before the ticket", ticket_no_barrier, "tl.debug_barrier()"),
    ("ticket", "bins >= num_local not masked", ticket_bins_unmasked, "mask bins >= num_local"),
]
