"""Where an eager ``prepare_dispatch`` call spends its host time, piece by piece.

    python tools/dispatch_host_profile.py [TOKENS ...]                       # on a GPU machine
    python tools/dispatch_host_profile.py --stubbed [--profile] [TOKENS ...]   # anywhere: launches stubbed

On a GPU each line is :func:`moe_lab.measure.timing.host_us` (wall time per call of back-to-back calls,
one sync at the end) of one piece of the call, at DeepSeek-V3 EP8 sizes, beside the drop-in on the same
ids.

``--stubbed`` runs the same Python on CPU tensors with every kernel launch replaced by a no-op, as if
kernels were compiled: the op takes its GPU path (kept binaries called with addresses; the first launch
of an argument class "compiles" a stand-in binary), so what is timed is the host work alone (Python,
argument checks, allocation, views). A table launch writes plausible counts (2 per entry) so that
exact sizing sizes something; its host read is a CPU copy here (on a GPU it waits for the device). The
drop-in is timed with its launch stubbed. glibc is told to keep freed memory and to serve allocations
up to 2 GiB from it (no ``mmap`` per allocation): closer to the CUDA caching allocator than a fresh
``mmap`` each call. Also printed: the
torch operators one call runs (allocations, views, copies) and the launches it makes.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
from collections import Counter

import torch

import moe_lab
from moe_lab import launcher
from moe_lab.dispatch import call, inputs, launch, op
from moe_lab.dispatch.data import make_inputs
from moe_lab.measure import dispatch_bench as bench
from moe_lab.measure import timing
from moe_lab.stages import _launch

CALLS, REPEATS = 300, 7
"""Back-to-back calls per round, and rounds, of each piece."""
START, LOCAL, TOPK, HIDDEN = bench.START, bench.NUM_LOCAL, bench.TOPK, bench.HIDDEN


class Stub:
    """What :func:`stubbed` counts, and what a table launch writes: ``count`` in each of its first
    ``entries`` entries (None: all of them), 0 in the others. Change them at will."""

    def __init__(self, count: int):
        self.count, self.entries, self.launches, self.compiled = count, None, 0, 0


class _Binary:
    """Stands in for a compiled kernel: runs nothing, except that a table launch writes its table."""
    function = packed_metadata = None

    def __init__(self, owner, table_entries: int, key, stub: Stub):
        self.owner, self.key = owner, key  # the Launcher, and the class key of the arguments it "compiled"
        self.table_entries = table_entries  # per program (BINS), 0 for a layout launch
        self.stub = stub

    def run(self, grid, _y, _z, _stream, _function, _metadata, _launch_meta, _enter, _exit, *args):
        if self.table_entries:  # table_kernel(ids, table, num_total, start, num_local, num_tiles, ...)
            table = args[1] if isinstance(args[1], int) else args[1].data_ptr()
            n = self.table_entries * args[5]
            some = n if self.stub.entries is None else min(n, self.stub.entries)
            values = self.stub.count.to_bytes(4, "little") * some + bytes(4 * (n - some))
            ctypes.memmove(table, values, 4 * n)


@contextlib.contextmanager
def stubbed(count: int = 2):
    """Every dispatch launch and the drop-in's launch replaced by no-ops; yields a :class:`Stub` (a table
    launch writes ``stub.count`` in every entry)."""
    stub = Stub(count)
    touched = set()  # launchers that kept a stand-in binary: emptied of them on the way out

    def through_triton(self, grid, args):  # the first launch of a class: "compiled" once, then kept
        stub.compiled += 1
        touched.add(self)
        table = self.constexprs["BINS"] if "BY_TILE" in self.constexprs else 0
        binary = _Binary(self, table, self.key(args), stub)
        binary.run(grid, 1, 1, 0, None, None, None, None, None, *args)
        return binary

    def run_binary(binary, grid, stream, args, tail):
        stub.launches += 1
        binary.run(grid, 1, 1, stream, None, None, None, None, None, *args, *tail)

    def dropin_launch(*args):
        stub.launches += 1

    saved = [(launcher, n, getattr(launcher, n)) for n in ("direct", "current_device", "current_stream",
                                                            "run_binary")]
    saved += [(launcher.Launcher, "through_triton", launcher.Launcher.through_triton), (_launch, "launch",
                                                                                       _launch.launch)]
    launcher.direct, launcher.current_device = (lambda: True), (lambda: 0)
    launcher.current_stream, launcher.run_binary = (lambda device: 0), run_binary
    launcher.Launcher.through_triton, _launch.launch = through_triton, dropin_launch
    call.forget()  # plans made before kept no stand-in binaries
    try:
        yield stub
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)
        for held in touched:
            held.binaries = {k: b for k, b in held.binaries.items() if not isinstance(b, _Binary)}
        call.forget()


def keep_freed_memory() -> None:
    """glibc: no ``mmap`` per allocation and no trimming, so an allocation reuses freed memory."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        most = 2**31 - 1  # mallopt takes a C int
        libc.mallopt(-1, most)  # M_TRIM_THRESHOLD: freed memory stays with the process
        libc.mallopt(-3, most)  # M_MMAP_THRESHOLD: allocations up to 2 GiB come from the heap


def census(fn) -> Counter:
    """The torch operators one call of ``fn`` runs at the top level (``empty``, ``as_strided``...)."""
    from torch.profiler import profile

    with profile() as prof:
        fn()
    return Counter(e.name.removeprefix("aten::") for e in prof.events()
                   if e.cpu_parent is None and e.name.startswith("aten::"))


def stubbed_pieces(num_tokens: int) -> dict:
    """The timed pieces of one size (CPU tensors; call inside :func:`stubbed`)."""
    ids, x, scales = make_inputs(num_tokens, TOPK, bench.NUM_EXPERTS, hidden=HIDDEN, seed=num_tokens)
    timed = {"drop-in (launch stubbed)": lambda: moe_lab.recompute_topk_ids_sum_expert_count(ids, START,
                                                                                               LOCAL),
             "prepare_dispatch, graph-safe": lambda: op.prepare_dispatch(ids, START, LOCAL, x, scales,
                                                                          graph_safe=True),
             "prepare_dispatch, exact": lambda: op.prepare_dispatch(ids, START, LOCAL, x, scales)}
    a = inputs.check(ids, START, LOCAL, x, scales, 128, "expert", needs_triton=True)
    plan = call.make(a, ids, x, scales, False, True)
    rows = plan.rows_cap
    m_at, sc_at, stride, size = plan.tail(rows)
    buf = plan.buffer(size, None)
    timed.update({
        "  call.key + call.find": lambda: call.find(call.key(ids, LOCAL, x, scales, 128, "expert", True)),
        "  inputs.check (first call of a shape only)": lambda: inputs.check(ids, START, LOCAL, x, scales, 128,
                                                                           "expert", needs_triton=True),
        "  the buffer (graph-safe size)": lambda: plan.buffer(size, None),
        "  the outputs carved (views)": lambda: plan.carve(buf, rows, m_at, sc_at, stride),
        "  DispatchLayout": lambda: op.DispatchLayout(*range(8)),
    })
    return timed


def main_stubbed(sizes, profile: bool) -> int:
    keep_freed_memory()
    print(f"host path with launches stubbed, CPU tensors (torch {torch.__version__}); wall us per call, "
          f"median of {REPEATS} rounds of {CALLS} calls")
    with stubbed() as stub:
        for n in sizes:
            design = "token blocks" if launch.uses_blocks(n, TOPK, LOCAL) else "tile design"
            print(f"{n} tokens ({design})")
            for name, fn in stubbed_pieces(n).items():
                fn()  # the first call of a shape: checked in full, planned, binaries "compiled"
                stub.launches = 0
                ops = census(fn) if not name.startswith("  ") else Counter()
                launches = stub.launches
                us = timing.host_us(fn, calls=CALLS, repeats=REPEATS, gpu=False)[0]
                text = ", ".join(f"{k} {v}" for k, v in sorted(ops.items()))
                extra = f"   launches {launches}; {text}" if ops or launches else ""
                print(f"  {name:46} {us:8.1f}{extra}")
            if profile:
                _profile(n)
    return 0


def _profile(num_tokens: int) -> None:
    import cProfile
    import pstats

    ids, x, scales = make_inputs(num_tokens, TOPK, bench.NUM_EXPERTS, hidden=HIDDEN, seed=num_tokens)
    for graph_safe in (True, False):
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(2000):
            op.prepare_dispatch(ids, START, LOCAL, x, scales, graph_safe=graph_safe)
        prof.disable()
        print(f"  cProfile, graph_safe={graph_safe}, 2000 calls:")
        pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(12)


def gpu_pieces(num_tokens: int) -> dict:
    """The timed pieces of one size on the GPU."""
    ids, x, scales = bench.routed(num_tokens, seed=num_tokens)
    a = inputs.check(ids, START, LOCAL, x, scales, 128, "expert", needs_triton=True)
    plan = call.make(a, ids, x, scales, False, True)
    m_at, sc_at, stride, size = plan.tail(plan.rows_cap)
    buf = plan.buffer(size, None)
    return {
        "drop-in (recompute_topk_ids_sum_expert_count)":
            lambda: moe_lab.recompute_topk_ids_sum_expert_count(ids, START, LOCAL),
        "call.key + call.find": lambda: call.find(call.key(ids, LOCAL, x, scales, 128, "expert", True)),
        "inputs.check (first call of a shape only)": lambda: inputs.check(ids, START, LOCAL, x, scales, 128,
                                                                         "expert", needs_triton=True),
        "the buffer (one allocation)": lambda: plan.buffer(size, None),
        "the outputs carved (views)": lambda: plan.carve(buf, plan.rows_cap, m_at, sc_at, stride),
        "prepare_dispatch(graph_safe=True)": lambda: op.prepare_dispatch(ids, START, LOCAL, x, scales,
                                                                         graph_safe=True),
        "prepare_dispatch(graph_safe=False)": lambda: op.prepare_dispatch(ids, START, LOCAL, x, scales),
    }


def main(argv=None) -> int:
    args = list(argv if argv is not None else sys.argv[1:])
    stub, profile = "--stubbed" in args, "--profile" in args
    sizes = [int(t) for t in args if not t.startswith("--")] or [64, 4096]
    if stub:
        return main_stubbed(sizes, profile)
    timing.require_gpu("the host profile (or pass --stubbed)")
    for n in sizes:
        print(f"{n} tokens: wall us per call (median of {REPEATS} rounds of {CALLS} calls)")
        for name, fn in gpu_pieces(n).items():
            print(f"  {name:48} {timing.host_us(fn, calls=CALLS, repeats=REPEATS)[0]:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
