"""The address check: every memory operation of a learner's kernel, compared with the buffers it was given.

While a kernel runs in Triton's interpreter, each load, store, atomic (add, xchg, cas and the rest) and
histogram goes through a hook (:func:`moe_lab.inspection.hooks.hooked`). The hook records what went out of
bounds and drops lanes that point nowhere near any buffer, so a wild address is reported instead of
crashing Python. It also records how the counters were touched (a load of a counter, an atomic that is
not an add, the memory order and scope of each atomic, which program stored them, zero adds, a counter
hit twice by one program), which the diagnosis turns into "use an atomic" or "keep the ticket acq_rel".

Two things a GPU does that the interpreter, running one program after another, does not:

* **any order.** Programs run in a chosen order (``order=``), so a kernel that assumes the highest (or
  the lowest) program id runs last is caught;
* **updates in between.** With ``interfere=n``, each of the first ``n`` compare-and-swaps a program
  makes on a counter finds that counter one higher than the program last saw it (as if another
  program's add had landed in between); the launch takes those adds back afterwards
  (:attr:`AddressCheck.phantom`). A retry loop still counts right; a single swap of a value read
  earlier loses its update, as it would on a GPU, and so does a loop that gives up after fewer than
  ``n`` more tries than it needs without contention (``n`` varies from case to case,
  :func:`moe_lab.workbook.exercises.cases.contention`; no fixed cap is safe on a GPU).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np
import torch

from moe_lab.inspection import hooks
from moe_lab.workbook.exercises import isolate

GUARD = 1024
"""Elements of guard zone before and after every buffer handed to a learner's kernel."""


@dataclass
class Buffer:
    name: str
    tensor: torch.Tensor  # the view handed to the kernel
    writable: bool

    def __post_init__(self):
        self.base = self.tensor.data_ptr()
        self.esize = self.tensor.element_size()
        self.n = self.tensor.numel()

    def index(self, addrs: np.ndarray) -> np.ndarray:
        return (addrs.astype(np.int64) - self.base) // self.esize

    def valid(self, addrs):
        i = self.index(addrs)
        return (i >= 0) & (i < self.n)

    def guarded(self, addrs):
        i = self.index(addrs)
        return (i >= -GUARD) & (i < self.n + GUARD)


@dataclass
class Event:
    kind: str  # "load", "store", "atomic", "histogram"
    buffer: str
    seen: dict = field(default_factory=dict)  # element index (or histogram value) -> value written
    wild: bool = False

    @property
    def indices(self) -> list[int]:
        return sorted(self.seen)


def _name(enum_value) -> str:
    """``MEM_SEMANTIC.RELAXED`` / ``ATOMIC_OP.XCHG`` / ``MEM_SYNC_SCOPE.CTA`` -> ``relaxed`` / ``xchg`` /
    ``cta``, whatever the release (``None``, a release without scopes: ``gpu``, Triton's default)."""
    if enum_value is None:
        return "gpu"
    text = (getattr(enum_value, "name", None) or str(enum_value)).split(".")[-1].lower()
    return {"acquire_release": "acq_rel", "acquire": "acquire", "release": "release"}.get(text, text)


@dataclass
class Usage:
    """How the kernel touched the counters and the scratch (in-bounds accesses only)."""

    counts_loaded: bool = False
    counts_stored_by: set = field(default_factory=set)  # program ids that stored into expert_count
    counts_swapped_by: set = field(default_factory=set)  # program ids that atomic_xchg'd into it
    counts_atomic_ops: set = field(default_factory=set)  # "add", "xchg", "cas", ...
    counts_add_sems: set = field(default_factory=set)
    counts_sems: set = field(default_factory=set)  # every atomic on expert_count: its memory order
    scopes: set = field(default_factory=set)  # every atomic on expert_count or the scratch: its scope
    counts_zero_adds: bool = False  # an add of 0 to a counter (a lane the mask should have switched off)
    counts_hit_twice: bool = False  # one program added to one counter more than once
    scratch_loaded: bool = False
    ticket_sems: set = field(default_factory=set)
    ticket_order: list = field(default_factory=list)  # (program, what went wrong) in a program's order
    last_program: int | None = None  # the program that ran last


class AddressCheck:
    """Watches the interpreter's memory operations for one launch; records what went out of bounds."""

    def __init__(self, buffers: list[Buffer], order: list[int] | None = None, *, interfere: int = 0):
        self.buffers = buffers
        self.by_name = {b.name: b for b in buffers}
        self.events: list[Event] = []
        self.usage = Usage()
        self.order = order
        self.interfere = interfere
        self.phantom: dict[int, int] = {}  # counter index -> adds made "by another program"
        self._bumped: dict = {}  # (program, counter) -> adds already made "by another program"
        self._added: set = set()  # counters this program has added to
        self._steps = _Steps()  # this program's adds into the scratch, barriers and ticket, in order
        self._sink = torch.zeros(64, dtype=torch.int64)  # where a dropped cas lane points instead

    def _record(self, kind, name, idx, vals=(), wild=False):
        for ev in self.events:
            if ev.kind == kind and ev.buffer == name:
                break
        else:
            ev = Event(kind, name)
            self.events.append(ev)
        vals = list(vals)
        for j, i in enumerate(np.asarray(idx).reshape(-1).tolist()):
            if len(ev.seen) < 4096 and i not in ev.seen:
                ev.seen[i] = vals[j] if j < len(vals) else None
        ev.wild = ev.wild or wild

    def _filter(self, kind, addrs, mask, vals=None, *, writes):
        """Check every active lane; return the mask with wild lanes (outside every guard zone) off."""
        addrs = np.asarray(addrs)
        active = np.broadcast_to(np.asarray(mask, dtype=bool), addrs.shape).copy()
        if vals is not None:
            vals = np.broadcast_to(np.asarray(vals), addrs.shape)
        unclaimed = active.copy()
        for buf in self.buffers:
            inside = unclaimed & buf.valid(addrs)
            if writes and not buf.writable and inside.any():
                self._record("store", buf.name, buf.index(addrs[inside]))
            unclaimed &= ~inside
        if not unclaimed.any():
            return active
        for buf in self.buffers:
            near = unclaimed & buf.guarded(addrs)
            if near.any():
                self._record(kind, buf.name, buf.index(addrs[near]),
                             vals[near].tolist() if vals is not None else ())
                unclaimed &= ~near
        if unclaimed.any():  # nowhere near any buffer: record against the nearest one, drop the lanes
            # a wild write is blamed on the nearest output: where the allocator put the input is luck,
            # and a write meant for topk_ids lands in or next to it (caught above)
            candidates = [buf for buf in self.buffers if buf.writable or not writes]
            distance = np.stack([np.abs(np.clip(buf.index(addrs), -1, buf.n) - buf.index(addrs))
                                 for buf in candidates])
            nearest = distance.argmin(axis=0)
            for k, buf in enumerate(candidates):
                lanes = unclaimed & (nearest == k)
                if lanes.any():
                    self._record(kind, buf.name, buf.index(addrs[lanes]),
                                 vals[lanes].tolist() if vals is not None else (), wild=True)
            active &= ~unclaimed
        return active

    def _hits(self, name, addrs, keep):
        buf = self.by_name.get(name)
        if buf is None:
            return np.zeros(np.shape(addrs), dtype=bool)
        return keep & buf.valid(np.asarray(addrs))

    def _note_atomic(self, op: str, addrs, keep, sem, scope, values=None) -> None:
        hits = self._hits("expert_count", addrs, keep)
        if hits.any():
            u = self.usage
            u.counts_atomic_ops.add(op)
            u.counts_sems.add(_name(sem))
            if op == "xchg":  # a final write (decode, ticket) or a lost update (the rest): launch.py tells
                u.counts_swapped_by.add(int(hooks.builder().grid_idx[0]))
            else:
                u.scopes.add(_name(scope))
            if op == "add":
                u.counts_add_sems.add(_name(sem))
                added = np.broadcast_to(np.asarray(values), hits.shape)[hits] if values is not None else None
                if added is not None and bool((added == 0).any()):
                    u.counts_zero_adds = True
                idx = self.by_name["expert_count"].index(np.asarray(addrs)[hits]).tolist()
                if len(set(idx)) < len(idx) or self._added.intersection(idx):
                    u.counts_hit_twice = True
                self._added.update(idx)
        scratch = self.by_name.get("scratch")
        if scratch is not None:
            on_scratch = keep & scratch.valid(np.asarray(addrs))
            if on_scratch.any():
                self.usage.scopes.add(_name(scope))
            ticket = keep & (scratch.index(np.asarray(addrs)) == scratch.n - 1)
            adds = on_scratch & ~ticket
            if values is not None:  # adding 0 changes nothing: a read of the totals, not an add
                adds = adds & (np.broadcast_to(np.asarray(values), adds.shape) != 0)
            if op == "add" and adds.any():
                self._steps.add(self.usage, hooks.builder().grid_idx[0])
            if ticket.any() and op == "add":
                self.usage.ticket_sems.add(_name(sem))
                self._steps.ticket(self.usage, hooks.builder().grid_idx[0])

    def _interfere(self, addrs, keep) -> None:
        """Another program's add lands on each counter this program is about to swap, on each of its first
        :attr:`interfere` swaps of that counter."""
        hits = self._hits("expert_count", addrs, keep)
        if not (self.interfere and hits.any()):
            return
        buf = self.by_name["expert_count"]
        program = hooks.builder().grid_idx[0]
        for i in sorted(set(buf.index(np.asarray(addrs)[hits]).tolist())):
            if self._bumped.get((program, i), 0) < self.interfere:
                self._bumped[(program, i)] = self._bumped.get((program, i), 0) + 1
                buf.tensor.view(-1)[i] += 1
                self.phantom[i] = self.phantom.get(i, 0) + 1

    @contextlib.contextmanager
    def installed(self):
        b = hooks.builder()
        Handle = hooks.handle

        def load(*args, **kwargs):
            call = hooks.BuilderCall("create_masked_load", args, kwargs)
            mask = call["mask"]
            keep = self._filter("load", call["ptr"].data, mask.data, writes=False)
            if self._hits("expert_count", call["ptr"].data, keep).any():
                self.usage.counts_loaded = True
            if self._hits("scratch", call["ptr"].data, keep).any():
                self.usage.scratch_loaded = True
            call["mask"] = Handle(keep, mask.dtype)
            return call.forward(hooks.original("create_masked_load"))

        def store(*args, **kwargs):
            call = hooks.BuilderCall("create_masked_store", args, kwargs)
            ptrs, mask = call["ptr"], call["mask"]
            keep = self._filter("store", ptrs.data, mask.data, call["value"].data, writes=True)
            if self._hits("expert_count", ptrs.data, keep).any():
                self.usage.counts_stored_by.add(int(b.grid_idx[0]))
            call["mask"] = Handle(keep, mask.dtype)
            return call.forward(hooks.original("create_masked_store"))

        def atomic(*args, **kwargs):
            call = hooks.BuilderCall("create_atomic_rmw", args, kwargs)
            mask = call["mask"]
            keep = self._filter("atomic", call["ptr"].data, mask.data, call["value"].data, writes=True)
            self._note_atomic(_name(call["op"]), call["ptr"].data, keep, call["sem"], call["scope"],
                              call["value"].data)
            call["mask"] = Handle(keep, mask.dtype)
            return call.forward(hooks.original("create_atomic_rmw"))

        def cas(*args, **kwargs):
            call = hooks.BuilderCall("create_atomic_cas", args, kwargs)
            ptr = call["ptr"]
            addrs = np.asarray(ptr.data)
            keep = self._filter("atomic", addrs, np.ones(addrs.shape, dtype=bool), call["value"].data,
                                writes=True)
            self._note_atomic("cas", addrs, keep, call["sem"], call["scope"])
            self._interfere(addrs, keep)
            if not keep.all():  # cas has no mask: point the dropped lanes at a harmless sink instead
                safe = np.where(keep, addrs, np.uint64(self._sink.data_ptr())).astype(addrs.dtype)
                call["ptr"] = Handle(safe, ptr.dtype)
            return call.forward(hooks.original("create_atomic_cas"))

        def histogram(*args, **kwargs):
            call = hooks.BuilderCall("create_histogram", args, kwargs)
            data, bins, mask = call["data"], call["bins"], call["mask"]
            values = np.asarray(data.data).astype(np.int64)
            on = (np.ones(values.shape, dtype=bool) if mask is None
                  else np.broadcast_to(np.asarray(mask.data, dtype=bool), values.shape))
            outside = on & ((values < 0) | (values >= bins))
            if outside.any():  # "unmasked": no mask= at all; "masked": wrong values under the mask
                self._record("histogram", "unmasked" if mask is None else "masked",
                             sorted(set(values[outside].tolist()))[:8])
            # out-of-range values land where Triton's AMD backend (and older NVIDIA builds) put
            # them: the low bits pick the bin, so -1 goes to the last one
            picked = values[on]
            picked = np.where((picked >= 0) & (picked < bins), picked, picked & (bins - 1))
            hist = np.bincount(picked, minlength=bins)[:bins].astype(np.int32)
            return Handle(hist)

        def refused(method):
            def hook(*args, **kwargs):
                self._record("unsupported", method, [0])
                raise UnsupportedMemory(method)
            return hook

        def barrier(*args, **kwargs):
            self._steps.barrier = True  # tl.debug_barrier(): this program's threads meet here
            return hooks.original("create_barrier")(*args, **kwargs)

        def set_grid_idx(x, y, z):
            if self.order is not None:
                x = self.order[x]  # run the programs in the chosen order
            self.usage.last_program = x
            self._added = set()
            self._steps = _Steps()
            isolate.beat()  # a new program started: the parent's time budget starts again
            return type(b).set_grid_idx(b, x, y, z)

        watchers = dict(create_masked_load=load, create_masked_store=store, create_atomic_rmw=atomic,
                        create_atomic_cas=cas, create_histogram=histogram, set_grid_idx=set_grid_idx,
                        create_barrier=barrier)
        for method in ("create_descriptor_load", "create_descriptor_store", "create_descriptor_gather",
                       "create_descriptor_scatter", "create_make_block_ptr", "create_tensor_pointer_load",
                       "create_tensor_pointer_store", "create_make_tensor_descriptor"):
            if hasattr(type(b), method):
                watchers[method] = refused(method)
        with hooks.hooked(**watchers):
            yield self


class _Steps:
    """One program's way to its ticket, as the interpreter runs it: on a GPU the threads of a program
    add their parts of the histogram independently, so the ticket (which says "my adds are in") must
    come after every add and after a ``tl.debug_barrier()`` that waits for all of them."""

    def __init__(self):
        self.barrier = True  # no add yet: nothing to wait for
        self.taken = False

    def add(self, usage: Usage, program: int) -> None:
        if self.taken and len(usage.ticket_order) < 4:
            usage.ticket_order.append((program, "added into the scratch after taking its ticket"))
        self.barrier = False

    def ticket(self, usage: Usage, program: int) -> None:
        if not self.taken and not self.barrier and len(usage.ticket_order) < 4:
            usage.ticket_order.append((program, "took its ticket with no tl.debug_barrier() between its "
                                                "adds into the scratch and the ticket"))
        self.taken = True


class UnsupportedMemory(Exception):
    """The kernel used a memory operation the address check cannot follow."""

    def __init__(self, method: str):
        super().__init__(f"{method} is not supported by the checker")
        self.method = method


__all__ = ["GUARD", "Buffer", "Event", "Usage", "AddressCheck", "UnsupportedMemory"]
