"""The stages by name, in teaching order, with a one-line description each.

This list is the index: notebooks, benchmarks, plots, the atomics model, the tracer and the IR
explorer all iterate over it, and each stage's module describes its own kernel (``KERNEL``), so
adding a stage is one module and one line here (see ``docs/contributing.md``).
"""

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
        """The stage's module (imported on first use, after the backend is chosen).

        ``module`` is a name under ``moe_lab.stages`` or, with a dot in it, a full module path.
        """
        return importlib.import_module(self.module if "." in self.module else f"moe_lab.stages.{self.module}")

    @property
    def kernel(self):
        """The module's ``KERNEL`` (:class:`moe_lab.stages._kernel.Kernel`), or None (``torch``, ``best``)."""
        return getattr(self.load(), "KERNEL", None)

    def kernel_for(self, num_total: int, num_local: int) -> str:
        """The stage whose kernel runs for this shape: itself, or the one its ``choose`` picks."""
        choose = getattr(self.load(), "choose", None)
        return choose(num_total, num_local) if choose is not None else self.name

    def run(self, topk_ids, start, num_local):
        return self.load().run(topk_ids, start, num_local)


STAGES: dict[str, Stage] = {s.name: s for s in [
    Stage("torch", "torch_ref", "PyTorch reference: compare, where, bincount; the contract", "#7f7f7f",
          uses_triton=False, single_kernel=False),
    Stage("row_loop", "row_loop", "per-token vector of tl.arange(0, topk): fails for topk 6", "#8c564b",
          bench_max_slots=1 << 23),
    Stage("naive", "naive", "one scalar load, store and atomic per slot: any topk, serial", "#d62728",
          bench_max_slots=1 << 21),
    Stage("tl_full", "tl_full", "flat masked power-of-two block, atomic value tl.full([BLOCK], 1)",
          "#1f77b4"),
    Stage("scalar_atomic", "scalar_atomic", "same block, scalar 1 as atomic value: rtp-llm's kernel",
          "#ff7f0e"),
    Stage("relaxed", "relaxed", "scalar_atomic with sem='relaxed': no ordering the count never needed",
          "#bcbd22"),
    Stage("block_histogram", "block_histogram", "tl.histogram per tile, one atomic per expert per program",
          "#2ca02c"),
    Stage("decode", "decode", "one program stores every count: no memset, no atomics (small inputs)",
          "#9467bd", bench_max_slots=1 << 18),
    Stage("one_launch", "one_launch", "block histograms summed by the last program: one launch, no memset",
          "#393b79"),
    Stage("handoff", "handoff", "the first program to arrive zeroes the counts; no last program to wait for",
          "#d6616b"),
    Stage("best", "best", "dispatch by size: decode for small inputs, else handoff", "#17becf",
          single_kernel=False),
]}


def register(entry: Stage) -> Stage:
    """Add a stage at the end of the teaching order (a stage module plus this one call is all it takes)."""
    if not isinstance(entry, Stage):
        raise TypeError(f"register takes a registry.Stage, got {type(entry).__name__}")
    if entry.name in STAGES:
        raise ValueError(f"stage {entry.name!r} is already registered; pick another name or unregister it")
    STAGES[entry.name] = entry
    return entry


def unregister(name: str) -> None:
    """Remove a stage added with :func:`register` (tests use it to clean up)."""
    stage(name)
    del STAGES[name]


def stage(name: str) -> Stage:
    """The stage called ``name`` (a str); TypeError for anything else, ValueError for an unknown name."""
    try:
        return STAGES[name]
    except (KeyError, TypeError):  # TypeError: an unhashable name (a list)
        if not isinstance(name, str):
            raise TypeError(f"stage must be a stage name (a str), got {type(name).__name__} ({name!r}); "
                            f"choose one of: {', '.join(STAGES)}") from None
        raise ValueError(f"unknown stage {name!r}; choose one of: {', '.join(STAGES)}") from None


def list_stages() -> list[tuple[str, str]]:
    """``[(name, one-line summary), ...]`` in teaching order."""
    return [(s.name, s.summary) for s in STAGES.values()]
