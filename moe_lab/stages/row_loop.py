"""``row_loop``: one program per block of tokens, a vector of ``topk`` ids per token.

The first kernel anyone writes: each program walks ``TOKENS_PER_PROGRAM`` tokens; for each token it
loads that token's ``topk`` ids as one small vector (``tl.arange(0, TOPK)``), remaps them, stores them
and adds 1 to the counter of every local id.

Why it had to change: ``tl.arange`` only makes power-of-two ranges (Triton lays a block out over
threads in powers of two). Mixtral's top-2 and DeepSeek-V3's top-8 work; DeepSeek-V2-Lite's top-6
does not compile. ``run`` turns Triton's error into :class:`NonPowerOfTwoTopkError`, which says why
and what the next stages do about it.
"""

from __future__ import annotations

import triton
import triton.language as tl

from moe_lab.stages._kernel import PER_SLOT, TOKENS, Kernel
from moe_lab.stages._launch import prepare

TOKENS_PER_PROGRAM = 32


class NonPowerOfTwoTopkError(ValueError):
    """``row_loop`` was asked for a topk that ``tl.arange`` cannot make."""


@triton.jit
def row_loop_kernel(ids_ptr, adjusted_ptr, count_ptr, num_tokens, start, num_local,
                    TOPK: tl.constexpr, TOKENS_PER_PROGRAM: tl.constexpr):
    pid = tl.program_id(0)
    k = tl.arange(0, TOPK)  # needs TOPK to be a power of two
    for i in range(TOKENS_PER_PROGRAM):
        token = pid * TOKENS_PER_PROGRAM + i
        if token < num_tokens:  # the last program's tokens run past the end
            ids = tl.load(ids_ptr + token * TOPK + k)  # this token's topk ids as one small vector
            is_local = (ids >= start) & (ids < start + num_local)
            adjusted = tl.where(is_local, ids - start, -1)  # remote ids and padding both become -1
            tl.store(adjusted_ptr + token * TOPK + k, adjusted)
            tl.atomic_add(count_ptr + adjusted, 1, mask=is_local)  # one global atomic per local slot


def check_topk(topk: int) -> None:
    """Refuse a topk that ``tl.arange`` cannot make, before launching."""
    if topk & (topk - 1):
        raise NonPowerOfTwoTopkError(f"row_loop cannot run topk={topk}: tl.arange(0, {topk}) needs a power "
                                     f"of two")


KERNEL = Kernel(row_loop_kernel, grid=TOKENS, writes=PER_SLOT, sem="acq_rel",
                args=("ids", "adjusted", "counts", "num_tokens", "start", "num_local"),
                block=lambda topk, num_total: TOKENS_PER_PROGRAM * topk,
                constexprs=lambda block, topk, num_local: {"TOPK": topk, "TOKENS_PER_PROGRAM": block // topk},
                check_topk=check_topk)


def run(topk_ids, start, num_local):
    start, num_local, adjusted, counts = prepare(topk_ids, start, num_local, stage="row_loop")
    topk = topk_ids.shape[1]
    try:  # Triton itself refuses tl.arange(0, topk) for a topk that is not a power of two
        KERNEL.launch(topk_ids, adjusted, counts, start, num_local)
    except Exception as err:  # Triton's own error type differs between compiler and interpreter
        if topk & (topk - 1) == 0:
            raise
        raise NonPowerOfTwoTopkError(
            f"row_loop cannot run topk={topk}: the kernel loads each token's ids with "
            f"tl.arange(0, {topk}), and Triton only builds power-of-two ranges "
            f"(Triton said: {_first_line(err)}). Powers of two work (1, 2, 4, 8); DeepSeek-V2-Lite's "
            f"top-6 does not. The next stage, 'naive', loops over the slots one at a time and works "
            f"for any topk; 'tl_full' flattens the ids and pads the block to a power of two."
        ) from err
    return adjusted, counts


def _first_line(err: Exception) -> str:
    text = str(err)
    for line in text.splitlines():
        if "power of 2" in line or "power of two" in line:
            return line.strip()
    return text.strip().splitlines()[-1] if text.strip() else type(err).__name__
