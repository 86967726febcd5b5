"""Is the eager timing stable? Three repeats of a few stages with moe_lab.bench's eager timer (GPU)."""
import torch
import moe_lab
from moe_lab import bench, routing
from moe_lab.registry import STAGES

c = routing.case("deepseek-v3", 65536, ep_size=8)
ids_full = c.topk_ids.cuda()
for n in (1, 16, 256, 4096, 65536):
    ids = ids_full[:n].contiguous()
    for name in ("scalar_atomic", "one_launch", "best", "copy"):
        fn, _ = bench._callables(name, ids, c.start, c.num_local)
        meds = [bench._timer("eager")(fn) for _ in range(3)]
        print(f"n={n:6d} {name:14s} " + "  ".join(f"{m[0]*1e3:7.2f} [{m[1]*1e3:6.2f},{m[2]*1e3:6.2f}]" for m in meds), flush=True)
