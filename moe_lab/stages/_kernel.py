"""A stage's Triton kernel and its launch rule, in one place: what the library runs and what it shows.

Each stage module with a kernel of its own defines ``KERNEL = Kernel(...)`` next to the kernel: its
launch rule (grid, block, warps, constexprs), the order of its runtime arguments, and what it writes
to the counters with which memory order. :meth:`Kernel.plan` turns that rule into one launch for one
input, and everything goes through it: :meth:`Kernel.launch` (what the stage's ``run`` and ``best``
call), the atomics model (:mod:`moe_lab.inspection.launches`), the interpreter tracer
(:mod:`moe_lab.inspection.tracer`) and the IR compiler (:mod:`moe_lab.inspection.ir`); none of them knows
any stage by name, so they cannot disagree about a launch. A stage that dispatches to others (``best``)
defines ``choose(num_total, num_local) -> stage name`` instead and launches that stage's ``KERNEL``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable

import torch

from moe_lab.stages import _launch

PER_SLOT = "per-slot atomics"
PER_BIN = "per-bin atomics"
STORES = "stores"
PER_BIN_TICKET = "per-bin atomics to scratch, a ticket each, stores by the last"
PER_BIN_FLAG = "per-bin atomics after the first program's zeroing, an arrival each"
WRITES = (PER_SLOT, PER_BIN, STORES, PER_BIN_TICKET, PER_BIN_FLAG)
ZEROED_COUNTS = (PER_SLOT, PER_BIN)
"""Kernels that add into the counts, which must therefore be zero before the launch (a memset)."""

TILES, TOKENS, PERSISTENT, SINGLE = "tiles", "tokens", "persistent", "single"
GRIDS = (TILES, TOKENS, PERSISTENT, SINGLE)

ARGUMENTS = ("ids", "adjusted", "counts", "scratch", "num_tokens", "topk", "num_total", "start", "num_local")


def default_warps(block: int) -> int:
    """Triton's own default: 4 warps whatever the block."""
    return 4


_SM_COUNT: dict[int, int] = {}


def sm_count(device=None) -> int:
    """Streaming multiprocessors of ``device`` (default: where kernels run now; cached; 1 on the CPU)."""
    if device is None:
        from moe_lab import backend

        device = backend.device()
    device = torch.device(device)
    if device.type != "cuda":
        return 1
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index not in _SM_COUNT:
        _SM_COUNT[index] = torch.cuda.get_device_properties(index).multi_processor_count
    return _SM_COUNT[index]


@dataclass(frozen=True)
class Plan:
    """One launch: ``grid`` programs over ``num_tiles`` tiles of ``block`` slots, with these warps and
    constexprs. ``grid`` is 0 for empty input: nothing is launched."""
    grid: int
    block: int
    num_tiles: int
    num_warps: int
    constexprs: dict = field(hash=False)


@dataclass(frozen=True)
class Kernel:
    """One stage's ``@triton.jit`` kernel and the rule the library launches it by.

    ``grid``: ``"tiles"`` (one program per tile of ``block`` slots), ``"tokens"`` (one program per
    ``block // topk`` whole tokens), ``"persistent"`` (at most ``programs_per_sm`` programs per SM,
    program ``p`` taking tiles ``p, p + programs, ...``) or ``"single"`` (one program for every tile).
    ``block(topk, num_total)``: the library's slots per tile. ``constexprs(block, topk, num_local)``:
    the launch's compile-time arguments. ``args``: the runtime arguments in order, named from
    :data:`ARGUMENTS`. ``writes``/``sem``: what the counting does (:data:`WRITES`) and the memory order
    of its atomics (``""`` when it stores). ``check(num_local, stage)``/``check_topk(topk)``: refusals
    run before a launch. ``scratch(device)``: the zeroed accumulator of a kernel that takes one.
    ``max_programs``: a cap on a persistent grid (0: none). ``ir_slots``: the input size whose compile
    :mod:`moe_lab.inspection.ir` shows.
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
    max_programs: int = 0
    check: Callable[[int, str], None] | None = None
    check_topk: Callable[[int], None] | None = None
    scratch: Callable[..., torch.Tensor] | None = None
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
        if ("scratch" in self.args) != (self.scratch is not None):
            raise ValueError("a kernel takes a 'scratch' argument exactly when it names a scratch= provider")

    @property
    def persistent(self) -> bool:
        """Programs loop over tiles (a persistent or single-program grid)."""
        return self.grid in (PERSISTENT, SINGLE)

    @functools.cached_property  # read on every call of best: looked up once
    def zero_counts(self) -> bool:
        """The counts must be zeroed before a launch (the kernel adds into them)."""
        return self.writes in ZEROED_COUNTS

    def arguments(self, **values) -> list:
        """The runtime arguments in the kernel's order, from ``ids=..., counts=..., start=...``."""
        return [values[name] for name in self.args]

    def plan(self, num_tokens: int, topk: int, num_local: int, device=None, *, block: int | None = None,
             num_warps: int | None = None, programs_per_sm: int | None = None,
             num_programs: int | None = None) -> Plan:
        """The launch for ``[num_tokens, topk]`` ids: the one rule every launch and every model follows.

        Overrides, for tuning and teaching: ``block`` (slots per tile), ``num_warps``, and for a
        persistent grid either ``programs_per_sm`` (``0``: one program per tile) or ``num_programs``
        (the grid itself, at most one per tile; ``0``: one per tile). ``device`` gives the SM count of a
        persistent grid (default: where kernels run now).
        """
        num_total = num_tokens * topk
        block = self.block(topk, num_total) if block is None else block
        per_program = block // topk if self.grid == TOKENS else block  # tokens or slots per tile
        tiles = -(-(num_tokens if self.grid == TOKENS else num_total) // per_program)
        if tiles == 0:
            grid = 0  # empty input: nothing to launch
        elif self.grid == SINGLE:
            grid = 1
        elif self.grid == PERSISTENT:
            if num_programs is None:
                per_sm = self.programs_per_sm if programs_per_sm is None else programs_per_sm
                num_programs = per_sm * sm_count(device) if per_sm > 0 else 0
            grid = tiles if num_programs == 0 else min(tiles, num_programs)
            if self.max_programs:
                grid = min(grid, self.max_programs)  # the programs loop over the remaining tiles
        else:
            grid = tiles
        warps = self.num_warps(block) if num_warps is None else num_warps
        return Plan(grid, block, tiles, warps, dict(self.constexprs(block, topk, num_local)))

    def launch(self, topk_ids, adjusted, counts, start: int, num_local: int, *, scratch=None, **overrides):
        """Launch on prepared buffers by :meth:`plan`'s rule (checked ints, outputs of the right shape).

        ``counts`` must be zero first when :attr:`zero_counts`; a kernel that stores the counts needs
        no memset. Empty input launches nothing (a storing kernel's counts are zeroed here).
        ``overrides``: ``block=``, ``num_warps=``, ``programs_per_sm=`` (see :meth:`plan`) and any
        constexpr of the kernel (``one_launch``'s ``ADD_SEM=``...). ``scratch``: the zeroed accumulator
        to use instead of the kernel's own.
        """
        _launch.launch(self, topk_ids, adjusted, counts, start, num_local, scratch, overrides)

    def run(self, topk_ids, start, num_local, *, stage: str, adjusted_out=None, expert_count_out=None):
        """Check the inputs, allocate the outputs and launch: a stage's whole ``run``."""
        start, num_local, adjusted, counts = _launch.prepare(topk_ids, start, num_local, stage=stage,
                                                             zero_counts=self.zero_counts, check=self.check,
                                                             adjusted_out=adjusted_out,
                                                             expert_count_out=expert_count_out)
        self.launch(topk_ids, adjusted, counts, start, num_local)
        return adjusted, counts


__all__ = ["Kernel", "Plan", "PER_SLOT", "PER_BIN", "STORES", "PER_BIN_TICKET", "PER_BIN_FLAG", "WRITES",
           "ZEROED_COUNTS",
           "TILES", "TOKENS", "PERSISTENT", "SINGLE", "GRIDS", "ARGUMENTS", "default_warps", "sm_count"]
