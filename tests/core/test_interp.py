"""moe_lab.interp: what the library does inside Triton's interpreter, checked where it matters most."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


def test_jit_helpers_run_interpreted_when_kernels_are_compiled(tmp_path):
    """On a GPU machine kernels and helpers (``tl.sum``, ``tl.cumsum``, a learner's ``@triton.jit`` helper)
    are compiled JITFunctions; the checker still runs the kernel in the interpreter first. Simulated here
    with ``TRITON_INTERPRET=0`` (compiled-mode objects) and CPU tensors, in a fresh process."""
    code = textwrap.dedent("""
        import torch, triton, triton.language as tl
        import moe_lab
        from moe_lab import interp
        from moe_lab.workbook.exercises.stable_rank import stable_rank_kernel
        from moe_lab.workbook.exercises import check

        @triton.jit
        def twice(x):
            return x * 2

        @triton.jit
        def kernel(x_ptr, out_ptr, BLOCK: tl.constexpr):
            offs = tl.arange(0, BLOCK)
            x = tl.load(x_ptr + offs)
            tl.store(out_ptr + offs, twice(tl.cumsum(x, axis=0)) + tl.sum(x, axis=0))

        x = torch.arange(8, dtype=torch.int32)
        out = torch.empty_like(x)
        assert not isinstance(kernel, type(interp.interpreted(kernel)))  # compiled-mode objects here
        interp.interpreted(kernel)[(1,)](x, out, BLOCK=8)
        assert out.tolist() == (2 * torch.cumsum(x, 0) + x.sum()).tolist(), out
        assert check("stable_rank", stable_rank_kernel), "the shipped answer must pass"
        print("ok")
    """)
    script = tmp_path / "compiled_mode.py"  # @triton.jit needs its source in a file
    script.write_text(code)
    env = dict(os.environ, TRITON_INTERPRET="0", MOE_LAB_QUIET="1")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]
