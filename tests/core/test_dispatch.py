"""The dispatch layout against its PyTorch reference, in the interpreter (small sizes) or on a GPU.

Every output is poisoned first (the scratch too), so a row or index the op never wrote shows up.
"""

from __future__ import annotations

import threading

import pytest
import torch

from moe_lab.dispatch import blocks, call, compare, inputs, launch, op, prepare_dispatch
from moe_lab.dispatch.data import make_inputs
from moe_lab.dispatch.reference import prepare_dispatch_reference
from moe_lab.inspection import hooks
from moe_lab.launcher import Launcher


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
    """Nothing a call leaves behind can reach another call: the op keeps no tensors between calls, and
    its caches (plans per shape, compiled kernels per specialisation) hold numbers and binaries only."""
    state = [n for n, v in vars(op).items()
             if not n.startswith("__") and isinstance(v, (torch.Tensor, dict, list, set))]
    assert state == []
    p = launch.plan(50, 8, 16, 256, 2, False, 128, False, True)
    bp = blocks.plan(5000, 8, 16, 256, 2, False, 5000 * 8 + 16 * 127)
    for launcher in (p.table, p.layout, bp.table, bp.layout):
        held = [*launcher.constexprs.values(), *launcher.tail, *launcher.binaries.values()]
        assert not any(isinstance(v, torch.Tensor) for v in held)
    assert all(isinstance(v, (int, bool, Launcher)) for q in (p, bp) for v in vars(q).values())


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


SOURCES = [launch.FROM_IDS, launch.FROM_TABLE, "blocks"]


@pytest.mark.parametrize("source", SOURCES, ids=["one launch", "two launches", "token blocks"])
@pytest.mark.parametrize("graph_safe", [False, True], ids=["exact", "graph-safe"])
def test_every_launch_plan_is_exact(device, source, graph_safe):
    """Whatever the rules choose for a shape, each source of the totals and tile size gives the reference."""
    ids, x, scales = make_inputs(300, 6, 60, hidden=256, packed=True, pad_rows=20, seed=9, device=device)
    for tile_tokens, align, padding in ((1, 128, "skip"), (4, 16, "expert"), (16, 128, "expert")):
        a = inputs.check(ids, 20, 20, x, scales, align, padding, needs_triton=True)
        want = prepare_dispatch_reference(ids.cpu(), 20, 20, x.cpu(), scales.cpu(), align=align,
                                          padding=padding)
        if source == "blocks":
            bp = blocks.plan(300, 6, 32, 256, a.scale_cols, padding == "skip", 300 * 6 + 20 * (align - 1))
            got = op.run_blocks(bp, ids, a, x, scales, graph_safe)
        else:
            p = launch.plan(300, 6, 20, 256, a.scale_cols, True, align, padding == "skip", graph_safe,
                            source=source, tile_tokens=tile_tokens)
            got = op.run(p, ids, a, x, scales, graph_safe)
        assert compare.problems(got, want, x, scales) == [], (tile_tokens, align, padding)


def test_the_rules_route_by_size():
    """Small calls take the tile design (one launch when graph-safe), large ones the token blocks."""
    assert launch.choose(64, 8, 32, True)[0] == launch.FROM_IDS
    assert launch.choose(64, 8, 32, False)[0] == launch.FROM_TABLE
    assert not launch.uses_blocks(1024, 8, 32) and launch.uses_blocks(1025, 8, 32)
    assert launch.uses_blocks(64, 8, 256)  # many experts: the table of 16-token tiles would be too large


def test_shapes_interleaved_reuse_their_plans(device):
    """Calls of two shapes and both modes, interleaved: each exact, each shape's plan computed once and
    its call plan found by every later call."""
    cases = [make_inputs(n, 8, 64, seed=n, pad_rows=n // 5, device=device) for n in (33, 70)]
    wants = [prepare_dispatch_reference(i.cpu(), 8, 8, xx.cpu(), s.cpu()) for i, xx, s in cases]
    launch.plan.cache_clear()
    call.forget()
    for _ in range(2):
        for (ids, x, scales), want in zip(cases, wants):
            for graph_safe in (True, False):
                got = prepare_dispatch(ids, 8, 8, x, scales, graph_safe=graph_safe)
                assert compare.problems(got, want, x, scales) == []
    info = launch.plan.cache_info()
    assert info.misses == 4 and info.hits == 0  # 2 shapes x 2 modes planned once; later calls: call plans
    assert call.kept() == 4


def test_launcher_refuses_what_it_cannot_launch():
    from moe_lab.dispatch import kernels

    with pytest.raises(ValueError, match="constexprs"):
        Launcher(kernels.table_kernel, {"BINS": 32, "EXTRA": 1}, 4)
    with pytest.raises(TypeError, match="7 runtime arguments, got 2"):
        Launcher(kernels.table_kernel, {"BINS": 32, "SCAN": 64, "BY_TILE": False}, 4)(
            1, torch.zeros(4, dtype=torch.int32), 1)


def test_launcher_key_separates_what_triton_specialises_on():
    """A binary is reused only for arguments of its class: pointer alignment, dtype, int value class."""
    from moe_lab.dispatch import kernels

    lay = launch.plan(64, 8, 32, 256, 2, False, 128, False, True).layout
    base = torch.zeros(64, dtype=torch.int32)
    args = [base] * 7 + [base.view(torch.uint8), 256, base, 2, 1, base, base, 2048, 64, 96, 32, 16, 4096]
    key = lay.key(args)
    assert lay.key(args) == key
    shifted = list(args)
    shifted[0] = base[1:]  # 4 bytes off a 16-byte boundary
    assert lay.key(shifted) != key
    wide = list(args)
    wide[0] = base.long()
    assert lay.key(wide) != key
    stride = list(args)
    stride[8] = 264  # x_stride is specialised: a multiple of 16 or not is another binary
    assert lay.key(stride) != key
    tokens = list(args)
    tokens[15] = 65  # num_tokens is not specialised: any value shares the binary
    assert lay.key(tokens) == key
    assert kernels.layout_kernel is lay.kernel




def test_launch_hooks_are_seen_only_when_installed():
    """Triton keeps its launch hooks in chains that always exist: empty means none installed."""
    import triton

    from moe_lab import launcher

    runtime = triton.knobs.runtime
    assert launcher.hooks_installed() is False

    def hook(metadata):
        return None

    runtime.launch_enter_hook.add(hook)
    try:
        assert launcher.hooks_installed() is True
    finally:
        runtime.launch_enter_hook.remove(hook)
    assert launcher._installed(None) is False and launcher._installed(hook) is True


def test_cached_binary_is_launched_as_triton_launches_it(monkeypatch):
    """After the first launch of a class, the binary Triton returned is called directly, with Triton's
    own argument order (grid, stream, function, metadata, no launch metadata, no hooks, every argument)."""
    from moe_lab import launcher
    from moe_lab.dispatch import kernels

    calls = []

    class Binary:
        function, packed_metadata = "function", ("metadata",)

        def run(self, *args):
            calls.append(args)

    monkeypatch.setattr(launcher.backend, "INTERPRETER", False)
    monkeypatch.setattr(launcher, "current_device", lambda: 0)
    monkeypatch.setattr(launcher, "current_stream", lambda device: 1234)
    lay = Launcher(kernels.table_kernel, {"BINS": 32, "SCAN": 64, "BY_TILE": False}, 4)
    first = []  # the kernel's first launch of a class: through Triton, which returns the binary
    lay.kernel = type("K", (), {"__getitem__": lambda self, grid: lambda *a, **k: first.append((grid, a, k))
                                or Binary()})()
    ids, table = torch.zeros(16, dtype=torch.int32), torch.zeros(64, dtype=torch.int32)
    lay(2, ids, table, 16, 0, 8, 2, 8)  # the first launch of this class goes through Triton
    assert first == [((2,), (ids, table, 16, 0, 8, 2, 8), {"BINS": 32, "SCAN": 64, "BY_TILE": False,
                                                           "num_warps": 4})]
    lay(3, ids, table, 16, 0, 8, 2, 8)
    assert calls == [(3, 1, 1, 1234, "function", ("metadata",), None, None, None, ids, table, 16, 0, 8, 2, 8,
                      32, 64, False)]
    assert len(lay.binaries) == 1
