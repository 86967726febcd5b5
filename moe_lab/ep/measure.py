"""GPU timings of one rank (NCCL only): the all-gather of ``topk_ids`` and each stage's kernel.

Every rank runs the same fixed number of collectives here, so they pair up across the group.
Two all-gather measures, one column each:

* ``allgather_us``: one gather between CUDA events, right after a barrier: what a layer pays when
  the ranks arrive together, *including* the skew between ranks leaving the barrier;
* ``allgather_stream_us``: the time of ``BACK_TO_BACK`` gathers in a row divided by their number,
  which spreads that skew over many gathers and comes closer to the link's own cost.

Kernels are timed with the project's one timer, :func:`moe_lab.measure.timing.time_us`: ``"eager"`` (whole
eager calls, CPU launch path included; the middle of three ``do_bench`` runs) or ``"graph"`` (replays
of a captured call). Each measure is reported as its median with the 20th and 80th percentiles, in
microseconds.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from moe_lab import registry
from moe_lab.measure import timing

WARMUP, WINDOWS, BACK_TO_BACK = 5, 50, 10


def gather_into(out: torch.Tensor, tensor: torch.Tensor) -> None:
    # torch 2.13 renamed all_gather_into_tensor to all_gather_single; the GPU machines run older torch.
    gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
    gather(out, tensor)


def _quantiles(values) -> list[float]:
    return torch.tensor(values, dtype=torch.float64).quantile(
        torch.tensor([0.5, 0.2, 0.8], dtype=torch.float64)).tolist()


def _time_gathers(rank: int, out: torch.Tensor, padded: torch.Tensor, repeat: int) -> list[float]:
    """Microseconds per gather over ``WINDOWS`` windows of ``repeat`` gathers, each after a barrier."""
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for i in range(WARMUP + WINDOWS):
        dist.barrier(device_ids=[rank])  # start together, so a late peer is not charged to the gather
        torch.cuda.synchronize()
        begin.record()
        for _ in range(repeat):
            gather_into(out, padded)
        end.record()
        end.synchronize()
        if i >= WARMUP:
            times.append(begin.elapsed_time(end) * 1e3 / repeat)
    return times


def measure(cfg, rank: int, padded: torch.Tensor, gathered: torch.Tensor, start: int, num_local: int,
            post, repeat: int = 0) -> list[dict]:
    """One row per timed stage: this rank's all-gather and kernel timings, in microseconds."""
    out = torch.empty((cfg.world_size * padded.shape[0], *padded.shape[1:]), dtype=padded.dtype,
                      device=padded.device)
    single = _quantiles(_time_gathers(rank, out, padded, 1))
    stream = _quantiles(_time_gathers(rank, out, padded, BACK_TO_BACK))
    card = torch.cuda.get_device_name(rank)
    rows = []
    for name in cfg.stages:
        post("measure*", name)
        run = registry.STAGES[name].run

        def call(run=run):
            run(gathered, start, num_local)

        call()  # first call compiles, and allocates what a graph capture must not
        torch.cuda.synchronize()
        us = timing.time_us(call, mode=cfg.kernel_mode)
        rows.append(dict(rank=rank, card=card, stage=name, kernel_mode=cfg.kernel_mode, repeat=repeat,
                         kernel_us=us[0], kernel_p20_us=us[1], kernel_p80_us=us[2],
                         allgather_us=single[0], allgather_p20_us=single[1], allgather_p80_us=single[2],
                         allgather_stream_us=stream[0], allgather_stream_p20_us=stream[1],
                         allgather_stream_p80_us=stream[2],
                         allgather_bytes=out.numel() * out.element_size()))
    return rows
