"""What the rest of the library needs to know about a stage's Triton kernel, in one place.

Each stage module with a kernel of its own defines ``KERNEL = Kernel(...)`` next to the kernel:
its launch rule (grid, block, warps, constexprs), the order of its runtime arguments, and what it
writes to the counters with which memory order. The atomics model (:mod:`moe_lab.inspection.atomics`),
the interpreter tracer (:mod:`moe_lab.inspection.tracer`) and the IR compiler (:mod:`moe_lab.inspection.ir`)
read it through the registry, so none of them knows any stage by name. A stage that dispatches to others
(``best``) defines ``choose(num_total, num_local) -> stage name`` instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

PER_SLOT = "per-slot atomics"
PER_BIN = "per-bin atomics"
STORES = "stores"
PER_BIN_TICKET = "per-bin atomics to scratch, a ticket each, stores by the last"
WRITES = (PER_SLOT, PER_BIN, STORES, PER_BIN_TICKET)

TILES, TOKENS, PERSISTENT, SINGLE = "tiles", "tokens", "persistent", "single"
GRIDS = (TILES, TOKENS, PERSISTENT, SINGLE)

ARGUMENTS = ("ids", "adjusted", "counts", "scratch", "num_tokens", "topk", "num_total", "start", "num_local")


def default_warps(block: int) -> int:
    """Triton's own default: 4 warps whatever the block."""
    return 4


@dataclass(frozen=True)
class Kernel:
    """One stage's ``@triton.jit`` kernel and how the library launches it.

    ``grid``: ``"tiles"`` (one program per tile of ``block`` slots), ``"tokens"`` (one program per
    ``block // topk`` whole tokens), ``"persistent"`` (at most ``programs_per_sm`` programs per SM,
    program ``p`` taking tiles ``p, p + programs, ...``) or ``"single"`` (one program for every tile).
    ``block(topk, num_total)``: the library's slots per tile. ``constexprs(block, topk, num_local)``:
    the launch's compile-time arguments. ``args``: the runtime arguments in order, named from
    :data:`ARGUMENTS`. ``writes``/``sem``: what the counting does (:data:`WRITES`) and the memory order
    of its atomics (``""`` when it stores). ``check(num_local, stage)``/``check_topk(topk)``: refusals
    run before a launch. ``ir_slots``: the input size whose compile :mod:`moe_lab.inspection.ir` shows.
    """
    fn: object
    grid: str
    writes: str
    sem: str
    args: tuple[str, ...]
    block: Callable[[int, int], int]
    constexprs: Callable[[int, int, int], dict]
    num_warps: Callable[[int], int] = default_warps
    programs_per_sm: int = 0
    check: Callable[[int, str], None] | None = None
    check_topk: Callable[[int], None] | None = None
    ir_slots: int = 4096

    def __post_init__(self):
        if self.grid not in GRIDS:
            raise ValueError(f"grid must be one of {GRIDS}, got {self.grid!r}")
        if self.writes not in WRITES:
            raise ValueError(f"writes must be one of {WRITES}, got {self.writes!r}")
        unknown = [a for a in self.args if a not in ARGUMENTS]
        if unknown:
            raise ValueError(f"unknown kernel argument name(s) {unknown}; choose from {ARGUMENTS}")
        if self.grid == PERSISTENT and self.programs_per_sm < 1:
            raise ValueError("a persistent grid needs programs_per_sm >= 1")

    @property
    def persistent(self) -> bool:
        """Programs loop over tiles (a persistent or single-program grid)."""
        return self.grid in (PERSISTENT, SINGLE)

    def arguments(self, **values) -> list:
        """The runtime arguments in the kernel's order, from ``ids=..., counts=..., start=...``."""
        return [values[name] for name in self.args]


__all__ = ["Kernel", "PER_SLOT", "PER_BIN", "STORES", "PER_BIN_TICKET", "WRITES", "TILES", "TOKENS",
           "PERSISTENT", "SINGLE", "GRIDS", "ARGUMENTS", "default_warps"]
