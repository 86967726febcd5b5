"""Which program adds to which counter: a model of the atomics every stage issues, and a tracer.

The counters are ``num_local`` int32 values next to each other in memory: 32 of them share one
128-byte L2 line, and atomics to one line are served one after another. So *how many* atomics a
stage sends to each counter (and to each line), from how many programs, decides its speed at scale.

:func:`atomic_traffic` computes that from the inputs alone, on any machine, for every Triton stage:

* per-slot stages (``row_loop``, ``naive``, ``tl_full``, ``scalar_atomic``, ``relaxed``): one atomic
  per *local* slot, adding 1, from the program whose tile holds the slot;
* ``block_histogram``: each program sums its tiles in registers, then issues one atomic per
  *non-zero* bin, adding that bin's count. Its grid is persistent: ``num_programs`` programs, program
  ``p`` taking tiles ``p, p + num_programs, ...``;
* ``decode``: one program, no atomics; it *stores* every counter once;
* ``one_launch``: like ``block_histogram``, but the per-bin atomics go to a scratch accumulator;
  each program then takes a ticket (one ``acq_rel`` atomic on a counter in its own line), and the
  last program swaps every accumulator back to zero (one atomic exchange per expert), stores
  ``expert_count`` and resets the ticket. Which program is last depends on timing on a GPU; the
  model (like the interpreter, which runs programs in order) takes program ``num_programs - 1``;
* ``best``: whichever of those ``best.choose`` picks for the shape.

:func:`launch_config` gives the grid and block the library uses (or the ones you ask for), and
:func:`trace` runs the stage's real ``@triton.jit`` kernel in Triton's interpreter and records every
atomic lane and every store to the counters, per program, so the model can be checked against the
kernel itself (``tests/test_atomics.py`` does, for every stage).

Line numbers assume the counters start on a 128-byte boundary: PyTorch's CUDA allocator hands out
blocks aligned to 512 bytes, so counter ``e`` sits in line ``e // 32``.
"""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import triton

from . import interp
from .checks import check_args

COUNTER_BYTES = 4
LINE_BYTES = 128
COUNTERS_PER_LINE = LINE_BYTES // COUNTER_BYTES  # 32 int32 counters share one L2 line

PER_SLOT_STAGES = ("row_loop", "naive", "tl_full", "scalar_atomic", "relaxed")
HISTOGRAM_STAGES = ("block_histogram", "one_launch")  # persistent grids, one atomic per bin
STORE_STAGES = ("decode",)
MODELLED_STAGES = PER_SLOT_STAGES + ("block_histogram", "decode", "one_launch", "best")

H100_SMS = 132
"""Streaming multiprocessors of an H100 SXM: the library's persistent grid there is 4 x 132 programs."""

PER_BIN_TICKET = "per-bin atomics to scratch, a ticket each, stores by the last"

# slot states in AtomicTraffic.slot_state
LOCAL, REMOTE, PADDING, MASKED = 0, 1, 2, 3
STATE_NAMES = ("local", "remote", "padding (-1)", "masked (past the end)")


@dataclass(frozen=True)
class Launch:
    """How a stage's kernel is launched for one input: tiles, grid, and what kind of writes it does."""
    stage: str          # the stage asked for
    kernel: str         # the stage whose kernel runs (differs from ``stage`` for ``best``)
    block: int          # slots per tile (a program's vector width, or tokens * topk for row loops)
    num_tiles: int
    num_programs: int
    persistent: bool    # programs loop over tiles p, p + num_programs, ...
    writes: str         # "per-slot atomics", "per-bin atomics", "stores", or PER_BIN_TICKET
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


def _power_of_two(name: str, value: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1 \
            or value & (value - 1):
        raise ValueError(f"{name} must be a positive power of two (the kernel builds tl.arange(0, "
                         f"{name.upper()})), got {value!r}")
    return int(value)


def library_programs(kernel: str, num_tiles: int, device=None) -> int:
    """The persistent grid the library launches ``kernel`` (``block_histogram`` or ``one_launch``)
    with on ``device`` (default: where the kernels run now): ``PROGRAMS_PER_SM`` per SM, at most
    one per tile."""
    from . import backend
    from .stages import block_histogram, one_launch
    device = torch.device(device) if device is not None else backend.device()
    module = {"block_histogram": block_histogram, "one_launch": one_launch}[kernel]
    grid = min(num_tiles, module.PROGRAMS_PER_SM * block_histogram.sm_count(device))
    return max(1, grid) if kernel == "one_launch" else grid


def launch_config(stage: str, num_tokens: int, topk: int, num_local: int, *, block: int | None = None,
                  num_programs: int | None = None, device=None) -> Launch:
    """The launch of ``stage`` for ``[num_tokens, topk]`` ids, as the library does it.

    ``block``: slots per tile; ``None`` takes the stage's own rule (``tl_full.block_size(topk)``,
    ``block_histogram.BLOCK``, ``decode.tile_size``, ``one_launch.tile_size``,
    ``TOKENS_PER_PROGRAM * topk`` for the row loops).
    ``num_programs`` (``block_histogram``, ``one_launch``, or ``best`` when it picks one of them):
    ``None`` is the library's persistent grid on ``device`` (``min(tiles, PROGRAMS_PER_SM * SMs)``;
    one SM under the interpreter), ``0`` is one program per tile, ``n > 0`` a persistent grid of
    ``min(n, tiles)`` programs.
    """
    from .registry import STAGES
    from .stages import best, block_histogram, decode, naive, one_launch, row_loop, tl_full

    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; choose one of: {', '.join(MODELLED_STAGES)}")
    if stage not in MODELLED_STAGES:
        raise ValueError(f"stage {stage!r} has no model of its atomics ('torch' runs no Triton program); "
                         f"choose one of: {', '.join(MODELLED_STAGES)}")
    for name, value in (("num_tokens", num_tokens), ("topk", topk), ("num_local", num_local)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if num_tokens < 0 or topk < 1 or num_local < 1:
        raise ValueError(f"need num_tokens >= 0, topk >= 1 and num_local >= 1; got num_tokens="
                         f"{num_tokens}, topk={topk}, num_local={num_local}")
    num_total = num_tokens * topk
    kernel = best.choose(num_total, num_local) if stage == "best" else stage
    if kernel in ("decode", "one_launch") and num_total == 0:
        # the library launches nothing for empty input; it zeroes the counts on the host
        size = (decode if kernel == "decode" else one_launch).tile_size(num_total)
        block = size if block is None else _power_of_two("block", block)
        writes, sem = ("stores", "") if kernel == "decode" else (PER_BIN_TICKET, "relaxed")
        return Launch(stage, kernel, block, 0, 0, True, writes, sem)
    if num_programs is not None and kernel not in HISTOGRAM_STAGES:
        raise ValueError(f"num_programs={num_programs!r} only applies to the persistent "
                         f"block_histogram and one_launch kernels; {stage!r} launches "
                         f"{'one program' if kernel == 'decode' else 'one program per tile'} "
                         f"(pass num_programs=None)")
    if kernel in ("row_loop", "naive"):
        tokens_per_program = (row_loop if kernel == "row_loop" else naive).TOKENS_PER_PROGRAM
        if block is None:
            block = tokens_per_program * topk
        elif block < topk or block % topk:
            raise ValueError(f"block={block!r}: {kernel} gives each program whole tokens, so block "
                             f"must be a positive multiple of topk={topk}")
        if kernel == "row_loop" and topk & (topk - 1):
            raise row_loop.NonPowerOfTwoTopkError(
                f"row_loop cannot run topk={topk}: tl.arange(0, {topk}) needs a power of two")
        tiles = triton.cdiv(num_tokens, block // topk)
        return Launch(stage, kernel, int(block), tiles, tiles, False, "per-slot atomics", "acq_rel")
    if kernel in ("block_histogram", "decode", "one_launch"):
        block_histogram.check_bins(num_local, kernel)
    if kernel == "decode":
        block = decode.tile_size(num_total) if block is None else _power_of_two("block", block)
        return Launch(stage, kernel, block, triton.cdiv(num_total, block), 1, True, "stores", "")
    if kernel in HISTOGRAM_STAGES:
        default = block_histogram.BLOCK if kernel == "block_histogram" else one_launch.tile_size(num_total)
        block = default if block is None else _power_of_two("block", block)
        tiles = triton.cdiv(num_total, block)
        if num_programs is None:
            grid = library_programs(kernel, tiles, device)
        elif not isinstance(num_programs, (int, np.integer)) or isinstance(num_programs, bool) \
                or num_programs < 0:
            raise ValueError(f"num_programs must be None (the library's grid), 0 (one per tile) or "
                             f"a positive int, got {num_programs!r}")
        else:
            grid = tiles if num_programs == 0 else min(tiles, int(num_programs))
        if kernel == "one_launch":
            return Launch(stage, kernel, block, tiles, max(1, grid), True, PER_BIN_TICKET, "relaxed")
        return Launch(stage, kernel, block, tiles, grid, True, "per-bin atomics", "relaxed")
    block = tl_full.block_size(topk) if block is None else _power_of_two("block", block)
    tiles = triton.cdiv(num_total, block)
    sem = "relaxed" if kernel == "relaxed" else "acq_rel"
    return Launch(stage, kernel, block, tiles, tiles, False, "per-slot atomics", sem)


@dataclass
class AtomicTraffic:
    """What every program of one launch writes to the counters.

    ``atomics[p, e]``: atomic operations program ``p`` sends to counter ``e`` (for ``one_launch``
    the counters are the scratch accumulators, and the exchanges of the last program count too);
    ``values[p, e]``: what its atomics add there; ``stores[p, e]`` / ``stored[p, e]``: plain stores to
    ``expert_count`` and the values stored; ``ticket[p]``: atomics on ``one_launch``'s ticket, a
    counter in a line of its own. ``counts`` is the kernel's final ``expert_count``. ``slot_state``
    has one entry per lane of every tile (``LOCAL``, ``REMOTE``, ``PADDING``, ``MASKED``),
    ``tile_program`` the program that handles each tile.
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
        return _per_line(self.atomics, self.num_lines)

    @property
    def counts(self) -> np.ndarray:
        """The final ``expert_count`` this launch produces."""
        if self.launch.writes in ("stores", PER_BIN_TICKET):
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


def _per_line(per_counter: np.ndarray, num_lines: int) -> np.ndarray:
    programs, num_local = per_counter.shape
    padded = np.zeros((programs, num_lines * COUNTERS_PER_LINE), dtype=per_counter.dtype)
    padded[:, :num_local] = per_counter
    return padded.reshape(programs, num_lines, COUNTERS_PER_LINE).sum(axis=2)


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
    if launch.writes == "per-slot atomics":
        atomics, values = per_program, per_program
    elif launch.writes == "per-bin atomics":
        atomics, values = (per_program > 0).astype(np.int64), per_program
    elif launch.writes == "stores":  # decode: the one program stores every counter, zeros included
        stores, stored = np.ones((grid, num_local), dtype=np.int64), per_program
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


# ----------------------------------------------------------------------------------------------
# The tracer: run the real kernel in Triton's interpreter and record what each program writes.


@dataclass
class KernelTrace:
    """Writes to the counters recorded while real kernels ran in Triton's interpreter.

    Same meaning as the fields of :class:`AtomicTraffic`: ``atomics`` (atomic lanes per program and
    counter, or scratch accumulator), ``values`` (what atomic adds added), ``stores``/``stored``
    (stores to ``expert_count``), ``ticket`` (atomics on one_launch's ticket), and ``sems``, the
    memory orders seen on the atomics.
    """
    atomics: np.ndarray
    values: np.ndarray
    stores: np.ndarray
    stored: np.ndarray
    ticket: np.ndarray
    sems: set
    counts: torch.Tensor | None = None
    adjusted: torch.Tensor | None = None

    @property
    def line_atomics(self) -> np.ndarray:
        return _per_line(self.atomics, triton.cdiv(self.atomics.shape[1], COUNTERS_PER_LINE))


_SEM_NAMES = {"ACQUIRE_RELEASE": "acq_rel", "RELAXED": "relaxed", "ACQUIRE": "acquire",
              "RELEASE": "release"}


@contextlib.contextmanager
def record_counter_writes(counts: torch.Tensor, num_programs: int, scratch: torch.Tensor | None = None,
                          ticket_index: int | None = None):
    """Record, per program id, every atomic lane and store that lands in ``counts``.

    With ``scratch`` (``one_launch``'s accumulator), atomics on its first ``len(counts)`` entries
    count as atomics on those counters and atomics on ``scratch[ticket_index]`` as ticket atomics.
    Hooks the interpreter's builder, so it sees kernels running in Triton's interpreter only (the
    library's kernels on a CPU machine, or :func:`trace` anywhere). Stores elsewhere (the adjusted
    ids) are ignored; an atomic anywhere else raises, since no stage issues one. Yields a
    :class:`KernelTrace` that fills in as kernels run.
    """
    builder = interp.builder()
    size = counts.numel()
    shape = (num_programs, size)
    rec = KernelTrace(*(np.zeros(shape, np.int64) for _ in range(4)), np.zeros(num_programs, np.int64),
                      set())
    regions = [(counts.data_ptr(), size, counts.element_size(), "count")]
    if scratch is not None:
        regions.append((scratch.data_ptr(), size, scratch.element_size(), "accumulator"))
        if ticket_index is not None:
            regions.append((scratch.data_ptr() + ticket_index * scratch.element_size(), 1,
                            scratch.element_size(), "ticket"))
    orig_rmw, orig_store = builder.create_atomic_rmw, builder.create_masked_store
    add_ops = {k for k, v in builder.ir_rmw_op_to_interpreter_rmw_op.items()
               if str(v).rsplit(".", 1)[-1] == "ADD"}

    def lanes(ptr, mask, values):
        """Active lanes as (region kind or None, index in the region, value)."""
        addr = np.atleast_1d(ptr.data).astype(np.int64)
        on = np.broadcast_to(np.atleast_1d(mask.data), addr.shape).astype(bool)
        vals = np.broadcast_to(np.atleast_1d(values.data), addr.shape).astype(np.int64)
        out = []
        for a, v in zip(addr[on], vals[on]):
            for base, n, elem, kind in regions:
                if 0 <= a - base < n * elem:
                    out.append((kind, int((a - base) // elem), int(v)))
                    break
            else:
                out.append((None, -1, int(v)))
        return out

    def pid():
        p = builder.grid_idx[0]
        if p >= num_programs:
            raise ValueError(f"a program id {p} >= num_programs={num_programs} wrote to the counters")
        return p

    def rmw(*args, **kwargs):
        call = interp.BuilderCall("create_atomic_rmw", args, kwargs)
        hits = lanes(call["ptr"], call["mask"], call["value"])
        if any(kind is None for kind, _, _ in hits):
            raise AssertionError("an atomic landed outside the counters (and scratch)")
        if hits:
            p = pid()
            name = str(call["sem"]).rsplit(".", 1)[-1]
            rec.sems.add(_SEM_NAMES.get(name, name.lower()))
            for kind, index, value in hits:
                if kind == "ticket":
                    rec.ticket[p] += 1
                else:
                    rec.atomics[p, index] += 1
                    if call["op"] in add_ops:
                        rec.values[p, index] += value
        return call.forward(orig_rmw)

    def store(*args, **kwargs):
        call = interp.BuilderCall("create_masked_store", args, kwargs)
        hits = [(i, v) for kind, i, v in lanes(call["ptr"], call["mask"], call["value"]) if kind == "count"]
        if hits:
            p = pid()
            for index, v in hits:
                rec.stores[p, index] += 1
                rec.stored[p, index] += v
        return call.forward(orig_store)

    with interp.hooked(create_atomic_rmw=rmw, create_masked_store=store):
        yield rec


def trace(stage: str, topk_ids: torch.Tensor, start: int, num_local: int, *, block: int | None = None,
          num_programs: int | None = None, device=None) -> KernelTrace:
    """Run ``stage``'s own ``@triton.jit`` kernel in Triton's interpreter with the launch of
    :func:`launch_config`, on CPU copies of the inputs, and record its writes to the counters.

    Works on a CPU machine and on a GPU machine alike (the interpreter always runs on the CPU).
    """
    from .stages import block_histogram, naive, one_launch, relaxed, row_loop, scalar_atomic, tl_full

    start, num_local = check_args(topk_ids, start, num_local, stage=stage, needs_triton=False)
    num_tokens, topk = topk_ids.shape
    launch = launch_config(stage, num_tokens, topk, num_local, block=block,
                           num_programs=num_programs, device=device)
    ids = topk_ids.detach().to("cpu").contiguous()
    adjusted = torch.empty_like(ids)
    counts = torch.zeros(num_local, dtype=torch.int32)
    scratch = torch.zeros(block_histogram.MAX_BINS + 1, dtype=torch.int32)
    num_total = ids.numel()
    grid = (launch.num_programs,)
    bins = block_histogram.num_bins(num_local)
    with record_counter_writes(counts, launch.num_programs, scratch, block_histogram.MAX_BINS) as rec:
        if launch.num_programs == 0:
            pass  # nothing to launch (empty input)
        elif launch.kernel in ("tl_full", "scalar_atomic", "relaxed"):
            kernel = {"tl_full": tl_full.tl_full_kernel, "scalar_atomic": scalar_atomic.scalar_atomic_kernel,
                      "relaxed": relaxed.relaxed_kernel}[launch.kernel]
            interp.interpreted(kernel)[grid](ids, adjusted, counts, num_total, start, num_local,
                                       BLOCK=launch.block)
        elif launch.kernel == "row_loop":
            interp.interpreted(row_loop.row_loop_kernel)[grid](
                ids, adjusted, counts, num_tokens, start, num_local, TOPK=topk,
                TOKENS_PER_PROGRAM=launch.block // topk)
        elif launch.kernel == "naive":
            interp.interpreted(naive.naive_kernel)[grid](
                ids, adjusted, counts, num_tokens, topk, start, num_local,
                TOKENS_PER_PROGRAM=launch.block // topk)
        elif launch.kernel == "one_launch":
            interp.interpreted(one_launch.one_launch_kernel)[grid](
                ids, adjusted, counts, scratch, num_total, start, num_local, BLOCK=launch.block,
                NUM_BINS=bins, TICKET=block_histogram.MAX_BINS)
        else:  # block_histogram, decode: the same kernel, decode stores instead of adding
            interp.interpreted(block_histogram.block_histogram_kernel)[grid](
                ids, adjusted, counts, num_total, start, num_local, BLOCK=launch.block,
                NUM_BINS=bins, WRITE_COUNTS=launch.kernel == "decode")
    if scratch.any():
        raise AssertionError(f"{stage} left its scratch accumulator dirty: {scratch.nonzero().tolist()}")
    rec.counts, rec.adjusted = counts, adjusted
    return rec


__all__ = ["PER_BIN_TICKET", "COUNTERS_PER_LINE", "LINE_BYTES", "COUNTER_BYTES", "PER_SLOT_STAGES",
           "HISTOGRAM_STAGES",
           "STORE_STAGES", "MODELLED_STAGES", "H100_SMS", "Launch", "AtomicTraffic", "KernelTrace",
           "launch_config", "library_programs", "atomic_traffic", "record_counter_writes", "trace",
           "LOCAL", "REMOTE", "PADDING", "MASKED", "STATE_NAMES"]
