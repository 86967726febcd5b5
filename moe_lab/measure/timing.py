"""The one timer of the project: how a GPU call is timed, in microseconds, eager or under graph replay.

    from moe_lab.measure import timing
    timing.require_gpu()                              # a clear error without a CUDA GPU
    median_us, p20_us, p80_us = timing.time_us(fn)                # the whole Python call
    median_us, p20_us, p80_us = timing.time_us(fn, mode="graph")  # CUDA-graph replay of it

``eager``: ``triton.testing.do_bench`` of single calls, as a user pays them (allocation and launch
included). At small sizes that measures the CPU's launch path, which now and then stalls for a
whole measurement window (one 8 us call once read 230 us), so the numbers returned are those of the
middle one of :data:`EAGER_REPEATS` independent ``do_bench`` runs (ranked by their median).
``graph``: ``triton.testing.do_bench_cudagraph``: the call captured in a CUDA graph and replayed,
which removes the CPU's launch cost and leaves the GPU's. ``bench``, the tools and every other
benchmark of the project time through :func:`time_us`, so a number means the same thing everywhere.

:func:`host_us` measures what an eager caller pays per call: the wall time of many back-to-back calls
with one synchronisation at the end, divided by the number of calls (the host's work, or the GPU's
where that is longer).
"""

from __future__ import annotations

import subprocess

from moe_lab import backend

MODES = ("eager", "graph")
EAGER_REPEATS = 3
"""Independent ``do_bench`` runs per eager timing; the middle one is reported."""
WARMUP_MS = 10
REP_MS = 40
QUANTILES = (0.5, 0.2, 0.8)


class GPURequiredError(RuntimeError):
    """Raised where a timing is asked for without a CUDA GPU."""


def require_gpu(what: str = "a timing") -> None:
    """Raise :class:`GPURequiredError` unless kernels run on a CUDA GPU.

    Under Triton's interpreter a timing measures Python, not the kernel, so nothing is timed there.
    """
    if not backend.has_gpu():
        raise GPURequiredError(
            f"{what} needs a CUDA GPU: under Triton's interpreter a timing measures Python, not the "
            f"kernel. Recorded GPU results are in data/bench/ (moe_lab.measure.results.load()).")


def driver_version() -> str:
    """The NVIDIA driver's version from nvidia-smi, or "unknown" where it cannot be asked."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    lines = out.stdout.strip().splitlines()
    return lines[0].strip() if out.returncode == 0 and lines else "unknown"


def _check(fn, mode) -> None:
    if not callable(fn):
        raise TypeError(f"time_us: fn must be a callable taking no arguments, got {type(fn).__name__} "
                        f"{fn!r}; wrap the call, e.g. time_us(lambda: run(ids, start, num_local))")
    if mode not in MODES:
        raise ValueError(f"time_us: mode must be one of {MODES}, got {mode!r}")


def time_us(fn, mode: str = "eager", rep_ms: float = REP_MS) -> tuple[float, float, float]:
    """``(median_us, p20_us, p80_us)`` of calls of ``fn()`` on the current GPU (see the module text).

    ``mode="graph"`` needs ``fn`` to be capturable in a CUDA graph (no host sync, no allocation
    that changes between calls); ``do_bench_cudagraph``'s error says so otherwise. ``rep_ms``: the
    milliseconds ``do_bench`` spends on each timing (a sweep of many configurations may pass less).
    """
    _check(fn, mode)
    require_gpu("time_us")
    from triton.testing import do_bench, do_bench_cudagraph

    if mode == "eager":
        runs = sorted(tuple(do_bench(fn, warmup=WARMUP_MS, rep=rep_ms, quantiles=list(QUANTILES)))
                      for _ in range(EAGER_REPEATS))
        ms = runs[len(runs) // 2]  # the middle run by median: one stalled window does not count
    else:
        ms = tuple(do_bench_cudagraph(fn, rep=rep_ms, quantiles=list(QUANTILES)))
    median, p20, p80 = (float(v) * 1e3 for v in ms)  # do_bench reports milliseconds
    return median, p20, p80


HOST_CALLS = 300
"""Back-to-back calls per :func:`host_us` repeat."""
HOST_REPEATS = 7
"""Repeats of :func:`host_us`; the quantiles are over these."""


def host_us(fn, calls: int = HOST_CALLS, repeats: int = HOST_REPEATS, *, gpu: bool = True
            ) -> tuple[float, float, float]:
    """``(median_us, p20_us, p80_us)`` of the wall time per call of ``calls`` back-to-back calls of
    ``fn()`` with one ``torch.cuda.synchronize()`` at the end (after a warm-up of the same length).

    ``gpu=False`` times a host path alone, on any machine and with no synchronisation: what
    ``tools/dispatch_host_profile.py --stubbed`` does with the kernel launches replaced by no-ops."""
    _check(fn, "eager")
    if gpu:
        require_gpu("host_us")
    import time

    import torch

    sync = torch.cuda.synchronize if gpu else (lambda: None)
    per_call = []
    for r in range(repeats + 1):
        sync()
        began = time.perf_counter()
        for _ in range(calls):
            fn()
        sync()
        if r:  # the first round is the warm-up
            per_call.append((time.perf_counter() - began) / calls * 1e6)
    per_call.sort()
    pick = [per_call[min(len(per_call) - 1, int(q * len(per_call)))] for q in QUANTILES]
    return pick[0], pick[1], pick[2]


__all__ = ["MODES", "EAGER_REPEATS", "GPURequiredError", "require_gpu", "driver_version", "time_us",
           "host_us", "HOST_CALLS", "HOST_REPEATS"]
