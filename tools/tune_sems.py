"""one_launch: cost of the atomics' memory ordering under CUDA-graph replay (GPU only; notes script)."""

import torch

import moe_lab  # noqa: F401  (chooses where kernels run before any is defined)
from moe_lab import routing
from moe_lab.measure import timing
from moe_lab.measure.sweep import Sweep
from moe_lab.stages import decode, one_launch, scalar_atomic, torch_ref

sweep = Sweep("tools/tune_sems.py")
dev = sweep.device
ids_all = routing.case("deepseek-v3", 1 << 14, ep_size=8).topk_ids.to(dev)


for slots in (8, 512, 1024, 2048, 4096, 8192, 16384, 65536):
    ids = (
        ids_all.view(-1)[:slots].view(-1, 8).contiguous()
        if slots <= ids_all.numel()
        else torch.randint(0, 256, (slots // 8, 8), dtype=torch.int32, device=dev)
    )
    adj = torch.empty_like(ids)
    cnt = torch.zeros(32, dtype=torch.int32, device=dev)
    ra, rc = torch_ref.run(ids, 0, 32)

    def sa():
        cnt.zero_()
        scalar_atomic.launch(ids, adj, cnt, 0, 32)

    sweep.record(slots=slots, config="scalar_atomic", us=timing.time_us(sa, "graph")[0])
    for w in (4, 8):

        def d():
            decode.launch(ids, adj, cnt, 0, 32, num_warps=w)

        sweep.record(slots=slots, config=f"decode w{w}", us=timing.time_us(d, "graph")[0])
    for add_sem, ticket_sem in (("acq_rel", "acq_rel"), ("relaxed", "acq_rel"), ("relaxed", "relaxed")):
        for block in (128, 256, 512, 1024):
            for w in (2, 4):

                def f():
                    one_launch.launch(
                        ids, adj, cnt, 0, 32, block=block, num_warps=w, ADD_SEM=add_sem, TICKET_SEM=ticket_sem
                    )

                cnt.fill_(-1)
                us = timing.time_us(f, "graph")[0]
                good = bool(torch.equal(adj, ra) and torch.equal(cnt, rc))
                sweep.record(slots=slots, config=f"ol {add_sem}/{ticket_sem} b{block} w{w}", us=us, ok=good)
sweep.write("sems.csv")
