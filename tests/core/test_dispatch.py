"""The dispatch layout against its PyTorch reference, in the interpreter (small sizes) or on a GPU.

Every output is poisoned first (the scratch too), so a row or index the op never wrote shows up.
"""

from __future__ import annotations

import threading

import pytest
import torch

from moe_lab.dispatch import compare, op, prepare_dispatch, prepare_dispatch_reference
from moe_lab.dispatch.data import make_inputs
from moe_lab.inspection import hooks


@pytest.fixture(autouse=True)
def poisoned():
    old = op.POISON
    op.POISON = 0xA5
    yield
    op.POISON = old


def check(ids, x, scales, start, num_local, graph_safe=False, **kw):
    want = prepare_dispatch_reference(ids.cpu(), start, num_local, x.cpu(), scales.cpu(), **kw)
    got = prepare_dispatch(ids, start, num_local, x, scales, graph_safe=graph_safe, **kw)
    assert compare.problems(got, want, x, scales) == []
    return got, want


def test_worked_example(device):
    ids = torch.tensor([[3, 0], [-1, 3], [2, 3]], dtype=torch.int32, device=device)
    x = torch.arange(3 * 128, dtype=torch.int32).remainder(97).to(torch.uint8).view(3, 128)
    x = x.view(torch.float8_e4m3fn).to(device)
    scales = torch.tensor([[0.5], [1.5], [2.5]], device=device)
    got, _ = check(ids, x, scales, 2, 2, align=4, padding="skip")
    assert got.output_index.tolist() == [[4, -1], [-1, 5], [0, 6]]
    assert got.offsets.tolist() == [0, 4, 8]
    assert got.m_indices.tolist() == [0, -1, -1, -1, 1, 1, 1, -1]
    assert got.scales[:, 0].tolist()[4:7] == [0.5, 1.5, 2.5]


CASES = [  # (tokens, topk, experts in total, start, num_local, id dtype, packed scales, padding rows)
    (1, 8, 64, 0, 8, torch.int32, False, 0),
    (127, 6, 80, 20, 20, torch.int64, True, 0),
    (128, 1, 16, 8, 8, torch.int32, False, 0),
    (129, 8, 64, 8, 8, torch.int32, True, 9),
    (40, 8, 512, 256, 256, torch.int32, False, 3),
    (600, 8, 256, 32, 32, torch.int64, False, 100),
    (33, 2, 8, 5, 1, torch.int32, False, 0),
]


MODES = [("expert", False), ("skip", True)]


@pytest.mark.parametrize("tokens,topk,experts,start,num_local,dtype,packed,pad,padding,graph_safe", [
    pytest.param(*case, *mode, id=f"N{case[0]}-top{case[1]}-local{case[4]}-{mode[0]}")
    for case in CASES for mode in (MODES if case[4] < 256 else MODES[1:])])  # 256 experts: slow to interpret
def test_matches_reference(device, tokens, topk, experts, start, num_local, dtype, packed, pad, padding,
                           graph_safe):
    ids, x, scales = make_inputs(tokens, topk, experts, hidden=256 if packed else 128, packed=packed,
                                 id_dtype=dtype, pad_rows=pad, seed=tokens, device=device)
    got, want = check(ids, x, scales, start, num_local, padding=padding, graph_safe=graph_safe)
    assert got.adjusted_ids.dtype == dtype
    if graph_safe:
        assert got.num_rows is None and got.rows.shape[0] == ids.numel() + num_local * 127
    else:
        assert got.num_rows == want["m_indices"].numel()


def test_counts_at_block_boundaries(device):
    """Experts with exactly 128, 127, 129 and 256 slots: blocks of 128, 128, 256 and 256 rows."""
    experts = [0] * 128 + [1] * 127 + [2] * 129 + [3] * 256 + [-1] * 3
    perm = torch.randperm(len(experts), generator=torch.Generator().manual_seed(1))
    ids = torch.tensor(experts, dtype=torch.int32)[perm].view(-1, 1).to(device)
    x = torch.randint(0, 256, (ids.shape[0], 128), dtype=torch.uint8).view(torch.float8_e4m3fn).to(device)
    scales = torch.rand(ids.shape[0], 1).to(device)
    got, _ = check(ids, x, scales, 0, 4)
    assert got.offsets.tolist() == [0, 128, 256, 512, 768]


def test_all_padding(device):
    ids, x, scales = make_inputs(40, 8, 64, pad_rows=40, device=device)
    got, _ = check(ids, x, scales, 0, 8, graph_safe=True)
    assert got.expert_count.tolist() == [0] * 8 and got.offsets.tolist() == [0] * 9
    assert bool((got.m_indices == -1).all()) and bool((got.output_index == -1).all())


@pytest.mark.parametrize("align", [1, 4, 64])
def test_other_alignments(device, align):
    ids, x, scales = make_inputs(50, 6, 40, seed=align, device=device)
    check(ids, x, scales, 10, 10, align=align)


def test_layout_is_what_a_grouped_gemm_expects(device):
    """Each block starts on a multiple of align; inside it the real rows, then the padding rows."""
    ids, x, scales = make_inputs(300, 8, 64, seed=3, device=device)
    for padding in ("expert", "skip"):
        got = prepare_dispatch(ids, 16, 16, x, scales, padding=padding)
        offsets, counts, m = got.offsets.tolist(), got.expert_count.tolist(), got.m_indices.tolist()
        assert all(o % 128 == 0 for o in offsets) and offsets[-1] == len(m)
        for e in range(16):
            block = m[offsets[e]:offsets[e + 1]]
            pad = e if padding == "expert" else -1
            assert block == [e] * counts[e] + [pad] * (len(block) - counts[e])
        # DeepGEMM's check: MN-major scales whose column stride is M rounded up to 4 (16 bytes)
        assert got.scales.stride(0) == 1 and got.scales.stride(1) == (got.num_rows + 3) // 4 * 4


def test_same_bits_every_run(device):
    ids, x, scales = make_inputs(200, 8, 32, seed=5, device=device)
    a = prepare_dispatch(ids, 0, 8, x, scales, graph_safe=True)
    b = prepare_dispatch(ids, 0, 8, x, scales, graph_safe=True)
    for name in ("adjusted_ids", "expert_count", "offsets", "output_index", "m_indices", "rows", "scales"):
        ga, gb = getattr(a, name), getattr(b, name)
        assert torch.equal(ga.view(torch.uint8) if ga.dtype == torch.float8_e4m3fn else ga,
                           gb.view(torch.uint8) if gb.dtype == torch.float8_e4m3fn else gb), name


def test_empty_input(device):
    ids, x, scales = make_inputs(0, 8, 64, device=device)
    got, _ = check(ids, x, scales, 0, 8)
    assert got.num_rows == 0 and got.rows.shape == (0, 256)


def test_no_module_state():
    """Nothing a call leaves behind can reach another call: the op keeps no tensors between calls."""
    state = [n for n, v in vars(op).items()
             if not n.startswith("__") and isinstance(v, (torch.Tensor, dict, list, set))]
    assert state == []


@pytest.mark.skipif(not hooks.__dict__.get("hooked"), reason="needs moe_lab.inspection.hooks.hooked")
def test_interrupted_call_leaves_nothing_behind(device):
    if device.type != "cpu":
        pytest.skip("interrupts a kernel inside the interpreter")
    ids, x, scales = make_inputs(300, 8, 64, seed=7, device=device)
    stores = {"n": 0}
    store = hooks.original("create_masked_store")

    def stop_midway(*args, **kwargs):
        stores["n"] += 1
        if stores["n"] == 5:
            raise KeyboardInterrupt  # the Stop button, in the middle of the first launch
        return store(*args, **kwargs)

    with pytest.raises(KeyboardInterrupt), hooks.hooked(create_masked_store=stop_midway):
        prepare_dispatch(ids, 8, 8, x, scales)
    check(ids, x, scales, 8, 8)


def test_two_threads(device):
    inputs = [make_inputs(150, 8, 64, seed=s, device=device) for s in (11, 12)]
    wants = [prepare_dispatch_reference(i.cpu(), 16, 16, xx.cpu(), s.cpu()) for i, xx, s in inputs]
    results, errors = [None, None], []

    def work(k):
        try:
            for _ in range(2):
                ids, x, scales = inputs[k]
                results[k] = compare.problems(prepare_dispatch(ids, 16, 16, x, scales), wants[k], x, scales)
        except Exception as err:  # noqa: BLE001 - reported below, with the thread's number
            errors.append((k, err))

    threads = [threading.Thread(target=work, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and results == [[], []]


def _bad(device, **change):
    ids, x, scales = make_inputs(4, 2, 16, device=device)
    args = {"topk_ids": ids, "start": 0, "num_local": 8, "x": x, "scales": scales}
    args.update(change)
    return args


@pytest.mark.parametrize("change,error,text", [
    (lambda d, a: {"topk_ids": a["topk_ids"].float()}, TypeError, "topk_ids"),
    (lambda d, a: {"x": a["x"].view(torch.uint8)}, TypeError, "float8_e4m3fn"),
    (lambda d, a: {"x": a["x"][:3]}, ValueError, "num_tokens=4"),
    (lambda d, a: {"x": torch.zeros(4, 100, device=d).to(torch.float8_e4m3fn)}, ValueError,
     "multiple of 128"),
    (lambda d, a: {"scales": a["scales"].half()}, TypeError, "scales"),
    (lambda d, a: {"scales": a["scales"][:, :1]}, ValueError, "(4, 2)"),
    (lambda d, a: {"scales": torch.zeros(4, 2, dtype=torch.int32, device=d)}, ValueError, "packed"),
    (lambda d, a: {"align": 96}, ValueError, "power of two"),
    (lambda d, a: {"align": 0}, ValueError, "align"),
    (lambda d, a: {"padding": -1}, ValueError, "padding"),
    (lambda d, a: {"num_local": 0}, ValueError, "num_local"),
    (lambda d, a: {"num_local": 2048}, ValueError, "1024"),
    (lambda d, a: {"x": a["x"].t().contiguous().t()}, ValueError, "contiguous"),
])
def test_bad_input_is_refused(device, change, error, text):
    args = _bad(device)
    args.update(change(device, args))
    kw = {k: args.pop(k) for k in ("align", "padding") if k in args}
    with pytest.raises(error, match=None) as info:
        prepare_dispatch(args["topk_ids"], args["start"], args["num_local"], args["x"], args["scales"], **kw)
    assert text in str(info.value)


@pytest.mark.parametrize("tokens,topk,num_local", [(1, 8, 8), (129, 6, 20), (150, 8, 32)])
def test_chain_matches_reference_up_to_row_order(device, tokens, topk, num_local):
    from moe_lab.measure import chain

    ids, x, scales = make_inputs(tokens, topk, 4 * num_local, seed=tokens, device=device)
    want = prepare_dispatch_reference(ids.cpu(), num_local, num_local, x.cpu(), scales.cpu())
    got = chain.run(ids, num_local, num_local, x, scales)
    assert compare.problems(got, want, x, scales, ordered=False) == []


def test_unordered_compare_catches_a_wrong_row(device):
    from moe_lab.measure import chain

    ids, x, scales = make_inputs(60, 8, 32, seed=2, device=device)
    want = prepare_dispatch_reference(ids.cpu(), 8, 8, x.cpu(), scales.cpu())
    got = chain.run(ids, 8, 8, x, scales)
    got.rows.view(torch.uint8)[got.output_index[got.output_index >= 0][0]] ^= 1
    assert compare.problems(got, want, x, scales, ordered=False) == [
        "rows: a slot's row does not hold its token's bytes"]


@pytest.mark.parametrize("single_slots", [0, 1 << 20], ids=["two launches", "one launch"])
def test_both_graph_safe_paths(device, monkeypatch, single_slots):
    """Graph-safe calls take one launch up to launch.SINGLE_SLOTS slots, two above: both are exact."""
    from moe_lab.dispatch import launch

    monkeypatch.setattr(launch, "SINGLE_SLOTS", single_slots)
    ids, x, scales = make_inputs(300, 6, 60, hidden=256, packed=True, pad_rows=20, seed=9, device=device)
    check(ids, x, scales, 20, 20, graph_safe=True, padding="skip")
    check(ids, x, scales, 20, 20, graph_safe=True, align=16)
