"""The dispatch kernels compile for an H100 (sm_90) on any machine, with the plans the op derives.

The interpreter runs code the compiler refuses (a scalar where a block is needed, a non-constexpr
shape), so this compiles every dispatch launch the op and the chain make, in a process of its own with
``TRITON_INTERPRET=0`` (Triton reads it at import), and checks what each compiled kernel must be.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_dispatch_kernels_compile_for_sm90():
    env = dict(os.environ, TRITON_INTERPRET="0", MOE_LAB_QUIET="1",
               PYTHONPATH=os.pathsep.join([str(HERE.parents[1]), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, str(HERE / "dispatch_compile.py")], capture_output=True, text=True,
                          env=env, timeout=900, cwd=HERE.parents[1])
    assert done.returncode == 0, done.stderr[-3000:]
    kernels = {k["kernel"]: k for k in map(json.loads, done.stdout.splitlines())}
    layouts = [k for name, k in kernels.items() if name.startswith(("layout_kernel", "block_layout_kernel"))]
    assert len(layouts) == 9, sorted(kernels)
    assert {"prefix_kernel", "scatter_kernel", "transpose_kernel"} <= set(kernels), sorted(kernels)
    for name, k in kernels.items():
        assert k["ptx_lines"] > 0, name
        assert "local (spills) 0 B" in k["resources"], f"{name} spills to local memory: {k['resources']}"
    for k in layouts:  # rows land by rank, never by an atomic: the same bits every run
        assert k["global_atomics"] == 0, k
        assert k["loads16"] > 0 and k["stores16"] > 0, k  # the fp8 rows move in 16-byte accesses
    assert kernels["scatter_kernel"]["global_atomics"] > 0  # the chain takes its rows with an atomic
