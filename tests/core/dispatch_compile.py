"""Compile the dispatch kernels for sm_90 on any machine (no GPU needed): what the interpreter lets
through but the compiler refuses. Run in its own process by tests/core/test_dispatch_compile.py (the
compiler needs ``TRITON_INTERPRET=0`` before Triton is imported); prints one JSON line per kernel.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile

os.environ.setdefault("TRITON_INTERPRET", "0")

import triton
from triton.backends.compiler import GPUTarget

import moe_lab  # noqa: F401
from moe_lab.dispatch import blocks, kernels, launch
from moe_lab.measure import chain

TARGET = GPUTarget("cuda", 90, 32)


SPECIALISED = ("x_stride", "x_stride0", "hidden")
"""Integer arguments that are multiples of 16 at DeepSeek-V3 sizes and that Triton specialises on
(the token blocks take the hidden size at run time)."""


def build(kernel, signature, constexprs, num_warps: int = 4):
    """Compile as a launch would: pointers 16-byte aligned, the specialised strides multiples of 16."""
    aligned = [name for name, ty in signature.items() if ty.startswith("*") or name in SPECIALISED]
    attrs = {(kernel.arg_names.index(name),): [["tt.divisibility", 16]] for name in aligned}
    src = triton.compiler.ASTSource(fn=kernel, signature=signature, constexprs=constexprs, attrs=attrs)
    return triton.compile(src, target=TARGET, options={"num_warps": num_warps})


def resources(cubin: bytes) -> str:
    """Registers and spill bytes of a cubin, from the cuobjdump that ships with Triton."""
    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        out = subprocess.run([tool, "--dump-resource-usage", f.name], capture_output=True, text=True,
                             check=False).stdout
    found = re.search(r"REG:(\d+).*?STACK:(\d+).*?SHARED:(\d+).*?LOCAL:(\d+)", out)
    return (f"{found[1]} registers, stack {found[2]} B, shared {found[3]} B, local (spills) {found[4]} B"
            if found else "resource usage not found")


POINTERS = {"x_ptr": "*u8", "rows_ptr": "*u8", "scales_ptr": "*fp32", "out_scales_ptr": "*fp32"}
"""Pointer arguments that are not int32 (fp8 rows travel as bytes); every other ``*_ptr`` is ``*i32``."""


def signature(kernel, constexprs, scales="*fp32") -> dict:
    """Triton's signature of ``kernel``: pointers by name, constexprs by flag, other scalars i32."""
    sig = {}
    for param in kernel.params:
        name = param.name
        if param.is_constexpr:
            sig[name] = "constexpr"
        elif name.endswith("_ptr"):
            sig[name] = scales if "scales" in name else POINTERS.get(name, "*i32")
        else:
            sig[name] = "i32"
    missing = [n for n, t in sig.items() if t == "constexpr" and n not in constexprs]
    if missing:
        raise ValueError(f"{kernel.__name__}: no value for constexpr(s) {missing}")
    return sig


HIDDEN = 7168
"""DeepSeek-V3's hidden size."""


def shape_plan(num_tokens: int, num_local: int = 32, topk: int = 8, hidden: int = HIDDEN,
               packed: bool = False, graph_safe: bool = True, **override):
    """The plan :func:`moe_lab.dispatch.prepare_dispatch` takes for this shape (or a forced one)."""
    cols = (hidden // 128 + 3) // 4 if packed else hidden // 128
    return launch.plan(num_tokens, topk, num_local, hidden, cols, packed, 128, True, graph_safe, **override)


def main() -> int:
    import json

    jobs = {}
    shapes = ((64, 32, False, {}), (512, 32, False, {}), (1024, 32, False, {}), (512, 1, False, {}),
              (16, 256, True, {}), (512, 32, False, {"source": launch.FROM_IDS, "tile_tokens": 16}))
    for tokens, num_local, packed, override in shapes:
        p = shape_plan(tokens, num_local, packed=packed, **override)
        scales = "*i32" if packed else "*fp32"
        jobs[f"layout_kernel {tokens} tokens, {num_local} experts, {p.name}, tile {p.tile_tokens}, "
             f"scales {scales}"] = (kernels.layout_kernel, p.layout.constexprs, scales, p.layout.num_warps)
    for tokens, num_local, packed in ((4096, 32, False), (32768, 32, True), (4096, 256, False)):
        cols = (HIDDEN // 128 + 3) // 4 if packed else HIDDEN // 128
        bp = blocks.plan(tokens, 8, launch.bins_for(num_local), HIDDEN, cols, True,
                         tokens * 8 + num_local * 127)
        jobs[f"block_layout_kernel {tokens} tokens, {num_local} experts, {bp.block_tokens}-token blocks"] = (
            blocks.block_layout_kernel, bp.layout.constexprs, "*i32" if packed else "*fp32", 4)
    jobs["table_kernel (tile design)"] = (kernels.table_kernel, shape_plan(1024).table.constexprs, "*fp32", 4)
    jobs["table_kernel (token blocks)"] = (kernels.table_kernel, bp.table.constexprs, "*fp32", 4)
    for kernel, consts in ((chain.prefix_kernel, {"NUM_EXPERTS": 32, "BLOCK_E": 128, "BLOCK_EXPERTS": 32}),
                           (chain.scatter_kernel, {"TOPK": 8, "NUM_EXPERTS": 32, "HIDDEN": 7168,
                                                   "HIDDEN_PAD": 8192, "SCALE_COLS": 56, "SCALE_PAD": 64}),
                           (chain.transpose_kernel, {"SCALE_PAD": 64})):
        jobs[kernel.__name__] = (kernel, consts, "*fp32", 8 if kernel is not chain.transpose_kernel else 4)
    for name, (kernel, consts, scales, warps) in jobs.items():
        compiled = build(kernel, signature(kernel, consts, scales), consts, warps)
        ptx = compiled.asm["ptx"]
        atomics = ptx.count("atom.global") + ptx.count("red.global")
        loads = len(re.findall(r"ld[.]global[.a-z0-9_:]*[.]v4[.]b32", ptx))
        stores = len(re.findall(r"st[.]global[.a-z0-9_:]*[.]v4[.]b32", ptx))
        print(json.dumps({"kernel": name, "ptx_lines": len(ptx.splitlines()),
                          "bar_sync": ptx.count("bar.sync"), "loads16": loads, "stores16": stores,
                          "global_atomics": atomics,
                          "resources": resources(compiled.asm["cubin"])}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
