"""Is the eager timing stable? Three repeats of a few stages with the library's eager timer (GPU).

    python tools/eager_check.py
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's moe_lab

import moe_lab  # noqa: F401  (chooses where kernels run before the stages import triton)
from moe_lab import routing, timing
from moe_lab.registry import STAGES

timing.require_gpu()
case = routing.case("deepseek-v3", 65536, ep_size=8)
ids_full = case.topk_ids.cuda()
for n in (1, 16, 256, 4096, 65536):
    ids = ids_full[:n].contiguous()
    calls = {name: (lambda run=STAGES[name].run: run(ids, case.start, case.num_local))
             for name in ("scalar_atomic", "one_launch", "best")}
    calls["copy"] = lambda: ids.clone()  # the floor: the same bytes read and written once
    for name, fn in calls.items():
        repeats = [timing.time_us(fn, mode="eager") for _ in range(3)]
        print(f"n={n:6d} {name:14s} " + "  ".join(f"{m:7.2f} [{lo:6.2f},{hi:6.2f}]" for m, lo, hi in repeats),
              flush=True)
