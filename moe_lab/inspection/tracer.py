"""Run a stage's real ``@triton.jit`` kernel in Triton's interpreter and record what each program writes.

:func:`trace` launches the kernel the way :func:`moe_lab.inspection.launches.launch_config` says the library
does (its ``KERNEL`` description gives the arguments and constexprs), on CPU copies of the inputs, and
:func:`record_counter_writes` watches every atomic lane and every store that lands in the counters,
per program, through builder hooks (:mod:`moe_lab.inspection.hooks`).
``tests/inspection/test_atomics.py`` checks the traffic model of :mod:`moe_lab.inspection.atomics`
against these traces for every stage.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
import triton

from moe_lab import interp
from moe_lab.checks import check_args
from moe_lab.inspection import hooks
from moe_lab.inspection.launches import COUNTERS_PER_LINE, launch_config, per_line


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
        return per_line(self.atomics, triton.cdiv(self.atomics.shape[1], COUNTERS_PER_LINE))


_SEM_NAMES = {"ACQUIRE_RELEASE": "acq_rel", "RELAXED": "relaxed", "ACQUIRE": "acquire",
              "RELEASE": "release"}


@contextlib.contextmanager
def record_counter_writes(counts: torch.Tensor, num_programs: int, scratch: torch.Tensor | None = None,
                          ticket_index: int | None = None, ticket_words: int = 1):
    """Record, per program id, every atomic lane and store that lands in ``counts``.

    With ``scratch`` (``one_launch``'s accumulator), atomics on its first ``len(counts)`` entries
    count as atomics on those counters and atomics on ``scratch[ticket_index]`` (and the
    ``ticket_words - 1`` words after it: ``handoff``'s state) as ticket atomics.
    Hooks the interpreter's builder, so it sees kernels running in Triton's interpreter only (the
    library's kernels on a CPU machine, or :func:`trace` anywhere). Stores elsewhere (the adjusted
    ids) are ignored; an atomic anywhere else raises, since no stage issues one. Yields a
    :class:`KernelTrace` that fills in as kernels run.
    """
    builder = hooks.builder()
    size = counts.numel()
    shape = (num_programs, size)
    rec = KernelTrace(*(np.zeros(shape, np.int64) for _ in range(4)), np.zeros(num_programs, np.int64),
                      set())
    regions = [(counts.data_ptr(), size, counts.element_size(), "count")]
    if scratch is not None:
        regions.append((scratch.data_ptr(), size, scratch.element_size(), "accumulator"))
        if ticket_index is not None:
            regions.append((scratch.data_ptr() + ticket_index * scratch.element_size(), ticket_words,
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
        call = hooks.BuilderCall("create_atomic_rmw", args, kwargs)
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
        call = hooks.BuilderCall("create_masked_store", args, kwargs)
        hits = [(i, v) for kind, i, v in lanes(call["ptr"], call["mask"], call["value"]) if kind == "count"]
        if hits:
            p = pid()
            for index, v in hits:
                rec.stores[p, index] += 1
                rec.stored[p, index] += v
        return call.forward(orig_store)

    with hooks.hooked(create_atomic_rmw=rmw, create_masked_store=store):
        yield rec


def trace(stage: str, topk_ids: torch.Tensor, start: int, num_local: int, *, block: int | None = None,
          num_programs: int | None = None, device=None) -> KernelTrace:
    """Run ``stage``'s own ``@triton.jit`` kernel in Triton's interpreter with the launch of
    :func:`moe_lab.inspection.launches.launch_config`, on CPU copies of the inputs, and record its writes to
    the counters.

    Works on a CPU machine and on a GPU machine alike (the interpreter always runs on the CPU).
    """
    from moe_lab.registry import stage as stage_entry
    from moe_lab.stages.one_launch import SCRATCH_SIZE, TICKET

    start, num_local = check_args(topk_ids, start, num_local, stage=stage, needs_triton=False)
    num_tokens, topk = topk_ids.shape
    launch = launch_config(stage, num_tokens, topk, num_local, block=block,
                           num_programs=num_programs, device=device)
    spec = stage_entry(launch.kernel).kernel
    plan = spec.plan(num_tokens, topk, num_local, device, block=launch.block,
                     num_programs=launch.num_programs)  # the launch rule the library's own launches follow
    ids = topk_ids.detach().to("cpu").contiguous()
    adjusted = torch.empty_like(ids)
    counts = torch.zeros(num_local, dtype=torch.int32)
    scratch = torch.zeros(SCRATCH_SIZE, dtype=torch.int32)  # accumulators, the ticket, handoff's state
    with record_counter_writes(counts, launch.num_programs, scratch, TICKET, SCRATCH_SIZE - TICKET) as rec:
        if launch.num_programs:  # nothing is launched for empty input
            args = spec.arguments(ids=ids, adjusted=adjusted, counts=counts, scratch=scratch,
                                  num_tokens=num_tokens, topk=topk, num_total=ids.numel(), start=start,
                                  num_local=num_local)
            interp.interpreted(spec.fn)[(plan.grid,)](*args, **plan.constexprs)
    if scratch[:TICKET + 1].any():  # accumulators and ticket are zero between calls (handoff's state is not)
        raise AssertionError(f"{stage} left its scratch accumulator dirty: {scratch.nonzero().tolist()}")
    rec.counts, rec.adjusted = counts, adjusted
    return rec


__all__ = ["KernelTrace", "record_counter_writes", "trace"]
