"""The dispatch layout on a GPU at DeepSeek-V3 EP8 sizes: exact on every launch plan, sync-free under
graph capture (64 tokens take one launch, 1024 two, 8192 the token blocks), the same bits on every replay,
independent across streams, exact through the kept binaries whatever the alignment of the inputs and
the row count;
the chain it replaces, up to row order. Skipped without a CUDA GPU."""

from __future__ import annotations

import pytest
import torch

from moe_lab.dispatch import blocks, compare, inputs, launch, op, prepare_dispatch, prepare_dispatch_reference
from moe_lab.dispatch.data import make_inputs
from moe_lab.measure import chain

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


@pytest.mark.parametrize("tokens", [64, 1024, 8192])
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


PLANS = [(launch.FROM_IDS, 1), (launch.FROM_IDS, 16), (launch.FROM_TABLE, 4), (launch.FROM_TABLE, 16),
         ("blocks", 4)]


@pytest.mark.parametrize("source,tile_tokens", PLANS)
def test_every_plan_at_deepseek_size(source, tile_tokens):
    ids, x, scales = make_inputs(1000, TOPK, EXPERTS, hidden=HIDDEN, pad_rows=50, seed=tile_tokens,
                                 device="cuda")
    want = prepare_dispatch_reference(ids, START, LOCAL, x, scales)
    a = inputs.check(ids, START, LOCAL, x, scales, 128, "expert", needs_triton=True)
    for graph_safe in (False, True):
        if source == "blocks":
            bp = blocks.plan(1000, TOPK, LOCAL, HIDDEN, a.scale_cols, False, 1000 * TOPK + LOCAL * 127)
            got = op.run_blocks(bp, ids, a, x, scales, graph_safe)
        else:
            p = launch.plan(1000, TOPK, LOCAL, HIDDEN, a.scale_cols, False, 128, False, graph_safe,
                            source=source, tile_tokens=tile_tokens)
            got = op.run(p, ids, a, x, scales, graph_safe)
        assert compare.problems(got, want, x, scales) == []


def test_cached_binaries_follow_the_alignment_of_the_inputs():
    """The same shape with inputs 16-byte aligned, then not (views 4 and 8 bytes in), then aligned again:
    each call takes a binary compiled for its class and is exact."""
    ids, x, scales = make_inputs(300, TOPK, EXPERTS, hidden=HIDDEN, seed=3, device="cuda")
    want = prepare_dispatch_reference(ids, START, LOCAL, x, scales)
    flat_ids = torch.empty(ids.numel() + 1, dtype=ids.dtype, device="cuda")
    flat_ids[1:] = ids.reshape(-1)
    odd_ids = flat_ids[1:].view(ids.shape)  # 4 bytes past an allocation's start
    flat_x = torch.empty(x.numel() + 8, dtype=torch.uint8, device="cuda")
    flat_x[8:] = x.view(torch.uint8).reshape(-1)
    odd_x = flat_x[8:].view(x.shape).view(torch.float8_e4m3fn)
    odd_scales = torch.empty(scales.shape[1], scales.shape[0], device="cuda").t()
    odd_scales.copy_(scales)  # column-major scales: strides (1, N)
    for graph_safe in (True, False):
        for args in ((ids, x, scales), (odd_ids, odd_x, odd_scales), (ids, odd_x, scales), (ids, x, scales)):
            got = prepare_dispatch(args[0], START, LOCAL, args[1], args[2], graph_safe=graph_safe)
            assert compare.problems(got, want, x, scales) == []


@pytest.mark.parametrize("tokens", [300, 2048])
def test_kept_binaries_as_the_rows_change(tokens):
    """One shape, exact sizing with align 1, routings whose row count M falls in every class Triton
    specialises an integer on (1, a multiple of 16, neither), starts of every class: each call after the
    first launches the kept binaries with addresses, and each is exact."""
    for pad in (0, tokens - 1, tokens - 2, 5, 0):
        ids, x, scales = make_inputs(tokens, TOPK, EXPERTS, hidden=HIDDEN, pad_rows=pad, seed=pad,
                                     device="cuda")
        if pad == tokens - 1:  # one local slot: M == 1
            ids[0] = torch.tensor([START] + [-1] * (TOPK - 1), dtype=ids.dtype)
        for start in (START, 1, 16):
            want = prepare_dispatch_reference(ids, start, LOCAL, x, scales, align=1)
            for graph_safe in (False, True):
                got = prepare_dispatch(ids, start, LOCAL, x, scales, align=1, graph_safe=graph_safe)
                assert compare.problems(got, want, x, scales) == [], (pad, start, graph_safe)


def test_threads_and_shapes_interleaved():
    import threading

    sizes = (64, 700, 3000)
    cases = [make_inputs(n, TOPK, EXPERTS, hidden=HIDDEN, seed=n, device="cuda") for n in sizes]
    wants = [prepare_dispatch_reference(i, START, LOCAL, x, s) for i, x, s in cases]
    errors = []

    def work(k):
        try:
            stream = torch.cuda.Stream()
            with torch.cuda.stream(stream):
                for r in range(6):
                    ids, x, scales = cases[(k + r) % len(cases)]
                    got = prepare_dispatch(ids, START, LOCAL, x, scales, graph_safe=bool(r % 2))
                    stream.synchronize()
                    found = compare.problems(got, wants[(k + r) % len(cases)], x, scales)
                    if found:
                        errors.append((k, r, found[0]))
        except Exception as err:  # noqa: BLE001 - reported below, with the thread's number
            errors.append((k, repr(err)))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


@pytest.mark.parametrize("tokens", [64, 4096])
def test_chain_matches_reference_up_to_row_order(tokens):
    ids, x, scales = make_inputs(tokens, TOPK, EXPERTS, hidden=HIDDEN, seed=tokens, device="cuda")
    want = prepare_dispatch_reference(ids, START, LOCAL, x, scales)
    assert compare.problems(chain.run(ids, START, LOCAL, x, scales), want, x, scales, ordered=False) == []
    aligned = (want["offsets"][1:] - want["offsets"][:-1]).to(torch.int32)
    bufs = chain.buffers(ids, LOCAL, x, scales, want["m_indices"].numel())
    graph = torch.cuda.CUDAGraph()
    chain.device_part(ids, START, LOCAL, x, scales, aligned, bufs)  # compile outside the capture
    chain.transpose(bufs)
    torch.cuda.synchronize()
    with torch.cuda.graph(graph):
        chain.device_part(ids, START, LOCAL, x, scales, aligned, bufs)
        chain.transpose(bufs)
    graph.replay()
    torch.cuda.synchronize()
    got = op.DispatchLayout(bufs["adjusted"], bufs["counts"], want["offsets"], bufs["index"],
                            bufs["m_indices"], bufs["rows"], bufs["gemm_scales"], want["m_indices"].numel())
    assert compare.problems(got, want, x, scales, ordered=False) == []
