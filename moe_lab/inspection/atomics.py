"""Which program adds to which counter: a model of the atomics every stage issues.

The counters are ``num_local`` int32 values next to each other in memory: 32 of them share one
128-byte L2 line, and atomics to one line are served one after another. So *how many* atomics a
stage sends to each counter (and to each line), from how many programs, decides its speed at scale.

:func:`atomic_traffic` computes that from the inputs alone, on any machine, for every stage with a
kernel, from what the kernel's ``KERNEL`` description says it writes:

* per-slot atomics (``row_loop``, ``naive``, ``tl_full``, ``scalar_atomic``, ``relaxed``): one atomic
  per *local* slot, adding 1, from the program whose tile holds the slot;
* per-bin atomics (``block_histogram``): each program sums its tiles in registers, then issues one
  atomic per *non-zero* bin, adding that bin's count. Its grid is persistent: ``num_programs``
  programs, program ``p`` taking tiles ``p, p + num_programs, ...``;
* stores (``decode``): one program, no atomics; it *stores* every counter once;
* per-bin atomics to scratch and a ticket (``one_launch``): like ``block_histogram``, but the
  per-bin atomics go to a scratch accumulator; each program then takes a ticket (one ``acq_rel``
  atomic on a counter in its own line), and the last program swaps every accumulator back to zero
  (one atomic exchange per expert), stores ``expert_count`` and resets the ticket. Which program is
  last depends on timing on a GPU; the model (like the interpreter, which runs programs in order)
  takes program ``num_programs - 1``;
* per-bin atomics after a flag (``handoff``): like ``block_histogram``, into the counts themselves,
  which the first program to arrive zeroes (one store per counter) before it raises a flag; each
  program takes an arrival number and reads the flag (two atomics on the state words, counted as
  ``ticket``), the first raises the flag and the last moves the state to the next generation (one
  more each). The model, like the interpreter, takes program 0 as the first and ``num_programs - 1``
  as the last to arrive;
* a dispatching stage (``best``): whichever kernel its ``choose`` picks for the shape.

:func:`launch_config` (from :mod:`moe_lab.inspection.launches`) gives the grid and block the library uses, and
:func:`trace` (from :mod:`moe_lab.inspection.tracer`) runs the stage's real kernel in Triton's interpreter and
records every atomic lane and every store to the counters, per program, so the model can be checked
against the kernel itself (``tests/inspection/test_atomics.py`` does, for every stage).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import triton

from moe_lab.checks import check_args
from moe_lab.inspection.launches import (
    COUNTER_BYTES,
    COUNTERS_PER_LINE,
    H100_SMS,
    LINE_BYTES,
    PER_BIN,
    PER_BIN_FLAG,
    PER_BIN_TICKET,
    PER_SLOT,
    STORES,
    Launch,
    launch_config,
    library_programs,
    modelled_stages,
    per_line,
    persistent_stages,
    writing_stages,
)
from moe_lab.inspection.tracer import KernelTrace, record_counter_writes, trace

# slot states in AtomicTraffic.slot_state
LOCAL, REMOTE, PADDING, MASKED = 0, 1, 2, 3
STATE_NAMES = ("local", "remote", "padding (-1)", "masked (past the end)")


def __getattr__(name: str):
    """Stage lists read from the registry when asked, so a stage registered later is in them."""
    lists = {"MODELLED_STAGES": modelled_stages, "HISTOGRAM_STAGES": persistent_stages,
             "PER_SLOT_STAGES": lambda: writing_stages(PER_SLOT),
             "STORE_STAGES": lambda: writing_stages(STORES)}
    if name in lists:
        return lists[name]()
    raise AttributeError(f"module 'moe_lab.inspection.atomics' has no attribute {name!r}")


@dataclass
class AtomicTraffic:
    """What every program of one launch writes to the counters.

    ``atomics[p, e]``: atomic operations program ``p`` sends to counter ``e`` (for ``one_launch``
    the counters are the scratch accumulators, and the exchanges of the last program count too);
    ``values[p, e]``: what its atomics add there; ``stores[p, e]`` / ``stored[p, e]``: plain stores to
    ``expert_count`` and the values stored; ``ticket[p]``: atomics on ``one_launch``'s ticket or on
    ``handoff``'s state words, in a line of their own. ``counts`` is the kernel's final
    ``expert_count``. ``slot_state`` has one entry per lane of every tile (``LOCAL``, ``REMOTE``,
    ``PADDING``, ``MASKED``), ``tile_program`` the program that handles each tile.
    """
    launch: Launch
    num_tokens: int
    topk: int
    start: int
    num_local: int
    atomics: np.ndarray
    values: np.ndarray
    stores: np.ndarray
    stored: np.ndarray
    ticket: np.ndarray
    slot_state: np.ndarray = field(repr=False)
    tile_program: np.ndarray = field(repr=False)

    @property
    def num_total(self) -> int:
        return self.num_tokens * self.topk

    @property
    def num_lines(self) -> int:
        return triton.cdiv(self.num_local, COUNTERS_PER_LINE)

    @property
    def line_atomics(self) -> np.ndarray:
        """``[num_programs, num_lines]``: atomics per program per 128-byte line of counters."""
        return per_line(self.atomics, self.num_lines)

    @property
    def counts(self) -> np.ndarray:
        """The final ``expert_count`` this launch produces."""
        if self.launch.writes in (STORES, PER_BIN_TICKET):
            return self.stored.sum(axis=0)
        return self.values.sum(axis=0)

    @property
    def total_atomics(self) -> int:
        """Every atomic of the launch: on the counters (or accumulators) and on the ticket."""
        return int(self.atomics.sum() + self.ticket.sum())

    def programs(self) -> pd.DataFrame:
        """One row per program: tiles and slots it covers, masked lanes, atomics, counters and lines hit."""
        block, grid = self.launch.block, self.launch.num_programs
        states = self.slot_state.reshape(self.launch.num_tiles, block) if self.launch.num_tiles \
            else np.zeros((0, block), dtype=np.int8)
        rows = []
        for p in range(grid):
            tiles = np.flatnonzero(self.tile_program == p)
            lanes = states[tiles]
            line_atomics = self.line_atomics[p]
            rows.append({
                "program": p,
                "tiles": len(tiles),
                "first_slot": int(tiles[0] * block) if len(tiles) else -1,
                "end_slot": int(min((tiles[-1] + 1) * block, self.num_total)) if len(tiles) else -1,
                "local": int((lanes == LOCAL).sum()),
                "remote": int((lanes == REMOTE).sum()),
                "padding": int((lanes == PADDING).sum()),
                "masked": int((lanes == MASKED).sum()),
                "atomics": int(self.atomics[p].sum()),
                "ticket_atomics": int(self.ticket[p]),
                "stores": int(self.stores[p].sum()),
                "counters_hit": int((self.atomics[p] > 0).sum()),
                "lines_hit": int((line_atomics > 0).sum()),
                "max_line_atomics": int(line_atomics.max()) if line_atomics.size else 0,
            })
        return pd.DataFrame(rows)

    def summary(self) -> str:
        line_totals = self.line_atomics.sum(axis=0)
        busiest = int(line_totals.max()) if line_totals.size else 0
        ticket = f" (+{int(self.ticket.sum())} on the ticket)" if self.ticket.any() else ""
        return (f"{self.launch.describe()}. {self.num_total} slots, {int(self.counts.sum())} local; "
                f"{int(self.atomics.sum())} atomics over {self.num_lines} counter line(s){ticket}, the "
                f"busiest line takes {busiest}; {int(self.stores.sum())} stores")


def atomic_traffic(stage: str, topk_ids: torch.Tensor, start: int, num_local: int, *,
                   block: int | None = None, num_programs: int | None = None,
                   device=None) -> AtomicTraffic:
    """Model the counter traffic of ``stage`` on these inputs, per program, without running it.

    Works on any tensor (CPU or GPU, int32 or int64 ids). ``block`` and ``num_programs`` as in
    :func:`launch_config`; ``device`` picks the SM count of the library's default persistent grid
    (default: where the kernels run now).
    """
    start, num_local = check_args(topk_ids, start, num_local, stage=stage, needs_triton=False)
    num_tokens, topk = topk_ids.shape
    launch = launch_config(stage, num_tokens, topk, num_local, block=block,
                           num_programs=num_programs, device=device)
    ids = topk_ids.detach().reshape(-1).to("cpu", torch.int64).numpy()
    num_total, block, tiles, grid = ids.size, launch.block, launch.num_tiles, launch.num_programs
    local = (ids >= start) & (ids < start + num_local)

    state = np.full(tiles * block, MASKED, dtype=np.int8)
    state[:num_total] = np.where(local, LOCAL, np.where(ids == -1, PADDING, REMOTE))
    tile_program = np.arange(tiles) % max(grid, 1) if launch.persistent else np.arange(tiles)

    slot_program = tile_program[np.arange(num_total) // block] if num_total else np.zeros(0, int)
    key = slot_program[local] * num_local + (ids[local] - start)
    per_program = np.bincount(key, minlength=grid * num_local).reshape(grid, num_local)

    zeros = np.zeros((grid, num_local), dtype=np.int64)
    atomics, values, stores, stored = zeros, zeros, zeros, zeros
    ticket = np.zeros(grid, dtype=np.int64)
    if launch.writes == PER_SLOT:
        atomics, values = per_program, per_program
    elif launch.writes == PER_BIN:
        atomics, values = (per_program > 0).astype(np.int64), per_program
    elif launch.writes == STORES:  # decode: the one program stores every counter, zeros included
        stores, stored = np.ones((grid, num_local), dtype=np.int64), per_program
    elif launch.writes == PER_BIN_FLAG and grid:  # handoff
        atomics, values = (per_program > 0).astype(np.int64), per_program
        ticket = np.full(grid, 2, dtype=np.int64)  # an arrival and a read of the flag each
        ticket[0] += 1                # the first to arrive raises the flag ...
        ticket[grid - 1] += 1         # ... the last moves the state to the next generation
        stores, stored = zeros.copy(), zeros.copy()
        stores[0] = 1                 # the first zeroes every counter before raising the flag
    elif grid:  # one_launch
        atomics, values = (per_program > 0).astype(np.int64), per_program
        ticket = np.ones(grid, dtype=np.int64)
        last = grid - 1
        atomics[last] += 1            # the last program swaps every accumulator back to zero
        ticket[last] += 1             # ... and resets the ticket
        stores, stored = zeros.copy(), zeros.copy()
        stores[last] = 1              # ... and stores expert_count, every counter
        stored[last] = per_program.sum(axis=0)
    return AtomicTraffic(launch, num_tokens, topk, start, num_local, atomics.astype(np.int64),
                         values.astype(np.int64), stores.astype(np.int64), stored.astype(np.int64),
                         ticket, state, tile_program)


# MODELLED_STAGES, HISTOGRAM_STAGES, PER_SLOT_STAGES, STORE_STAGES: see __getattr__ above
__all__ = ["PER_BIN_TICKET", "PER_BIN_FLAG", "COUNTERS_PER_LINE", "LINE_BYTES", "COUNTER_BYTES", "H100_SMS",
           "Launch", "AtomicTraffic",
           "KernelTrace", "launch_config", "library_programs", "atomic_traffic", "record_counter_writes",
           "trace", "LOCAL", "REMOTE", "PADDING", "MASKED", "STATE_NAMES"]
