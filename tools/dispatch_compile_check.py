"""Compile the dispatch kernels for sm_90 on any machine (no GPU needed): catches what the
interpreter lets through but the compiler refuses. Prints each kernel's registers-free summary.

    TRITON_INTERPRET=0 python tools/dispatch_compile_check.py
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
from moe_lab.dispatch import chain, op

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


def main() -> int:
    i32, p = "i32", "*i32"
    jobs = {
        "rank_kernel": (op.rank_kernel,
                        {"ids_ptr": p, "adjusted_ptr": p, "index_ptr": p, "slot_list_ptr": p,
                         "rank_list_ptr": p, "hist_ptr": p, "num_total": i32, "start": i32,
                         "num_local": i32, "tile_len": i32, "RANK_BLOCK": "constexpr", "BINS": "constexpr"},
                        {"RANK_BLOCK": 128, "BINS": 32}),
        "layout_kernel": (op.layout_kernel,
                          {"adjusted_ptr": p, "index_ptr": p, "slot_list_ptr": p, "rank_list_ptr": p,
                           "hist_ptr": p, "x_ptr": "*u8", "x_stride": i32, "scales_ptr": "*fp32",
                           "s_stride0": i32, "s_stride1": i32, "rows_ptr": "*u8", "out_scales_ptr": "*fp32",
                           "scale_stride": i32, "count_ptr": p, "offsets_ptr": p, "m_ptr": p,
                           "num_tiles": i32, "num_local": i32, "rows_cap": i32, "hidden": i32,
                           "scale_cols": i32, "topk": i32, "align": i32, "tile_len": i32,
                           "BINS": "constexpr", "TABLE_ROWS": "constexpr", "COPY_COLS": "constexpr",
                           "COPY_ROWS": "constexpr", "COL_BLOCKS": "constexpr", "SCALE_BLOCK": "constexpr",
                           "FILL_ROWS": "constexpr", "FILL_BLOCK": "constexpr", "SKIP_PADDING": "constexpr"},
                          {"BINS": 32, "TABLE_ROWS": 64, "COPY_COLS": 1024, "COPY_ROWS": 4,
                           "COL_BLOCKS": 7, "SCALE_BLOCK": 64, "FILL_ROWS": 4096, "FILL_BLOCK": 1024,
                           "SKIP_PADDING": True}),
        "single_kernel": (op.single_kernel,
                          {"ids_ptr": p, "adjusted_ptr": p, "index_ptr": p, "list_ptr": p, "x_ptr": "*u8",
                           "x_stride": i32, "scales_ptr": "*fp32", "s_stride0": i32, "s_stride1": i32,
                           "rows_ptr": "*u8", "out_scales_ptr": "*fp32", "scale_stride": i32, "count_ptr": p,
                           "offsets_ptr": p, "m_ptr": p, "num_total": i32, "start": i32, "num_local": i32,
                           "rows_cap": i32, "hidden": i32, "scale_cols": i32, "topk": i32, "align": i32,
                           "SCAN": "constexpr", "CHUNK": "constexpr", "BINS": "constexpr",
                           "COPY_COLS": "constexpr", "COPY_ROWS": "constexpr", "COL_BLOCKS": "constexpr",
                           "SCALE_BLOCK": "constexpr", "FILL_ROWS": "constexpr", "FILL_BLOCK": "constexpr",
                           "SKIP_PADDING": "constexpr"},
                          {"SCAN": 1024, "CHUNK": 128, "BINS": 32, "COPY_COLS": 1024, "COPY_ROWS": 4,
                           "COL_BLOCKS": 7, "SCALE_BLOCK": 64, "FILL_ROWS": 4096, "FILL_BLOCK": 1024,
                           "SKIP_PADDING": True}),
        "prefix_kernel": (chain.prefix_kernel,
                          {"aligned_ptr": p, "start_ptr": p, "m_ptr": p, "num_local": i32,
                           "ALIGN": "constexpr", "BINS": "constexpr"}, {"ALIGN": 128, "BINS": 32}),
        "scatter_kernel": (chain.scatter_kernel,
                           {"num_tokens": i32, "topk": i32, "start_ptr": p, "adjusted_ptr": p, "x_ptr": "*u8",
                            "x_stride": i32, "scales_ptr": "*fp32", "s_stride0": i32, "s_stride1": i32,
                            "rows_ptr": "*u8", "out_scales_ptr": "*fp32", "index_ptr": p, "hidden": i32,
                            "scale_cols": i32, "HIDDEN_BLOCK": "constexpr", "SCALE_BLOCK": "constexpr"},
                           {"HIDDEN_BLOCK": 8192, "SCALE_BLOCK": 64}),
    }
    # the extremes of the launch rules: one local expert, 256 (one-hot tiles of 16 slots), packed scales
    for bins, rank_block, table, fill, scale in ((1, 256, 256, 1024, "*fp32"), (256, 16, 8, 1024, "*i32")):
        k, sig, consts = jobs["rank_kernel"]
        jobs[f"rank_kernel BINS={bins}"] = (k, sig, {**consts, "BINS": bins, "RANK_BLOCK": rank_block})
        k, sig, consts = jobs["layout_kernel"]
        jobs[f"layout_kernel BINS={bins} {scale}"] = (
            k, {**sig, "scales_ptr": scale, "out_scales_ptr": scale},
            {**consts, "BINS": bins, "TABLE_ROWS": table, "SCALE_BLOCK": 16,
             "SKIP_PADDING": False})
    for name, (kernel, sig, consts) in jobs.items():
        compiled = build(kernel, sig, consts)
        ptx = compiled.asm["ptx"]
        print(f"{name}: compiled for sm_90, {len(ptx.splitlines())} PTX lines, "
              f"{ptx.count('bar.sync')} bar.sync, {ptx.count('atom.')} atomics; {resources(compiled.asm['cubin'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
