"""The code Triton generates for each stage, compiled for an H100 (sm_90) with no GPU needed.

``compile_ir("scalar_atomic", "ptx")`` returns the PTX of that stage's kernel exactly as a real
launch with int32 ids would build it (the same constexprs, warps and 16-byte pointer alignment that
Triton infers from a torch tensor). Levels: ``ttir`` (Triton IR), ``ttgir`` (with the GPU layout),
``llir`` (LLVM IR), ``ptx``, and ``sass``, the machine code the GPU runs (the compile's cubin
disassembled with the ``cuobjdump`` that ships inside the Triton wheel). :func:`ir_diff` puts two
stages side by side, :func:`atomic_lines` picks out the atomics and :func:`atomic_context` the
instructions around each one (what an ``acq_rel`` atomic costs: fences and cache invalidations that
a ``relaxed`` one does without). :func:`resources` reads registers and shared memory from the cubin
and works out how many programs fit on an H100 SM at once.

Works without a GPU. Under the interpreter (``TRITON_INTERPRET=1``) Triton patches its own language
objects to run kernels in Python, which breaks compiling in the same process, so there the compile
runs in a short-lived subprocess with ``TRITON_INTERPRET=0`` (a few seconds; results are cached).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass

import torch
import triton

LEVELS = ("ttir", "ttgir", "llir", "ptx", "sass")
_TEXT_LEVELS = LEVELS[:-1]  # what triton.compile returns as text; sass comes from the cubin
_POINTER_ARGS = {"ids_ptr", "adjusted_ptr", "count_ptr", "scratch_ptr"}


def _kernel_spec(stage: str, topk: int, num_local: int, module: str | None = None):
    """``(kernel, constexprs, num_warps)`` of the kernel ``stage`` launches for top-``topk`` input.

    Read from the stage module's ``KERNEL`` (``module``: its import path, for a compile subprocess
    that has not seen a stage registered at run time), at the input size ``KERNEL.ir_slots``.
    """
    from moe_lab.registry import STAGES

    if module is not None:
        spec = getattr(importlib.import_module(module), "KERNEL", None)
    else:
        spec = STAGES[stage].kernel if stage in STAGES else None
    if spec is None:
        with_kernel = [name for name, s in STAGES.items() if s.single_kernel]
        raise ValueError(f"no single kernel to compile for stage {stage!r}; choose one of "
                         f"{', '.join(with_kernel)} ('torch' has no Triton kernel, 'best' dispatches to "
                         f"decode or one_launch)")
    plan = spec.plan(-(-spec.ir_slots // topk), topk, num_local, num_programs=1)  # the library's launch rule
    constexprs = dict(plan.constexprs)
    python_fn = getattr(spec.fn, "fn", spec.fn)  # compiled or interpreted, the Python function inside
    for name, param in inspect.signature(python_fn).parameters.items():
        # constexprs left at their defaults (one_launch's ADD_SEM, TICKET_SEM)
        if name not in constexprs and param.default is not inspect.Parameter.empty \
                and "constexpr" in str(param.annotation):
            constexprs[name] = param.default
    return spec.fn, constexprs, plan.num_warps


def _module_of(stage: str) -> str:
    from moe_lab.registry import stage as stage_entry

    entry = stage_entry(stage)
    return entry.module if "." in entry.module else f"moe_lab.stages.{entry.module}"


def _compile_here(stage, topk, num_local, dtype_name, arch, overrides, module=None):
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    kernel, constexprs, num_warps = _kernel_spec(stage, topk, num_local, module)
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
    out = {level: compiled.asm[level] for level in _TEXT_LEVELS if level in compiled.asm}
    meta = {"num_warps": num_warps, "shared": int(getattr(compiled.metadata, "shared", 0) or 0)}
    try:
        sass, usage = _disassemble(compiled.asm["cubin"])
        out["sass"] = sass
        meta.update(usage)
    except (RuntimeError, KeyError, OSError, subprocess.SubprocessError) as err:
        out["sass_error"] = str(err) or type(err).__name__  # raised when sass or resources are asked for
    out["meta"] = json.dumps(meta)
    return out


def tool(name: str) -> str:
    """Path of a CUDA binary tool (``cuobjdump``, ``ptxas``): the one inside the Triton wheel, else PATH."""
    here = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", name)
    if os.path.isfile(here) and os.access(here, os.X_OK):
        return here
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: it ships inside the triton wheel under "
                           f"triton/backends/nvidia/bin/ (looked in {os.path.dirname(here)}) or comes with "
                           f"the CUDA toolkit; install the triton wheel for your platform, or put {name} "
                           f"on PATH")
    return found


def _disassemble(cubin: bytes) -> tuple[str, dict]:
    """``(sass text, {"registers", "stack", "local"})`` of a cubin, through ``cuobjdump``."""
    cuobjdump = tool("cuobjdump")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "kernel.cubin")
        with open(path, "wb") as f:
            f.write(cubin)
        sass = subprocess.run([cuobjdump, "--dump-sass", path], capture_output=True, text=True, timeout=120)
        usage = subprocess.run([cuobjdump, "--dump-resource-usage", path], capture_output=True, text=True,
                               timeout=120)
    if sass.returncode or usage.returncode:
        raise RuntimeError(f"cuobjdump failed: {(sass.stderr or usage.stderr).strip()[:300]}")
    found = {key: re.search(rf"\b{key}:(\d+)", usage.stdout) for key in ("REG", "STACK", "LOCAL")}
    if found["REG"] is None:
        raise RuntimeError(f"cuobjdump printed no register count: {usage.stdout.strip()[:300]}")
    return _clean_sass(sass.stdout), {"registers": int(found["REG"].group(1)),
                                      "stack": int(found["STACK"].group(1)) if found["STACK"] else 0,
                                      "local": int(found["LOCAL"].group(1)) if found["LOCAL"] else 0}


def _clean_sass(text: str) -> str:
    """One instruction per line (``/*0040*/ IMAD.MOV.U32 R6, RZ, RZ, -0x1 ;``), encodings dropped."""
    out = []
    for line in text.splitlines():
        m = re.match(r"\s*(/\*[0-9a-f]{4,}\*/)\s+(.*?;)", line)
        if m:
            out.append(f"{m.group(1)} {m.group(2).strip()}")
        elif line.strip().startswith(("Function :", ".target", "code for")):
            out.append(line.strip())
    return "\n".join(out) + "\n"


def _compile_in_subprocess(jobs):
    """Compile each ``(stage, topk, num_local, dtype, arch, overrides)`` job in one fresh process."""
    env = {**os.environ, "TRITON_INTERPRET": "0", "MOE_LAB_QUIET": "1", "CUDA_VISIBLE_DEVICES": "",
           "TRITON_DEFAULT_FP_FUSION": os.environ.get("TRITON_DEFAULT_FP_FUSION", "1")}
    proc = subprocess.run([sys.executable, "-m", "moe_lab.inspection.ir", json.dumps(jobs)], env=env,
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(_failure([job[0] for job in jobs], jobs[0][4], proc.stderr))
    return json.loads(proc.stdout)


def _failure(stages, arch, text: str) -> str:
    """One line on why compiling ``stages`` failed, from Triton's message (or traceback)."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    last = lines[-1].strip() if lines else ""
    reason = next((line.strip() for line in lines if "power of 2" in line), last)
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
    prefetch_variants([(s, constexprs) for s in stages], topk, num_local, dtype, arch)


def prefetch_variants(variants, topk: int = 8, num_local: int = 32, dtype=torch.int32,
                      arch: int = 90) -> None:
    """Compile ``(stage, {constexpr: value})`` pairs at once, each with its own overrides."""
    keys = [_key(s, topk, num_local, dtype, arch, dict(c)) for s, c in variants]
    missing = [k for k in dict.fromkeys(keys) if k not in _CACHE]
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
        jobs = [[*k[:5], list(k[5]), _module_of(k[0])] for k in missing]
        for k, asm in zip(missing, _compile_in_subprocess(jobs)):
            _CACHE[k] = asm


def compile_ir(stage: str, level: str = "ptx", topk: int = 8, num_local: int = 32,
               dtype=torch.int32, arch: int = 90, **constexprs) -> str:
    """Text of ``stage``'s kernel at ``level``, compiled for ``sm_<arch>`` (90 = H100/H200).

    Extra keyword arguments override the kernel's constexprs (e.g. ``BLOCK=170`` to see why a
    non-power-of-two block fails, ``num_warps=8``).
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    asm = _compiled(stage, topk, num_local, dtype, arch, constexprs)
    if level == "sass" and "sass" not in asm:
        raise RuntimeError(f"no SASS for {stage!r}: {asm.get('sass_error', 'cuobjdump gave none')}")
    return asm[level]


def _compiled(stage, topk, num_local, dtype, arch, constexprs) -> dict:
    key = _key(stage, topk, num_local, dtype, arch, constexprs)
    prefetch([stage], topk, num_local, dtype, arch, **constexprs)
    return _CACHE[key]


# sm_90 (H100, H200) limits per SM, from the CUDA programming guide's table of compute capabilities
SM90 = {"registers": 65536, "shared_bytes": 228 * 1024, "threads": 2048, "programs": 32, "warps": 64}
REGISTER_UNIT = 256        # registers are handed to a warp in blocks of 256
RESERVED_SHARED = 1024     # shared memory the system keeps per resident program (sm_80 and later)


@dataclass(frozen=True)
class Resources:
    """What one program of a stage's kernel holds on an SM, and how many fit at once on an H100."""
    stage: str
    registers: int          # per thread
    shared_bytes: int       # per program (Triton's own; the system keeps RESERVED_SHARED more)
    num_warps: int
    spills: int             # bytes of local memory per thread (register spills): 0 is what you want
    limits: dict            # programs per SM allowed by each resource
    programs_per_sm: int
    limited_by: str

    @property
    def threads(self) -> int:
        return self.num_warps * 32

    @property
    def occupancy(self) -> float:
        """Resident warps over the 64 an sm_90 SM can hold."""
        return self.programs_per_sm * self.num_warps / SM90["warps"]

    def explain(self) -> str:
        regs_per_warp = -(-self.registers * 32 // REGISTER_UNIT) * REGISTER_UNIT
        return (f"{self.stage}: {self.num_warps} warps ({self.threads} threads) per program, "
                f"{self.registers} registers per thread ({regs_per_warp} per warp), "
                f"{self.shared_bytes} bytes of shared memory per program"
                f"{f', {self.spills} bytes spilled per thread' if self.spills else ''}. On an H100 SM: "
                f"registers allow {self.limits['registers']} programs, shared memory "
                f"{self.limits['shared memory']}, threads {self.limits['threads']}, the hardware cap "
                f"{self.limits['programs']}; so {self.programs_per_sm} programs run at once "
                f"(limited by {self.limited_by}), {self.occupancy:.0%} of the SM's 64 warp slots.")


def occupancy(registers: int, shared_bytes: int, num_warps: int) -> tuple[dict, int, str]:
    """``(programs allowed by each resource, programs per SM, the limiting resource)`` on sm_90."""
    regs_per_warp = -(-max(registers, 1) * 32 // REGISTER_UNIT) * REGISTER_UNIT
    limits = {
        "registers": (SM90["registers"] // regs_per_warp) // num_warps,
        "shared memory": SM90["shared_bytes"] // (shared_bytes + RESERVED_SHARED),
        "threads": SM90["threads"] // (num_warps * 32),
        "programs": SM90["programs"],
    }
    programs = min(limits.values())
    limited_by = " and ".join(name for name, n in limits.items() if n == programs)
    return limits, programs, limited_by


def resources(stage: str, topk: int = 8, num_local: int = 32, dtype=torch.int32, arch: int = 90,
              **constexprs) -> Resources:
    """Registers per thread, shared memory per program and warps of ``stage``'s kernel (compiled
    for ``sm_<arch>`` without a GPU), and the programs per SM they allow on an H100.

    Registers come from the cubin (``cuobjdump --dump-resource-usage``), shared memory from
    Triton's compile metadata. Each resource caps the programs resident on one SM: registers
    (65536 per SM, given out per warp in blocks of 256), shared memory (228 KB per SM, 1 KB of it
    kept by the system per program), threads (2048) and the hardware's 32 programs. The smallest cap
    wins; more resident programs means more loads in flight to hide memory latency.
    """
    asm = _compiled(stage, topk, num_local, dtype, arch, constexprs)
    meta = json.loads(asm["meta"])
    if "registers" not in meta:
        raise RuntimeError(f"no register count for {stage!r}: {asm.get('sass_error', 'cuobjdump gave none')}")
    limits, programs, limited_by = occupancy(meta["registers"], meta["shared"], meta["num_warps"])
    return Resources(stage, meta["registers"], meta["shared"], meta["num_warps"], meta["local"], limits,
                     programs, limited_by)


def _strip(text: str, level: str) -> list[str]:
    """Lines worth comparing: no comments, debug sections, locations or blank lines."""
    if level == "ptx" and "\t.section\t.debug" in text:
        text = text[:text.index("\t.section\t.debug")]
    out = []
    for line in text.splitlines():
        if level == "ptx":
            if line.lstrip().startswith(("//", ".loc", ".file", "$L__")) or not line.strip():
                continue
        elif level == "sass":
            line = re.sub(r"^/\*[0-9a-f]+\*/ ", "", line.strip())  # addresses shift with every change
            if not line:
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


_ATOMIC = re.compile(r"\b(atom|red)\.[\w.]+|atomic_rmw|atomicrmw|atomic_cas|atomic_xchg|tt\.histogram"
                     r"|\b(ATOMG|ATOMS|ATOM|REDG|RED|REDUX)\b")


def atomic_lines(text: str) -> list[str]:
    """The atomic instructions in SASS (``ATOMG``, ``RED``...), PTX (``atom.*`` / ``red.*``) or IR
    (``atomic_rmw`` etc.)."""
    return [line.strip() for line in text.splitlines() if _ATOMIC.search(line)
            and not line.lstrip().startswith("//")]


def atomic_context(text: str, before: int = 3, after: int = 3) -> list[str]:
    """The lines around each atomic of ``text`` (SASS or PTX), the atomic marked with ``>>``.

    Around an ``acq_rel`` atomic in SASS you find what the ordering costs: a ``MEMBAR`` (fence)
    before it, and after it a wait and a ``CCTL.IVALL`` (invalidate the L1 cache so later loads see
    other programs' writes); a ``relaxed`` atomic is a lone ``RED``/``ATOMG``. Overlapping windows
    are merged into one snippet.
    """
    for name, value in (("before", before), ("after", after)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be an int >= 0 (lines of context), got {value!r}")
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    hits = [i for i, line in enumerate(lines) if _ATOMIC.search(line) and not line.lstrip().startswith("//")]
    windows: list[list[int]] = []
    for i in hits:
        lo, hi = max(0, i - before), min(len(lines), i + after + 1)
        if windows and lo <= windows[-1][1]:
            windows[-1][1] = hi
        else:
            windows.append([lo, hi])
    return ["\n".join((">> " if j in hits else "   ") + lines[j].strip() for j in range(lo, hi))
            for lo, hi in windows]


if __name__ == "__main__":  # the subprocess side of _compile_in_subprocess
    print(json.dumps([_compile_here(*job[:5], tuple(tuple(pair) for pair in job[5]), job[6])
                      for job in json.loads(sys.argv[1])]))
