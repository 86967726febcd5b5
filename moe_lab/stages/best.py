"""``best``: pick the fastest correct kernel for the input's size; what the library ships.

* up to ``decode.MAX_SLOTS`` slots: the one-program ``decode`` kernel (one launch, no memset, no
  atomics): under CUDA-graph replay about half the time of rtp-llm's memset + kernel;
* above that: ``one_launch``, the persistent block histogram whose last program stores the counts
  (one launch, no memset), within about 1.3x of a plain copy of the same bytes at 8M slots;
* more than ``block_histogram.MAX_BINS`` local experts: memset + per-slot ``relaxed`` atomics.

The choice depends only on shapes, never on values, so a call never waits for the GPU and records
into a CUDA graph as it runs eagerly. For graphs, pass ``adjusted_out=`` and ``expert_count_out=``:
the kernels then write into your static buffers and allocate nothing. The thresholds come from the
recorded H100 sweep in ``data/`` (notebook 07 plots it).

What is safe: ``decode`` and ``relaxed`` keep no state. ``one_launch`` keeps a zero-between-calls
scratch that no two concurrent launches share (one per call on the CPU, one per device and stream
on a GPU, one per captured CUDA graph; :func:`moe_lab.stages.one_launch.scratch`), so
calls from several threads, streams, devices or concurrently replayed graphs, and calls after an
interrupted one, all give the same results as calls made one at a time. Output buffers that overlap
each other or ``topk_ids`` are refused.
"""

from __future__ import annotations

import torch

from moe_lab.stages import block_histogram, decode, one_launch, relaxed
from moe_lab.stages._launch import prepare


def choose(num_total: int, num_local: int) -> str:
    """Which kernel ``best`` runs for ``num_total`` slots and ``num_local`` local experts."""
    if block_histogram.num_bins(num_local) > block_histogram.MAX_BINS:
        return "relaxed"
    if num_total <= decode.MAX_SLOTS:
        return "decode"
    return "one_launch"


def run(topk_ids, start, num_local, *, adjusted_out=None, expert_count_out=None):
    start, num_local, adjusted, counts = prepare(topk_ids, start, num_local, stage="best", zero_counts=False,
                                                 adjusted_out=adjusted_out, expert_count_out=expert_count_out)
    device = topk_ids.device
    if device.type == "cuda" and device.index is not None and device.index != torch.cuda.current_device():
        with torch.cuda.device(device):  # Triton launches on the current device's current stream
            return run(topk_ids, start, num_local, adjusted_out=adjusted, expert_count_out=counts)
    num_total = topk_ids.numel()
    kind = choose(num_total, num_local)
    if num_total == 0:
        counts.zero_()
    elif kind == "decode":
        decode.launch(topk_ids, adjusted, counts, start, num_local)
    elif kind == "one_launch":
        one_launch.launch(topk_ids, adjusted, counts, start, num_local)
    else:
        counts.zero_()
        relaxed.launch(topk_ids, adjusted, counts, start, num_local)
    return adjusted, counts
