"""moe_lab.ep: real EP groups (2 ranks, gloo on CPU) obey the conservation law, and fail loudly.

Each group spawns two processes that import torch and moe_lab (a few seconds each on 2 cores), so
one module-scoped group runs every batch and routing at once, and each failure mode gets its own
small group. The synthetic timings in ``test_recorded_csv_round_trip`` exist only in tmp_path.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
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
    assert re.search(r"rank 0: step 0, phase (started|init|joined|routed|all_gather)\n", message)
    assert "Traceback" in info.value.details


def test_blame_goes_to_the_rank_that_failed_outside_a_collective():
    """A dead rank makes its peers fail inside the collective: those are consequences, not causes.
    (Checked on the parent's bookkeeping alone: a hard exit costs a group start-up to stage.)"""
    progress = {0: (0, "all_gather*", ""), 1: (0, "routed", "")}
    peer_error = {0: (0, "all_gather*", 100.0, "Traceback ...\nRuntimeError: Connection closed by peer")}
    crash = ep.supervisor.failure(peer_error, {0: 1, 1: 3}, progress, 2)  # rank 1 died without a traceback
    assert crash.rank == 1 and crash.phase == "routed"
    assert "rank 1 exited with code 3 without a Python traceback" in str(crash)
    killed = ep.supervisor.failure({}, {1: -9}, progress, 2)
    assert killed.rank == 1 and "exited with signal 9" in str(killed)
    both = {**peer_error, 1: (0, "routed", 100.5, "Traceback ...\nValueError: bad batch")}
    assert ep.supervisor.failure(both, {0: 1, 1: 1}, progress, 2).rank == 1, "the later error, but the cause"
    inside = {0: (0, "exchange*", 101.0, "T\nE: timeout"), 1: (0, "exchange*", 100.0, "T\nE: nccl")}
    assert ep.supervisor.failure(inside, {}, {0: (0, "exchange*", ""), 1: (0, "exchange*", "")}, 2).rank == 1


@pytest.mark.timeout(120)
def test_hanging_rank_is_stopped_by_the_watchdog():
    began = time.monotonic()
    with pytest.raises(ep.EPGroupError) as info:
        ep.run_group(2, tokens_per_rank=4, fail_rank=1, fail_mode="hang", timeout_s=3)
    elapsed = time.monotonic() - began
    assert elapsed < FAILURE_BOUND_S, f"the hang took {elapsed:.1f} s to detect"
    assert info.value.rank == 1 and info.value.phase == "routed"
    assert "no progress for 3 s" in str(info.value) and "rank 1 stopped" in str(info.value)


RANKS_GONE_S = 20.0  # a rank killed mid-import first finishes importing torch, then sees its parent gone
GROUP_THAT_HANGS = """
import sys
from moe_lab import ep
print("starting", flush=True)
ep.run_group(2, preset="mixtral", tokens_per_rank=4, fail_rank=1, fail_mode="hang",
             timeout_s=600, startup_timeout_s=600)
"""


def rank_processes(parent: int) -> list[int]:
    """Children of ``parent`` that are multiprocessing spawn workers (the ranks)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as gone: it runs no code and holds no port)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the ranks")
@pytest.mark.timeout(180)
def test_ranks_exit_when_the_parent_is_killed():
    """What a Jupyter kernel restart does: SIGKILL the process that started a group while one rank
    hangs and the other waits for it in the all-gather. Both ranks must be gone soon after."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    parent = subprocess.Popen([sys.executable, "-c", GROUP_THAT_HANGS], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    ranks = []
    try:
        began = time.monotonic()
        while len(ranks) < 2 and time.monotonic() - began < 120:
            assert parent.poll() is None, parent.stdout.read().decode()
            ranks = rank_processes(parent.pid)
            time.sleep(0.2)
        assert len(ranks) == 2, f"the group did not start: ranks {ranks}"
        time.sleep(8.0)  # let the ranks import, join and reach the hang (the law holds at any phase)
        assert all(alive(r) for r in ranks), "the ranks were running before the parent died"
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        killed = time.monotonic()
        while any(alive(r) for r in ranks) and time.monotonic() - killed < RANKS_GONE_S:
            time.sleep(0.1)
        left = [r for r in ranks if alive(r)]
        assert not left, f"ranks {left} outlived their parent by {RANKS_GONE_S} s"
    finally:
        parent.kill()
        for r in ranks:
            if alive(r):
                os.kill(r, signal.SIGKILL)


ORPHAN = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", (
    "import os, time\\n"
    "from moe_lab.ep.rank import follow_parent\\n"
    "follow_parent(os.getppid(), use_prctl=False)\\n"
    "print('watching', flush=True)\\n"
    "time.sleep(600)\\n")], stdout=subprocess.PIPE)
assert child.stdout.readline().strip() == b"watching"
print(child.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to see the orphan")
@pytest.mark.timeout(120)
def test_the_watchdog_thread_alone_ends_an_orphan():
    """Without PR_SET_PDEATHSIG (as on macOS), the thread that polls the parent's pid is enough."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    middle = subprocess.Popen([sys.executable, "-c", ORPHAN], env=env, stdout=subprocess.PIPE)
    try:
        child = int(middle.stdout.readline())
        assert alive(child)
        middle.send_signal(signal.SIGKILL)
        middle.wait(timeout=10)
        killed = time.monotonic()
        while alive(child) and time.monotonic() - killed < 5:
            time.sleep(0.05)
        assert not alive(child), "the orphan still runs 5 s after its parent died"
    finally:
        middle.kill()


def test_a_rank_whose_parent_is_already_gone_exits_at_once():
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    code = "from moe_lab.ep.rank import follow_parent; follow_parent(1 << 30); print('still here')"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=120,
                          check=False)
    assert done.returncode == 4 and b"still here" not in done.stdout


# ---------------------------------------------------------------------------- bad arguments

@pytest.mark.parametrize("kwargs,error,words", [
    (dict(world_size=0), ValueError, "world_size must be >= 1"),
    (dict(world_size="2"), TypeError, "world_size must be an int"),
    (dict(world_size=3), ValueError,
     "EP sizes that work for deepseek-v3: [1, 2, 4, 8, 16, 32, 64, 128, 256]"),
    (dict(world_size=3, preset="mixtral"), ValueError, "[1, 2, 4, 8]"),
    (dict(tokens_per_rank=[1, 2, 3]), ValueError, "one int per rank"),
    (dict(tokens_per_rank=-1), ValueError, "tokens_per_rank must be >= 0"),
    (dict(backend="mpi"), ValueError, "backend='mpi'"),
    (dict(distribution="normal"), ValueError, "distribution='normal'"),
    (dict(stage="fastest"), ValueError, "stage='fastest' is not a stage"),
    (dict(fail_rank=2), ValueError, "fail_rank=2"),
    (dict(fail_mode="segfault"), ValueError, "fail_mode='segfault'"),
    (dict(timeout_s=0), ValueError, "timeout_s must be a positive, finite number"),
    (dict(timeout_s=-5), ValueError, "timeout_s must be a positive, finite number of seconds, got -5.0"),
    (dict(timeout_s=float("nan")), ValueError,
     "timeout_s must be a positive, finite number of seconds, got nan"),
    (dict(timeout_s=float("inf")), ValueError, "got inf: the watchdog stops a group"),
    (dict(timeout_s="30"), TypeError, "timeout_s must be a number of seconds, got str ('30')"),
    (dict(startup_timeout_s=float("nan")), ValueError, "startup_timeout_s must be a positive"),
    (dict(tokens_per_rank=16.0), TypeError,
     "tokens_per_rank must be an int, got float (16.0): pass a whole number, e.g. tokens_per_rank=16"),
    (dict(tokens_per_rank=np.float32(8)), TypeError, "tokens_per_rank must be an int, got float32"),
    (dict(tokens_per_rank=[4, 2.5]), TypeError, "tokens_per_rank must be an int, got float (2.5)"),
    (dict(tokens_per_rank=np.array([4, -2])), ValueError, "tokens_per_rank must be >= 0, got -2"),
    (dict(tokens_per_rank=True), TypeError, "tokens_per_rank must be an int, got bool"),
    (dict(seed=-1), ValueError, "seed must be in [0, "),
    (dict(seed=1.5), TypeError, "seed must be an int, got float (1.5)"),
    (dict(seed=2**40), ValueError, "seed must be in [0, 2147483645], got 1099511627776"),
    (dict(world_size=2.0), TypeError, "world_size must be an int, got float (2.0)"),
    (dict(preset=None), TypeError, "preset must be a preset name (str), got NoneType"),
    (dict(backend=None), ValueError, "backend=None must be one of ('gloo', 'nccl')"),
    (dict(stages="best"), TypeError, "stages must be a list of stage names, got the string 'best'"),
    (dict(stages=["best", "fastest"]), ValueError, "stages holds 'fastest', which is not a stage"),
    (dict(stages=[]), ValueError, "stages must name at least one stage"),
    (dict(measure="yes"), TypeError, "measure must be True, False or None"),
    (dict(kernel_mode="replay"), ValueError, "kernel_mode='replay' must be one of ('eager', 'graph')"),
    (dict(repeats=0), ValueError, "repeats must be >= 1, got 0"),
    (dict(fail_rank=1.0), TypeError, "fail_rank must be an int, got float"),
    (dict(measure=True), ValueError, "measure=True needs backend='nccl'"),
    (dict(preset="gpt-5"), ValueError, "unknown preset 'gpt-5'"),
])
def test_bad_arguments_are_refused_before_spawning(kwargs, error, words):
    with pytest.raises(error) as info:
        ep.run_group(**{"world_size": 2, **kwargs})
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


@pytest.mark.timeout(120)
def test_python_dash_m_runs_a_gloo_group():
    """``python -m moe_lab.ep``: the ranks must unpickle their body from moe_lab.ep.rank, not __main__."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    done = subprocess.run([sys.executable, "-m", "moe_lab.ep", "--backend", "gloo", "--world-size", "2",
                           "--preset", "mixtral", "--tokens-per-rank", "3", "--distribution", "hot"],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "tokens_per_rank=[3, 3], gathered [6, 2], local_slots=[8, 4], conservation holds" in done.stdout


def test_cli_refuses_to_record_gloo(capsys, tmp_path):
    with pytest.raises(SystemExit):
        ep.main(["--backend", "gloo", "--world-size", "2", "--out", str(tmp_path)])
    assert "need --backend nccl" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------- check_conservation

def one_host_group(world_size=2, tokens=(3, 6), stage="torch"):
    """What a group computes, in one process: gathered ids, per-rank adjusted ids and counts (CPU
    tensors). ``stage="torch"`` for tests of the checker; a Triton stage runs where the backend
    puts its tensors (CPU under the interpreter, else the GPU)."""
    p = routing.preset("deepseek-v3")
    rows = max(tokens)
    gathered = torch.cat([routing.pad_rows(ep.router_output("deepseek-v3", n, seed=1, rank=r), rows - n)
                          for r, n in enumerate(tokens)])
    starts = [p.start(r, world_size) for r in range(world_size)]
    num_local = p.num_local(world_size)
    where = torch.device("cpu") if stage == "torch" else moe_lab.backend.device()
    outs = [[t.cpu() for t in moe_lab.stage(stage).run(gathered.to(where), s, num_local)]
            for s in starts]
    return (gathered, torch.stack([c for _, c in outs]), starts, num_local,
            torch.stack([a for a, _ in outs]))


@pytest.mark.skipif(not moe_lab.backend.INTERPRETER and not torch.cuda.is_available(),
                    reason="the stages run compiled (TRITON_INTERPRET=0) and need a CUDA GPU")
def test_check_conservation_passes_on_kernel_output():
    gathered, counts, starts, num_local, adjusted = one_host_group(stage="best")
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
    assert any("negative id other than the -1" in p
               for p in ep.check_conservation(bad, counts, starts, num_local))
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
    assert frame[list(ep.TIMINGS)].isna().all().all(), "gloo runs must carry no timings"
    path = ep.write_csv(frame, tmp_path, run_id="test-run")
    back = pd.read_csv(path)
    assert path.name == "ep_gloo_ws2_cpu_test-run.csv"
    for column in ["card", "driver", "cuda", "torch", "triton", "python", "date", "run_id",
                   "world_size", "preset", "tokens_per_rank", "rank", "stage", "allgather_us", "kernel_us"]:
        assert column in back, column
    assert back["torch"].iloc[0] == torch.__version__
    assert ep.load_recorded(tmp_path) is None, "CPU rows are not recorded GPU results"


def synthetic_frame(**overrides):
    """A complete recorded-run frame with made-up timings (it lives only in tmp_path)."""
    rows = [dict(world_size=2, backend="nccl", preset="deepseek-v3", num_experts=256, topk=8, num_local=128,
                 distribution=d, gathered_tokens=2 * n, num_slots=16 * n, checks_passed=True, rank=r,
                 start=128 * r, tokens_per_rank=n, padding_rows=0, local_slots=8 * n, stage=s,
                 kernel_mode="eager", repeat=0, card="Test Card", kernel_us=1.0 + n / 1e3,
                 kernel_p20_us=0.9 + n / 1e3, kernel_p80_us=1.1 + n / 1e3, allgather_us=5.0 + n / 1e2,
                 allgather_p20_us=4.0 + n / 1e2, allgather_p80_us=6.0 + n / 1e2,
                 allgather_stream_us=3.0, allgather_stream_p20_us=2.5, allgather_stream_p80_us=3.5,
                 allgather_bytes=64.0 * n, driver="n/a", cuda="n/a", torch="2.x", triton="3.x",
                 python="3.x", date="2026-01-02", run_id="synthetic")
            for d in ("uniform", "hot") for n in (1024, 4096) for r in (0, 1) for s in ep.MEASURED_STAGES]
    frame = pd.DataFrame(rows)
    for column, value in overrides.items():
        frame[column] = value
    return frame


def test_recorded_csv_round_trip(tmp_path):
    path = ep.write_csv(synthetic_frame(), tmp_path, run_id="synthetic")
    recorded = ep.load_recorded(tmp_path)
    assert len(recorded) == 16 and path.name == "ep_nccl_ws2_test-card_synthetic.csv"
    assert list(pd.read_csv(path).columns) == list(ep.COLUMNS), "columns in schema order"
    assert recorded["repeat"].dtype == "int64" and recorded["kernel_us"].dtype == "float64"
    assert isinstance(ep.plot_recorded(recorded), Figure)
    assert isinstance(ep.plot_hot_rank(recorded), Figure)


def test_recorded_table_has_one_column_per_measure(tmp_path):
    ep.write_csv(synthetic_frame(), tmp_path, run_id="synthetic")
    table = ep.recorded_table(ep.latest(ep.load_recorded(tmp_path)))
    assert len(table) == 2 * 2 * 2, "one row per (routing, batch, rank)"
    assert [c for c in table.columns if c.startswith("allgather")] == ["allgather us", "allgather p80-p20"]
    assert table.loc[("hot", 4096, 1), "best us"] == pytest.approx(1.0 + 4.096)
    assert table.loc[("hot", 4096, 1), "allgather p80-p20"] == pytest.approx(2.0)


def test_the_recorded_h100_run_loads_and_has_its_hot_rank():
    """The CSV in data/ep/ is checked by the loader; rank 0 owns the hot expert."""
    run = ep.latest(ep.load_recorded())
    table = ep.recorded_table(run)
    big = run["tokens_per_rank"].max()
    hot = table.loc[("hot", big), "scalar_atomic us"]
    assert hot[0] > 1.3 * hot[1], "the rank that owns the hot expert pays for it with one atomic per slot"
    assert (run["kernel_mode"] == "eager").all() and (run["repeat"] == 0).all(), "defaults of older files"


@pytest.mark.parametrize("column,value,words", [
    ("kernel_us", "fast", "column 'kernel_us' is 'fast'"),
    ("kernel_us", -1.0, "column 'kernel_us' is '-1.0'"),
    ("allgather_us", float("inf"), "column 'allgather_us' is 'inf'"),
    ("date", "27/11/2026", "column 'date' is '27/11/2026'"),
    ("repeat", 0.5, "column 'repeat' is '0.5'"),           # a column the EP files gained later
    ("allgather_stream_us", 0, "column 'allgather_stream_us' is '0'"),
])
def test_recorded_csv_with_bad_values_names_file_and_row(tmp_path, column, value, words):
    frame = synthetic_frame()
    frame[column] = frame[column].astype(object)
    frame.loc[3, column] = value
    frame.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError) as info:
        ep.load_recorded(tmp_path)
    assert "bad.csv, row 5" in str(info.value) and words in str(info.value)


@pytest.mark.parametrize("content", [b"", b"\xff\xfe\x00\x81binary", b"world_size,backend\n2,nccl\n"])
def test_unreadable_csv_names_the_file(tmp_path, content):
    (tmp_path / "odd.csv").write_bytes(content)
    with pytest.raises(ValueError, match="odd.csv"):
        ep.load_recorded(tmp_path)


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
    assert (t["allgather_stream_us"] > 0).all() and (t["kernel_mode"] == "eager").all()


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs")
def test_nccl_sweep_in_graph_mode_with_repeats(tmp_path):
    results = ep.run_sweep(2, batches=[256, [64, 1024]], distributions=["uniform", "hot"], backend="nccl",
                           kernel_mode="graph", repeats=2)
    assert all(r.checks_passed for r in results), [r.violations for r in results]
    frame = ep.results_frame(results)
    assert len(frame) == 4 * 2 * len(ep.MEASURED_STAGES) * 2, "(batch, routing) x rank x stage x repeat"
    assert sorted(frame["repeat"].unique()) == [0, 1] and (frame["kernel_mode"] == "graph").all()
    assert (frame[["kernel_us", "allgather_us", "allgather_stream_us"]] > 0).all().all()
    ep.write_csv(frame, tmp_path, run_id="gpu-test")
    table = ep.recorded_table(ep.latest(ep.load_recorded(tmp_path)))
    assert len(table) == 4 * 2, "one row per (routing, batch, rank), repeats folded into the median"


@pytest.mark.parametrize("kwargs,error,words", [
    (dict(batches=1024), TypeError, "batches must be a list of batches"),
    (dict(batches=[]), ValueError, "batches must hold at least one batch"),
    (dict(distributions="hot"), TypeError, "write distributions=['hot']"),
    (dict(distributions=["hot", "normal"]), ValueError, "distributions holds 'normal'"),
    (dict(batches=[64, [64, 64]]), ValueError, "give batch [64, 64] with distribution 'uniform' twice"),
    (dict(distributions=["hot", "hot"]), ValueError, "with distribution 'hot' twice"),
])
def test_bad_sweep_arguments_are_refused_before_spawning(kwargs, error, words):
    with pytest.raises(error) as info:
        ep.run_sweep(2, **kwargs)
    assert words in str(info.value)


def test_numpy_token_counts_are_accepted():
    cfg = ep.config.make_config(np.int64(2), "mixtral", [np.int32(3), np.array([1, 2])], ["hot"], "gloo",
                                "best", np.int64(7), None, "raise", np.float64(5), 10, None, ["best"])
    assert [j.tokens for j in cfg.jobs] == [(3, 3), (1, 2)] and cfg.seed == 7 and cfg.timeout_s == 5.0
    assert all(type(t) is int for j in cfg.jobs for t in j.tokens), "plain ints reach the ranks"
