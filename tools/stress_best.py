"""Race hunt for the shipped best/one_launch: CUDA-graph replays with fresh data each time (GPU).

For several sizes, capture best.run with out-buffers in a graph, then replay it REPS times, each
time with new random ids copied into the static input and the outputs poisoned, and compare every
replay with the reference. Prints one line per size and exits 1 on any mismatch.
"""
import sys
import torch
import moe_lab
from moe_lab.stages import best, torch_ref

dev = torch.device("cuda")
bad_total = 0
for slots, num_local, reps in ((64, 32, 300), (4096, 32, 300), (8192, 32, 300), (100000, 32, 300),
                               (100000, 256, 200), (1 << 23, 32, 30)):
    n = max(1, slots // 8)
    static = torch.randint(-1, 8 * num_local, (n, 8), dtype=torch.int32, device=dev)
    adj = torch.empty_like(static)
    cnt = torch.empty(num_local, dtype=torch.int32, device=dev)
    best.run(static, 0, num_local, adjusted_out=adj, expert_count_out=cnt)  # warm-up before capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        best.run(static, 0, num_local, adjusted_out=adj, expert_count_out=cnt)
    bad = 0
    for _ in range(reps):
        static.copy_(torch.randint(-1, 8 * num_local, (n, 8), dtype=torch.int32, device=dev))
        adj.fill_(-7)
        cnt.fill_(-7)
        graph.replay()
        ra, rc = torch_ref.run(static, 0, num_local)
        bad += not (torch.equal(adj, ra) and torch.equal(cnt, rc))
    print(f"{torch.cuda.get_device_name()}: best via {best.choose(n * 8, num_local):10s} slots={n * 8:8d} "
          f"num_local={num_local:3d} replays={reps} mismatches={bad}", flush=True)
    bad_total += bad
sys.exit(1 if bad_total else 0)
