"""The dispatch layout on a GPU at DeepSeek-V3 EP8 sizes: exact, sync-free under graph capture (64
tokens take the single-launch path, 4096 the two-launch one),
the same bits on every replay, and independent across streams. Skipped without a CUDA GPU."""

from __future__ import annotations

import pytest
import torch

from moe_lab.dispatch import compare, prepare_dispatch, prepare_dispatch_reference
from moe_lab.dispatch.data import make_inputs

pytestmark = pytest.mark.gpu

HIDDEN, EXPERTS, TOPK, LOCAL, START = 7168, 256, 8, 32, 96


@pytest.mark.parametrize("tokens", [1, 127, 128, 129, 8192, 32768])
@pytest.mark.parametrize("packed", [False, True])
def test_deepseek_sizes_match_reference(tokens, packed):
    ids, x, scales = make_inputs(tokens, TOPK, EXPERTS, hidden=HIDDEN, packed=packed, pad_rows=tokens // 7,
                                 seed=tokens, device="cuda")
    want = prepare_dispatch_reference(ids, START, LOCAL, x, scales)
    for graph_safe in (False, True):
        got = prepare_dispatch(ids, START, LOCAL, x, scales, graph_safe=graph_safe)
        assert compare.problems(got, want, x, scales) == []


@pytest.mark.parametrize("tokens", [64, 4096])
def test_graph_capture_has_no_host_sync_and_replays_the_same_bits(tokens):
    ids, x, scales = make_inputs(tokens, TOPK, EXPERTS, hidden=HIDDEN, seed=tokens, device="cuda")
    want = prepare_dispatch_reference(ids, START, LOCAL, x, scales)
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        prepare_dispatch(ids, START, LOCAL, x, scales, graph_safe=True)  # warm-up: compile the kernels
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):  # a host read here would raise
        got = prepare_dispatch(ids, START, LOCAL, x, scales, graph_safe=True)
    snapshots = []
    for _ in range(3):
        graph.replay()
        torch.cuda.synchronize()
        assert compare.problems(got, want, x, scales) == []
        m = want["real"].numel()
        snapshots.append((got.output_index.clone(), got.m_indices.clone(),
                          got.rows[:m].view(torch.uint8)[want["real"]].clone()))
    for later in snapshots[1:]:
        assert all(torch.equal(a, b) for a, b in zip(snapshots[0], later))


def test_two_streams_at_once():
    inputs = [make_inputs(n, TOPK, EXPERTS, hidden=HIDDEN, seed=n, device="cuda") for n in (64, 8192)]
    wants = [prepare_dispatch_reference(i, START, LOCAL, x, s) for i, x, s in inputs]
    streams = [torch.cuda.Stream(), torch.cuda.Stream()]
    results = [[], []]
    torch.cuda.synchronize()
    for _ in range(20):
        for k in (0, 1):
            ids, x, scales = inputs[k]
            with torch.cuda.stream(streams[k]):
                results[k].append(prepare_dispatch(ids, START, LOCAL, x, scales, graph_safe=True))
    torch.cuda.synchronize()
    for k in (0, 1):
        ids, x, scales = inputs[k]
        for got in results[k]:
            assert compare.problems(got, wants[k], x, scales) == []
