"""The stages by name, in teaching order, with a one-line description each."""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    name: str
    module: str
    summary: str
    color: str
    """Its colour in every plot and explorer."""
    uses_triton: bool = True
    bench_max_slots: int | None = None
    """Largest input (slots) the benchmark times; ``None``: no limit."""
    single_kernel: bool = True
    """Launches one Triton kernel of its own, so its IR can be compiled and shown."""

    def load(self):
        """The stage's module (imported on first use, after the backend is chosen)."""
        return importlib.import_module(f"moe_lab.stages.{self.module}")

    def run(self, topk_ids, start, num_local):
        return self.load().run(topk_ids, start, num_local)


STAGES: dict[str, Stage] = {s.name: s for s in [
    Stage("torch", "torch_ref", "PyTorch reference: compare, where, bincount; the contract", "#7f7f7f",
          uses_triton=False, single_kernel=False),
    Stage("row_loop", "row_loop", "per-token vector of tl.arange(0, topk): fails for topk 6", "#8c564b",
          bench_max_slots=1 << 23),
    Stage("naive", "naive", "one scalar load, store and atomic per slot: any topk, serial", "#d62728",
          bench_max_slots=1 << 21),
    Stage("tl_full", "tl_full", "flat masked power-of-two block, atomic value tl.full([BLOCK], 1)", "#1f77b4"),
    Stage("scalar_atomic", "scalar_atomic", "same block, scalar 1 as atomic value: rtp-llm's kernel", "#ff7f0e"),
    Stage("relaxed", "relaxed", "scalar_atomic with sem='relaxed': no ordering the count never needed",
          "#bcbd22"),
    Stage("block_histogram", "block_histogram", "tl.histogram per tile, one atomic per expert per program",
          "#2ca02c"),
    Stage("decode", "decode", "one program stores every count: no memset, no atomics (small inputs)",
          "#9467bd", bench_max_slots=1 << 18),
    Stage("one_launch", "one_launch", "block histograms summed by the last program: one launch, no memset",
          "#393b79"),
    Stage("best", "best", "dispatch by size: decode for small inputs, else one_launch", "#17becf",
          single_kernel=False),
]}


def stage(name: str) -> Stage:
    try:
        return STAGES[name]
    except KeyError:
        raise ValueError(f"unknown stage {name!r}; choose one of: {', '.join(STAGES)}") from None


def list_stages() -> list[tuple[str, str]]:
    """``[(name, one-line summary), ...]`` in teaching order."""
    return [(s.name, s.summary) for s in STAGES.values()]
