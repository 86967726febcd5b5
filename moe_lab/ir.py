"""The code Triton generates for each stage, compiled for an H100 (sm_90) with no GPU needed.

``compile_ir("scalar_atomic", "ptx")`` returns the PTX of that stage's kernel exactly as a real
launch with int32 ids would build it (the same constexprs, warps and 16-byte pointer alignment that
Triton infers from a torch tensor). Levels: ``ttir`` (Triton IR), ``ttgir`` (with the GPU layout),
``llir`` (LLVM IR), ``ptx``. :func:`ir_diff` puts two stages side by side and :func:`atomic_lines`
picks out the atomics, which is what notebook 04 and the IR viewer compare.

Works without a GPU. Under the interpreter (``TRITON_INTERPRET=1``) Triton patches its own language
objects to run kernels in Python, which breaks compiling in the same process, so there the compile
runs in a short-lived subprocess with ``TRITON_INTERPRET=0`` (a few seconds; results are cached).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import subprocess
import sys

import torch
import triton

from .stages import block_histogram, decode, naive, one_launch, relaxed, row_loop, scalar_atomic, tl_full

LEVELS = ("ttir", "ttgir", "llir", "ptx")
_POINTER_ARGS = {"ids_ptr", "adjusted_ptr", "count_ptr", "scratch_ptr"}


def _kernel_spec(stage: str, topk: int, num_local: int):
    """``(kernel, constexprs, num_warps)`` of the kernel ``stage`` launches for top-``topk`` input."""
    bins = block_histogram.num_bins(num_local)
    specs = {
        "row_loop": (row_loop.row_loop_kernel, {"TOPK": topk, "TOKENS_PER_PROGRAM": row_loop.TOKENS_PER_PROGRAM}, 4),
        "naive": (naive.naive_kernel, {"TOKENS_PER_PROGRAM": naive.TOKENS_PER_PROGRAM}, 4),
        "tl_full": (tl_full.tl_full_kernel, {"BLOCK": tl_full.block_size(topk)}, 4),
        "scalar_atomic": (scalar_atomic.scalar_atomic_kernel, {"BLOCK": tl_full.block_size(topk)}, 4),
        "relaxed": (relaxed.relaxed_kernel, {"BLOCK": tl_full.block_size(topk)}, 4),
        "block_histogram": (block_histogram.block_histogram_kernel,
                            {"BLOCK": block_histogram.BLOCK, "NUM_BINS": bins, "WRITE_COUNTS": False},
                            block_histogram.NUM_WARPS),
        "decode": (block_histogram.block_histogram_kernel,
                   {"BLOCK": decode.tile_size(decode.MAX_SLOTS), "NUM_BINS": bins, "WRITE_COUNTS": True},
                   decode.NUM_WARPS),
        "one_launch": (one_launch.one_launch_kernel,
                       {"BLOCK": 1024, "NUM_BINS": bins, "TICKET": block_histogram.MAX_BINS,
                        "ADD_SEM": "relaxed", "TICKET_SEM": "acq_rel"}, 4),
    }
    if stage not in specs:
        raise ValueError(f"no single kernel to compile for stage {stage!r}; choose one of "
                         f"{', '.join(specs)} ('torch' has no Triton kernel, 'best' dispatches to "
                         f"decode or one_launch)")
    return specs[stage]


def _compile_here(stage, topk, num_local, dtype_name, arch, overrides):
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    kernel, constexprs, num_warps = _kernel_spec(stage, topk, num_local)
    constexprs = {**constexprs, **dict(overrides)}
    num_warps = constexprs.pop("num_warps", num_warps)
    id_type = {"int32": "*i32", "int64": "*i64"}[dtype_name]
    signature, attrs = {}, {}
    for index, name in enumerate(kernel.arg_names):
        if name in constexprs or kernel.params[index].is_constexpr:
            signature[name] = "constexpr"
        elif name in _POINTER_ARGS:
            signature[name] = id_type if name in ("ids_ptr", "adjusted_ptr") else "*i32"
            attrs[(index,)] = [["tt.divisibility", 16]]  # torch allocations are 16-byte aligned
        else:
            signature[name] = "i32"
    src = ASTSource(fn=kernel, signature=signature, constexprs=constexprs, attrs=attrs)
    compiled = triton.compile(src, target=GPUTarget("cuda", arch, 32), options={"num_warps": num_warps})
    return {level: compiled.asm[level] for level in LEVELS if level in compiled.asm}


def _compile_in_subprocess(jobs):
    """Compile each ``(stage, topk, num_local, dtype, arch, overrides)`` job in one fresh process."""
    env = {**os.environ, "TRITON_INTERPRET": "0", "MOE_LAB_QUIET": "1", "CUDA_VISIBLE_DEVICES": "",
           "TRITON_DEFAULT_FP_FUSION": os.environ.get("TRITON_DEFAULT_FP_FUSION", "1")}
    proc = subprocess.run([sys.executable, "-m", "moe_lab.ir", json.dumps(jobs)], env=env,
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(_failure([job[0] for job in jobs], jobs[0][4], proc.stderr))
    return json.loads(proc.stdout)


def _failure(stages, arch, text: str) -> str:
    """One line on why compiling ``stages`` failed, from Triton's message (or traceback)."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    reason = next((line.strip() for line in lines if "power of 2" in line), lines[-1].strip() if lines else "")
    return f"compiling {list(stages)} for sm_{arch} failed: {reason}"


_CACHE: dict[tuple, dict] = {}


def _key(stage, topk, num_local, dtype, arch, constexprs):
    dtype_name = {torch.int32: "int32", torch.int64: "int64"}.get(dtype)
    if dtype_name is None:
        raise ValueError(f"dtype must be torch.int32 or torch.int64, got {dtype}")
    _kernel_spec(stage, topk, num_local)  # unknown stage -> clear ValueError now
    return (stage, topk, num_local, dtype_name, arch, tuple(sorted(constexprs.items())))


def prefetch(stages, topk: int = 8, num_local: int = 32, dtype=torch.int32, arch: int = 90,
             **constexprs) -> None:
    """Compile several stages at once (one subprocess under the interpreter instead of one each)."""
    keys = [_key(s, topk, num_local, dtype, arch, constexprs) for s in stages]
    missing = [k for k in keys if k not in _CACHE]
    if not missing:
        return
    kernel = _kernel_spec(missing[0][0], topk, num_local)[0]
    if isinstance(kernel, triton.runtime.jit.JITFunction):
        from triton.compiler.errors import CompilationError

        for k in missing:
            try:
                _CACHE[k] = _compile_here(*k)
            except CompilationError as err:  # the same RuntimeError as the subprocess path raises
                raise RuntimeError(_failure([k[0]], k[4], str(err))) from err
    else:
        for k, asm in zip(missing, _compile_in_subprocess([[*k[:5], list(k[5])] for k in missing])):
            _CACHE[k] = asm


def compile_ir(stage: str, level: str = "ptx", topk: int = 8, num_local: int = 32,
               dtype=torch.int32, arch: int = 90, **constexprs) -> str:
    """Text of ``stage``'s kernel at ``level``, compiled for ``sm_<arch>`` (90 = H100/H200).

    Extra keyword arguments override the kernel's constexprs (e.g. ``BLOCK=170`` to see why a
    non-power-of-two block fails, ``num_warps=8``).
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    key = _key(stage, topk, num_local, dtype, arch, constexprs)
    prefetch([stage], topk, num_local, dtype, arch, **constexprs)
    return _CACHE[key][level]


def _strip(text: str, level: str) -> list[str]:
    """Lines worth comparing: no comments, debug sections, locations or blank lines."""
    if level == "ptx" and "\t.section\t.debug" in text:
        text = text[:text.index("\t.section\t.debug")]
    out = []
    for line in text.splitlines():
        if level == "ptx":
            if line.lstrip().startswith(("//", ".loc", ".file", "$L__")) or not line.strip():
                continue
        else:
            line = re.sub(r"\s*loc\((?:[^()]|\([^()]*\))*\)", "", line)
            if line.startswith("#loc") or not line.strip():
                continue
        out.append(line.rstrip())
    return out


def ir_diff(stage_a: str, stage_b: str, level: str = "ptx", context: int = 3, **kw) -> str:
    """Unified diff of two stages' code at ``level`` ('' when they are identical)."""
    a = _strip(compile_ir(stage_a, level, **kw), level)
    b = _strip(compile_ir(stage_b, level, **kw), level)
    a = [re.sub(stage_a + "_kernel", "KERNEL", line) for line in a]
    b = [re.sub(stage_b + "_kernel", "KERNEL", line) for line in b]
    return "\n".join(difflib.unified_diff(a, b, stage_a, stage_b, n=context, lineterm=""))


def atomic_lines(text: str) -> list[str]:
    """The atomic instructions in PTX (``atom.*`` / ``red.*``) or IR (``atomic_rmw`` etc.)."""
    pattern = re.compile(r"\b(atom|red)\.[\w.]+|atomic_rmw|atomicrmw|atomic_cas|atomic_xchg|tt\.histogram")
    return [line.strip() for line in text.splitlines() if pattern.search(line)
            and not line.lstrip().startswith("//")]


if __name__ == "__main__":  # the subprocess side of _compile_in_subprocess
    print(json.dumps([_compile_here(*job[:5], tuple(tuple(pair) for pair in job[5]))
                      for job in json.loads(sys.argv[1])]))
