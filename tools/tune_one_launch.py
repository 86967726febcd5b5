"""Exploration for the one_launch stage (GPU only): tile, warps, grid cap; plus a race stress test.

A notes script, like tune_gpu.py. Writes one_launch.csv into argv[1].
"""

import torch

import moe_lab  # noqa: F401  (chooses where kernels run before any is defined)
from moe_lab import routing
from moe_lab.measure import timing
from moe_lab.measure.sweep import Sweep
from moe_lab.stages import block_histogram as bh
from moe_lab.stages import decode, one_launch, scalar_atomic

sweep = Sweep("tools/tune_one_launch.py")
dev = sweep.device


big = {
    d: routing.case("deepseek-v3", 1 << 20, distribution=d, ep_size=8, rank=0).topk_ids.to(dev)
    for d in ("uniform", "hot")
}

# race stress: graph of one_launch replayed with fresh data each time
for slots in (64, 1000, 8192, 100000, 1 << 23):
    n = max(1, slots // 8)
    static = torch.randint(-1, 64, (n, 8), dtype=torch.int32, device=dev)
    adj = torch.empty_like(static)
    cnt = torch.empty(32, dtype=torch.int32, device=dev)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        one_launch.launch(static, adj, cnt, 0, 32)
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        one_launch.launch(static, adj, cnt, 0, 32)
    bad = 0
    reps = 200 if slots < 1 << 20 else 20
    for _ in range(reps):
        static.copy_(torch.randint(-1, 64, (n, 8), dtype=torch.int32, device=dev))
        cnt.fill_(-5)
        g.replay()
        bad += not sweep.correct(static, 0, 32, adj, cnt)
    sweep.record(part="stress", slots=slots, reps=reps, bad=bad)

for dist, ids in big.items():
    for nl in (32, 256) if dist == "uniform" else (32,):
        adj = torch.empty_like(ids)
        cnt = torch.zeros(nl, dtype=torch.int32, device=dev)
        dst = torch.empty_like(ids)
        sweep.record(
            part="large",
            dist=dist,
            nl=nl,
            config="copy",
            us=timing.time_us(lambda: dst.copy_(ids), "eager")[0],
        )

        def f():
            cnt.zero_()
            bh.launch(ids, adj, cnt, 0, nl, block=4096, num_warps=4, programs_per_sm=0)

        sweep.record(
            part="large",
            dist=dist,
            nl=nl,
            config="zeros+bh b4096 w4 p0",
            us=timing.time_us(f, "eager")[0],
            ok=sweep.correct(ids, 0, nl, adj, cnt),
        )
        for block in (1024, 2048, 4096, 8192):
            for warps in (4, 8):
                for pps in (2, 4, 8, 16, 64):

                    def f():
                        one_launch.launch(
                            ids, adj, cnt, 0, nl, block=block, num_warps=warps, programs_per_sm=pps
                        )

                    cnt.fill_(-3)
                    sweep.record(
                        part="large",
                        dist=dist,
                        nl=nl,
                        config=f"ol b{block} w{warps} p{pps}",
                        us=timing.time_us(f, "eager")[0],
                        ok=sweep.correct(ids, 0, nl, adj, cnt),
                    )

for slots in (8, 64, 512, 1024, 2048, 4096, 8192, 16384, 65536, 262144):
    ids = big["uniform"].view(-1)[:slots].view(-1, 8).contiguous()
    nl = 32
    adj = torch.empty_like(ids)
    cnt = torch.zeros(nl, dtype=torch.int32, device=dev)

    def sa():
        cnt.zero_()
        scalar_atomic.launch(ids, adj, cnt, 0, nl)

    sweep.record(part="small", slots=slots, config="scalar_atomic", us=timing.time_us(sa, "graph")[0])
    if slots <= 4096:

        def d():
            decode.launch(ids, adj, cnt, 0, nl)

        sweep.record(
            part="small",
            slots=slots,
            config="decode",
            us=timing.time_us(d, "graph")[0],
            ok=sweep.correct(ids, 0, nl, adj, cnt),
        )
    for block in (128, 256, 512, 1024, 2048, 4096):
        if block > 2 * max(slots, 128):
            continue
        for warps in (1, 2, 4, 8):
            for pps in (1, 4):

                def f():
                    one_launch.launch(ids, adj, cnt, 0, nl, block=block, num_warps=warps, programs_per_sm=pps)

                cnt.fill_(-3)
                sweep.record(
                    part="small",
                    slots=slots,
                    config=f"ol b{block} w{warps} p{pps}",
                    us=timing.time_us(f, "graph")[0],
                    ok=sweep.correct(ids, 0, nl, adj, cnt),
                )

sweep.write("one_launch.csv")
print("done")
