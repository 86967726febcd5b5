"""Launch-parameter exploration for the histogram and decode kernels (GPU only).

Not part of the library: a notes script. It times launch configurations of block_histogram (tile size,
warps, persistent grid) and decode (tile, warps) against the device copy and scalar_atomic, and
writes a CSV to the folder given as argv[1]. `best`'s thresholds come from what this shows.
"""

import time

import torch
import triton

import moe_lab  # noqa: F401  (chooses where kernels run before any is defined)
from moe_lab import routing
from moe_lab.measure import timing
from moe_lab.measure.sweep import Sweep
from moe_lab.stages import block_histogram as bh
from moe_lab.stages import decode, relaxed, scalar_atomic

sweep = Sweep("tools/tune_gpu.py")
dev = sweep.device
print(torch.cuda.get_device_name(), torch.__version__, triton.__version__, flush=True)


t0 = time.time()
big = {
    d: routing.case("deepseek-v3", 1 << 20, distribution=d, ep_size=8, rank=0).topk_ids.to(dev)
    for d in ("uniform", "hot")
}
print("gen", time.time() - t0, flush=True)

# 1. large: copy floor, scalar_atomic, block_histogram configurations (8M slots, 32 local)
for dist, ids in big.items():
    start, nl = 0, 32
    dst = torch.empty_like(ids)
    sweep.record(part="large", dist=dist, config="copy",
                 us=timing.time_us(lambda: dst.copy_(ids), "eager")[0])
    adj = torch.empty_like(ids)
    cnt = torch.zeros(nl, dtype=torch.int32, device=dev)

    def sa():
        cnt.zero_()
        scalar_atomic.launch(ids, adj, cnt, start, nl)

    sweep.record(
        part="large",
        dist=dist,
        config="scalar_atomic",
        us=timing.time_us(sa, "eager")[0],
        ok=sweep.correct(ids, start, nl, adj, cnt),
    )

    def rl():
        cnt.zero_()
        relaxed.launch(ids, adj, cnt, start, nl)

    sweep.record(
        part="large",
        dist=dist,
        config="relaxed",
        us=timing.time_us(rl, "eager")[0],
        ok=sweep.correct(ids, start, nl, adj, cnt),
    )
    for block in (1024, 2048, 4096, 8192):
        for warps in (4, 8, 16):
            for pps in (0, 1, 2, 4, 8):

                def f():
                    cnt.zero_()
                    bh.launch(ids, adj, cnt, start, nl, block=block, num_warps=warps, programs_per_sm=pps)

                try:
                    us = timing.time_us(f, "eager")[0]
                except Exception as e:
                    sweep.record(part="large", dist=dist, config=f"bh b{block} w{warps} p{pps}",
                                 err=str(e)[:80])
                    continue
                sweep.record(
                    part="large",
                    dist=dist,
                    config=f"bh b{block} w{warps} p{pps}",
                    us=us,
                    ok=sweep.correct(ids, start, nl, adj, cnt),
                )

# 2. num_local sweep at 8M slots, uniform, default bh config vs scalar_atomic
ids = big["uniform"]
for nl in (1, 16, 32, 128, 256):
    adj = torch.empty_like(ids)
    cnt = torch.zeros(nl, dtype=torch.int32, device=dev)
    for name, fn in (("scalar_atomic", scalar_atomic.launch), ("bh", bh.launch)):

        def f():
            cnt.zero_()
            fn(ids, adj, cnt, 0, nl)

        sweep.record(
            part="num_local",
            dist="uniform",
            config=name,
            num_local=nl,
            us=timing.time_us(f, "eager")[0],
            ok=sweep.correct(ids, 0, nl, adj, cnt),
        )

# 3. small sizes under graph replay: decode configurations vs zeros+scalar_atomic vs zeros+bh
for slots in (8, 64, 512, 2048, 4096, 8192, 16384, 32768, 65536):
    ids = big["uniform"].view(-1)[:slots].view(-1, 8).contiguous()
    nl = 32
    adj = torch.empty_like(ids)
    cnt = torch.zeros(nl, dtype=torch.int32, device=dev)

    def z():
        cnt.zero_()

    sweep.record(part="small", slots=slots, config="zeros", us=timing.time_us(z, "graph")[0])
    dst = torch.empty_like(ids)
    sweep.record(part="small", slots=slots, config="copy",
                 us=timing.time_us(lambda: dst.copy_(ids), "graph")[0])

    def sa():
        cnt.zero_()
        scalar_atomic.launch(ids, adj, cnt, 0, nl)

    sweep.record(
        part="small",
        slots=slots,
        config="scalar_atomic",
        us=timing.time_us(sa, "graph")[0],
        ok=sweep.correct(ids, 0, nl, adj, cnt),
    )

    def sa2():
        cnt.zero_()
        relaxed.launch(ids, adj, cnt, 0, nl)

    sweep.record(
        part="small",
        slots=slots,
        config="relaxed",
        us=timing.time_us(sa2, "graph")[0],
        ok=sweep.correct(ids, 0, nl, adj, cnt),
    )
    for block in (1024, 2048, 4096):
        for pps in (0, 1):

            def f():
                cnt.zero_()
                bh.launch(
                    ids,
                    adj,
                    cnt,
                    0,
                    nl,
                    block=block,
                    num_warps=8 if block >= 2048 else 4,
                    programs_per_sm=pps,
                )

            sweep.record(
                part="small",
                slots=slots,
                config=f"zeros+bh b{block} p{pps}",
                us=timing.time_us(f, "graph")[0],
                ok=sweep.correct(ids, 0, nl, adj, cnt),
            )
    if slots <= 65536:
        for block in (256, 1024, 2048, 4096, 8192):
            if block > 4 * max(slots, 256):
                continue
            for warps in (1, 2, 4, 8, 16):

                def f():
                    decode.launch(ids, adj, cnt, 0, nl, block=block, num_warps=warps)

                cnt.fill_(7)
                try:
                    us = timing.time_us(f, "graph")[0]
                except Exception as e:
                    sweep.record(part="small", slots=slots, config=f"decode b{block} w{warps}",
                                 err=str(e)[:80])
                    continue
                sweep.record(
                    part="small",
                    slots=slots,
                    config=f"decode b{block} w{warps}",
                    us=us,
                    ok=sweep.correct(ids, 0, nl, adj, cnt),
                )

sweep.write("tune.csv")
print("done", time.time() - t0)
