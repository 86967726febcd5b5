"""decode: tl.histogram (shared-memory atomics) versus a one-hot register reduction (GPU; notes script)."""

import torch
import triton
import triton.language as tl

import moe_lab  # noqa: F401  (chooses where kernels run before any is defined)
from moe_lab import routing
from moe_lab.measure import timing
from moe_lab.measure.sweep import Sweep
from moe_lab.stages import decode, scalar_atomic, torch_ref


@triton.jit
def decode_onehot(
    ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local, BLOCK: tl.constexpr, NUM_BINS: tl.constexpr
):
    counts = tl.zeros([NUM_BINS], dtype=tl.int32)
    bins = tl.arange(0, NUM_BINS)
    for base in range(0, num_total, BLOCK):
        slot = base + tl.arange(0, BLOCK)
        valid = slot < num_total
        expert = tl.load(ids_ptr + slot, mask=valid, other=-1)
        local = (expert >= start) & (expert < start + num_local) & valid
        local_expert = tl.where(local, expert - start, -1)
        tl.store(adjusted_ptr + slot, local_expert, mask=valid)
        counts += tl.sum((local_expert[:, None] == bins[None, :]).to(tl.int32), axis=0)
    tl.store(count_ptr + bins, counts, mask=bins < num_local)


sweep = Sweep("tools/tune_decode.py")
dev = sweep.device
ids_all = {
    d: routing.case("deepseek-v3", 2048, distribution=d, ep_size=8).topk_ids.to(dev)
    for d in ("uniform", "hot")
}


for dist, allids in ids_all.items():
    for slots in (8, 512, 1024, 2048, 4096, 8192, 16384):
        ids = allids.view(-1)[:slots].view(-1, 8).contiguous()
        adj = torch.empty_like(ids)
        cnt = torch.zeros(32, dtype=torch.int32, device=dev)
        ra, rc = torch_ref.run(ids, 0, 32)

        def sa():
            cnt.zero_()
            scalar_atomic.launch(ids, adj, cnt, 0, 32)

        sweep.record(dist=dist, slots=slots, config="scalar_atomic", us=timing.time_us(sa, "graph")[0])

        def d():
            decode.launch(ids, adj, cnt, 0, 32, num_warps=8)

        sweep.record(dist=dist, slots=slots, config="decode w8", us=timing.time_us(d, "graph")[0])
        for block in (128, 256, 512, 1024, 2048):
            if block > 2 * max(slots, 128):
                continue
            for w in (2, 4, 8, 16):

                def f():
                    decode_onehot[(1,)](
                        ids, adj, cnt, ids.numel(), 0, 32, BLOCK=block, NUM_BINS=32, num_warps=w
                    )

                cnt.fill_(-1)
                us = timing.time_us(f, "graph")[0]
                sweep.record(
                    dist=dist,
                    slots=slots,
                    config=f"onehot b{block} w{w}",
                    us=us,
                    ok=bool(torch.equal(adj, ra) and torch.equal(cnt, rc)),
                )
sweep.write("decode.csv")
