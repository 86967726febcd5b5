"""decode: spread tl.histogram's shared-memory atomics over REP private copies of each bin (GPU; notes)."""
import os, sys
import torch, triton
import triton.language as tl
import moe_lab
import pandas as pd
from moe_lab import records, routing, timing
from moe_lab.stages import decode, scalar_atomic, torch_ref


@triton.jit
def decode_rep(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
               BLOCK: tl.constexpr, NUM_BINS: tl.constexpr, REP: tl.constexpr, DIV: tl.constexpr):
    counts = tl.zeros([NUM_BINS * REP], dtype=tl.int32)
    offs = tl.arange(0, BLOCK)
    for base in range(0, num_total, BLOCK):
        slot = base + offs
        valid = slot < num_total
        expert = tl.load(ids_ptr + slot, mask=valid, other=-1)
        local = (expert >= start) & (expert < start + num_local) & valid
        local_expert = tl.where(local, expert - start, -1)
        tl.store(adjusted_ptr + slot, local_expert, mask=valid)
        key = local_expert.to(tl.int32) * REP + (offs // DIV) % REP
        counts += tl.histogram(key, NUM_BINS * REP, mask=local)
    total = tl.sum(tl.reshape(counts, [NUM_BINS, REP]), axis=1)
    bins = tl.arange(0, NUM_BINS)
    tl.store(count_ptr + bins, total, mask=bins < num_local)


out_dir = sys.argv[1] if len(sys.argv) > 1 else "."
dev = torch.device("cuda")
rows = []
ids_all = {d: routing.case("deepseek-v3", 2048, distribution=d, ep_size=8).topk_ids.to(dev) for d in ("uniform", "hot")}


def rec(**kw):
    rows.append(kw)
    print(" ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in kw.items()), flush=True)


for dist, allids in ids_all.items():
    for slots in (512, 2048, 4096, 8192, 16384):
        ids = allids.view(-1)[:slots].view(-1, 8).contiguous()
        adj = torch.empty_like(ids); cnt = torch.zeros(32, dtype=torch.int32, device=dev)
        ra, rc = torch_ref.run(ids, 0, 32)
        def sa():
            cnt.zero_(); scalar_atomic.launch(ids, adj, cnt, 0, 32)
        rec(dist=dist, slots=slots, config="scalar_atomic", us=timing.time_us(sa, "graph")[0])
        def d():
            decode.launch(ids, adj, cnt, 0, 32)
        rec(dist=dist, slots=slots, config="decode", us=timing.time_us(d, "graph")[0])
        for block in (1024, 2048, 4096, 8192):
            if block > 2 * slots:
                continue
            for w in (4, 8, 16):
                for rep, div in ((1, 1), (4, 1), (8, 1), (32, 1), (8, 4), (32, 4), (32, 8)):
                    def f():
                        decode_rep[(1,)](ids, adj, cnt, ids.numel(), 0, 32, BLOCK=block, NUM_BINS=32, REP=rep, DIV=div, num_warps=w)
                    cnt.fill_(-1)
                    try:
                        us = timing.time_us(f, "graph")[0]
                    except Exception as e:
                        rec(dist=dist, slots=slots, config=f"rep{rep}/{div} b{block} w{w}", err=str(e)[:60]); continue
                    rec(dist=dist, slots=slots, config=f"rep{rep}/{div} b{block} w{w}", us=us, ok=bool(torch.equal(adj, ra) and torch.equal(cnt, rc)))
name = "decode_rep.csv"
path = records.write(pd.DataFrame(rows).assign(**records.provenance(), script="tools/tune_decode_rep.py"),
                     os.path.join(out_dir, name), records.TUNING)  # checked, then written whole
print("wrote", len(rows), "rows to", path, flush=True)
