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
from moe_lab.dispatch import launch, op
from moe_lab.dispatch.launch import plan
from moe_lab.measure import chain

TARGET = GPUTarget("cuda", 90, 32)


def build(kernel, signature, constexprs):
    src = triton.compiler.ASTSource(fn=kernel, signature=signature, constexprs=constexprs)
    return triton.compile(src, target=TARGET)


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


def layout_constexprs(num_tokens: int, num_local: int = 32, topk: int = 8, hidden: int = 7168,
                      padding_skip: bool = True) -> dict:
    """The layout launch's constexprs exactly as :func:`moe_lab.dispatch.op` derives them."""
    from moe_lab.dispatch import inputs

    cap = inputs.max_rows(num_tokens * topk, num_local, 128)
    p = plan(num_tokens, topk, num_local, hidden, cap, single=num_tokens * topk <= launch.SINGLE_SLOTS)
    return {"SINGLE": p.single, "BLOCK_TOKENS": p.block_tokens, "KP": p.topk_p2, "BINS": p.bins,
            "COPY_COLS": p.copy_cols, "CHUNKS": p.chunks, "COL_BLOCKS": p.col_blocks,
            "SCALE_BLOCK": triton.next_power_of_2(hidden // 128), "TABLE_ROWS": p.table_rows,
            "SCAN": p.scan, "RANK_SLOTS": p.rank_slots, "FILL_ROWS": launch.FILL_ROWS,
            "FILL_BLOCK": p.fill_block, "SKIP_PADDING": padding_skip}


def main() -> int:
    import json

    jobs = {}
    for tokens, num_local, scales in ((64, 32, "*fp32"), (8192, 32, "*fp32"), (4096, 256, "*i32"),
                                      (512, 1, "*fp32")):
        consts = layout_constexprs(tokens, num_local)
        jobs[f"layout_kernel {tokens} tokens, {num_local} experts, scales {scales}"] = (
            op.layout_kernel, signature(op.layout_kernel, consts, scales), consts)
    table = {"BINS": 32, "SCAN": launch.SCAN}
    jobs["table_kernel"] = (op.table_kernel, signature(op.table_kernel, table), table)
    prefix = {"ALIGN": 128, "BINS": 32}
    jobs["prefix_kernel"] = (chain.prefix_kernel, signature(chain.prefix_kernel, prefix), prefix)
    scatter = {"HIDDEN_BLOCK": 8192, "SCALE_BLOCK": 64}
    jobs["scatter_kernel"] = (chain.scatter_kernel, signature(chain.scatter_kernel, scatter), scatter)
    for name, (kernel, sig, consts) in jobs.items():
        compiled = build(kernel, sig, consts)
        ptx = compiled.asm["ptx"]
        atomics = ptx.count("atom.global") + ptx.count("red.global")
        print(json.dumps({"kernel": name, "ptx_lines": len(ptx.splitlines()), "global_atomics": atomics,
                          "resources": resources(compiled.asm["cubin"])}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
