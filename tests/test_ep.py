"""moe_lab.ep: real EP groups (2 ranks, gloo on CPU) obey the conservation law, and fail loudly.

Each group spawns two processes that import torch and moe_lab (a few seconds each on 2 cores), so
one module-scoped group runs every batch and routing at once, and each failure mode gets its own
small group. The synthetic timings in ``test_recorded_csv_round_trip`` exist only in tmp_path.
"""

from __future__ import annotations

import re
import time

import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

import moe_lab
from moe_lab import ep, routing

BATCHES = [16, [5, 17]]
DISTRIBUTIONS = ["uniform", "zipf", "hot"]
FAILURE_BOUND_S = 60.0


@pytest.fixture(scope="module")
def sweep():
    """One 2-rank gloo group, 6 jobs: even and uneven batches under three routings."""
    return ep.run_sweep(2, preset="deepseek-v3", batches=BATCHES, distributions=DISTRIBUTIONS, seed=0)


def job(sweep, batch, distribution):
    for r in sweep:
        if r.tokens_per_rank == ([batch] * 2 if isinstance(batch, int) else batch) \
                and r.distribution == distribution:
            return r
    raise KeyError((batch, distribution))


# ---------------------------------------------------------------------------- the conservation law

@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
@pytest.mark.parametrize("batch", BATCHES, ids=["even", "uneven"])
def test_conservation_holds(sweep, batch, distribution):
    r = job(sweep, batch, distribution)
    assert r.violations == [] and r.checks_passed, r.violations
    # Recompute the law here, independently of check_conservation: counts of rank 0 then rank 1
    # are the histogram of the non-sentinel gathered ids.
    ids = r.gathered_ids.reshape(-1).long()
    histogram = torch.bincount(ids[ids >= 0], minlength=r.num_experts)
    assert torch.equal(r.counts.reshape(-1).long(), histogram)
    assert r.counts.shape == (2, 128) and r.starts == [0, 128]
    assert ep.check_conservation(r.gathered_ids, r.counts, r.starts, r.num_local) == []


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_every_rank_routed_its_own_tokens(sweep, distribution):
    """The gathered tensor is rank 0's batch, then rank 1's, each drawn with seed + rank."""
    r = job(sweep, 16, distribution)
    mine = [ep.router_output("deepseek-v3", 16, distribution, seed=0, rank=k) for k in range(2)]
    assert torch.equal(r.gathered_ids, torch.cat(mine))
    assert not torch.equal(mine[0], mine[1])


def test_uneven_batches_are_padded_and_padding_counted_nowhere(sweep):
    r = job(sweep, [5, 17], "uniform")
    assert r.gathered_shape == (34, 8) and r.padding_rows == [12, 0]
    assert (r.gathered_ids[5:17] == -1).all(), "rank 0's 5 tokens must be followed by 12 rows of -1"
    assert (r.gathered_ids[:5] >= 0).all() and (r.gathered_ids[17:] >= 0).all()
    assert sum(r.local_slots) == (5 + 17) * 8, "every real slot counted once, padding never"
    assert r.table()["padding_rows"].tolist() == [12, 0]


def test_hot_expert_lands_on_rank_0(sweep):
    r = job(sweep, [5, 17], "hot")
    assert int(r.counts[0, 0]) == 5 + 17, "expert 0 is in every token's top-k"
    assert r.local_slots[0] > r.local_slots[1] and r.imbalance > 1.0


# ---------------------------------------------------------------------------- failures end quickly

@pytest.mark.timeout(120)
def test_failing_rank_is_named():
    began = time.monotonic()
    with pytest.raises(ep.EPGroupError) as info:
        ep.run_group(2, tokens_per_rank=[5, 17], fail_rank=1, timeout_s=30)
    elapsed = time.monotonic() - began
    assert elapsed < FAILURE_BOUND_S, f"the failure took {elapsed:.1f} s to report"
    assert info.value.rank == 1 and info.value.phase == "routed"
    message = str(info.value)
    assert "rank 1 failed in phase 'routed'" in message
    assert "RuntimeError: injected failure on rank 1" in message, "the rank's own error is shown"
    # rank 0 is listed with its last phase: normally waiting in the all-gather for rank 1
    assert re.search(r"rank 0: job 0, phase (started|init|joined|routed|all_gather)\n", message)
    assert "Traceback" in info.value.details


def test_blame_goes_to_the_rank_that_failed_outside_a_collective():
    """A dead rank makes its peers fail inside the collective: those are consequences, not causes.
    (Checked on the parent's bookkeeping alone: a hard exit costs a group start-up to stage.)"""
    progress = {0: (0, "all_gather*", ""), 1: (0, "routed", "")}
    peer_error = {0: (0, "all_gather*", 100.0, "Traceback ...\nRuntimeError: Connection closed by peer")}
    crash = ep._failure(peer_error, {0: 1, 1: 3}, progress, 2)  # rank 1 died without a traceback
    assert crash.rank == 1 and crash.phase == "routed"
    assert "rank 1 exited with code 3 without a Python traceback" in str(crash)
    killed = ep._failure({}, {1: -9}, progress, 2)
    assert killed.rank == 1 and "exited with signal 9" in str(killed)
    both = {**peer_error, 1: (0, "routed", 100.5, "Traceback ...\nValueError: bad batch")}
    assert ep._failure(both, {0: 1, 1: 1}, progress, 2).rank == 1, "the later error, but the cause"
    inside = {0: (0, "exchange*", 101.0, "T\nE: timeout"), 1: (0, "exchange*", 100.0, "T\nE: nccl")}
    assert ep._failure(inside, {}, {0: (0, "exchange*", ""), 1: (0, "exchange*", "")}, 2).rank == 1


@pytest.mark.timeout(120)
def test_hanging_rank_is_stopped_by_the_watchdog():
    began = time.monotonic()
    with pytest.raises(ep.EPGroupError) as info:
        ep.run_group(2, tokens_per_rank=4, fail_rank=1, fail_mode="hang", timeout_s=3)
    elapsed = time.monotonic() - began
    assert elapsed < FAILURE_BOUND_S, f"the hang took {elapsed:.1f} s to detect"
    assert info.value.rank == 1 and info.value.phase == "routed"
    assert "no progress for 3 s" in str(info.value) and "rank 1 stopped" in str(info.value)


# ---------------------------------------------------------------------------- bad arguments

@pytest.mark.parametrize("kwargs,error,words", [
    (dict(world_size=0), ValueError, "world_size must be >= 1"),
    (dict(world_size="2"), TypeError, "world_size must be an int"),
    (dict(world_size=3), ValueError, "EP sizes that work for deepseek-v3: [1, 2, 4, 8, 16, 32, 64, 128, 256]"),
    (dict(world_size=3, preset="mixtral"), ValueError, "[1, 2, 4, 8]"),
    (dict(world_size=2, tokens_per_rank=[1, 2, 3]), ValueError, "one int per rank"),
    (dict(world_size=2, tokens_per_rank=-1), ValueError, "tokens_per_rank must be >= 0"),
    (dict(world_size=2, backend="mpi"), ValueError, "backend='mpi'"),
    (dict(world_size=2, distribution="normal"), ValueError, "distribution='normal'"),
    (dict(world_size=2, variant="fastest"), ValueError, "unknown variant 'fastest'"),
    (dict(world_size=2, fail_rank=2), ValueError, "fail_rank=2"),
    (dict(world_size=2, fail_mode="segfault"), ValueError, "fail_mode='segfault'"),
    (dict(world_size=2, timeout_s=0), ValueError, "timeout_s must be a positive"),
    (dict(world_size=2, measure=True), ValueError, "measure=True needs backend='nccl'"),
    (dict(world_size=2, preset="gpt-5"), ValueError, "unknown preset 'gpt-5'"),
])
def test_bad_arguments_are_refused_before_spawning(kwargs, error, words):
    with pytest.raises(error) as info:
        ep.run_group(**kwargs)
    assert words in str(info.value)


@pytest.mark.skipif(torch.cuda.device_count() >= 2, reason="this machine has the GPUs")
def test_nccl_without_gpus_is_refused():
    with pytest.raises(ValueError, match="needs 2 CUDA GPUs"):
        ep.run_group(2, backend="nccl")


@pytest.mark.skipif(torch.cuda.device_count() >= 2, reason="this machine has the GPUs")
def test_cli_refuses_without_gpus(capsys):
    with pytest.raises(SystemExit) as info:
        ep.main(["--backend", "nccl", "--world-size", "2", "--out", "unused"])
    assert info.value.code == 2
    assert "needs 2 GPUs" in capsys.readouterr().err


def test_cli_refuses_to_record_gloo(capsys, tmp_path):
    with pytest.raises(SystemExit):
        ep.main(["--backend", "gloo", "--world-size", "2", "--out", str(tmp_path)])
    assert "need --backend nccl" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------- check_conservation

def one_host_group(world_size=2, tokens=(3, 6), variant="torch"):
    """What a group computes, in one process: gathered ids, per-rank adjusted ids and counts (CPU
    tensors). ``variant="torch"`` for tests of the checker; a Triton stage runs where the backend
    puts its tensors (CPU under the interpreter, else the GPU)."""
    p = routing.preset("deepseek-v3")
    rows = max(tokens)
    gathered = torch.cat([routing.pad_rows(ep.router_output("deepseek-v3", n, seed=1, rank=r), rows - n)
                          for r, n in enumerate(tokens)])
    starts = [p.start(r, world_size) for r in range(world_size)]
    num_local = p.num_local(world_size)
    where = torch.device("cpu") if variant == "torch" else moe_lab.backend.device()
    outs = [[t.cpu() for t in moe_lab.recombine(gathered.to(where), s, num_local, variant=variant)]
            for s in starts]
    return (gathered, torch.stack([c for _, c in outs]), starts, num_local,
            torch.stack([a for a, _ in outs]))


@pytest.mark.skipif(not moe_lab.backend.INTERPRETER and not torch.cuda.is_available(),
                    reason="the stages run compiled (TRITON_INTERPRET=0) and need a CUDA GPU")
def test_check_conservation_passes_on_kernel_output():
    gathered, counts, starts, num_local, adjusted = one_host_group(variant="best")
    assert ep.check_conservation(gathered, counts, starts, num_local, adjusted) == []


def test_check_conservation_catches_a_tampered_count():
    gathered, counts, starts, num_local, adjusted = one_host_group()
    counts[1, 3] += 1
    problems = ep.check_conservation(gathered, counts, starts, num_local, adjusted)
    assert len(problems) == 1
    assert problems[0].startswith("rank 1: local expert 3 (global 131)")


def test_check_conservation_catches_misrouted_slots():
    gathered, counts, starts, num_local, adjusted = one_host_group()
    first_real = int(gathered[0, 0])  # row 0 is rank 0's first token
    owner = first_real // num_local
    pad_row = 3  # rank 0 has 3 tokens, padded to 6: rows 3..5 are -1

    lost = adjusted.clone()
    lost[owner, 0, 0] = -1
    assert any("local on no rank" in p and "(row 0, k 0)" in p
               for p in ep.check_conservation(gathered, counts, starts, num_local, lost))

    twice = adjusted.clone()
    twice[1 - owner, 0, 0] = 7
    problems = ep.check_conservation(gathered, counts, starts, num_local, twice)
    assert any("local on several ranks" in p for p in problems)
    assert any(p.startswith(f"rank {1 - owner}: 1 local slots not rewritten") for p in problems)

    padding = adjusted.clone()
    padding[0, pad_row, 2] = 0
    assert any("-1 padding" in p and f"(row {pad_row}, k 2)" in p
               for p in ep.check_conservation(gathered, counts, starts, num_local, padding))


def test_check_conservation_catches_bad_ids_and_ownership():
    gathered, counts, starts, num_local, _ = one_host_group()
    bad = gathered.clone()
    bad[1, 1] = -5
    assert any("negative id other than the -1" in p for p in ep.check_conservation(bad, counts, starts, num_local))
    bad = gathered.clone()
    bad[1, 1] = 300
    assert any("no rank owns (ids [300])" in p for p in ep.check_conservation(bad, counts, starts, num_local))
    assert any("overlap" in p for p in ep.check_conservation(gathered, counts, [0, 64], num_local))
    with pytest.raises(ValueError, match="counts_per_rank must have shape"):
        ep.check_conservation(gathered, counts[:, :5], starts, num_local)


# ---------------------------------------------------------------------------- tables, CSV, plots

def test_results_frame_and_csv_from_a_gloo_run(sweep, tmp_path):
    frame = ep.results_frame(sweep)
    assert len(frame) == len(sweep) * 2  # one row per (job, rank): no stages timed on gloo
    assert set(frame["stage"]) == {"best"} and frame["checks_passed"].all()
    assert frame[list(ep.TIMING_COLUMNS)].isna().all().all(), "gloo runs must carry no timings"
    path = ep.write_csv(frame, tmp_path, run_id="test-run")
    back = pd.read_csv(path)
    assert path.name == "ep_gloo_ws2_cpu_test-run.csv"
    for column in ["card", "driver", "cuda", "torch", "triton", "python", "date", "run_id",
                   "world_size", "preset", "tokens_per_rank", "rank", "stage", "allgather_us", "kernel_us"]:
        assert column in back, column
    assert back["torch"].iloc[0] == torch.__version__
    assert ep.load_recorded(tmp_path) is None, "CPU rows are not recorded GPU results"


def test_recorded_csv_round_trip(tmp_path):
    rows = [dict(world_size=2, backend="nccl", preset="deepseek-v3", distribution="uniform",
                 tokens_per_rank=n, rank=r, stage=s, card="Test Card", kernel_us=1.0 + n / 1e3,
                 allgather_us=5.0 + n / 1e2)
            for n in (1024, 4096) for r in (0, 1) for s in ep.MEASURED_STAGES]
    path = ep.write_csv(pd.DataFrame(rows), tmp_path, run_id="synthetic")
    recorded = ep.load_recorded(tmp_path)
    assert len(recorded) == 8 and path.name == "ep_nccl_ws2_test-card_synthetic.csv"
    assert isinstance(ep.plot_recorded(recorded), Figure)


def test_plots(sweep):
    assert isinstance(ep.plot_imbalance([job(sweep, 16, d) for d in DISTRIBUTIONS]), Figure)
    assert isinstance(ep.plot_expert_counts(job(sweep, 16, "zipf")), Figure)


# ---------------------------------------------------------------------------- the real thing

@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs")
def test_nccl_group_on_two_gpus():
    r = ep.run_group(2, tokens_per_rank=[1024, 4096], backend="nccl")
    assert r.checks_passed, r.violations
    t = r.timings
    assert sorted(t["rank"].unique()) == [0, 1] and set(t["stage"]) == set(ep.MEASURED_STAGES)
    assert (t["kernel_us"] > 0).all() and (t["allgather_us"] > 0).all()
