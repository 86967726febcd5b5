"""moe_lab.inspection.atomics: the per-program model of counter traffic matches what the real kernels do.

Three kinds of evidence, from weakest to strongest:
* hand-worked examples (every number written out);
* summed over programs, the model's values equal the counts the library's own ``run()`` returns;
* per program and per counter, the model equals a trace of the stage's ``@triton.jit`` kernel run
  in Triton's interpreter (every atomic lane and every store to the counters recorded), including
  traces of the library's own launch functions, so the grids and blocks are the library's.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import moe_lab
from moe_lab import interp, routing, verify
from moe_lab.inspection import atomics
from moe_lab.registry import stage
from moe_lab.stages import (
    best,
    block_histogram,
    decode,
    handoff,
    one_launch,
    relaxed,
    row_loop,
    scalar_atomic,
)

ATOMIC_STAGES = ("row_loop", "naive", "tl_full", "scalar_atomic", "relaxed", "block_histogram")
EXPECTED_SEMS = {"row_loop": {"acq_rel"}, "naive": {"acq_rel"}, "tl_full": {"acq_rel"},
                 "scalar_atomic": {"acq_rel"}, "relaxed": {"relaxed"}, "block_histogram": {"relaxed"},
                 "decode": set(), "one_launch": {"relaxed", "acq_rel"},  # one_launch: acq_rel ticket
                 "handoff": {"relaxed", "release", "acquire"}}  # handoff: the flag, raised and read


# TRITON_INTERPRET=0 on a machine without a GPU (how we rehearse the GPU machine's code paths):
# the library's launches ask the GPU for its SM count and take CUDA tensors only
NEEDS_STAGE_DEVICE = pytest.mark.skipif(
    not moe_lab.backend.INTERPRETER and not torch.cuda.is_available(),
    reason="the stages run compiled (TRITON_INTERPRET=0) and need a CUDA GPU")


def ids(rows, dtype=torch.int32):
    return torch.tensor(rows, dtype=dtype)


def reference_counts(topk_ids, start, num_local):
    return stage("torch").run(topk_ids, start, num_local)[1].numpy()


def assert_same(model, trace, what=""):
    for name in ("atomics", "values", "stores", "stored", "ticket"):
        got, want = getattr(trace, name), getattr(model, name)
        assert got.shape == want.shape, f"{what}: {name} shape {got.shape} (kernel) != {want.shape} (model)"
        bad = np.argwhere(got != want)
        assert bad.size == 0, (f"{what}: {name} differ at [program, counter] {bad[:5].tolist()}: "
                               f"kernel {got[tuple(bad[0])]} vs model {want[tuple(bad[0])]}")
    assert model.counts.tolist() == (trace.stored.sum(0) if model.launch.writes in (
        "stores", atomics.PER_BIN_TICKET) else trace.values.sum(0)).tolist(), what


# ---------------------------------------------------------------------------------------------
# Hand-worked examples


def test_per_slot_stage_one_atomic_per_local_slot_by_hand():
    # slots: 0 1 | 1 1 | 5 -1 | 3 (block 2: programs 0..3; the last has one masked lane)
    t = atomics.atomic_traffic("tl_full", ids([[0], [1], [1], [1], [5], [-1], [3]]), 0, 4, block=2)
    assert t.launch.num_programs == 4 and not t.launch.persistent
    assert t.atomics.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]]
    assert t.values.tolist() == t.atomics.tolist()
    assert t.counts.tolist() == [1, 3, 0, 1]
    p = t.programs()
    assert p["masked"].tolist() == [0, 0, 0, 1]
    assert p["remote"].tolist() == [0, 0, 1, 0] and p["padding"].tolist() == [0, 0, 1, 0]
    assert p["atomics"].tolist() == [2, 2, 0, 1]
    assert t.slot_state.tolist() == [atomics.LOCAL] * 4 + [atomics.REMOTE, atomics.PADDING,
                                                           atomics.LOCAL, atomics.MASKED]


def test_histogram_stage_one_atomic_per_nonzero_bin_per_program_by_hand():
    topk = ids([[0], [1], [1], [1], [5], [-1], [3], [3]])
    per_tile = atomics.atomic_traffic("block_histogram", topk, 0, 4, block=2, num_programs=0)
    assert per_tile.launch.num_programs == 4
    assert per_tile.atomics.tolist() == [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]]
    assert per_tile.values.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [0, 0, 0, 0], [0, 0, 0, 2]]
    # persistent grid of 2: program 0 takes tiles 0 and 2, program 1 tiles 1 and 3
    grid2 = atomics.atomic_traffic("block_histogram", topk, 0, 4, block=2, num_programs=2)
    assert grid2.tile_program.tolist() == [0, 1, 0, 1]
    assert grid2.atomics.tolist() == [[1, 1, 0, 0], [0, 1, 0, 1]]
    assert grid2.values.tolist() == [[1, 1, 0, 0], [0, 2, 0, 2]]
    assert grid2.total_atomics == 4 and per_tile.total_atomics == 4
    # more programs than tiles: the library's min(tiles, grid)
    assert atomics.atomic_traffic("block_histogram", topk, 0, 4, block=2, num_programs=99) \
        .launch.num_programs == 4


def test_decode_stores_every_counter_once_and_issues_no_atomics():
    t = atomics.atomic_traffic("decode", ids([[2, 2], [-1, 9]]), 1, 3)
    assert t.launch.num_programs == 1 and t.launch.writes == "stores"
    assert t.atomics.tolist() == [[0, 0, 0]] and t.total_atomics == 0
    assert t.stores.tolist() == [[1, 1, 1]]
    assert t.stored.tolist() == [[0, 2, 0]]
    assert t.counts.tolist() == [0, 2, 0]


def test_one_launch_adds_to_scratch_takes_tickets_and_the_last_program_stores_by_hand():
    topk = ids([[0], [1], [1], [1], [5], [-1], [3], [3]])
    t = atomics.atomic_traffic("one_launch", topk, 0, 4, block=2, num_programs=2)
    assert t.launch.writes == atomics.PER_BIN_TICKET and t.launch.num_programs == 2
    # program 0: tiles 0, 2 -> bins {0: 1, 1: 1}; program 1 (the last): tiles 1, 3 -> {1: 2, 3: 2},
    # plus one exchange per accumulator to zero them again
    assert t.atomics.tolist() == [[1, 1, 0, 0], [1, 2, 1, 2]]
    assert t.values.tolist() == [[1, 1, 0, 0], [0, 2, 0, 2]]
    assert t.ticket.tolist() == [1, 2]                       # a ticket each, and the reset
    assert t.stores.tolist() == [[0, 0, 0, 0], [1, 1, 1, 1]]
    assert t.stored.tolist() == [[0, 0, 0, 0], [1, 3, 0, 2]]
    assert t.counts.tolist() == [1, 3, 0, 2] and t.total_atomics == 8 + 3


def test_handoff_zeroes_in_the_first_program_and_adds_in_all():
    topk = ids([[0], [1], [1], [1], [5], [-1], [3], [3]])
    t = atomics.atomic_traffic("handoff", topk, 0, 4, block=2, num_programs=2)
    assert t.launch.writes == atomics.PER_BIN_FLAG and t.launch.num_programs == 2
    # program 0 (the first to arrive): tiles 0, 2 -> bins {0: 1, 1: 1}; program 1: tiles 1, 3 -> {1: 2, 3: 2}
    assert t.atomics.tolist() == [[1, 1, 0, 0], [0, 1, 0, 1]]
    assert t.values.tolist() == [[1, 1, 0, 0], [0, 2, 0, 2]]
    assert t.ticket.tolist() == [3, 3]  # arrival and flag read each; the first raises, the last moves on
    assert t.stores.tolist() == [[1, 1, 1, 1], [0, 0, 0, 0]] and not t.stored.any()  # the zeros
    assert t.counts.tolist() == [1, 3, 0, 2] and t.total_atomics == 4 + 6


def test_counters_share_a_line_per_32():
    # local experts 0, 31 (line 0), 32 and 63 (line 1), 64 (line 2)
    t = atomics.atomic_traffic("scalar_atomic", ids([[0, 31, 32, 63], [64, 64, -1, 0]]), 0, 65)
    assert t.num_lines == 3
    assert t.line_atomics.sum(axis=0).tolist() == [3, 2, 2]


def test_hot_expert_sends_every_atomic_to_one_line():
    case = routing.case("deepseek-v3", 300, distribution="hot", ep_size=8, rank=2)
    t = atomics.atomic_traffic("scalar_atomic", *case.args())
    assert t.atomics[:, 0].sum() == 300                       # the hot expert: every token
    assert t.line_atomics.sum() == t.counts.sum()             # one line holds all 32 counters
    h = atomics.atomic_traffic("block_histogram", *case.args(), num_programs=0)
    assert h.atomics[:, 0].tolist() == [1] * h.launch.num_programs  # one atomic per program, any load
    assert h.values[:, 0].sum() == 300


# ---------------------------------------------------------------------------------------------
# Launch configuration follows the library


@NEEDS_STAGE_DEVICE
def test_default_blocks_are_the_stages_own():
    from moe_lab.stages import naive, tl_full
    for topk in (1, 2, 6, 8):
        assert atomics.launch_config("tl_full", 100, topk, 32).block == tl_full.block_size(topk)
        assert atomics.launch_config("naive", 100, topk, 32).block == naive.TOKENS_PER_PROGRAM * topk
    assert atomics.launch_config("block_histogram", 100, 8, 32).block == block_histogram.BLOCK
    assert atomics.launch_config("decode", 100, 8, 32).block == decode.tile_size(800)
    assert atomics.launch_config("one_launch", 5000, 8, 32).block == one_launch.tile_size(40000)
    # best follows best.choose
    for tokens, num_local in ((100, 32), (4096, 32), (10, 2048), (100000, 8)):
        assert atomics.launch_config("best", tokens, 8, num_local).kernel == \
            best.choose(tokens * 8, num_local)
    assert {atomics.launch_config("best", t, 8, n).kernel for t, n in ((100, 32), (10, 2048))} == \
        {"decode", "relaxed"}
    # the library's persistent grid on this machine
    lib = atomics.launch_config("block_histogram", 5000, 8, 32)
    tiles = -(-5000 * 8 // block_histogram.BLOCK)
    sms = block_histogram.sm_count(moe_lab.backend.device())
    assert lib.num_programs == min(tiles, block_histogram.PROGRAMS_PER_SM * sms)
    lib = atomics.launch_config("one_launch", 5000, 8, 32)
    assert lib.num_programs == min(-(-40000 // lib.block), one_launch.PROGRAMS_PER_SM * sms)


@pytest.mark.parametrize("kwargs, match", [
    (dict(stage="nope"), "unknown stage"),
    (dict(stage="torch"), "no model"),
    (dict(stage="tl_full", block=96), "power of two"),
    (dict(stage="tl_full", num_programs=4), "num_programs"),
    (dict(stage="naive", block=21), "multiple of topk"),
    (dict(stage="block_histogram", num_programs=-1), "num_programs"),
])
def test_bad_arguments_name_the_argument(kwargs, match):
    kwargs = dict(kwargs)
    with pytest.raises(ValueError, match=match):
        atomics.atomic_traffic(kwargs.pop("stage"), ids([[1, 2]] * 5), 0, 8, **kwargs)


def test_row_loop_refuses_topk_six_like_the_kernel():
    with pytest.raises(row_loop.NonPowerOfTwoTopkError):
        atomics.atomic_traffic("row_loop", ids([[0] * 6]), 0, 8)
    with pytest.raises(row_loop.NonPowerOfTwoTopkError):
        atomics.trace("row_loop", ids([[0] * 6]), 0, 8)


def test_bad_ids_are_refused_with_the_library_checks():
    with pytest.raises(TypeError, match="topk_ids"):
        atomics.atomic_traffic("tl_full", torch.zeros(4, 2), 0, 8)
    with pytest.raises(ValueError, match="num_local"):
        atomics.atomic_traffic("tl_full", ids([[1, 2]]), 0, 0)


# ---------------------------------------------------------------------------------------------
# The model against the kernels


@NEEDS_STAGE_DEVICE
@pytest.mark.parametrize("name", atomics.MODELLED_STAGES)
def test_model_sums_to_the_library_counts(name, device):
    """Summed over programs, the model's values are what ``run()`` of the library returns."""
    for case in verify.adversarial_cases():
        if name == "row_loop" and case.topk & (case.topk - 1):
            continue
        model = atomics.atomic_traffic(name, case.topk_ids, case.start, case.num_local)
        want = stage(name).run(case.topk_ids.to(device), case.start, case.num_local)[1].cpu().numpy()
        assert model.counts.tolist() == want.tolist(), case.name
        if model.launch.writes == "per-slot atomics":  # each atomic adds 1
            assert model.total_atomics == int(want.sum()), case.name


def random_case(rng, name):
    topk = int(rng.choice([1, 2, 4, 8] if name == "row_loop" else [1, 2, 3, 6, 8]))
    num_tokens = int(rng.integers(0, 60 if name in ("row_loop", "naive") else 160))
    num_local = int(rng.choice([1, 5, 32, 33, 70]))
    start = int(rng.integers(0, 40))
    topk_ids = torch.from_numpy(rng.integers(-1, start + num_local + 20, (num_tokens, topk))
                                .astype(np.int32))
    return topk_ids, start, num_local


@pytest.mark.parametrize("name", atomics.MODELLED_STAGES)
def test_model_equals_a_trace_of_the_kernel_per_program(name, seed, replay):
    """Per program and per counter: atomic lanes, values added, stores, and the memory order."""
    rng = np.random.default_rng(seed)
    for trial in range(6):
        topk_ids, start, num_local = random_case(rng, name)
        topk = topk_ids.shape[1]
        kw = {}
        if trial % 2 and name not in ("row_loop", "naive", "best"):
            kw["block"] = int(rng.choice([1, 16, 64, 256]))
        if trial % 2 and name in ("row_loop", "naive"):
            kw["block"] = topk * int(rng.integers(1, 9))
        if name in ("block_histogram", "one_launch", "handoff"):
            kw["num_programs"] = int(rng.choice([0, 1, 2, 3, 7]))
        what = f"{name} {tuple(topk_ids.shape)} start={start} num_local={num_local} {kw}; {replay}"
        model = atomics.atomic_traffic(name, topk_ids, start, num_local, **kw)
        trace = atomics.trace(name, topk_ids, start, num_local, **kw)
        assert_same(model, trace, what)
        assert trace.counts.numpy().tolist() == reference_counts(topk_ids, start, num_local).tolist(), what
        if model.total_atomics:
            assert model.launch.sem in trace.sems, what
            assert trace.sems == EXPECTED_SEMS[model.launch.kernel], what
        if topk_ids.numel():
            assert (trace.adjusted == stage("torch").run(topk_ids, start, num_local)[0]).all(), what


@pytest.mark.skipif(not moe_lab.backend.INTERPRETER, reason="traces the library's own launches, which "
                    "run in Triton's interpreter only on a machine without a GPU")
def test_model_equals_a_trace_of_the_librarys_own_launch_code(seed, replay, monkeypatch):
    """No copy of the grid rules here: the library's launch functions run under the recorder."""
    kept = torch.zeros(one_launch.SCRATCH_SIZE, dtype=torch.int32)
    monkeypatch.setattr(one_launch, "scratch", lambda device, stream=None: kept)  # one the recorder watches
    rng = np.random.default_rng(seed)
    for trial in range(4):
        # trial 0 is large enough for best to pick one_launch, the others mostly decode
        num_tokens = int(rng.integers(1030, 1400) if trial == 0 else rng.integers(1, 1200))
        case = routing.case("deepseek-v3", num_tokens, distribution=("uniform", "zipf", "hot")[trial % 3],
                            ep_size=8, rank=int(rng.integers(0, 8)), pad_fraction=0.1, seed=seed + trial)
        topk_ids, start, num_local = case.args()
        block = int(rng.choice([64, 256, 1024]))
        k = int(rng.integers(1, 6))
        launches = {
            ("scalar_atomic", None, None): lambda a, c: scalar_atomic.launch(
                topk_ids, a, c, start, num_local),
            ("relaxed", block, None): lambda a, c: relaxed.launch(
                topk_ids, a, c, start, num_local, block=block),
            ("block_histogram", block, k): lambda a, c: block_histogram.launch(
                topk_ids, a, c, start, num_local, block=block, programs_per_sm=k),
            ("block_histogram", block, 0): lambda a, c: block_histogram.launch(
                topk_ids, a, c, start, num_local, block=block, programs_per_sm=0),
            ("block_histogram", None, None): lambda a, c: block_histogram.launch(
                topk_ids, a, c, start, num_local),
            ("decode", None, None): lambda a, c: decode.launch(topk_ids, a, c, start, num_local),
            ("one_launch", block, k): lambda a, c: one_launch.launch(
                topk_ids, a, c, start, num_local, block=block, programs_per_sm=k),
            ("one_launch", None, None): lambda a, c: one_launch.launch(topk_ids, a, c, start, num_local),
            ("handoff", block, k): lambda a, c: handoff.launch(
                topk_ids, a, c, start, num_local, block=block, programs_per_sm=k),
            ("handoff", None, None): lambda a, c: handoff.launch(topk_ids, a, c, start, num_local),
            ("best", None, None): lambda a, c: best.run(topk_ids, start, num_local, adjusted_out=a,
                                                        expert_count_out=c),
        }
        for (name, blk, grid), launch in launches.items():
            model = atomics.atomic_traffic(name, topk_ids, start, num_local, block=blk, num_programs=grid)
            adjusted = torch.empty_like(topk_ids)
            counts = torch.zeros(num_local, dtype=torch.int32)
            scratch = one_launch.scratch(topk_ids.device)  # what the library's launch will use
            with atomics.record_counter_writes(counts, model.launch.num_programs, scratch, one_launch.TICKET,
                                               one_launch.SCRATCH_SIZE - one_launch.TICKET) as rec:
                launch(adjusted, counts)
            assert not scratch[:one_launch.TICKET + 1].any(), "one_launch leaves its scratch zeroed"
            assert handoff.state_is_clean(scratch), "handoff leaves its state ready for the next launch"
            assert_same(model, rec, f"{name} block={blk} grid={grid} tokens={num_tokens}; {replay}")
            assert counts.numpy().tolist() == model.counts.tolist()


def test_recorder_fails_when_a_program_id_exceeds_the_model_grid():
    """The recorder is strict: a launch with more programs than expected does not pass silently."""
    topk_ids = ids([[1, 2]] * 300)
    counts = torch.zeros(8, dtype=torch.int32)
    fn = interp.interpreted(scalar_atomic.scalar_atomic_kernel)
    with pytest.raises(Exception, match="num_programs"):
        with atomics.record_counter_writes(counts, 2):
            fn[(5,)](topk_ids, torch.empty_like(topk_ids), counts, 600, 0, 8, BLOCK=128)
