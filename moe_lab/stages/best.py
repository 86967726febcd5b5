"""Stage 8, ``best``: pick the fastest correct kernel for the input's size; what the library ships.

* up to ``decode.MAX_SLOTS`` slots: the one-program ``decode`` kernel (one launch, no memset, no
  atomics);
* above that: a memset of the counts, then the persistent ``block_histogram`` kernel (one relaxed
  atomic per expert per program);
* more than ``block_histogram.MAX_BINS`` local experts: per-slot ``relaxed`` atomics.

The choice depends only on shapes, never on values, so a call never waits for the GPU and records
into a CUDA graph as it runs eagerly. For graphs, pass ``adjusted_out=`` and ``expert_count_out=``:
the kernels then write into your static buffers and allocate nothing. The thresholds come from the
recorded H100 sweep in ``data/`` (notebook 06 plots it).
"""

from __future__ import annotations

from . import block_histogram, decode, relaxed
from ._launch import prepare


def choose(num_total: int, num_local: int) -> str:
    """Which kernel ``best`` runs for ``num_total`` slots and ``num_local`` local experts."""
    if block_histogram.num_bins(num_local) > block_histogram.MAX_BINS:
        return "relaxed"
    if num_total <= decode.MAX_SLOTS:
        return "decode"
    return "block_histogram"


def run(topk_ids, current_expert_start_id, num_local_experts, *, adjusted_out=None,
        expert_count_out=None):
    num_total = topk_ids.numel() if hasattr(topk_ids, "numel") else 0
    start, num_local, adjusted, counts = prepare(
        topk_ids, current_expert_start_id, num_local_experts, stage="best", zero_counts=False,
        adjusted_out=adjusted_out, expert_count_out=expert_count_out)
    kind = choose(num_total, num_local)
    if num_total == 0:
        counts.zero_()
    elif kind == "decode":
        decode.launch(topk_ids, adjusted, counts, start, num_local)
    elif kind == "block_histogram":
        counts.zero_()
        block_histogram.launch(topk_ids, adjusted, counts, start, num_local)
    else:
        counts.zero_()
        relaxed.launch(topk_ids, adjusted, counts, start, num_local)
    return adjusted, counts
