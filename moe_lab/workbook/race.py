"""Store, then load what another thread stored, without a barrier: the smallest kernel that races.

``stale_kernel``: every program computes the exclusive prefix of the counts and *stores* all of it
(each thread stores its own lanes), then *loads* its own expert's entry with a scalar load. The
thread that loads is not, in general, the thread that stored that entry, and nothing orders the two:
on a GPU the load can return what the buffer held before (the previous call's value). A prefix kernel
of this shape once shipped in an inference engine; a fix added the barrier, and a later change took it out.
``fixed_kernel`` is the same with ``tl.debug_barrier()`` between the store and the load: every
thread of the program waits there until all stores of the program are done and visible to it.

The interpreter runs a program's lanes as one numpy array, one operation after another, so the race
cannot happen there: :func:`memory_ops` shows the difference in the compiled code instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import triton
import triton.language as tl


@triton.jit
def stale_kernel(count_ptr, start_ptr, out_ptr, num_local, BINS: tl.constexpr):
    expert = tl.program_id(0)
    bins = tl.arange(0, BINS)
    counts = tl.load(count_ptr + bins, mask=bins < num_local, other=0)
    starts = tl.cumsum(counts, axis=0) - counts  # exclusive prefix
    tl.store(start_ptr + bins, starts, mask=bins < num_local)  # each thread stores its lanes
    first = tl.load(start_ptr + expert)  # maybe another thread's lane: nothing says it is stored yet
    tl.store(out_ptr + expert, first)


@triton.jit
def fixed_kernel(count_ptr, start_ptr, out_ptr, num_local, BINS: tl.constexpr):
    expert = tl.program_id(0)
    bins = tl.arange(0, BINS)
    counts = tl.load(count_ptr + bins, mask=bins < num_local, other=0)
    starts = tl.cumsum(counts, axis=0) - counts
    tl.store(start_ptr + bins, starts, mask=bins < num_local)
    tl.debug_barrier()  # every thread's stores are done before any thread goes on
    first = tl.load(start_ptr + expert)
    tl.store(out_ptr + expert, first)


_SIGNATURE = {"count_ptr": "*i32", "start_ptr": "*i32", "out_ptr": "*i32", "num_local": "i32",
              "BINS": "constexpr"}
_KEEP = ("st.global", "ld.global", "bar.sync", "barrier.sync", "membar", "fence")


def _compile(names, arch):
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    out = {}
    for name in names:
        src = ASTSource(fn=globals()[name], signature=_SIGNATURE, constexprs={"BINS": 32})
        out[name] = triton.compile(src, target=GPUTarget("cuda", arch, 32)).asm["ptx"]
    return out


def ptx(names=("stale_kernel", "fixed_kernel"), arch: int = 90) -> dict:
    """The PTX of each kernel for ``sm_<arch>``, compiled without a GPU (in a subprocess under the
    interpreter, where Triton cannot compile in the same process)."""
    if os.environ.get("TRITON_INTERPRET", "0") in ("0", ""):
        return _compile(names, arch)
    code = (f"import json, moe_lab.workbook.race as r; "
            f"print(json.dumps(r._compile({list(names)!r}, {arch})))")
    env = {**os.environ, "TRITON_INTERPRET": "0", "MOE_LAB_QUIET": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300,
                          check=False)
    if done.returncode:
        raise RuntimeError(f"compiling {names} for sm_{arch} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def memory_ops(text: str) -> list[str]:
    """The global stores, global loads and barriers of a PTX text, in order, one short line each."""
    lines = []
    for line in text.splitlines():
        op = line.strip().split()
        if op and op[0].startswith("@"):  # a predicated instruction: the opcode comes second
            op = op[1:]
        if op and any(op[0].startswith(k) for k in _KEEP):
            word = op[0].split(".")[0]
            kind = {"st": "store (global)", "ld": "load (global)", "bar": "barrier", "barrier": "barrier"}
            label = kind.get(word, word)
            if not lines or lines[-1] != label:
                lines.append(label)
    return lines
