"""How fast can one program stream the slots? decode with and without its histogram, against many programs.

Notebook 06 reads from the recorded sweeps that ``decode`` (one program) climbs with the slots while
multi-program kernels stay flat. This script measures the question directly, on a GPU, under CUDA-graph
replay, for 8 to 65,536 slots of DeepSeek-V3 routing (32 local experts, start 0):

* ``decode``: the library's one-program launch (remap, store, histogram, store the counts);
* ``stream_one``: the same one program with the histogram removed (remap and store only);
* ``stream_many``: the remap-and-store body with one program per tile (the whole GPU streams);
* ``copy``: ``torch`` device copy of the ids (the floor).

Every kernel's output is checked against the PyTorch reference before timing (``ok`` column), and the
script exits non-zero when a check fails. Writes ``$OUT/stream_experiment.csv`` (one row per kernel and
size, with the card and versions) and prints it. Run on a GPU machine:

    OUT=/tmp/out MOE_LAB_QUIET=1 python tools/stream_experiment.py
"""

from __future__ import annotations

import os
import sys

import torch
import triton
import triton.language as tl

SLOTS = (8, 64, 512, 2048, 4096, 8192, 16384, 32768, 65536)
NUM_LOCAL = 32
TOPK = 8


@triton.jit
def stream_kernel(ids_ptr, adjusted_ptr, num_total, start, num_local, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    for tile in range(pid, (num_total + BLOCK - 1) // BLOCK, tl.num_programs(0)):  # one program: every tile
        slot = tile * BLOCK + tl.arange(0, BLOCK)
        valid_slot = slot < num_total                                   # guard the last tile
        expert = tl.load(ids_ptr + slot, mask=valid_slot, other=-1)
        local = (expert >= start) & (expert < start + num_local) & valid_slot
        tl.store(adjusted_ptr + slot, tl.where(local, expert - start, -1), mask=valid_slot)  # no histogram


def main() -> int:
    if not torch.cuda.is_available():
        print("stream_experiment: needs a CUDA GPU (it times kernels); run it on a GPU machine",
              file=sys.stderr)
        return 2
    out_dir = os.environ.get("OUT")
    if not out_dir:
        print("stream_experiment: set OUT to a folder for the CSV, e.g. OUT=/tmp/out", file=sys.stderr)
        return 2
    os.makedirs(out_dir, exist_ok=True)
    import pandas as pd

    import moe_lab  # noqa: F401  (chooses the backend before any kernel is used)
    from moe_lab import routing
    from moe_lab.measure import records, timing
    from moe_lab.stages import decode, torch_ref

    dev = torch.device("cuda")
    ids_all = routing.case("deepseek-v3", max(SLOTS) // TOPK, ep_size=8, rank=0).topk_ids.to(dev)
    meta = {**records.provenance(), "script": "tools/stream_experiment.py"}
    rows, failed = [], []
    for slots in SLOTS:
        ids = ids_all.reshape(-1)[:slots].reshape(-1, TOPK).contiguous()
        want_adj, want_cnt = torch_ref.run(ids, 0, NUM_LOCAL)
        adjusted = torch.empty_like(ids)
        counts = torch.empty(NUM_LOCAL, dtype=torch.int32, device=dev)
        copy_out = torch.empty_like(ids)
        block = decode.tile_size(slots)

        # each callable binds this size's buffers as defaults, so it never sees the next iteration's
        def run_decode(ids=ids, adjusted=adjusted, counts=counts):
            decode.launch(ids, adjusted, counts, 0, NUM_LOCAL)

        def run_stream_one(ids=ids, adjusted=adjusted, slots=slots, block=block):
            stream_kernel[(1,)](ids, adjusted, slots, 0, NUM_LOCAL, BLOCK=block, num_warps=decode.NUM_WARPS)

        def run_stream_many(ids=ids, adjusted=adjusted, slots=slots):
            stream_kernel[(triton.cdiv(slots, 1024),)](ids, adjusted, slots, 0, NUM_LOCAL, BLOCK=1024,
                                                       num_warps=4)

        def run_copy(ids=ids, copy_out=copy_out):
            copy_out.copy_(ids)

        for name, fn, checks_counts in (("decode", run_decode, True), ("stream_one", run_stream_one, False),
                                        ("stream_many", run_stream_many, False), ("copy", run_copy, False)):
            adjusted.fill_(-7)
            counts.fill_(-7)
            fn()
            torch.cuda.synchronize()
            if name == "copy":
                ok = torch.equal(copy_out, ids)
            else:
                ok = torch.equal(adjusted, want_adj) and (not checks_counts or torch.equal(counts, want_cnt))
            us, _, _ = timing.time_us(fn, "graph")  # the project's one timer, CUDA-graph replay
            row = {"config": name, "us": round(us, 4), "ok": ok, "slots": slots, "num_local": NUM_LOCAL,
                   "part": "stream", **meta}
            rows.append(row)
            print(f"{slots:>6} slots  {name:<12} {us:8.3f} us  ok={ok}", flush=True)
            if not ok:
                failed.append(f"{name} at {slots} slots")
    path = records.write(pd.DataFrame(rows), os.path.join(out_dir, "stream_experiment.csv"), records.TUNING)
    print(f"wrote {path}")
    if failed:
        print("wrong results: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
