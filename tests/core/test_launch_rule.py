"""One launch rule per stage: what a stage really launches is what ``KERNEL.plan`` and the models say.

Every real launch is recorded (grid, runtime arguments, constexprs, warps) and compared with
`moe_lab.inspection.launches.launch_config` (the atomics model's view) and with ``KERNEL.plan`` (what the
tracer and the IR compile use). On a GPU, the launches kept by the fast path are checked against
Triton's own choice of compiled kernel, and against the reference on inputs whose alignment and values
change the kernel Triton would pick.
"""

from __future__ import annotations

import pytest
import torch

import moe_lab
from moe_lab import verify
from moe_lab.inspection import launches
from moe_lab.registry import STAGES
from moe_lab.stages import _launch, best, decode, one_launch

KERNEL_STAGES = [name for name, s in STAGES.items() if s.kernel is not None]
SHAPES = [(1, 8, 32), (37, 6, 24), (700, 8, 32), (2100, 2, 100), (5000, 8, 32)]


def ids_for(seed, shape, high):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-1, high, shape, generator=g, dtype=torch.int32)


@pytest.fixture
def recorded(monkeypatch):
    """Every ``kernel[grid](...)`` launch of a stage kernel, as Triton receives it."""
    seen = []
    for entry in STAGES.values():
        spec = entry.kernel
        if spec is None or getattr(spec.fn, "_moe_lab_spied", False):
            continue
        original = spec.fn.run

        def spy(*args, grid, warmup, _fn=spec.fn, _original=original, **kwargs):
            seen.append({"fn": _fn, "grid": tuple(grid), "args": args, "kwargs": dict(kwargs)})
            return _original(*args, grid=grid, warmup=warmup, **kwargs)

        monkeypatch.setattr(spec.fn, "run", spy, raising=False)
        monkeypatch.setattr(spec.fn, "_moe_lab_spied", True, raising=False)
    return seen


@pytest.mark.skipif(not moe_lab.backend.INTERPRETER, reason="records launches through the interpreter")
@pytest.mark.parametrize("stage_name", KERNEL_STAGES + ["best"])
@pytest.mark.parametrize("num_tokens, topk, num_local", SHAPES)
def test_real_launch_is_the_models_launch(stage_name, num_tokens, topk, num_local, recorded, seed):
    if stage_name == "row_loop" and topk & (topk - 1):
        pytest.skip("row_loop refuses a topk that is not a power of two (tests/core/test_stages.py)")
    if stage_name in ("naive", "row_loop") and num_tokens * topk > 6000:
        pytest.skip("the serial stages are slow in the interpreter")
    ids = ids_for(seed, (num_tokens, topk), 5 * num_local)
    start = num_local
    got = moe_lab.recombine(ids, start, num_local, stage=stage_name)
    want = verify.reference(ids, start, num_local)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    model = launches.launch_config(stage_name, num_tokens, topk, num_local)
    spec = STAGES[model.kernel].kernel
    plan = spec.plan(num_tokens, topk, num_local)
    assert len(recorded) == 1, f"{stage_name} made {len(recorded)} launches of stage kernels"
    launch = recorded[0]
    assert launch["fn"] is spec.fn, f"{stage_name} launched another kernel than {model.kernel}'s"
    assert launch["grid"] == (model.num_programs,) == (plan.grid,)
    assert plan.block == model.block
    constexprs = {k: v for k, v in launch["kwargs"].items() if k != "num_warps"}
    assert constexprs == plan.constexprs
    assert launch["kwargs"]["num_warps"] == plan.num_warps
    names = [n for n in spec.args]
    assert len(launch["args"]) == len(names)
    values = dict(zip(names, launch["args"]))
    assert values["ids"] is ids
    assert values["adjusted"] is got[0] and values["counts"] is got[1]
    for name, want_value in (("num_tokens", num_tokens), ("topk", topk), ("num_total", num_tokens * topk),
                             ("start", start), ("num_local", num_local)):
        if name in values:
            assert values[name] == want_value, name


@pytest.mark.skipif(not moe_lab.backend.INTERPRETER, reason="records launches through the interpreter")
@pytest.mark.parametrize("stage_name, knobs", [
    ("one_launch", dict(block=512, programs_per_sm=2)), ("one_launch", dict(block=256, num_warps=2)),
    ("block_histogram", dict(block=1024, programs_per_sm=0)), ("decode", dict(block=256, num_warps=2)),
    ("relaxed", dict(block=128)),
])
def test_tuning_overrides_change_the_rule_and_nothing_else(stage_name, knobs, recorded, seed):
    ids = ids_for(seed, (600, 8), 64)
    module = STAGES[stage_name].load()
    spec = module.KERNEL
    adjusted = torch.empty_like(ids)
    counts = torch.zeros(32, dtype=torch.int32)
    module.launch(ids, adjusted, counts, 0, 32, **knobs)
    want = verify.reference(ids, 0, 32)
    assert torch.equal(adjusted, want[0]) and torch.equal(counts, want[1])
    plan = spec.plan(600, 8, 32, **knobs)
    launch = recorded[0]
    assert launch["grid"] == (plan.grid,)
    assert {k: v for k, v in launch["kwargs"].items() if k != "num_warps"} == plan.constexprs
    assert launch["kwargs"]["num_warps"] == plan.num_warps
    assert plan.block == knobs.get("block", plan.block)
    if "num_warps" in knobs:
        assert plan.num_warps == knobs["num_warps"]


def test_plan_follows_the_grid_kinds():
    spec = one_launch.KERNEL
    assert spec.plan(0, 8, 32).grid == 0  # empty input: nothing launched
    plan = spec.plan(5000, 8, 32, num_programs=7)
    assert plan.grid == 7 and plan.num_tiles == -(-40000 // plan.block)
    assert spec.plan(5000, 8, 32, programs_per_sm=0).grid == plan.num_tiles
    assert decode.KERNEL.plan(500, 8, 32).grid == 1
    naive = STAGES["naive"].kernel.plan(100, 6, 8)
    assert naive.grid == -(-100 // (naive.block // 6))


def test_best_launches_the_chosen_stages_kernel():
    for num_total, num_local in ((8, 32), (decode.MAX_SLOTS + 8, 32), (64, 4096)):
        name = best.choose(num_total, num_local)
        assert best.kernel(name) is STAGES[name].kernel


def test_fast_path_key_covers_what_triton_specialises_on():
    """The fast path keeps a compiled kernel per (dtype, exact sizes, start == 1, start % 16 == 0,
    16-byte alignment): Triton's own specialisation of every argument must be a function of that."""
    specialize = pytest.importorskip("triton._C.libtriton").native_specialize_impl
    from triton.backends.compiler import BaseBackend

    def triton_key(value):
        return specialize(BaseBackend, value, False, True, True)

    def ours(value):
        if isinstance(value, torch.Tensor):
            return value.dtype, value.data_ptr() % 16 == 0
        return value == 1, value % 16 == 0, -2**31 <= value < 2**31

    seen = {}
    base = torch.zeros(4096, dtype=torch.int32)
    values = [0, 1, 2, 3, 15, 16, 17, 31, 32, 48, 100, 2**31 - 1] + [base[k:] for k in range(8)] \
        + [torch.zeros(8, dtype=torch.int64)[k:] for k in range(3)]
    for value in values:
        key = ours(value)
        spec = triton_key(value)
        assert seen.setdefault(key, spec) == spec, f"{value!r}: one key, two Triton specialisations"


# --- on a GPU: the fast path ------------------------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.parametrize("stage_name", ["scalar_atomic", "decode", "one_launch", "best"])
def test_gpu_fast_path_launches_the_kernel_triton_would(stage_name):
    _launch.forget_launches()
    for num_tokens, start, offset in ((64, 0, 0), (64, 32, 0), (64, 48, 0), (64, 1, 0), (64, 7, 0),
                                      (700, 3, 1), (700, 16, 4), (1, 0, 0), (1, 1, 2)):
        for _ in range(3):  # the first goes through Triton and is kept; the others use it
            base = torch.randint(-1, 256, (num_tokens * 8 + 8,), dtype=torch.int32, device="cuda")
            ids = base[offset:offset + num_tokens * 8].view(num_tokens, 8)  # offsets 1, 2: unaligned
            got = moe_lab.recombine(ids, start, 32, stage=stage_name)
            want = verify.reference(ids, start, 32)
            assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1]), (num_tokens, start, offset)
    assert _launch.kept_launches() > 0
    for key, (spec, kept, grid, _) in list(_launch._KEPT.items()):
        num_tokens, topk, num_local = key[3], key[4], key[5]
        plan = spec.plan(num_tokens, topk, num_local, torch.device("cuda"))
        assert grid == plan.grid == launches.launch_config(
            next(n for n, s in STAGES.items() if s.kernel is spec), num_tokens, topk, num_local,
            device="cuda").num_programs
        start = 1 if key[6] else (32 if key[7] else 3)
        ids = torch.zeros(num_tokens, topk, dtype=key[2], device="cuda")
        outs = (torch.empty_like(ids), torch.empty(num_local, dtype=torch.int32, device="cuda"))
        scratch = [one_launch.scratch(ids.device)] if "scratch" in spec.args else []
        args = [a for a in (ids, *outs, *scratch)] + [v for n, v in (
            ("num_tokens", num_tokens), ("topk", topk), ("num_total", num_tokens * topk), ("start", start),
            ("num_local", num_local)) if n in spec.args]
        compiled = spec.fn.run(*args, grid=(plan.grid,), warmup=True, **plan.constexprs,
                               num_warps=plan.num_warps)
        assert compiled.function == kept.function, "the kept launch is not the kernel Triton picks"


@pytest.mark.gpu
def test_gpu_fast_path_in_graphs_and_on_streams():
    ids = torch.randint(-1, 256, (4096, 8), dtype=torch.int32, device="cuda")
    want = verify.reference(ids, 0, 32)
    for _ in range(2):
        moe_lab.recompute_topk_ids_sum_expert_count(ids, 0, 32)  # kept by now
    out = (torch.empty_like(ids), torch.empty(32, dtype=torch.int32, device="cuda"))
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        best.run(ids, 0, 32, adjusted_out=out[0], expert_count_out=out[1])
    for _ in range(3):
        out[1].fill_(-7)
        graph.replay()
        torch.cuda.synchronize()
        assert torch.equal(out[0], want[0]) and torch.equal(out[1], want[1])
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        got = moe_lab.recompute_topk_ids_sum_expert_count(ids, 0, 32)
    side.synchronize()
    assert torch.equal(got[1], want[1])
