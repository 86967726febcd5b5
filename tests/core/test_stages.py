"""Every stage against the PyTorch reference: adversarial inputs, fresh random inputs, EP groups.

The reference (``moe_lab.verify.reference``, i.e. ``stages/torch_ref.py``) is itself checked
against a plain-Python reading of the contract first, so nothing here trusts a kernel to grade a
kernel. Outputs are poisoned before every run (``verify.compare`` sets
``moe_lab.stages._launch.POISON``), so a slot or counter a kernel never writes shows up as a
mismatch instead of as a lucky zero.

Random inputs use a seed drawn per run (see ``conftest.py``); a failure message carries it, and
``MOE_LAB_TEST_SEED=<n>`` replays it. The ``@pytest.mark.gpu`` tests at the end repeat everything on
CUDA at full size and check that ``best`` records into a CUDA graph.
"""

from __future__ import annotations

import random

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import moe_lab
from moe_lab import routing, verify
from moe_lab.stages import (
    _launch,
    best,
    block_histogram,
    decode,
    handoff,
    one_launch,
    relaxed,
    row_loop,
    tl_full,
)
from moe_lab.stages._kernel import Kernel

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
ALL_STAGES = list(moe_lab.STAGES)
TRITON_STAGES = [name for name, s in moe_lab.STAGES.items() if s.uses_triton]
# The interpreter runs naive's scalar loops (and row_loop's per-token loop) one op at a time:
# on the CPU those two get only the cases up to this many slots. On a GPU, everything runs.
SLOW_STAGE_MAX_SLOTS = {"naive": 300, "row_loop": 600}


def is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


# --------------------------------------------------------------------------------------------
# The adversarial inputs (fixed content, so parametrised test ids are stable between runs)
# --------------------------------------------------------------------------------------------

def _adversarial_cases() -> list[verify.Case]:
    g = torch.Generator().manual_seed(20260)

    def rand(lo, hi, shape, dtype=torch.int32):
        return torch.randint(lo, hi, shape, generator=g, dtype=dtype)

    def ids(rows, dtype=torch.int32):
        return torch.tensor(rows, dtype=dtype)

    C = verify.Case
    cases = []
    for k in (1, 2, 6, 8, 9):
        cases.append(C(f"random topk={k}", rand(-1, 40, (37, k)), 8, 16,
                       "-1, local and remote ids; 37 tokens fills no block exactly"))
        cases.append(C(f"random topk={k} int64", rand(-1, 40, (37, k), torch.int64), 8, 16,
                       "the same in int64: output keeps the dtype"))
    cases += [
        C("257 slots (block 256 + 1)", rand(-1, 16, (257, 1)), 0, 16, "tl_full's block for topk 1 is 256"),
        C("255 slots (block 256 - 1)", rand(-1, 16, (255, 1)), 0, 16, "one partial block only"),
        C("264 slots, topk 8", rand(-1, 64, (33, 8)), 16, 32, "blocks of 128 and a tail of 8"),
        C("2049 slots, decode tail", rand(-1, 64, (683, 3)), 16, 32, "decode loops over 2048-slot tiles"),
        C(f"{block_histogram.BLOCK + 1} slots, histogram tail", rand(-1, 64, (block_histogram.BLOCK + 1, 1)),
          0, 32, f"block_histogram tiles are {block_histogram.BLOCK} slots: one full tile and a tail of one"),
        C("all padding", torch.full((33, 8), -1, dtype=torch.int32), 0, 8, "every slot -1"),
        C("all padding int64", torch.full((20, 6), -1, dtype=torch.int64), 0, 8, "every slot -1"),
        C("every slot on one expert", torch.full((50, 8), 11, dtype=torch.int32), 8, 16,
          "all atomics on one counter"),
        C("every slot on expert 0, start 0", torch.zeros((40, 4), dtype=torch.int32), 0, 4,
          "expert 0 is local: padding loaded as 0 would be counted"),
        C("every slot on the last local expert", torch.full((40, 4), 23, dtype=torch.int32), 8, 16,
          "id start + num_local - 1"),
        C("every slot local", rand(8, 24, (37, 8)), 8, 16, "no -1 in the output"),
        C("remote ids above the range", rand(64, 128, (40, 8)), 0, 32, "all -1, zero counts"),
        C("remote ids below the range", rand(0, 32, (40, 8)), 32, 32, "all -1, zero counts"),
        C("ids at the range edges", ids([[7, 8, 23, 24]] * 16), 8, 16, "start-1, start, end-1, end"),
        C("out-of-range ids", ids([[INT32_MAX, INT32_MIN, -7, 300], [16, 15, 8, 7],
                                   [-1, 24, 23, 9], [-2, -1000, 2**30, 23]]), 8, 16,
          "huge, negative and just-outside ids all become -1"),
        C("range at the top of int32", ids([[INT32_MAX, INT32_MAX - 1, INT32_MAX - 16, INT32_MAX - 17],
                                            [-1, INT32_MIN, INT32_MAX - 8, 0]]), INT32_MAX - 16, 16,
          "start + num_local == INT32_MAX: no overflow in the range test"),
        C("empty input", torch.empty((0, 8), dtype=torch.int32), 0, 8, "empty ids, zero counts"),
        C("empty input int64 topk 6", torch.empty((0, 6), dtype=torch.int64), 4, 12,
          "empty ids, zero counts"),
        C("one token", rand(0, 32, (1, 8)), 0, 32, "a grid of one program"),
        C("num_local 1", rand(-1, 8, (29, 2)), 5, 1, "a single counter"),
        C("num_local 3", rand(-1, 12, (31, 4)), 4, 3, "not a power of two: bins padded to 4"),
        C("num_local 24", rand(-1, 100, (64, 6)), 24, 24,
          "ids 48..55 would fall into the padding bins 24..31: they must not leak"),
        C("num_local 100", rand(-1, 300, (40, 8)), 100, 100, "not a power of two, 128 bins"),
        C("num_local 128", rand(-1, 256, (64, 8)), 128, 128, "many counters, several L2 lines"),
        C("num_local 256", rand(-1, 512, (70, 8)), 256, 256, "many counters, several L2 lines"),
        C("start 0, partial tail, topk 6", rand(-1, 12, (45, 6)), 0, 4, "270 slots, block 256"),
        C("start 0, partial tail, topk 8", rand(-1, 12, (21, 8)), 0, 4, "168 slots, block 128"),
        C("int64 ids past int32", ids([[2**32 + 3, 3, -1, 2**40], [5, 2**31, 4, -(2**32) + 5],
                                       [INT32_MAX, INT32_MIN - 1, 7, 2**33 + 7]], torch.int64), 0, 8,
          "2**32 + 3 truncated to int32 would be the local id 3: it is remote"),
        C("int64 ids past int32, start 100", ids([[2**32 + 100, 100, 107, 2**32 + 107],
                                                  [-1, 108, 99, -(2**32) + 100]], torch.int64), 100, 8,
          "wrapped ids would land in the local range"),
    ]
    return cases


CASES = {c.name: c for c in _adversarial_cases()}


def on(case: verify.Case, device) -> verify.Case:
    return verify.Case(case.name, case.topk_ids.to(device), case.start, case.num_local, case.why)


def assert_matches_reference(stage_name: str, case: verify.Case, context: str = "") -> None:
    """``verify.compare`` (poisoned outputs) must say the stage agrees with the reference."""
    result = verify.compare(moe_lab.stage(stage_name).run, case)
    if result.error is not None:
        raise AssertionError(f"stage {stage_name!r} raised on {case.name!r} ({case.why}) "
                             f"{context}: {result.detail}") from result.error
    assert result.ok, (f"stage {stage_name!r} differs from the reference on {case.name!r} "
                       f"(shape {tuple(case.topk_ids.shape)}, {case.topk_ids.dtype}, start={case.start}, "
                       f"num_local={case.num_local}; {case.why}) {context}: {result.detail}")


def run_poisoned(stage_name: str, topk_ids, start, num_local):
    """Run a stage with fresh outputs poisoned, as ``verify.compare`` does, and return them."""
    old = _launch.POISON
    _launch.POISON = verify.POISON
    try:
        return moe_lab.stage(stage_name).run(topk_ids, start, num_local)
    finally:
        _launch.POISON = old


def _adversarial_params():
    params = []
    for stage_name in ALL_STAGES:
        for name, case in CASES.items():
            limit = SLOW_STAGE_MAX_SLOTS.get(stage_name)
            if limit is not None and not torch.cuda.is_available() and case.topk_ids.numel() > limit:
                continue
            params.append(pytest.param(stage_name, name, id=f"{stage_name}-{name}"))
    return params


# --------------------------------------------------------------------------------------------
# The reference and the checking tool themselves
# --------------------------------------------------------------------------------------------

def by_definition(topk_ids: torch.Tensor, start: int, num_local: int):
    """The contract read literally, one Python int at a time."""
    adjusted = [v - start if start <= v < start + num_local else -1 for v in topk_ids.reshape(-1).tolist()]
    counts = [0] * num_local
    for v in adjusted:
        if v >= 0:
            counts[v] += 1
    return (torch.tensor(adjusted, dtype=topk_ids.dtype).reshape(topk_ids.shape),
            torch.tensor(counts, dtype=torch.int32))


@pytest.mark.parametrize("name", list(CASES))
def test_reference_follows_the_contract(name):
    case = CASES[name]
    want_ids, want_counts = by_definition(case.topk_ids, case.start, case.num_local)
    got_ids, got_counts = verify.reference(case.topk_ids, case.start, case.num_local)
    assert got_ids.dtype == case.topk_ids.dtype and got_counts.dtype == torch.int32
    assert torch.equal(got_ids, want_ids), f"reference ids wrong on {name!r}"
    assert torch.equal(got_counts, want_counts), f"reference counts wrong on {name!r}"


TEACHING_ORDER = ["torch", "row_loop", "naive", "tl_full", "scalar_atomic", "relaxed", "block_histogram",
                "decode", "best"]


def test_stage_names_and_order():
    """The lineage's stages, in teaching order (a registered stage may sit between them)."""
    positions = [ALL_STAGES.index(name) for name in TEACHING_ORDER if name in ALL_STAGES]
    assert len(positions) == len(TEACHING_ORDER), f"missing stages: {set(TEACHING_ORDER) - set(ALL_STAGES)}"
    assert positions == sorted(positions), f"stages out of order: {ALL_STAGES}"
    assert ALL_STAGES[0] == "torch" and ALL_STAGES[-1] == "best"
    assert [name for name, _ in moe_lab.list_stages()] == ALL_STAGES
    for name in ALL_STAGES:
        module = moe_lab.stage(name).load()
        assert callable(module.run) and module.__doc__, f"stage {name!r} needs run() and a docstring"


def test_compare_poisons_outputs_and_catches_unwritten_slots(device):
    case = on(CASES["random topk=8"], device)
    seen = []

    def leaves_last_slot(topk_ids, start, num_local):
        seen.append(_launch.POISON)
        adjusted, counts = tl_full.run(topk_ids, start, num_local)
        adjusted.view(-1)[-1] = _launch.POISON  # what a kernel that skips the tail leaves behind
        return adjusted, counts

    def miscounts(topk_ids, start, num_local):
        adjusted, counts = tl_full.run(topk_ids, start, num_local)
        counts[3] += 1
        return adjusted, counts

    bad_ids = verify.compare(leaves_last_slot, case)
    assert seen == [verify.POISON] and _launch.POISON is None
    assert not bad_ids.ok and "adjusted" in bad_ids.detail
    bad_counts = verify.compare(miscounts, case)
    assert not bad_counts.ok and "expert_count[3]" in bad_counts.detail
    assert verify.compare(tl_full.run, case).ok


def test_poison_reaches_fresh_outputs(device):
    ids = torch.zeros((4, 2), dtype=torch.int32, device=device)
    old = _launch.POISON
    _launch.POISON = verify.POISON
    try:
        _, _, adjusted, counts = _launch.prepare(ids, 0, 8, stage="test", zero_counts=False)
        _, _, _, zeroed = _launch.prepare(ids, 0, 8, stage="test", zero_counts=True)
    finally:
        _launch.POISON = old
    assert (adjusted == verify.POISON).all() and (counts == verify.POISON).all()
    assert (zeroed == 0).all()  # atomic stages need zeroed counters, poison or not


def test_verify_table(device):
    table = verify.verify("tl_full")
    assert table["ok"].all(), table[~table["ok"]].to_string()
    assert len(table) == len(verify.adversarial_cases())

    def drops_counts(topk_ids, start, num_local):
        adjusted, counts = tl_full.run(topk_ids, start, num_local)
        return adjusted, torch.zeros_like(counts)

    broken = verify.verify(drops_counts)
    assert not broken["ok"].all()


# --------------------------------------------------------------------------------------------
# Every stage against the reference
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("stage_name, case_name", _adversarial_params())
def test_adversarial(stage_name, case_name, device):
    case = on(CASES[case_name], device)
    if stage_name == "row_loop" and case.topk_ids.numel() and not is_power_of_two(case.topk):
        with pytest.raises(row_loop.NonPowerOfTwoTopkError):
            moe_lab.stage(stage_name).run(case.topk_ids, case.start, case.num_local)
        return
    assert_matches_reference(stage_name, case)


@pytest.mark.parametrize("topk", [3, 6, 7, 9])
def test_row_loop_explains_non_power_of_two_topk(topk, device):
    ids = torch.randint(-1, 16, (5, topk), dtype=torch.int32).to(device)
    with pytest.raises(row_loop.NonPowerOfTwoTopkError) as info:
        row_loop.run(ids, 0, 8)
    message = str(info.value)
    next_stage = ALL_STAGES[ALL_STAGES.index("row_loop") + 1]
    assert isinstance(info.value, ValueError)
    assert f"topk={topk}" in message
    assert "tl.arange" in message
    assert "power of two" in message.lower() or "power-of-two" in message.lower()
    assert repr(next_stage) in message, f"the error should point at the next stage {next_stage!r}"


@pytest.mark.parametrize("stage_name", ALL_STAGES)
def test_random_inputs(stage_name, seed, replay, device):
    rng = random.Random(seed)
    slow = stage_name in SLOW_STAGE_MAX_SLOTS and not torch.cuda.is_available()
    topks = [1, 2, 4, 8] if stage_name == "row_loop" else [1, 2, 3, 4, 6, 8, 9]
    for draw in range(3 if stage_name == "naive" else 6):
        topk = rng.choice(topks)
        num_tokens = rng.randint(0, (12 if stage_name == "naive" else 40) if slow else 300)
        num_local = rng.choice([1, 2, 3, 8, 24, 32, 64, 100, 128, 256])
        start = rng.choice([0, rng.randint(0, 1000)])
        dtype = rng.choice([torch.int32, torch.int64])
        gen = torch.Generator().manual_seed(rng.randrange(2**31))
        ids = torch.randint(-1, start + 2 * num_local + 1, (num_tokens, topk), generator=gen, dtype=dtype)
        if num_tokens and rng.random() < 0.5:  # trailing padding rows, as after an all-gather
            ids[rng.randrange(num_tokens):] = -1
        case = verify.Case(f"random draw {draw}", ids.to(device), start, num_local,
                           f"{num_tokens}x{topk} {dtype}, start={start}, num_local={num_local}")
        assert_matches_reference(stage_name, case, replay)


EP_SETUPS = [("mixtral", 4), ("deepseek-v2-lite", 8), ("qwen3-moe", 8), ("deepseek-v3", 8)]


@pytest.mark.parametrize("stage_name", ALL_STAGES)
def test_ep_group_counts_add_up(stage_name, seed, replay, device):
    """Run every rank of an EP group: the ranks' counts, concatenated, are the global histogram of
    the non-sentinel ids, and every non-sentinel slot is local on exactly one rank."""
    rng = random.Random(seed)
    slow = stage_name in SLOW_STAGE_MAX_SLOTS and not torch.cuda.is_available()
    setups = [s for s in EP_SETUPS if stage_name != "row_loop" or is_power_of_two(routing.PRESETS[s[0]].topk)]
    if slow:
        setups = setups[:2]
    for preset_name, ep_size in setups:
        distribution = rng.choice(routing.DISTRIBUTIONS)
        num_tokens = 6 if slow else 64
        # One gathered batch, seen by every rank (routing.case's "hot" makes each rank's own first
        # expert hot, so the ranks take rank 0's ids and only their own expert range).
        gathered = routing.case(preset_name, num_tokens, distribution=distribution, ep_size=ep_size,
                                rank=0, pad_fraction=0.25, seed=seed)
        ids = gathered.topk_ids.to(device)
        where = f"({preset_name}, {distribution}, EP {ep_size}, {replay})"
        counts, owners = [], torch.zeros(ids.shape, dtype=torch.int64, device=device)
        for r in range(ep_size):
            start, num_local = gathered.preset.start(r, ep_size), gathered.num_local
            adjusted, expert_count = run_poisoned(stage_name, ids, start, num_local)
            want_ids, want_counts = verify.reference(ids, start, num_local)
            assert torch.equal(adjusted, want_ids), f"rank {r} ids differ from the reference {where}"
            assert torch.equal(expert_count, want_counts), f"rank {r} counts differ {where}"
            local = adjusted != -1
            assert torch.equal(adjusted[local] + start, ids[local]), f"rank {r} remapped wrongly {where}"
            owners += local
            counts.append(expert_count)
        num_experts = gathered.preset.num_experts
        real = ids[ids != -1].long()
        assert torch.equal(torch.cat(counts).long().cpu(),
                           torch.bincount(real.cpu(), minlength=num_experts)), \
            f"ranks' counts do not add up to the global histogram {where}"
        assert torch.equal(owners, (ids != -1).long()), f"a slot is local on 0 or 2+ ranks {where}"


# --------------------------------------------------------------------------------------------
# best: dispatch by size, out-parameters for CUDA graphs
# --------------------------------------------------------------------------------------------

LARGE = "handoff"  # what best runs above decode.MAX_SLOTS (memset-free, no last program)


def test_best_choice_boundaries():
    limit, bins = decode.MAX_SLOTS, block_histogram.MAX_BINS
    assert best.choose(0, 32) == "decode"
    assert best.choose(1, 1) == "decode"
    assert best.choose(limit, 32) == "decode"
    assert best.choose(limit + 1, 32) == LARGE
    assert best.choose(10**8, 256) == LARGE
    assert block_histogram.num_bins(bins) == bins
    assert best.choose(limit, bins) == "decode"  # exactly MAX_BINS bins still fit
    assert best.choose(limit + 1, bins) == LARGE
    assert best.choose(limit, bins + 1) == "relaxed"  # rounds up to 2 * MAX_BINS bins
    assert best.choose(16, 2000) == "relaxed"
    assert best.choose(10**8, 2000) == "relaxed"


@pytest.mark.parametrize("num_tokens, topk, num_local, expected", [
    (decode.MAX_SLOTS // 8, 8, 32, "decode"),            # exactly MAX_SLOTS slots
    (decode.MAX_SLOTS // 8 + 1, 8, 32, LARGE),           # MAX_SLOTS + 8
    (decode.MAX_SLOTS + 1, 1, 24, LARGE),                # MAX_SLOTS + 1
    (3 * decode.MAX_SLOTS, 6, 100, LARGE),               # several programs in the interpreter too
    (block_histogram.MAX_BINS // 8, 8, block_histogram.MAX_BINS, "decode"),
    (300, 8, block_histogram.MAX_BINS + 1, "relaxed"),
    (200, 6, 2000, "relaxed"),
])
def test_best_runs_the_kernel_it_chooses(num_tokens, topk, num_local, expected, monkeypatch, seed, replay,
                                         device):
    calls = []
    names = {id(module.KERNEL): module.__name__.rsplit(".", 1)[1]
             for module in (decode, block_histogram, one_launch, handoff, relaxed)}
    original = Kernel.launch

    def spy(self, *args, **kwargs):  # every launch goes through a stage's KERNEL
        calls.append(names.get(id(self), "another kernel"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Kernel, "launch", spy)
    start = 3 * num_local
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(-1, 5 * num_local, (num_tokens, topk), generator=gen, dtype=torch.int32)
    case = verify.Case(f"best at {num_tokens}x{topk}, num_local={num_local}", ids.to(device), start,
                       num_local, f"expected the {expected} kernel")
    assert best.choose(ids.numel(), num_local) == expected
    assert_matches_reference("best", case, replay)
    assert calls == [expected]


@pytest.mark.parametrize("stage_name", ["decode", "block_histogram", "one_launch"])
def test_histogram_stages_refuse_too_many_experts(stage_name, device):
    ids = torch.zeros((4, 8), dtype=torch.int32, device=device)
    with pytest.raises(ValueError, match=r"num_local=2000.*at most 1024.*'best'"):
        moe_lab.stage(stage_name).run(ids, 0, 2000)


def test_one_launch_leaves_its_scratch_zeroed(seed, replay, device):
    """The last program must hand the accumulator and ticket back at zero, or the next call miscounts."""
    gen = torch.Generator().manual_seed(seed)
    for num_tokens, topk, num_local in [(700, 8, 32), (3000, 6, 100), (1, 1, 1), (5000, 2, 1024)]:
        ids = torch.randint(-1, 3 * num_local, (num_tokens, topk), generator=gen, dtype=torch.int32)
        case = verify.Case(f"{num_tokens}x{topk}", ids.to(device), num_local, num_local)
        kept = one_launch.scratch(case.topk_ids.device)  # on a GPU: this stream's; on the CPU: a fresh one
        for _ in range(2):  # a second call on the same scratch must be as right as the first
            got = run_poisoned("one_launch", case.topk_ids, case.start, case.num_local)
            adjusted = torch.full_like(case.topk_ids, verify.POISON)
            counts = torch.full((num_local,), verify.POISON, dtype=torch.int32, device=device)
            one_launch.launch(case.topk_ids, adjusted, counts, case.start, case.num_local,
                              scratch_buffer=kept)
            want = verify.reference(case.topk_ids, case.start, case.num_local)
            assert torch.equal(got[1], want[1]) and torch.equal(counts, want[1]), f"{case.name}; {replay}"
            assert torch.equal(adjusted, want[0]), f"{case.name}; {replay}"
            assert not kept[:one_launch.TICKET + 1].any(), f"scratch left dirty after {case.name}"


@pytest.mark.parametrize("num_tokens, topk, num_local, dtype", [
    (17, 8, 32, torch.int32),        # decode
    (1100, 8, 32, torch.int32),      # one_launch: 8800 slots > MAX_SLOTS
    (1100, 8, 32, torch.int64),
    (50, 6, 2000, torch.int32),      # relaxed
    (0, 8, 16, torch.int32),         # empty: counts still written
])
def test_best_writes_into_given_buffers(num_tokens, topk, num_local, dtype, seed, replay, device):
    gen = torch.Generator().manual_seed(seed)
    start = num_local
    for trial in range(2):  # the second call reuses the buffers: nothing may be left from the first
        ids = torch.randint(-1, 3 * num_local, (num_tokens, topk), generator=gen, dtype=dtype).to(device)
        if trial == 0:
            adjusted_out = torch.full_like(ids, verify.POISON)
            expert_count_out = torch.full((num_local,), verify.POISON, dtype=torch.int32, device=device)
            ptrs = adjusted_out.data_ptr(), expert_count_out.data_ptr()
        else:
            adjusted_out.fill_(-5)
            expert_count_out.fill_(verify.POISON)
        adjusted, counts = best.run(ids, start, num_local, adjusted_out=adjusted_out,
                                    expert_count_out=expert_count_out)
        assert adjusted is adjusted_out and counts is expert_count_out
        assert (adjusted_out.data_ptr(), expert_count_out.data_ptr()) == ptrs
        want_ids, want_counts = verify.reference(ids, start, num_local)
        assert not (adjusted_out == verify.POISON).any() and not (expert_count_out == verify.POISON).any(), \
            f"poisoned output left unwritten (trial {trial}, {replay})"
        assert torch.equal(adjusted_out, want_ids), f"adjusted_out differs (trial {trial}, {replay})"
        assert torch.equal(expert_count_out, want_counts), \
            f"expert_count_out differs (trial {trial}, {replay})"


def test_best_decode_size_boundary_correct(seed, replay, device):
    gen = torch.Generator().manual_seed(seed)
    for num_tokens in (decode.MAX_SLOTS, decode.MAX_SLOTS + 1):
        ids = torch.randint(-1, 64, (num_tokens, 1), generator=gen, dtype=torch.int32)
        assert_matches_reference("best", verify.Case(f"{num_tokens}x1", ids.to(device), 16, 32), replay)


def test_public_entry_points_match_reference(device):
    case = on(CASES["random topk=6"], device)
    want_ids, want_counts = verify.reference(case.topk_ids, case.start, case.num_local)
    for got in (moe_lab.recompute_topk_ids_sum_expert_count(case.topk_ids, case.start, case.num_local),
                moe_lab.recombine(case.topk_ids, case.start, case.num_local),
                moe_lab.recombine(case.topk_ids, case.start, case.num_local, stage="relaxed")):
        assert torch.equal(got[0], want_ids) and torch.equal(got[1], want_counts)


# --------------------------------------------------------------------------------------------
# Property-based: hypothesis draws small inputs (the interpreter is slow), edge values included
# --------------------------------------------------------------------------------------------

@st.composite
def recombine_inputs(draw):
    topk = draw(st.integers(1, 9))
    num_tokens = draw(st.integers(0, 24))
    num_local = draw(st.integers(1, 70))
    start = draw(st.integers(0, 100))
    dtype = draw(st.sampled_from([torch.int32, torch.int64]))
    end = start + num_local
    values = [st.just(-1), st.integers(start, end - 1), st.integers(-3, end + 8),
              st.sampled_from([start - 1, end, INT32_MAX, INT32_MIN])]
    if dtype == torch.int64:
        values.append(st.sampled_from([2**32 + start, 2**32 + end - 1, 2**40, -(2**33)]))
    flat = draw(st.lists(st.one_of(values), min_size=num_tokens * topk, max_size=num_tokens * topk))
    ids = torch.tensor(flat, dtype=dtype).reshape(num_tokens, topk)
    return ids, start, num_local


PROPERTY_SETTINGS = settings(max_examples=25, deadline=None, database=None,
                             suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("stage_name", ["tl_full", "block_histogram", "best"])
@PROPERTY_SETTINGS
@given(data=recombine_inputs())
def test_property_matches_reference(stage_name, data):
    ids, start, num_local = data
    case = verify.Case("hypothesis", ids.to(moe_lab.backend.device()), start, num_local,
                       f"{tuple(ids.shape)} {ids.dtype}, start={start}, num_local={num_local}")
    assert_matches_reference(stage_name, case)


@PROPERTY_SETTINGS
@given(ep_size=st.integers(1, 4), num_local=st.integers(1, 20), topk=st.integers(1, 9),
       num_tokens=st.integers(0, 20), seed=st.integers(0, 2**31 - 1))
def test_property_best_ep_counts_add_up(ep_size, num_local, topk, num_tokens, seed):
    num_experts = ep_size * num_local
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(-1, num_experts, (num_tokens, topk), generator=gen, dtype=torch.int32)
    ids = ids.to(moe_lab.backend.device())
    counts = [best.run(ids, r * num_local, num_local)[1] for r in range(ep_size)]
    real = ids[ids != -1].long().cpu()
    assert torch.equal(torch.cat(counts).long().cpu(), torch.bincount(real, minlength=num_experts))


# --------------------------------------------------------------------------------------------
# On a CUDA GPU: full adversarial set, large EP group, CUDA-graph capture of best
# --------------------------------------------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.parametrize("stage_name", ALL_STAGES)
def test_gpu_adversarial(stage_name):
    for case in CASES.values():
        case = on(case, "cuda")
        if stage_name == "row_loop" and case.topk_ids.numel() and not is_power_of_two(case.topk):
            with pytest.raises(row_loop.NonPowerOfTwoTopkError):
                row_loop.run(case.topk_ids, case.start, case.num_local)
            continue
        assert_matches_reference(stage_name, case)
    for case in verify.adversarial_cases(device="cuda"):  # the library's own list, as notebooks show it
        if stage_name == "row_loop" and not is_power_of_two(case.topk):
            continue
        assert_matches_reference(stage_name, case)


def _large_ids(num_tokens, topk, num_experts, dtype, seed):
    gen = torch.Generator(device="cuda").manual_seed(seed)
    ids = torch.randint(0, num_experts, (num_tokens, topk), generator=gen, device="cuda", dtype=dtype)
    ids[torch.rand(ids.shape, generator=gen, device="cuda") < 0.01] = -1
    ids[-(num_tokens // 16):] = -1  # padding rows of an uneven all-gather
    if dtype == torch.int64:  # ids that would wrap into the local range if truncated to int32
        wrap = torch.rand(ids.shape, generator=gen, device="cuda") < 0.01
        ids[wrap] += 2**32
    return ids


def _check_ep_group(stage_name, ids, num_experts, ep_size, where):
    num_local = num_experts // ep_size
    counts, owners = [], torch.zeros(ids.shape, dtype=torch.int32, device=ids.device)
    for rank in range(ep_size):
        start = rank * num_local
        adjusted, expert_count = run_poisoned(stage_name, ids, start, num_local)
        want_ids, want_counts = verify.reference(ids, start, num_local)
        assert torch.equal(adjusted, want_ids), f"{stage_name} rank {rank}: ids differ {where}"
        assert torch.equal(expert_count, want_counts), f"{stage_name} rank {rank}: counts differ {where}"
        owners += adjusted != -1
        counts.append(expert_count)
    valid = (ids >= 0) & (ids < num_experts)
    assert torch.equal(torch.cat(counts).long(), torch.bincount(ids[valid].long(), minlength=num_experts)), \
        f"{stage_name}: ranks' counts do not add up to the global histogram {where}"
    assert torch.equal(owners, valid.int()), f"{stage_name}: a slot is local on 0 or 2+ ranks {where}"


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.int32, torch.int64], ids=["int32", "int64"])
@pytest.mark.parametrize("stage_name", [s for s in TRITON_STAGES if s not in ("naive", "row_loop")])
def test_gpu_large_ep_group(stage_name, dtype, seed, replay):
    num_tokens, topk, num_experts, ep_size = 1 << 20, 8, 256, 8
    ids = _large_ids(num_tokens, topk, num_experts, dtype, seed)
    _check_ep_group(stage_name, ids, num_experts, ep_size, f"(1M x top-8, {dtype}, {replay})")


@pytest.mark.gpu
@pytest.mark.parametrize("stage_name", ["naive", "row_loop"])
def test_gpu_slow_stages_medium_ep_group(stage_name, seed, replay):
    ids = _large_ids(8192, 8, 256, torch.int32, seed)
    _check_ep_group(stage_name, ids, 256, 8, f"(8192 x top-8, {replay})")


@pytest.mark.gpu
@pytest.mark.parametrize("num_tokens, expected", [(64, "decode"), (4096, LARGE)])
def test_gpu_best_in_cuda_graph(num_tokens, expected, seed, replay):
    topk, start, num_local = 8, 64, 32
    assert best.choose(num_tokens * topk, num_local) == expected
    gen = torch.Generator(device="cuda").manual_seed(seed)

    def fresh_ids():
        return torch.randint(-1, 256, (num_tokens, topk), generator=gen, device="cuda", dtype=torch.int32)

    static_ids = fresh_ids()
    adjusted_out = torch.empty_like(static_ids)
    expert_count_out = torch.empty(num_local, dtype=torch.int32, device="cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up: compile the kernels before capture
        for _ in range(2):
            best.run(static_ids, start, num_local, adjusted_out=adjusted_out,
                     expert_count_out=expert_count_out)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = best.run(static_ids, start, num_local, adjusted_out=adjusted_out,
                            expert_count_out=expert_count_out)
    assert captured[0].data_ptr() == adjusted_out.data_ptr()
    assert captured[1].data_ptr() == expert_count_out.data_ptr()
    for trial in range(3):
        new_ids = fresh_ids()
        static_ids.copy_(new_ids)
        adjusted_out.fill_(verify.POISON)
        expert_count_out.fill_(verify.POISON)
        graph.replay()
        torch.cuda.synchronize()
        want_ids, want_counts = verify.reference(new_ids, start, num_local)
        assert torch.equal(adjusted_out, want_ids), f"graph replay {trial}: ids differ ({replay})"
        assert torch.equal(expert_count_out, want_counts), f"graph replay {trial}: counts differ ({replay})"
