"""The host side of a dispatch call: the call plans kept per shape, the binaries kept per argument class
and launched with addresses, one buffer per call, and every bad argument refused whatever is cached.

Launches run in the interpreter where a test checks results; where a test checks what the GPU path
would launch, the launches are stubbed (``tools/dispatch_host_profile.py``'s :func:`stubbed`) and the
op takes its GPU path on CPU tensors.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np
import pytest
import torch

from moe_lab import launcher
from moe_lab.dispatch import call, compare, op, prepare_dispatch
from moe_lab.dispatch.data import make_inputs
from moe_lab.dispatch.reference import prepare_dispatch_reference

HIDDEN = 256


@pytest.fixture
def tool(load_tool):
    return load_tool("dispatch_host_profile")


def placed(t: torch.Tensor, offset_bytes: int) -> torch.Tensor:
    """``t``'s values in a caller's buffer, ``offset_bytes`` past the start of the allocation."""
    flat = torch.zeros(t.numel() * t.element_size() + offset_bytes + 16, dtype=torch.uint8)
    view = flat[offset_bytes:offset_bytes + t.numel() * t.element_size()].view(t.dtype).view(t.shape)
    view.copy_(t)
    return view


def _names(binary) -> list[str]:
    return launcher._parameters(binary.owner.kernel)[0][:binary.owner.num_runtime]


@contextlib.contextmanager
def spying(tool):
    """Stubbed launches; yields ``(seen, stub)``, ``seen`` holding every direct launch as
    ``(binary, args)`` (the op's, with addresses, and the Launcher's own, with tensors)."""
    with tool.stubbed() as stub:
        seen = []
        run = launcher.run_binary

        def spy(binary, grid, stream, args, tail):
            seen.append((binary, args))
            run(binary, grid, stream, args, tail)
        launcher.run_binary = spy
        try:
            yield seen, stub
        finally:
            launcher.run_binary = run


@pytest.fixture
def spied(tool):
    with spying(tool) as found:
        yield found


ROWS = [(0, None), (1, 1), (13, 1), (16, 1), (5, None), (2, None)]
"""(count, entries) of the stubbed table launch: with align 1, M = 0, 1, 13 (a stride of 16), 16..."""

CASES = [  # (tokens, topk, local experts, ids dtype, packed scales): the tile design, then the token blocks
    (40, 8, 8, torch.int32, False), (40, 6, 20, torch.int64, True), (1500, 8, 8, torch.int32, False),
    (1100, 4, 3, torch.int64, True)]


@pytest.mark.parametrize("tokens,topk,num_local,dtype,packed", CASES)
def test_equal_classes_call_binaries_compiled_for_the_same_key(tool, tokens, topk, num_local, dtype, packed):
    """Calls of one shape with inputs aligned or not, starts of every class and (exact sizing) row counts
    of every class: a kept binary is only ever called for arguments of the Launcher key it was compiled
    for, i.e. the op's argument class is at least as fine as Triton's."""
    ids, x, scales = make_inputs(tokens, topk, 64, hidden=HIDDEN, packed=packed, id_dtype=dtype, seed=tokens)
    with spying(tool) as (seen, stub):
        for _ in range(2):
            for shift in ((0, 0, 0), (8, 8, 4), (8, 0, 4), (0, 8, 0)):
                args = placed(ids, shift[0]), placed(x, shift[1]), placed(scales, shift[2])
                for start in (0, 1, 16, 17, 40):
                    for graph_safe, align in ((True, 128), (False, 1), (False, 4), (False, 128)):
                        for stub.count, stub.entries in ((2, None),) if graph_safe else ROWS:
                            prepare_dispatch(args[0], start, num_local, args[1], args[2], align=align,
                                             graph_safe=graph_safe)
    assert stub.compiled > 0
    checked = 0
    for binary, args in seen:  # the op's direct launches (addresses) and the Launcher's own (tensors)
        now = binary.owner.key(args)  # an address is keyed as an int: (fits, == 1, multiple of 16)
        for name, value, have, want in zip(_names(binary), args, now, binary.key):
            if isinstance(value, int) and isinstance(want, tuple) and isinstance(want[0], torch.dtype):
                assert have[2] == want[1], (name, args)  # a pointer compiled as (dtype, aligned)
            else:
                assert have == want, (name, have, want)
        checked += isinstance(args[0], int)
    assert checked > 100


@pytest.mark.parametrize("tokens", [40, 1500])
@pytest.mark.parametrize("graph_safe", [True, False])
def test_direct_launches_pass_the_outputs_addresses(spied, tokens, graph_safe):
    """The addresses a kept binary gets are those of this call's inputs and outputs, and its integers are
    the shape's; the first call of a class went through the Launcher with tensors."""
    seen, stub = spied
    ids, x, scales = make_inputs(tokens, 8, 64, hidden=HIDDEN, seed=3)
    first = prepare_dispatch(ids, 16, 16, x, scales, graph_safe=graph_safe)
    assert seen == [] and stub.compiled >= 1  # the first call: through the Launchers
    got = prepare_dispatch(ids, 16, 16, x, scales, graph_safe=graph_safe)
    launches = 1 if graph_safe and tokens == 40 else 2  # graph-safe calls of 320 slots take one launch
    assert len(seen) == launches
    binary, args = seen[-1]
    assert binary.table_entries == 0  # the layout launch comes last
    want = {"ids_ptr": ids, "adjusted_ptr": got.adjusted_ids, "index_ptr": got.output_index,
            "count_ptr": got.expert_count, "offsets_ptr": got.offsets, "m_ptr": got.m_indices, "x_ptr": x,
            "scales_ptr": scales, "rows_ptr": got.rows, "out_scales_ptr": got.scales}
    values = {"x_stride": HIDDEN, "s_stride0": scales.stride(0), "s_stride1": 1, "num_tokens": tokens,
              "start": 16, "num_local": 16, "rows_cap": got.rows.shape[0], "topk": 8, "hidden": HIDDEN,
              "scale_stride": got.scales.stride(1), "scale_cols": HIDDEN // 128, "align": 128}
    names = _names(binary)
    for name, value in zip(names, args):
        assert isinstance(value, int), name
        if name in want:
            assert value == want[name].data_ptr(), name
        elif name in values:
            assert value == values[name], name
    assert set(want) <= set(names) and got.rows.data_ptr() != first.rows.data_ptr()  # fresh outputs
    table = [value for name, value in zip(names, args) if name in ("table_ptr", "coarse_ptr")][0]
    if graph_safe and launches == 2:  # the table lies in the call's buffer, between offsets and rows
        assert got.offsets.data_ptr() < table < got.rows.data_ptr()


def test_one_buffer_per_call(tool):
    """A graph-safe call allocates once, an exact one twice (the counts table, then the outputs), and
    nothing else allocates, fills or copies."""
    ids, x, scales = make_inputs(40, 8, 64, hidden=HIDDEN, seed=4)
    with tool.stubbed():
        for graph_safe, allocations in ((True, 1), (False, 2)):
            prepare_dispatch(ids, 8, 8, x, scales, graph_safe=graph_safe)  # planned and "compiled"
            ops = tool.census(lambda: prepare_dispatch(ids, 8, 8, x, scales, graph_safe=graph_safe))
            assert ops["empty"] == allocations, ops
            assert not {"fill_", "zero_", "zeros", "empty_like", "copy_", "clone"} & set(ops), ops


def test_call_plans_hold_no_tensors(device):
    ids, x, scales = make_inputs(40, 8, 64, hidden=HIDDEN, seed=5, device=device)
    call.forget()
    for graph_safe in (True, False):
        prepare_dispatch(ids, 8, 8, x, scales, graph_safe=graph_safe)
    assert call.kept() == 2
    for plan in call._PLANS.values():
        held = [getattr(plan, name) for name in plan.__slots__]
        held += [*plan.kept_table.values(), *plan.kept_layout.values()]
        assert not any(isinstance(v, torch.Tensor) for v in held)


def test_the_cache_takes_only_plain_arguments():
    ids, x, scales = make_inputs(4, 2, 16, hidden=HIDDEN)
    assert call.key(ids, 8, x, scales, 128, "expert", True) is not None
    for change in ({"align": True}, {"align": np.int64(128)}, {"graph_safe": 1}, {"num_local": True},
                   {"padding": b"expert"}, {"x": torch.nn.Parameter(x.float(), requires_grad=False)}):
        args = {"topk_ids": ids, "num_local": 8, "x": x, "scales": scales, "align": 128, "padding": "expert",
                "graph_safe": True, **change}
        assert call.key(**args) is None, change


def _error(fn):
    try:
        fn()
    except (TypeError, ValueError) as err:
        return type(err), str(err)
    return None


BAD = [  # (change, error type): each refused with the same message whether or not its shape is cached
    ({"start": -1}, ValueError), ({"start": True}, TypeError), ({"start": 1.5}, TypeError),
    ({"start": 2**31 - 8}, ValueError), ({"start": torch.tensor([1, 2])}, TypeError),
    ({"num_local": 0}, ValueError), ({"num_local": True}, TypeError), ({"num_local": 2048}, ValueError),
    ({"align": 96}, ValueError), ({"align": True}, TypeError), ({"align": 0}, ValueError),
    ({"padding": "Expert"}, ValueError), ({"padding": None}, ValueError),
    ({"x": "x"}, TypeError), ({"scales": None}, TypeError), ({"topk_ids": [[0, 1]]}, TypeError),
    ({"x_view": lambda x: x.view(torch.uint8)}, TypeError), ({"x_view": lambda x: x[:3]}, ValueError),
    ({"x_view": lambda x: x.t().contiguous().t()}, ValueError),
    ({"scales_view": lambda s: s[:, :1]}, ValueError), ({"scales_view": lambda s: s.half()}, TypeError),
    ({"ids_view": lambda i: i.float()}, TypeError), ({"ids_view": lambda i: i.t()}, ValueError),
    ({"ids_view": lambda i: i.t().contiguous().t()}, ValueError),
    ({"ids_view": lambda i: i.to("meta")}, ValueError),
    ({"x_view": lambda x: x.to("meta")}, ValueError), ({"scales_view": lambda s: s.to("meta")}, ValueError),
]


@pytest.mark.parametrize("change,error", BAD, ids=[str(i) for i in range(len(BAD))])
def test_a_cached_shape_refuses_every_bad_argument(device, change, error):
    ids, x, scales = make_inputs(4, 2, 16, hidden=HIDDEN, device=device)
    args = {"topk_ids": ids, "start": 0, "num_local": 8, "x": x, "scales": scales}
    kw = {"align": 128, "padding": "expert", "graph_safe": True}
    for name in ("x", "scales", "ids"):
        view = change.get(f"{name}_view")
        if view is not None:
            key = "topk_ids" if name == "ids" else name
            args[key] = view(args[key])
    args.update({k: v for k, v in change.items() if k in args})
    kw.update({k: v for k, v in change.items() if k in kw})
    bad = (lambda: prepare_dispatch(args["topk_ids"], args["start"], args["num_local"], args["x"],
                                    args["scales"], **kw))
    call.forget()
    cold = _error(bad)
    assert cold is not None and cold[0] is error, cold
    for graph_safe in (True, False):  # every shape and mode of the good call cached
        prepare_dispatch(ids, 0, 8, x, scales, graph_safe=graph_safe)
    assert _error(bad) == cold


def test_start_of_any_integer_kind_on_a_cached_shape(device):
    """A numpy int or a 0-d tensor start is checked in full (never cached) and gives the same layout."""
    ids, x, scales = make_inputs(30, 4, 32, hidden=HIDDEN, seed=6, device=device)
    want = prepare_dispatch_reference(ids.cpu(), 8, 8, x.cpu(), scales.cpu())
    for start in (8, np.int64(8), torch.tensor(8), 8):
        got = prepare_dispatch(ids, start, 8, x, scales)
        assert compare.problems(got, want, x, scales) == []


@pytest.fixture
def poisoned():
    old = op.POISON
    op.POISON = 0xA5
    yield
    op.POISON = old


@pytest.mark.parametrize("graph_safe", [True, False])
def test_caller_buffers_at_any_offset_and_fresh_outputs(device, poisoned, graph_safe):
    """One shape, inputs in the caller's buffers at offsets aligned and not, contents changing between
    calls: every call exact, and no call changes the outputs of an earlier one."""
    if device.type != "cpu":
        pytest.skip("placed() builds CPU buffers; the GPU tests cover unaligned inputs")
    results = []
    for seed, shift in ((1, (0, 0, 0)), (2, (4, 8, 4)), (3, (0, 0, 0)), (4, (12, 8, 0))):
        ids, x, scales = make_inputs(50, 8, 32, hidden=HIDDEN, pad_rows=seed, seed=seed)
        want = prepare_dispatch_reference(ids, 8, 8, x, scales)
        ids, x, scales = placed(ids, shift[0]), placed(x, shift[1]), placed(scales, shift[2])
        got = prepare_dispatch(ids, 8, 8, x, scales, graph_safe=graph_safe)
        results.append((got, want, x, scales))
        for earlier in results:
            assert compare.problems(*earlier) == []


def in_threads(work, n: int) -> None:
    """``work(k)`` in ``n`` threads at once, ``k`` = 0..n-1; returns when all are done."""
    threads = [threading.Thread(target=work, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_threads_with_two_shapes_and_both_modes(device):
    cases = [make_inputs(n, 8, 64, hidden=HIDDEN, seed=n, pad_rows=n // 7, device=device) for n in (21, 44)]
    wants = [prepare_dispatch_reference(i.cpu(), 16, 16, xx.cpu(), s.cpu()) for i, xx, s in cases]
    call.forget()
    errors = []

    def work(k):
        try:
            for r in range(4):
                c = (k + r) % 2
                ids, x, scales = cases[c]
                got = prepare_dispatch(ids, 16, 16, x, scales, graph_safe=bool((k + r // 2) % 2))
                found = compare.problems(got, wants[c], x, scales)
                if found:
                    errors.append((k, r, found[0]))
        except Exception as err:  # noqa: BLE001 - reported below, with the thread's number
            errors.append((k, repr(err)))

    in_threads(work, 3)
    assert errors == []
    assert call.kept() == 4  # two shapes, two modes


def test_stubbed_threads_share_plans_without_mixing_calls(spied):
    """Many threads, two shapes, inputs aligned and not, launches stubbed: every direct launch gets the
    addresses of its own call's inputs."""
    seen, _ = spied
    cases = [make_inputs(n, 8, 64, hidden=HIDDEN, seed=n) for n in (40, 1500)]
    placed_cases = [(placed(i, s), placed(xx, s), placed(sc, s)) for i, xx, sc in cases for s in (0, 4)]
    errors = []

    def work(k):
        try:
            for r in range(30):
                ids, x, scales = placed_cases[(k + r) % len(placed_cases)]
                got = prepare_dispatch(ids, 16, 16, x, scales, graph_safe=bool(r % 2))
                if got.rows.shape[1] != HIDDEN or got.adjusted_ids.shape != ids.shape:
                    errors.append((k, r))
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append((k, repr(err)))

    in_threads(work, 4)
    assert errors == []
    inputs = {(i.data_ptr(), x.data_ptr(), s.data_ptr()) for i, x, s in placed_cases}
    for binary, args in seen:
        names = _names(binary)
        if binary.table_entries == 0:  # an address, or a tensor where the Launcher launched it itself
            ptr = [args[names.index(n)] for n in ("ids_ptr", "x_ptr", "scales_ptr")]
            assert tuple(p if isinstance(p, int) else p.data_ptr() for p in ptr) in inputs
