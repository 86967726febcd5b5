"""How a stage's kernel is launched for one input, and where its counters sit in memory.

Shared by the traffic model (:mod:`moe_lab.inspection.atomics`) and the interpreter tracer
(:mod:`moe_lab.inspection.tracer`). Nothing here knows a stage by name: :func:`launch_config` asks the
stage's ``KERNEL`` (:class:`moe_lab.stages._kernel.Kernel`), through the registry, for its ``plan``: the same
rule the stage's real launches follow.

The counters are ``num_local`` int32 values next to each other: 32 of them share one 128-byte L2
line. Line numbers assume the counters start on a 128-byte boundary: PyTorch's CUDA allocator hands
out blocks aligned to 512 bytes, so counter ``e`` sits in line ``e // 32``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from moe_lab.stages._kernel import (
    PER_BIN,
    PER_BIN_FLAG,
    PER_BIN_TICKET,
    PER_SLOT,
    PERSISTENT,
    SINGLE,
    STORES,
    TOKENS,
    sm_count,
)

COUNTER_BYTES = 4
LINE_BYTES = 128
COUNTERS_PER_LINE = LINE_BYTES // COUNTER_BYTES  # 32 int32 counters share one L2 line

H100_SMS = 132
"""Streaming multiprocessors of an H100 SXM: the library's persistent grid there is 4 x 132 programs."""


@dataclass(frozen=True)
class Launch:
    """How a stage's kernel is launched for one input: tiles, grid, and what kind of writes it does."""
    stage: str          # the stage asked for
    kernel: str         # the stage whose kernel runs (differs from ``stage`` for ``best``)
    block: int          # slots per tile (a program's vector width, or tokens * topk for row loops)
    num_tiles: int
    num_programs: int
    persistent: bool    # programs loop over tiles p, p + num_programs, ...
    writes: str         # one of moe_lab.stages._kernel.WRITES
    sem: str            # memory order of the counting atomics ("acq_rel", "relaxed", "" for none)

    def describe(self) -> str:
        if self.persistent:
            grid = (f"persistent grid of {self.num_programs} program(s) over {self.num_tiles} tile(s) "
                    f"of {self.block} slots")
        else:
            grid = f"{self.num_programs} program(s), one per tile of {self.block} slots"
        via = f" (best runs {self.kernel})" if self.kernel != self.stage else ""
        sem = f", sem={self.sem}" if self.sem else ""
        return f"{self.stage}{via}: {grid}; {self.writes}{sem}"


def modelled_stages() -> tuple[str, ...]:
    """Stages whose launches are modelled: every stage with a kernel, or that dispatches to one."""
    from moe_lab.registry import STAGES

    return tuple(name for name, s in STAGES.items() if s.kernel is not None or hasattr(s.load(), "choose"))


def persistent_stages() -> tuple[str, ...]:
    """Stages with a persistent grid, the ones whose ``num_programs`` can be chosen."""
    from moe_lab.registry import STAGES

    return tuple(name for name, s in STAGES.items() if s.kernel is not None and s.kernel.grid == PERSISTENT)


def writing_stages(writes: str) -> tuple[str, ...]:
    """Stages whose kernel counts with ``writes`` (``"per-slot atomics"``, ``"stores"``...)."""
    from moe_lab.registry import STAGES

    return tuple(name for name, s in STAGES.items() if s.kernel is not None and s.kernel.writes == writes)


def _power_of_two(name: str, value: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1 \
            or value & (value - 1):
        raise ValueError(f"{name} must be a positive power of two (the kernel builds tl.arange(0, "
                         f"{name.upper()})), got {value!r}")
    return int(value)


def library_programs(kernel: str, num_tiles: int, device=None) -> int:
    """The persistent grid the library launches ``kernel`` with on ``device`` (default: where the
    kernels run now): its ``programs_per_sm`` per SM, at most one per tile."""
    from moe_lab import backend
    from moe_lab.registry import stage

    spec = stage(kernel).kernel
    if spec is None or spec.grid != PERSISTENT:
        raise ValueError(f"stage {kernel!r} has no persistent grid; choose one of: "
                         f"{', '.join(persistent_stages())}")
    device = torch.device(device) if device is not None else backend.device()
    return min(num_tiles, spec.programs_per_sm * sm_count(device))  # what Kernel.plan computes


def launch_config(stage: str, num_tokens: int, topk: int, num_local: int, *, block: int | None = None,
                  num_programs: int | None = None, device=None) -> Launch:
    """The launch of ``stage`` for ``[num_tokens, topk]`` ids, as the library does it.

    ``block``: slots per tile; ``None`` takes the stage's own rule (its ``KERNEL.block``).
    ``num_programs`` (persistent grids: ``block_histogram``, ``one_launch``, or ``best`` when it picks
    one of them): ``None`` is the library's grid on ``device`` (``min(tiles, programs_per_sm * SMs)``;
    one SM under the interpreter), ``0`` is one program per tile, ``n > 0`` a persistent grid of
    ``min(n, tiles)`` programs.
    """
    from moe_lab.registry import STAGES

    modelled = modelled_stages()
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; choose one of: {', '.join(modelled)}")
    if stage not in modelled:
        raise ValueError(f"stage {stage!r} has no model of its atomics (it runs no Triton kernel of its "
                         f"own); choose one of: {', '.join(modelled)}")
    for name, value in (("num_tokens", num_tokens), ("topk", topk), ("num_local", num_local)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if num_tokens < 0 or topk < 1 or num_local < 1:
        raise ValueError(f"need num_tokens >= 0, topk >= 1 and num_local >= 1; got num_tokens="
                         f"{num_tokens}, topk={topk}, num_local={num_local}")
    num_total = num_tokens * topk
    kernel = STAGES[stage].kernel_for(num_total, num_local)
    spec = STAGES[kernel].kernel
    if num_total == 0 and not spec.zero_counts:
        # kernels that store the counts themselves are not launched for empty input: the host zeroes them
        size = spec.block(topk, num_total) if block is None else _power_of_two("block", block)
        return Launch(stage, kernel, size, 0, 0, True, spec.writes, spec.sem)
    if num_programs is not None and spec.grid != PERSISTENT:
        raise ValueError(f"num_programs={num_programs!r} only applies to the persistent kernels "
                         f"({', '.join(persistent_stages())}); {stage!r} launches "
                         f"{'one program' if spec.grid == SINGLE else 'one program per tile'} "
                         f"(pass num_programs=None)")
    if spec.grid == TOKENS:
        if block is not None and (block < topk or block % topk):
            raise ValueError(f"block={block!r}: {kernel} gives each program whole tokens, so block "
                             f"must be a positive multiple of topk={topk}")
        if spec.check_topk is not None:
            spec.check_topk(topk)
    else:
        if spec.check is not None:
            spec.check(num_local, kernel)
        if block is not None:
            block = _power_of_two("block", block)
    if num_programs is not None and (not isinstance(num_programs, (int, np.integer))
                                     or isinstance(num_programs, bool) or num_programs < 0):
        raise ValueError(f"num_programs must be None (the library's grid), 0 (one per tile) or "
                         f"a positive int, got {num_programs!r}")
    plan = spec.plan(num_tokens, topk, num_local, _device(device),
                     block=None if block is None else int(block),
                     num_programs=None if num_programs is None else int(num_programs))
    return Launch(stage, kernel, plan.block, plan.num_tiles, plan.grid, spec.persistent, spec.writes,
                  spec.sem)


def _device(device) -> torch.device:
    from moe_lab import backend

    return torch.device(device) if device is not None else backend.device()


def per_line(per_counter: np.ndarray, num_lines: int) -> np.ndarray:
    """``[programs, counters]`` summed into ``[programs, 128-byte lines]``."""
    programs, num_local = per_counter.shape
    padded = np.zeros((programs, num_lines * COUNTERS_PER_LINE), dtype=per_counter.dtype)
    padded[:, :num_local] = per_counter
    return padded.reshape(programs, num_lines, COUNTERS_PER_LINE).sum(axis=2)


__all__ = ["COUNTER_BYTES", "LINE_BYTES", "COUNTERS_PER_LINE", "H100_SMS", "Launch", "launch_config",
           "library_programs", "modelled_stages", "persistent_stages", "writing_stages", "per_line",
           "PER_SLOT", "PER_BIN", "STORES", "PER_BIN_TICKET", "PER_BIN_FLAG"]
