"""Exercise checkers for the notebooks: write a kernel in a cell, then ``check("<name>", kernel)``.

Each checker runs the learner's code on the adversarial inputs of :func:`moe_lab.verify.adversarial_cases`
with poisoned outputs (``adjusted`` filled with :data:`moe_lab.verify.POISON` before the launch, so a slot
the kernel never wrote shows up; ``expert_count`` zeroed, as the kernels accumulate into it), compares with
the PyTorch reference, prints one line per group of cases and, at the first failure, the case, its input,
the expected and the actual values and a hint aimed at the classic mistake. It returns True when every
case passes. It never raises for a learner's mistake: a compile error, a wrong signature or the student
stub (source still says ``YOUR CODE HERE``) is printed, and the result is False.

Where it runs:

* every kernel first runs in Triton's interpreter on CPU tensors, under an *address check*: each load,
  store and atomic is compared with the buffers the kernel was given, so a missing mask is reported even
  when the numbers happen to come out right, and a wild address is dropped instead of crashing Python.
  Every buffer has a guard zone around it (the input's is filled with a local expert id, the outputs'
  with the poison), so an access just past the end reads or writes something harmless and visible.
  ``tl.histogram`` is checked too: values outside ``[0, NUM_BINS)`` that are not masked are reported and
  counted where Triton's AMD backend and older NVIDIA builds put them (bin
  ``value & (NUM_BINS - 1)``: ``-1`` lands in the last bin); Triton leaves them unspecified;
* with a GPU (``moe_lab.backend.has_gpu()``), every case then also runs compiled on the GPU, with the same
  poison and guard zones; the printed lines are the same on both, so a notebook's stored output holds.

The cases run in groups (:data:`CASE_GROUPS`), the safest first, and the check stops at the first
failure. "empty input" is skipped (there is nothing to launch), and ``naive``, whose scalar loops are slow
in the interpreter, gets the first :data:`NAIVE_TOKENS` tokens of each case. The output has no timings and
no addresses: notebook cells that call ``check`` can be output-checked.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import inspect
import operator
import textwrap
from dataclasses import dataclass, field

import numpy as np
import torch
import triton

from . import backend, verify
from . import interp

MARKER = "YOUR CODE HERE"
"""Text that marks the student stub (the student edition puts it in place of every solution)."""

GUARD = 1024
"""Elements of guard zone before and after every buffer handed to a learner's kernel."""

# Groups of adversarial cases, in the order they run: the safest first, so a kernel with a wild index
# fails on small random ids before it meets INT32_MAX. Case names not listed here (added to
# moe_lab.verify later) run last, in a group of their own; "empty input" launches nothing and is skipped.
CASE_GROUPS: list[tuple[str, tuple[str, ...]]] = [
    ("random ids", ("random ids, topk=",)),
    ("padding and tails", ("start=0, tail block", "all padding (-1)", "one token", "block boundary +1")),
    ("expert ranges", ("only remote ids", "one local expert", "num_local not a power of two",
                       "256 local experts", "ids past the expert range")),
    ("contention and int64", ("every slot on one expert", "int64 ids past int32")),
]
SKIPPED_CASES = ("empty input",)
NAIVE_TOKENS = 13

_BLOCK_ARGS = "ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local, BLOCK: tl.constexpr"

# Symptom -> hint. The keys are what the diagnosis finds; EXERCISES lists which apply to each exercise.
HINTS: dict[str, tuple[str, str]] = {
    "signature": ("the launch could not bind the kernel's parameters",
                  "keep the parameters exactly as given in the exercise (names and order; constexpr "
                  "parameters are passed by name)"),
    "power_of_two": ("Triton refused a range that is not a power of two",
                     "tl.arange(0, N) and block shapes need N to be a power of two: round up with "
                     "triton.next_power_of_2 and let the mask switch off the extra lanes"),
    "compile_error": ("the kernel did not compile or raised while running",
                      "read Triton's message above, fix that line and run the kernel's cell again"),
    "load_out_of_bounds": ("the kernel read topk_ids outside its slots",
                           "mask the load: tl.load(ids_ptr + offs, mask=offs < num_total, other=-1)"),
    "store_out_of_bounds": ("the kernel wrote adjusted outside its slots",
                            "mask the store with the in-bounds mask: tl.store(..., mask=offs < num_total)"),
    "wrote_input": ("the kernel wrote into topk_ids", "topk_ids is the input: store into adjusted_ptr"),
    "poison_left": ("poison left in adjusted: a slot was never stored",
                    "a slot was never stored: check the store mask / loop bounds (every in-bounds slot "
                    "gets a value, -1 when it is not local)"),
    "not_subtracted": ("adjusted values equal to the global ids",
                       "subtract start: a local expert's index is id - start"),
    "remote_counted": ("ids >= start + num_local treated as local (counted or kept)",
                       "upper bound check: this rank owns only start <= id < start + num_local"),
    "below_start": ("ids below start treated as local",
                    "lower bound check: ids < start (and -1 padding) belong to no local expert"),
    "counted_nonlocal": ("the atomic counted slots that are not local (negative counter index)",
                         "mask the atomic with the local mask, so -1 and remote slots add nothing"),
    "counts_out_of_bounds": ("an atomic touched expert_count outside [0, num_local)",
                             "index the counters with id - start and mask the atomic to local slots"),
    "padded_as_zero": ("counts too high on expert 0 where start=0 and the last block has padding",
                       "padded slots loaded as 0? use other=-1 or mask the atomic with the in-bounds mask"),
    "histogram_unmasked": ("last counter too high with -1 inputs: tl.histogram saw values outside "
                           "[0, NUM_BINS)",
                           "tl.histogram needs mask=: tl.histogram(local_expert, NUM_BINS, mask=local)"),
    "histogram_values": ("tl.histogram was given values outside [0, NUM_BINS) under its mask",
                         "histogram the local index id - start under mask=local "
                         "(local = start <= id < start + num_local)"),
    "bins_unmasked": ("the histogram's atomic touched counters >= num_local",
                      "mask bins >= num_local when adding the histogram: "
                      "tl.atomic_add(count_ptr + bins, hist, mask=bins < num_local)"),
    "counts_race": ("expert_count written with a plain tl.store from several programs",
                    "programs run at the same time on a GPU and overwrite each other: add with "
                    "tl.atomic_add"),
    "counts_high": ("some counters too high",
                    "count each local slot once: mask the atomic to local, in-bounds slots"),
    "counts_low": ("some counters too low",
                   "a local slot was not counted: check the atomic's mask and the loop bounds"),
    "adjusted_wrong": ("adjusted differs from the reference",
                       "adjusted is id - start for start <= id < start + num_local, else -1"),
    "block_not_int": ("block_size returned something that is not an int",
                      "return an int: use // (integer division) and triton.next_power_of_2"),
    "block_not_power_of_two": ("block_size returned a number that is not a power of two",
                               "1024 // 6 = 170 is not a power of two and tl.arange(0, 170) fails: "
                               "round up with triton.next_power_of_2(min(256, 1024 // topk))"),
    "block_out_of_range": ("block_size returned a block below 1 or above 1024",
                           "a block is 1 to 1024 slots: start from min(256, 1024 // topk)"),
}

# The same symptom asks for a different fix in the scalar (naive) kernel.
_NAIVE_HINTS = {
    "load_out_of_bounds": "tokens past the end were read or written: keep `if token < num_tokens:` around "
                          "the token's work",
    "store_out_of_bounds": "tokens past the end were read or written: keep `if token < num_tokens:` around "
                           "the token's work",
    "poison_left": "a slot was never stored: store -1 in the else branch, and loop over all topk slots "
                   "of every token",
    "counted_nonlocal": "only count inside the `if` that tests start <= expert < start + num_local",
}


@dataclass(frozen=True)
class Exercise:
    """One exercise: what the learner writes and how the checker runs it."""

    name: str
    notebook: str
    description: str
    signature: str
    launch: str
    symptoms: tuple[str, ...]
    hint_overrides: dict = field(default_factory=dict)

    @property
    def hints(self) -> dict[str, str]:
        """The hint table: symptom -> what to do, for the mistakes this exercise can show."""
        return {HINTS[k][0]: self.hint(k) for k in self.symptoms}

    def hint(self, key: str) -> str:
        return self.hint_overrides.get(key, HINTS[key][1])


_COMMON = ("signature", "power_of_two", "compile_error", "wrote_input")

EXERCISES: dict[str, Exercise] = {e.name: e for e in [
    Exercise(
        "naive", "02",
        "the naive kernel: loop over a program's tokens and their topk slots one scalar at a time; "
        "store id - start or -1, and atomically count local ids",
        "@triton.jit def kernel(ids_ptr, adjusted_ptr, count_ptr, num_tokens, topk, start, num_local, "
        "TOKENS_PER_PROGRAM: tl.constexpr)",
        "counts zeroed; grid (cdiv(num_tokens, 4),), TOKENS_PER_PROGRAM=4",
        _COMMON + ("load_out_of_bounds", "store_out_of_bounds", "poison_left", "not_subtracted",
                   "remote_counted", "below_start", "counted_nonlocal", "counts_out_of_bounds",
                   "counts_race", "counts_high", "counts_low", "adjusted_wrong"),
        _NAIVE_HINTS),
    Exercise(
        "block_size", "03",
        "the power-of-two fix of the launch rule min(256, 1024 // topk)",
        "def block_size(topk: int) -> int",
        "a power of two in [1, 1024] for topk 1..16, then the library's tl_full_kernel with that BLOCK",
        ("block_not_int", "block_not_power_of_two", "block_out_of_range", "power_of_two",
         "compile_error")),
    Exercise(
        "masked_block", "03",
        "the vectorised kernel: one masked block of BLOCK flat slots per program, the tail loaded as -1",
        f"@triton.jit def kernel({_BLOCK_ARGS})",
        "counts zeroed; BLOCK = tl_full.block_size(topk), grid (cdiv(num_total, BLOCK),)",
        _COMMON + ("load_out_of_bounds", "store_out_of_bounds", "padded_as_zero", "poison_left",
                   "not_subtracted", "remote_counted", "below_start", "counted_nonlocal",
                   "counts_out_of_bounds", "counts_race", "counts_high", "counts_low", "adjusted_wrong")),
    Exercise(
        "block_histogram", "05",
        "the block histogram: count a block's local experts with tl.histogram, then one atomic per "
        "expert per program",
        f"@triton.jit def kernel({_BLOCK_ARGS}, NUM_BINS: tl.constexpr)",
        "counts zeroed; grid (cdiv(num_total, BLOCK),) with BLOCK=256 and BLOCK=64, "
        "NUM_BINS = triton.next_power_of_2(num_local)",
        _COMMON + ("histogram_unmasked", "histogram_values", "bins_unmasked", "load_out_of_bounds",
                   "store_out_of_bounds", "padded_as_zero", "poison_left", "not_subtracted", "remote_counted", "below_start",
                   "counted_nonlocal", "counts_out_of_bounds", "counts_race", "counts_high", "counts_low",
                   "adjusted_wrong")),
]}

_TODO = {
    "naive": "write the body of your naive kernel (replace `pass  # YOUR CODE HERE`), run its cell, "
             "then run this check again",
    "block_size": "write the body of block_size (replace the `raise NotImplementedError`), run its cell, "
                  "then run this check again",
    "masked_block": "write the body of your masked block kernel (replace `pass  # YOUR CODE HERE`), "
                    "run its cell, then run this check again",
    "block_histogram": "write the body of your block histogram kernel (replace `pass  # YOUR CODE HERE`), "
                       "run its cell, then run this check again",
}


# --------------------------------------------------------------------------------------------------
# public entry point

def check(name: str, solution) -> bool:
    """Run exercise ``name`` on ``solution``; print what passed, or the first failure and a hint.

    Returns True when every case passes; False (after printing why) otherwise, including for the
    student stub ("not done yet") and code that does not compile. Raises only for an unknown ``name``.
    """
    if name not in EXERCISES:
        raise ValueError(f"name must be one of {', '.join(map(repr, EXERCISES))}, got {name!r}")
    ex = EXERCISES[name]
    if _is_stub(solution):
        print(f"{name}: not done yet: {_TODO[name]}.")
        return False
    if name == "block_size":
        return _check_block_size(ex, solution)
    problem = _not_a_kernel(solution)
    if problem:
        print(f"{name}: {problem}")
        return False
    return _check_kernel(ex, solution)


# --------------------------------------------------------------------------------------------------
# stubs and kinds of objects

def _source(obj) -> str | None:
    src = getattr(obj, "src", None)  # JITFunction
    if isinstance(src, str):
        return src
    fn = getattr(obj, "fn", obj)  # InterpretedFunction wraps the Python function in .fn
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):
        return None


def _is_stub(obj) -> bool:
    """Still the student stub: the source has the marker and the body nothing but the stub.

    A learner who writes the body but leaves the ``# YOUR CODE HERE`` comment in place is not stuck
    at "not done yet": only docstrings, ``pass``, ``...`` and ``raise NotImplementedError`` count as
    stub statements.
    """
    src = _source(obj)
    if src is None or MARKER not in src:
        return False
    try:
        tree = ast.parse(textwrap.dedent(src))
    except SyntaxError:
        return True
    fn = next((n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))), None)
    if fn is None:
        return True
    for stmt in fn.body:
        if isinstance(stmt, ast.Pass):
            continue
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # a docstring or `...`
        if isinstance(stmt, ast.Raise) and "NotImplementedError" in ast.unparse(stmt):
            continue
        return False
    return True


def _is_kernel(obj) -> bool:
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction

    return isinstance(obj, (JITFunction, InterpretedFunction))


def _not_a_kernel(obj) -> str:
    if _is_kernel(obj):
        return ""
    if callable(obj):
        return ("expected a Triton kernel, got a plain Python function: put @triton.jit on the line "
                "above its def, run the cell, then check again")
    return f"expected a @triton.jit kernel, got {type(obj).__name__}"


# --------------------------------------------------------------------------------------------------
# the address check (interpreter only)

@dataclass
class _Buffer:
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
class _Event:
    kind: str  # "load", "store", "atomic", "histogram", "store_counts"
    buffer: str
    seen: dict = field(default_factory=dict)  # element index (or histogram value) -> value written
    wild: bool = False

    @property
    def indices(self) -> list[int]:
        return sorted(self.seen)


class _AddressCheck:
    """Watches the interpreter's memory operations for one launch; records what went out of bounds."""

    def __init__(self, buffers: list[_Buffer]):
        self.buffers = buffers
        self.events: list[_Event] = []

    def _record(self, kind, name, idx, vals=(), wild=False):
        for ev in self.events:
            if ev.kind == kind and ev.buffer == name:
                break
        else:
            ev = _Event(kind, name)
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

    @contextlib.contextmanager
    def installed(self):
        from triton.runtime import interpreter as triton_interpreter

        b = interp.builder()
        cls = type(b)
        Handle = triton_interpreter.TensorHandle
        counts_buf = next(buf for buf in self.buffers if buf.name == "expert_count")

        def load(*args, **kwargs):
            call = interp.BuilderCall("create_masked_load", args, kwargs)
            mask = call["mask"]
            keep = self._filter("load", call["ptr"].data, mask.data, writes=False)
            call["mask"] = Handle(keep, mask.dtype)
            return call.forward(functools.partial(cls.create_masked_load, b))

        def store(*args, **kwargs):
            call = interp.BuilderCall("create_masked_store", args, kwargs)
            ptrs, mask = call["ptr"], call["mask"]
            keep = self._filter("store", ptrs.data, mask.data, call["value"].data, writes=True)
            hits = keep & counts_buf.valid(np.asarray(ptrs.data))
            if hits.any() and int(np.prod(b.grid_dim)) > 1:
                self._record("store_counts", "expert_count", counts_buf.index(np.asarray(ptrs.data)[hits]))
            call["mask"] = Handle(keep, mask.dtype)
            return call.forward(functools.partial(cls.create_masked_store, b))

        def atomic(*args, **kwargs):
            call = interp.BuilderCall("create_atomic_rmw", args, kwargs)
            mask = call["mask"]
            keep = self._filter("atomic", call["ptr"].data, mask.data, call["value"].data, writes=True)
            call["mask"] = Handle(keep, mask.dtype)
            return call.forward(functools.partial(cls.create_atomic_rmw, b))

        def histogram(*args, **kwargs):
            call = interp.BuilderCall("create_histogram", args, kwargs)
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
            return Handle(hist, triton_interpreter.tl.int32)

        with interp.hooked(create_masked_load=load, create_masked_store=store, create_atomic_rmw=atomic,
                           create_histogram=histogram):
            yield self


# --------------------------------------------------------------------------------------------------
# one launch on one case

@dataclass
class _Run:
    case: verify.Case
    label: str  # e.g. "BLOCK=256"
    error: BaseException | None = None
    adjusted: torch.Tensor | None = None
    counts: torch.Tensor | None = None
    events: list = field(default_factory=list)
    guard_problems: list = field(default_factory=list)
    want_adjusted: torch.Tensor | None = None
    want_counts: torch.Tensor | None = None
    padded_slots: int = 0
    num_bins: int = 0
    checked: bool = False  # ran under the address check


def _guarded(values: torch.Tensor, fill: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(whole, view)``: a copy of ``values`` with a guard zone on both sides filled with ``fill``."""
    flat = values.reshape(-1)
    whole = torch.full((GUARD + flat.numel() + GUARD,), fill, dtype=values.dtype, device=values.device)
    whole[GUARD:GUARD + flat.numel()] = flat
    return whole, whole[GUARD:GUARD + flat.numel()].view(values.shape)


def _launch(ex: Exercise, kernel, case: verify.Case, device, *, checked: bool, block: int | None) -> _Run:
    ids = case.topk_ids.to(device)
    num_tokens, topk = ids.shape
    num_total, start, num_local = ids.numel(), case.start, case.num_local
    run = _Run(case, f"BLOCK={block}" if ex.name == "block_histogram" else "", checked=checked)
    run.want_adjusted, run.want_counts = (t.cpu() for t in verify.reference(case.topk_ids.cpu(), start, num_local))
    # past the input's end lies a local id (a middle expert: not 0, not the last bin), so an unmasked
    # read shows up in the counts on a GPU too
    ids_whole, ids_view = _guarded(ids, start + num_local // 2)
    adj_whole, adj_view = _guarded(torch.full_like(ids, verify.POISON), verify.POISON)
    cnt_whole, cnt_view = _guarded(torch.zeros(num_local, dtype=torch.int32, device=device), verify.POISON)
    ids_before = ids_whole.clone()

    if ex.name == "naive":
        grid = (triton.cdiv(num_tokens, 4),)
        args, consts = (num_tokens, topk, start, num_local), {"TOKENS_PER_PROGRAM": 4}
    elif ex.name == "block_histogram":
        run.num_bins = triton.next_power_of_2(num_local)
        grid = (triton.cdiv(num_total, block),)
        args, consts = (num_total, start, num_local), {"BLOCK": block, "NUM_BINS": run.num_bins}
    else:  # masked_block, block_size (the library kernel with the learner's block)
        grid = (triton.cdiv(num_total, block),)
        args, consts = (num_total, start, num_local), {"BLOCK": block}
    run.padded_slots = 0 if ex.name == "naive" else grid[0] * block - num_total

    watch = _AddressCheck([_Buffer("topk_ids", ids_view, False), _Buffer("adjusted", adj_view, True),
                           _Buffer("expert_count", cnt_view, True)])
    try:
        with watch.installed() if checked else contextlib.nullcontext():
            kernel[grid](ids_view, adj_view, cnt_view, *args, **consts)
        if device.type == "cuda":
            torch.cuda.synchronize()
    except Exception as err:  # the learner's code: report it, never raise
        run.error = err
        return run
    run.events = watch.events
    run.adjusted, run.counts = adj_view.cpu(), cnt_view.cpu()
    for name, whole, n, fill in (("adjusted", adj_whole, num_total, verify.POISON),
                                 ("expert_count", cnt_whole, num_local, verify.POISON)):
        zones = torch.cat([whole[:GUARD], whole[GUARD + n:]]).cpu()
        changed = (zones != fill).nonzero().flatten().tolist()
        if changed:
            idx = [i - GUARD if i < GUARD else n + (i - GUARD) for i in changed]
            run.guard_problems.append((name, idx))
    if not torch.equal(ids_whole.cpu(), ids_before.cpu()):
        run.guard_problems.append(("topk_ids", []))
    return run


def _passed(run: _Run) -> bool:
    return (run.error is None and not run.events and not run.guard_problems
            and torch.equal(run.adjusted, run.want_adjusted) and torch.equal(run.counts, run.want_counts))


# --------------------------------------------------------------------------------------------------
# diagnosis: from what happened to the likely mistake

def _error_line(err: BaseException) -> str:
    """The first line of Triton's message that says what is wrong (no paths, no source context)."""
    seen = []
    e = err
    while e is not None and e not in seen:
        seen.append(e)
        e = e.__cause__ or e.__context__
    for e in reversed(seen):  # the root cause first
        text = getattr(e, "error_message", None) or str(e)
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        carets = [i for i, ln in enumerate(lines) if set(ln) == {"^"}]
        if carets:  # Triton's compile errors quote the source, point at it, then say what is wrong
            lines = lines[carets[-1] + 1:]
        for ln in lines:
            if ln.startswith(("def ", "^", "File ", "at ")) or ln.startswith("CompilationError at"):
                continue
            if "/" in ln and (".py" in ln or "ipykernel" in ln):
                continue
            return f"{type(e).__name__}: {ln}"[:200]
    return type(err).__name__


def _diagnose_error(err: BaseException) -> list[tuple[str, str]]:
    line = _error_line(err)
    if isinstance(err, TypeError) and ("argument" in str(err) or "parameter" in str(err)):
        return [("signature", f"Python said: {line}")]
    if "power of 2" in line or "power of two" in line:
        return [("power_of_two", f"Triton said: {line}")]
    return [("compile_error", f"Triton said: {line}")]


def _span(indices: list[int]) -> str:
    idx = sorted(set(indices))
    if not idx:
        return ""
    if len(idx) <= 4:
        return ", ".join(map(str, idx))
    return f"{idx[0]}..{idx[-1]} ({len(idx)} slots)"


def _classify_counter_indices(case: verify.Case, indices: list[int], num_bins: int,
                              histogram: bool) -> list[str]:
    """Which mistakes predict exactly these out-of-range counter indices (each must show in full)."""
    ids = set(case.topk_ids.flatten().tolist())
    start, n = case.start, case.num_local
    recorded = set(indices)

    def outside(s):
        return {i for i in s if i < 0 or i >= n}

    hypotheses = [
        ("bins_unmasked", set(range(n, num_bins)) if histogram else set()),
        ("not_subtracted", outside({x for x in ids if start <= x < start + n}) if start else set()),
        ("remote_counted", outside({x - start for x in ids if x >= start + n})),
        ("below_start", outside({x - start for x in ids if x < start})),
        ("counted_nonlocal", {-1} if any(not start <= x < start + n for x in ids) else set()),
    ]
    chosen = [key for key, predicted in hypotheses if predicted and predicted <= recorded]
    if "below_start" in chosen and "counted_nonlocal" in chosen:
        chosen.remove("counted_nonlocal")  # x = start - 1 lands on -1 too
    return chosen or ["counts_out_of_bounds"]


def _diagnose_values(ex: Exercise, run: _Run, *, checked: bool) -> list[tuple[str, str]]:
    """Symptoms in the numbers. ``checked``: the address check ran (it sees tl.histogram directly)."""
    out = []
    case = run.case
    start, n = case.start, case.num_local
    ids = case.topk_ids.cpu()
    got, want = run.adjusted, run.want_adjusted
    if not torch.equal(got, want):
        bad = (got != want)
        g, w, x = got[bad], want[bad], ids[bad]
        if bool((g == verify.POISON).any()):
            out.append(("poison_left", ""))
        local = (x >= start) & (x < start + n)
        if start and bool((local & (g == x)).any()):
            out.append(("not_subtracted", ""))
        if bool(((x >= start + n) & (g == x - start)).any()):
            out.append(("remote_counted", ""))
        if bool(((x < start) & (g == x - start)).any()):
            out.append(("below_start", ""))
        if not out:
            out.append(("adjusted_wrong", ""))
    got_c, want_c = run.counts, run.want_counts
    if not torch.equal(got_c, want_c):
        diff = (got_c - want_c)
        high = (diff > 0).nonzero().flatten().tolist()
        low = (diff < 0).nonzero().flatten().tolist()
        has_outside = bool(((ids < start) | (ids >= start + n)).any())
        if (ex.name == "block_histogram" and not checked and high == [run.num_bins - 1]
                and run.num_bins == n and has_outside):
            out.append(("histogram_unmasked", ""))
        elif ex.name != "naive" and start == 0 and high == [0] and not low and run.padded_slots:
            out.append(("padded_as_zero", ""))
        elif not out:
            if high:
                out.append(("counts_high", ""))
            if low:
                out.append(("counts_low", ""))
    return out


def _diagnose(ex: Exercise, run: _Run) -> list[tuple[str, str]]:
    """``[(symptom key, what was seen), ...]``: the likely mistakes, most telling first (at most 3)."""
    if run.error is not None:
        return _diagnose_error(run.error)
    found: list[tuple[str, str]] = []
    later: list[tuple[str, str]] = []  # less telling than what the values say
    n_total, n_local = run.case.topk_ids.numel(), run.case.num_local
    histogram = ex.name == "block_histogram"
    for ev in run.events:
        where = " far outside the buffer (dropped)" if ev.wild else ""
        if ev.kind == "histogram" and ev.buffer == "unmasked":
            vals = ", ".join(map(str, ev.indices[:4]))
            found.append(("histogram_unmasked",
                          f"tl.histogram without mask= was given values outside [0, {run.num_bins}): {vals}; "
                          f"Triton leaves those unspecified, AMD and older NVIDIA builds count -1 in the "
                          f"last bin, and so does this check"))
        elif ev.kind == "histogram":
            vals = ", ".join(map(str, ev.indices[:4]))
            later.append(("histogram_values",
                          f"tl.histogram's mask let through values outside [0, {run.num_bins}): {vals}"))
        elif ev.kind == "store_counts":
            found.append(("counts_race", "tl.store into expert_count with more than one program"))
        elif ev.buffer == "topk_ids" and ev.kind == "load":
            found.append(("load_out_of_bounds",
                          f"read topk_ids slot {_span(ev.indices)} (valid: 0..{n_total - 1}){where}"))
        elif ev.buffer == "topk_ids":
            found.append(("wrote_input", f"wrote topk_ids slot {_span(ev.indices)}{where}"))
        elif ev.kind == "load":
            found.append(("load_out_of_bounds", f"read {ev.buffer}[{_span(ev.indices)}] outside the buffer"))
        elif ev.buffer == "adjusted":
            found.append(("store_out_of_bounds",
                          f"wrote adjusted slot {_span(ev.indices)} (valid: 0..{n_total - 1}){where}"))
        else:
            op = "atomic" if ev.kind == "atomic" else "store"
            for key in _classify_counter_indices(run.case, ev.indices, run.num_bins, histogram):
                found.append((key, f"{op} on expert_count[{_span(ev.indices)}] "
                                   f"(valid: 0..{n_local - 1}){where}"))
    for name, idx in run.guard_problems:
        if name == "topk_ids":
            found.append(("wrote_input", "topk_ids changed"))
        elif name == "adjusted":
            found.append(("store_out_of_bounds", f"wrote adjusted slot {_span(idx)} (valid: 0..{n_total - 1})"))
        else:
            for key in _classify_counter_indices(run.case, idx, run.num_bins, histogram):
                found.append((key, f"expert_count[{_span(idx)}] changed (valid: 0..{n_local - 1})"))
    values = _diagnose_values(ex, run, checked=bool(run.events) or run.checked)
    if found or later:  # an address problem explains the numbers better than "too high"
        values = [(k, d) for k, d in values if k not in ("counts_high", "counts_low", "adjusted_wrong")]
    seen, unique = set(), []
    for key, detail in found + values + later:
        if key not in seen:
            seen.add(key)
            unique.append((key, detail))
    return unique[:3]


# --------------------------------------------------------------------------------------------------
# printing

def _fmt(v: int) -> str:
    return "POISON" if v == verify.POISON else str(v)


def _row(t: torch.Tensor) -> str:
    return "[" + ", ".join(_fmt(v) for v in t.tolist()) + "]"


def _report_failure(ex: Exercise, run: _Run, kernel_where: str) -> None:
    case = run.case
    ids = case.topk_ids.cpu()
    label = f" ({run.label})" if run.label else ""
    print(f"  first failing case: {case.name!r}{label}{kernel_where}")
    if case.why:
        print(f"    why this case: {case.why}")
    print(f"    input: topk_ids {str(ids.dtype).replace('torch.', '')} {list(ids.shape)}, "
          f"start={case.start}, num_local={case.num_local}")
    if 0 < ids.numel() <= 40:
        print(f"      topk_ids = [{', '.join(_row(r) for r in ids)}]")
    problems = _diagnose(ex, run)
    if run.error is None:
        got, want = run.adjusted, run.want_adjusted
        if not torch.equal(got, want):
            bad = (got != want).nonzero()
            t, k = bad[0].tolist()
            print(f"    adjusted: {len(bad)} slot(s) wrong; first at [{t}, {k}]: input id "
                  f"{ids[t, k].item()}, expected {want[t, k].item()}, got {_fmt(got[t, k].item())}")
            for label, values in (("topk_ids", ids), ("expected", want), ("got     ", got)):
                print(f"      {label}[{t}] = {_row(values[t])}")
        else:
            print("    adjusted: correct")
        gc, wc = run.counts, run.want_counts
        if not torch.equal(gc, wc):
            if case.num_local <= 32:
                print(f"    expert_count expected {_row(wc)}")
                print(f"    expert_count got      {_row(gc)}")
            else:
                diff = (gc != wc).nonzero().flatten().tolist()
                shown = ", ".join(f"[{e}] expected {wc[e].item()} got {gc[e].item()}" for e in diff[:5])
                more = f" (and {len(diff) - 5} more)" if len(diff) > 5 else ""
                print(f"    expert_count wrong at {shown}{more}")
        else:
            print("    expert_count: correct")
    for key, detail in problems:
        if detail:
            print(f"    found: {detail}")
    hints = []
    for key, _ in problems:
        if ex.hint(key) not in hints:
            hints.append(ex.hint(key))
    for text in hints:
        print(f"  hint: {text}")


# --------------------------------------------------------------------------------------------------
# running the groups

def _grouped_cases(max_tokens: int | None = None) -> list[tuple[str, list[verify.Case]]]:
    """The adversarial cases in CASE_GROUPS order; with ``max_tokens``, each cut to its first rows."""
    cases = [c for c in verify.adversarial_cases() if c.name not in SKIPPED_CASES]
    if max_tokens:
        cases = [c if c.topk_ids.shape[0] <= max_tokens else
                 verify.Case(c.name, c.topk_ids[:max_tokens].contiguous(), c.start, c.num_local,
                             f"{c.why} (here its first {max_tokens} of {c.topk_ids.shape[0]} tokens)")
                 for c in cases]
    groups, used = [], set()
    for title, patterns in CASE_GROUPS:
        members = []
        for p in patterns:
            for c in cases:
                if c.name not in used and (c.name == p or (p.endswith("=") and c.name.startswith(p))):
                    members.append(c)
                    used.add(c.name)
        if members:
            groups.append((title, members))
    rest = [c for c in cases if c.name not in used]
    if rest:
        groups.append(("more cases", rest))
    return groups


def _passes(kernel) -> list[tuple[str, object, torch.device, bool]]:
    """(label, kernel, device, address-checked) for each place this kernel runs."""
    out = [("interpreter", interp.interpreted(kernel), torch.device("cpu"), True)]
    if backend.has_gpu():
        out.append(("GPU", kernel, torch.device("cuda"), False))
    return out


def _run_groups(ex: Exercise, kernel, blocks_for, max_tokens: int | None = None) -> bool:
    passes = _passes(kernel)
    total = 0
    for title, members in _grouped_cases(max_tokens):
        for case in members:
            for block in blocks_for(case):
                for where, k, device, checked in passes:
                    run = _launch(ex, k, case, device, checked=checked, block=block)
                    if not _passed(run):
                        print(f"  FAIL  {title}")
                        _report_failure(ex, run, f" on the {where}" if where == "GPU" else "")
                        return False
                total += 1
        print(f"  ok    {title} ({len(members)} case{'s' if len(members) > 1 else ''})")
    print(f"{ex.name}: all {total} runs pass.")
    return True


def _check_kernel(ex: Exercise, kernel) -> bool:
    from .stages import tl_full

    if ex.name == "naive":
        # one scalar at a time is slow in the interpreter: each case keeps its first 13 tokens
        # (three full programs of 4 tokens and a tail program with one)
        print(f"naive: adversarial cases (first {NAIVE_TOKENS} tokens each), poisoned outputs, "
              f"TOKENS_PER_PROGRAM=4")
        return _run_groups(ex, kernel, lambda c: [None], max_tokens=NAIVE_TOKENS)
    if ex.name == "masked_block":
        print("masked_block: adversarial cases, poisoned outputs, BLOCK = tl_full.block_size(topk)")
        return _run_groups(ex, kernel, lambda c: [tl_full.block_size(c.topk)])
    print("block_histogram: adversarial cases, poisoned outputs, BLOCK=256 and BLOCK=64, "
          "NUM_BINS = next_power_of_2(num_local)")
    return _run_groups(ex, kernel, lambda c: [256, 64])


def _check_block_size(ex: Exercise, fn) -> bool:
    from .stages import tl_full

    if _is_kernel(fn) or not callable(fn):
        print(f"block_size: expected a plain Python function def block_size(topk) -> int, "
              f"got {type(fn).__name__}")
        return False
    print("block_size: a power of two for topk 1..16, then tl_full_kernel with that BLOCK on the cases")
    blocks, wrong = {}, []
    topks = sorted(set(range(1, 17)) | {c.topk for _, cases in _grouped_cases() for c in cases})
    for topk in topks:
        try:
            b = fn(topk)
        except NotImplementedError:
            print(f"block_size: not done yet: {_TODO['block_size']}.")
            return False
        except Exception as err:
            print(f"  FAIL  block_size({topk}) raised {_error_line(err)}")
            return False
        if isinstance(b, bool) or not _is_int(b):
            print(f"  FAIL  block_size({topk}) returned {b!r} ({type(b).__name__}), not an int")
            print(f"  hint: {ex.hint('block_not_int')}")
            return False
        b = operator.index(b)
        if b < 1 or b > 1024:
            print(f"  FAIL  block_size({topk}) returned {b}")
            print(f"  hint: {ex.hint('block_out_of_range')}")
            return False
        blocks[topk] = b
        if b & (b - 1):
            wrong.append(topk)
    if wrong:
        topk = 6 if 6 in wrong else wrong[0]  # DeepSeek-V2-Lite's top-6 is the case that broke
        b = blocks[topk]
        note = f" (1024 // {topk} = {1024 // topk})" if b == 1024 // topk else ""
        print(f"  FAIL  block_size({topk}) returned {b}{note}: not a power of two")
        print(f"    not a power of two for topk {', '.join(map(str, wrong))}")
        said = _triton_on_block(b)
        if said:
            print(f"    Triton says, launching tl_full_kernel with BLOCK={b}: {said}")
        print(f"  hint: {ex.hint('block_not_power_of_two')}")
        return False
    print(f"  ok    powers of two for topk 1..16 (topk 6 -> {blocks[6]}, topk 8 -> {blocks[8]})")
    return _run_groups(ex, tl_full.tl_full_kernel, lambda c: [blocks[c.topk]])


def _is_int(v) -> bool:
    try:
        operator.index(v)
        return True
    except TypeError:
        return False


def _triton_on_block(block: int) -> str:
    from .stages import tl_full

    ids = torch.zeros((1, 8), dtype=torch.int32)
    adj, cnt = torch.empty_like(ids), torch.zeros(4, dtype=torch.int32)
    try:
        interp.interpreted(tl_full.tl_full_kernel)[(1,)](ids, adj, cnt, 8, 0, 4, BLOCK=block)
    except Exception as err:
        return _error_line(err)
    return ""


__all__ = ["check", "EXERCISES", "HINTS", "Exercise", "MARKER", "CASE_GROUPS"]
