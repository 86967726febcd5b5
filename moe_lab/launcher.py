"""Launch a Triton kernel through its compiled binary, skipping Triton's per-call argument binding.

The one place the library reaches past ``kernel[grid](...)``: the stages (:mod:`moe_lab.stages._launch`,
which keys a binary by the input's shape) and the dispatch op (:class:`Launcher`, which keys it by the
arguments' specialisation class) both find the current stream, check for launch hooks and call a kept
binary with :func:`run_binary`.

``kernel[grid](*args, **constexprs)`` binds every argument, works out its specialisation (alignment of
each pointer, value class of each integer) and looks the binary up in Triton's cache: tens of
microseconds of Python per launch with twenty-odd arguments. A :class:`Launcher` does that once per
*specialisation class* of the arguments, keeps the binary it got, and afterwards calls the binary's
launcher directly (a few microseconds).

The class is computed here, from what Triton specialises on (NVIDIA backend, Triton 3.x): for every
pointer its dtype and whether its address is a multiple of 16; for every integer not listed in the
kernel's ``do_not_specialize`` whether it equals 1 and whether it is a multiple of 16; for every integer
whether it fits in int32. The class is at least as fine as Triton's own key, so a binary is never used
for arguments it was not compiled for. Under the interpreter, or with a launch hook installed (a
profiler), every launch takes Triton's ordinary path (:func:`direct` says which).

A caller that keeps the binary a :class:`Launcher` returns may launch it again itself with
:func:`run_binary`, passing a pointer argument as its address (an int: Triton's launchers take one as
it is, skipping the ``data_ptr()`` call and the driver's pointer query a tensor costs), provided it
keys the binary by everything this class depends on (the dispatch op does, :mod:`moe_lab.dispatch.call`).
"""

from __future__ import annotations

import inspect
import threading

import torch
import triton

from moe_lab import backend

_INT32 = (-(2**31), 2**31 - 1)


_RAW_STREAM = getattr(torch._C, "_cuda_getCurrentRawStream", None)  # what Triton itself asks
_GET_DEVICE = getattr(torch._C, "_cuda_getDevice", None)  # torch.cuda.current_device() without its Python


def current_stream(device: int) -> int:
    """The raw handle of the current CUDA stream of ``device`` (what Triton's own launch uses)."""
    return _RAW_STREAM(device) if _RAW_STREAM is not None else torch.cuda.current_stream(device).cuda_stream


def current_device() -> int:
    """The index of the current CUDA device: where Triton launches (whatever device the tensors are on)."""
    return _GET_DEVICE() if _GET_DEVICE is not None else torch.cuda.current_device()


def _installed(hook) -> bool:
    """A launch hook is set: a non-empty ``HookChain`` (Triton 3.6 on), or any callable (earlier)."""
    calls = getattr(hook, "calls", None)
    return bool(calls) if calls is not None else hook is not None


_RUNTIME = getattr(getattr(triton, "knobs", None), "runtime", None)  # where Triton 3.6-3.9 keep launch hooks


def hooks_installed() -> bool:
    """Whether something (a profiler) listens to Triton's launches: then Triton launches every call."""
    return _installed(getattr(_RUNTIME, "launch_enter_hook", None)) or \
        _installed(getattr(_RUNTIME, "launch_exit_hook", None))


def direct() -> bool:
    """Whether kept binaries may be called directly: kernels are compiled and no launch hook listens."""
    return not backend.INTERPRETER and not hooks_installed()


def run_binary(binary, grid: int, stream: int, args, tail) -> None:
    """Launch a compiled kernel the way Triton's own launch does once the binary is found (``JITFunction.run``
    in Triton 3.6-3.9): grid, stream, function, metadata, no launch metadata and no hooks, then the runtime
    arguments and the constexpr values in parameter order."""
    binary.run(grid, 1, 1, stream, binary.function, binary.packed_metadata, None, None, None, *args, *tail)


def _parameters(kernel) -> tuple[list[str], list[bool], tuple[bool, ...]]:
    """``(names, is_constexpr, specialised)`` of ``kernel``'s parameters, compiled or interpreted."""
    params = getattr(kernel, "params", None)
    if params is not None:  # a JITFunction
        return ([p.name for p in params], [p.is_constexpr for p in params],
                tuple(not p.do_not_specialize for p in params))
    signature = inspect.signature(kernel.fn)  # an InterpretedFunction: read what its decorator was given
    names = list(signature.parameters)
    constexpr = ["constexpr" in str(p.annotation) for p in signature.parameters.values()]
    fixed = set(getattr(kernel, "kwargs", {}).get("do_not_specialize") or ())
    return names, constexpr, tuple(n not in fixed for n in names)


class Launcher:
    """``kernel`` with fixed constexprs and ``num_warps``; call it with ``(grid, *runtime_args)``.

    ``runtime_args`` are the kernel's non-constexpr arguments in order (its constexprs come last in
    every kernel of this package). Holds compiled binaries only, never tensors.
    """

    def __init__(self, kernel, constexprs: dict, num_warps: int):
        self.kernel = kernel
        self.constexprs = dict(constexprs)
        self.num_warps = num_warps
        names, constexpr, free = _parameters(kernel)
        order = [n for n, c in zip(names, constexpr) if c]
        if set(order) != set(self.constexprs):
            raise ValueError(f"{kernel.__name__}: constexprs {sorted(self.constexprs)} do not match the "
                             f"kernel's {order}")
        self.num_runtime = len(names) - len(order)
        if any(constexpr[:self.num_runtime]):
            raise ValueError(f"{kernel.__name__}: its constexpr parameters must come after the others")
        self.tail = tuple(self.constexprs[n] for n in order)  # constexpr values in parameter order
        self.specialised = free[:self.num_runtime]
        self.binaries: dict = {}
        self._lock = threading.Lock()

    def key(self, args) -> tuple:
        """The specialisation class of ``args`` (see the module text)."""
        out = []
        for value, spec in zip(args, self.specialised):
            if isinstance(value, torch.Tensor):
                out.append((value.dtype, value.data_ptr() % 16 == 0))
            elif isinstance(value, int):
                fits = _INT32[0] <= value <= _INT32[1]
                out.append((fits, value == 1, value % 16 == 0) if spec else fits)
            else:
                out.append(type(value))
        return tuple(out)

    def through_triton(self, grid: int, args):
        """Launch through Triton's own path (compiling the first time); returns the compiled kernel."""
        return self.kernel[(grid,)](*args, **self.constexprs, num_warps=self.num_warps)

    def __call__(self, grid: int, *args):
        """Launch; returns the binary kept for the arguments' class, or None where Triton launched it
        because no binary may be called directly (:func:`direct`)."""
        if len(args) != self.num_runtime:
            raise TypeError(f"{self.kernel.__name__} takes {self.num_runtime} runtime arguments, "
                            f"got {len(args)}")
        if not direct():
            self.through_triton(grid, args)
            return None
        key = (current_device(), self.key(args))
        binary = self.binaries.get(key)
        if binary is None:
            binary = self.through_triton(grid, args)
            with self._lock:
                self.binaries[key] = binary
            return binary
        if grid:  # Triton launches nothing for an empty grid either
            run_binary(binary, grid, current_stream(key[0]), args, self.tail)
        return binary


__all__ = ["Launcher", "current_device", "current_stream", "direct", "hooks_installed", "run_binary"]
