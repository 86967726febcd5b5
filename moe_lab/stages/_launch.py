"""Host-side plumbing shared by the Triton stages: check the arguments, allocate the outputs, launch.

On a GPU the host work around a launch is what a small call costs, so :func:`launch` keeps it short.
The first launch of a kernel for one key (device, dtype, shape, the integers' and pointers'
specialisation, overrides) goes through Triton, which compiles or finds the kernel and launches it;
the compiled kernel is kept with its grid and constexprs, and later launches with the same key hand
their arguments straight to its launcher, skipping Triton's per-call binding and specialisation. The
key holds everything Triton specialises these kernels on (tensor dtype, 16-byte pointer alignment,
integers equal to 1 or divisible by 16), so the kernel reused is the one Triton would pick
(``tests/core/test_launch_rule.py`` checks that against Triton itself). Under the interpreter, with launch
hooks installed (a profiler) or with unaligned tensors, every launch goes through Triton.
"""

from __future__ import annotations

import inspect
from operator import itemgetter

import torch

from moe_lab.checks import check_args, check_outputs
from moe_lab.launcher import current_stream, hooks_installed, run_binary

POISON: int | None = None
"""Test hook: when set, fresh outputs are filled with this value (never 0) so unwritten slots show."""

KNOBS = ("block", "num_warps", "programs_per_sm")
"""Launch overrides read by :meth:`Kernel.plan`; any other override is a constexpr of the kernel."""

MAX_KEPT = 4096
"""Compiled launches kept (one per key); the table is emptied when full, then refills."""

_KEPT: dict[tuple, tuple] = {}  # key -> (kernel, compiled, grid, constexpr values)
_DISABLED: list = []  # non-empty once a kept launch was refused by its launcher
_PICK: dict[tuple, itemgetter] = {}  # a kernel's argument names -> picks them from the launch's values
_VALUES = ("ids", "adjusted", "counts", "scratch", "num_tokens", "topk", "num_total", "start", "num_local")
_CURRENT_DEVICE = getattr(torch._C, "_cuda_getDevice", None) or torch.cuda.current_device


def prepare(topk_ids, start, num_local, *, stage: str, zero_counts: bool = True,
            adjusted_out=None, expert_count_out=None, check=None):
    """Check inputs and return ``(start, num_local, adjusted, expert_count)`` ready for a launch.

    ``zero_counts`` fills the counts with 0 (stages that accumulate with atomics need that);
    stages that store every count themselves pass False and skip the memset. ``check(num_local,
    stage)``, if given, runs after the argument checks and before anything is allocated.
    """
    start, num_local = check_args(topk_ids, start, num_local, stage=stage)
    if check is not None:
        check(num_local, stage)
    adjusted, counts = outputs(topk_ids, num_local, adjusted_out, expert_count_out, zero_counts)
    return start, num_local, adjusted, counts


def outputs(topk_ids, num_local: int, adjusted_out=None, expert_count_out=None, zero_counts: bool = True):
    """``(adjusted, expert_count)``: the caller's buffers once checked, else fresh ones."""
    if adjusted_out is None and expert_count_out is None:  # the common call: two fresh tensors
        adjusted = torch.empty_like(topk_ids)
        # on topk_ids' device; new_zeros/new_empty parse fewer arguments than torch.zeros(..., device=)
        counts = (topk_ids.new_zeros if zero_counts else topk_ids.new_empty)(num_local, dtype=torch.int32)
        if POISON is not None:
            adjusted.fill_(POISON)
            if not zero_counts:
                counts.fill_(POISON)
        return adjusted, counts
    check_outputs(topk_ids, num_local, adjusted_out, expert_count_out)
    adjusted = torch.empty_like(topk_ids) if adjusted_out is None else adjusted_out
    if expert_count_out is None:
        counts = (torch.zeros if zero_counts else torch.empty)(num_local, dtype=torch.int32,
                                                              device=topk_ids.device)
        if POISON is not None and not zero_counts:
            counts.fill_(POISON)
    else:
        counts = expert_count_out
        if zero_counts:
            counts.zero_()
    if POISON is not None and adjusted_out is None:
        adjusted.fill_(POISON)
    return adjusted, counts


def _pick(kernel):
    pick = _PICK.get(kernel.args)
    if pick is None:
        pick = _PICK[kernel.args] = itemgetter(*[_VALUES.index(name) for name in kernel.args])
    return pick


def _split(kernel, overrides: dict) -> tuple[dict, dict]:
    knobs = {k: v for k, v in overrides.items() if k in KNOBS and v is not None}
    return knobs, {k: v for k, v in overrides.items() if k not in KNOBS}


def launch(kernel, ids, adjusted, counts, start: int, num_local: int, scratch, overrides: dict) -> None:
    """:meth:`moe_lab.stages._kernel.Kernel.launch` (see there and the module docstring)."""
    num_tokens, topk = ids.shape
    if num_tokens * topk == 0:  # nothing to launch: counts a kernel would store are zeroed here
        if not kernel.zero_counts:
            counts.zero_()
        return
    device = ids.device
    if device.type != "cuda":  # the interpreter: Triton's own launch, every call
        if scratch is None and kernel.scratch is not None:
            scratch = kernel.scratch(device)
        _through_triton(kernel, ids, adjusted, counts, scratch, start, num_local, overrides, device)
        return
    index = device.index
    if index != _CURRENT_DEVICE():  # Triton launches on the current device's current stream
        with torch.cuda.device(index):
            launch(kernel, ids, adjusted, counts, start, num_local, scratch, overrides)
        return
    stream = current_stream(index)
    if scratch is None and kernel.scratch is not None:
        scratch = kernel.scratch(device, stream)
    key = (id(kernel), index, ids.dtype, num_tokens, topk, num_local, start == 1, start % 16 == 0,
           tuple(sorted(overrides.items())) if overrides else None)
    kept = _KEPT.get(key)
    aligned = not ((ids.data_ptr() | adjusted.data_ptr() | counts.data_ptr()
                    | (0 if scratch is None else scratch.data_ptr())) & 15)
    if kept is not None and aligned and not hooks_installed():
        _, compiled, grid, tail = kept
        values = (ids, adjusted, counts, scratch, num_tokens, topk, num_tokens * topk, start, num_local)
        picked = _pick(kernel)(values)
        args = picked if isinstance(picked, tuple) else (picked,)
        try:
            run_binary(compiled, grid, stream, args, tail)
            return
        except TypeError:  # a launcher laid out unlike Triton 3.6-3.9: Triton launches from now on
            _KEPT.clear()
            _DISABLED.append(True)
    compiled, grid, constexprs, nargs = _through_triton(kernel, ids, adjusted, counts, scratch, start,
                                                        num_local, overrides, device)
    if aligned and not _DISABLED:
        _keep(key, kernel, compiled, grid, constexprs, nargs)


def _through_triton(kernel, ids, adjusted, counts, scratch, start, num_local, overrides, device):
    """Launch through Triton's ``kernel[grid](...)``; returns what it returns, the grid and constexprs."""
    num_tokens, topk = ids.shape
    knobs, constexprs = _split(kernel, overrides)
    plan = kernel.plan(num_tokens, topk, num_local, device, **knobs)
    constexprs = {**plan.constexprs, **constexprs}
    args = kernel.arguments(ids=ids, adjusted=adjusted, counts=counts, scratch=scratch, num_tokens=num_tokens,
                            topk=topk, num_total=num_tokens * topk, start=start, num_local=num_local)
    compiled = kernel.fn[(plan.grid,)](*args, **constexprs, num_warps=plan.num_warps)
    return compiled, plan.grid, constexprs, len(args)


def _keep(key, kernel, compiled, grid, constexprs, nargs) -> None:
    """Keep a compiled launch for ``key`` where its launcher takes the runtime arguments, then every
    constexpr in order (the layout of Triton 3.6 to 3.9); otherwise keep nothing."""
    params = getattr(kernel.fn, "params", None)
    if not all(hasattr(compiled, name) for name in ("run", "function", "packed_metadata")):
        return
    if params is None or any(p.is_constexpr for p in params[:nargs]) \
            or not all(p.is_constexpr for p in params[nargs:]):
        return
    tail = []
    for p in params[nargs:]:
        if p.name in constexprs:
            tail.append(constexprs[p.name])
        elif p.default is not inspect.Parameter.empty:
            tail.append(p.default)
        else:
            return
    if len(_KEPT) >= MAX_KEPT:
        _KEPT.clear()
    # holding the kernel keeps its id from being reused; holding the compiled kernel keeps its module loaded
    _KEPT[key] = (kernel, compiled, grid, tuple(tail))


def kept_launches() -> int:
    """How many compiled launches are kept (the fast path's table)."""
    return len(_KEPT)


def forget_launches() -> None:
    """Drop every kept launch: the next launch of each key goes through Triton again."""
    _KEPT.clear()
