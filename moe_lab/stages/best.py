"""``best``: pick the fastest correct kernel for the input's size; what the library ships.

What changed from the stages before: no kernel of its own. ``choose`` names a stage for the shape and
``run`` launches that stage's ``KERNEL``, by the same rule the stage itself uses:

* up to ``decode.MAX_SLOTS`` slots: the one-program ``decode`` kernel (one launch, no memset, no
  atomics): under CUDA-graph replay about half the time of rtp-llm's memset + kernel;
* above that: ``handoff``, the persistent block histogram whose first program zeroes the counts
  (one launch, no memset, no last program);
* more than ``block_histogram.MAX_BINS`` local experts: memset + per-slot ``relaxed`` atomics.

The choice depends only on shapes, never on values, so a call never waits for the GPU and records
into a CUDA graph as it runs eagerly. For graphs, pass ``adjusted_out=`` and ``expert_count_out=``:
the kernels then write into your static buffers and allocate nothing. The thresholds come from the
recorded H200 sweep (``data/tuning/midsize_sweep_*.csv``).

What is safe: ``decode`` and ``relaxed`` keep no state. ``handoff`` keeps its state in a scratch that
no two concurrent launches share (one per call on the CPU, one per device and stream on a GPU, one
per captured CUDA graph; :func:`moe_lab.stages.one_launch.scratch`), so calls from several threads,
streams, devices or concurrently replayed graphs, and calls after an interrupted one, all give the
same results as calls made one at a time. Output buffers that overlap each other or ``topk_ids`` are
refused.
"""

from __future__ import annotations

from moe_lab.checks import check_args
from moe_lab.stages import block_histogram, decode
from moe_lab.stages._launch import outputs


def choose(num_total: int, num_local: int) -> str:
    """Which kernel ``best`` runs for ``num_total`` slots and ``num_local`` local experts."""
    if num_local > block_histogram.MAX_BINS:  # its power-of-two bins would not fit the register histogram
        return "relaxed"
    if num_total <= decode.MAX_SLOTS:
        return "decode"
    return "handoff"


_KERNELS: dict = {}  # stage name -> its KERNEL, read from the registry once


def kernel(name: str):
    """The ``KERNEL`` of the stage ``choose`` named (looked up in the registry, then kept)."""
    found = _KERNELS.get(name)
    if found is None:
        from moe_lab.registry import stage

        found = _KERNELS[name] = stage(name).kernel
    return found


def run(topk_ids, start, num_local, *, adjusted_out=None, expert_count_out=None):
    start, num_local = check_args(topk_ids, start, num_local, stage="best")
    chosen = kernel(choose(topk_ids.numel(), num_local))
    adjusted, counts = outputs(topk_ids, num_local, adjusted_out, expert_count_out, chosen.zero_counts)
    chosen.launch(topk_ids, adjusted, counts, start, num_local)
    return adjusted, counts
