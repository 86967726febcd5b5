"""In a real Jupyter kernel: learner code that exits, sleeps or swallows the time-out ends its check with
a FAIL block, and the kernel stays alive (same process, still answering), printing nothing stray."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from moe_lab.workbook.exercises import isolate

REPO = Path(__file__).resolve().parents[2]

CELLS = [
    """import os, time
import triton, triton.language as tl
import moe_lab
from moe_lab.workbook.exercises import check, sandbox
sandbox.BUDGET_S = 2.0
pid = os.getpid()""",
    """EXIT = tl.constexpr(os._exit)

@triton.jit
def helper(what: tl.constexpr):
    what(7)

@triton.jit
def exits(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local, BLOCK: tl.constexpr):
    helper(EXIT)

print(check("masked_block", exits).status)""",
    """def swallows(topk):
    while True:
        try:
            time.sleep(0.01)
        except BaseException:
            pass

print(check("block_size", swallows).status)""",
    """def quits(topk):
    os._exit(5)

print(check("block_size", quits).status, os.getpid() == pid)""",
]


def test_a_jupyter_kernel_survives_hostile_learner_code():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from jupyter_client.kernelspec import KernelSpecManager

    if not isolate.ISOLATED:
        pytest.skip("checks run in a forked child on Linux only")
    names = KernelSpecManager().find_kernel_specs()
    kernel = "moe-lab" if "moe-lab" in names else "python3"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
               MOE_LAB_QUIET="1", TQDM_DISABLE="1")
    client = nbclient.NotebookClient(nb, kernel_name=kernel, timeout=300,
                                     resources={"metadata": {"path": str(REPO)}})
    with client.setup_kernel(env=env):  # shuts the kernel down afterwards, whatever happens
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
    texts = ["".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")
             for cell in nb.cells]
    errors = [o for cell in nb.cells for o in cell.outputs if o.get("output_type") == "error"]
    assert not errors, errors
    assert texts[1].strip() == "FAIL" and texts[2].strip() == "FAIL", texts
    assert texts[3].strip() == "FAIL True", texts
