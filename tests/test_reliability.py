"""No call's result depends on another call: interrupted calls, threads, and a dirtied scratch (CPU).

``one_launch`` (and ``best`` above ``decode.MAX_SLOTS``) keep a scratch accumulator that must be zero
when a launch starts. These tests interrupt a launch half-way, run stages from several threads at
once, and dirty scratches on purpose, then check every later result bit-exact against the reference.
The GPU side (streams, graphs) is ``tools/stress.py``.
"""

from __future__ import annotations

import threading

import pytest
import torch

import moe_lab
from moe_lab import interp, verify
from moe_lab.stages import best, decode, one_launch

pytestmark = pytest.mark.skipif(not moe_lab.backend.INTERPRETER,
                                reason="interrupts a launch through the interpreter's builder")

BIG = (700, 8)  # 5600 slots: above decode.MAX_SLOTS, so best runs one_launch over several programs
assert BIG[0] * BIG[1] > decode.MAX_SLOTS


def ids_for(seed: int, shape=BIG, high=64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-1, high, shape, generator=g, dtype=torch.int32)


def assert_exact(got, topk_ids, start, num_local):
    want_ids, want_counts = verify.reference(topk_ids, start, num_local)
    assert torch.equal(got[0], want_ids), "adjusted ids differ from the reference"
    assert torch.equal(got[1], want_counts), f"counts {got[1].tolist()} != {want_counts.tolist()}"


def interrupt_on_atomic(n: int):
    """A builder hook that raises KeyboardInterrupt on the ``n``-th atomic of a launch (1-based)."""
    seen = [0]
    forward = interp.original("create_atomic_rmw")

    def rmw(*args, **kwargs):
        seen[0] += 1
        if seen[0] == n:
            raise KeyboardInterrupt("simulated Stop button")
        return forward(*args, **kwargs)

    return rmw, seen


def interrupted(fn, n: int = 3):
    """Run ``fn`` with a KeyboardInterrupt raised at its ``n``-th atomic; True when it was interrupted."""
    rmw, seen = interrupt_on_atomic(n)
    with interp.hooked(create_atomic_rmw=rmw):
        with pytest.raises(KeyboardInterrupt):
            fn()
    return seen[0] == n


@pytest.mark.parametrize("stage_name", ["best", "one_launch"])
def test_interrupted_call_does_not_affect_the_next(stage_name):
    run = moe_lab.stage(stage_name).run
    # programs add to the scratch (atomic 1), take a ticket (2); the 3rd atomic is program 1's add
    assert interrupted(lambda: run(ids_for(0), 0, 32))
    for seed in range(1, 4):
        ids = ids_for(seed)
        assert_exact(run(ids, 0, 32), ids, 0, 32)


def test_a_kept_scratch_is_left_dirty_by_an_interrupt():
    """The control: with one scratch kept across calls (the old design) the same interrupt poisons the
    next call. This is what the fresh-per-call scratch prevents, and shows the test above can fail."""
    kept = torch.zeros(one_launch.SCRATCH_SIZE, dtype=torch.int32)

    def call(ids):
        adjusted, counts = torch.empty_like(ids), torch.empty(32, dtype=torch.int32)
        one_launch.launch(ids, adjusted, counts, 0, 32, scratch_buffer=kept)
        return adjusted, counts

    assert interrupted(lambda: call(ids_for(0)))
    assert kept.any(), "the interrupted launch left partial sums (and a ticket) in the kept scratch"
    ids = ids_for(1)
    want = verify.reference(ids, 0, 32)[1]
    assert not torch.equal(call(ids)[1], want)


def test_dirty_scratch_is_not_picked_up():
    """Dirty every scratch the library hands out and has kept: the next call still starts from zero."""
    for buffer in [one_launch.scratch(torch.device("cpu"))] + list(one_launch._BY_STREAM.values()):
        buffer.fill_(12345)
    for stage_name in ("best", "one_launch"):
        ids = ids_for(7)
        assert_exact(moe_lab.stage(stage_name).run(ids, 0, 32), ids, 0, 32)


def test_cpu_scratch_is_fresh_and_zero_per_call():
    first = one_launch.scratch(torch.device("cpu"))
    first.fill_(1)
    second = one_launch.scratch(torch.device("cpu"))
    assert second.data_ptr() != first.data_ptr() or not second.any()
    assert second.shape == (one_launch.SCRATCH_SIZE,) and not second.any()


def run_in_threads(jobs):
    """Run each ``job()`` in its own thread, all released at once; re-raise the first failure."""
    barrier = threading.Barrier(len(jobs))
    errors = []

    def body(job):
        try:
            barrier.wait()
            job()
        except BaseException as err:  # collected and re-raised in the main thread
            errors.append(err)

    threads = [threading.Thread(target=body, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread did not finish"
    if errors:
        raise errors[0]


def checked_call(stage_name, seed, shape, start, num_local, repeats=2):
    def job():
        for r in range(repeats):
            ids = ids_for(seed * 100 + r, shape, high=start + 2 * num_local)
            assert_exact(moe_lab.stage(stage_name).run(ids, start, num_local), ids, start, num_local)
    return job


@pytest.mark.parametrize("num_threads", [2, 4])
@pytest.mark.parametrize("stage_name", ["best", "one_launch"])
def test_threads_on_large_inputs(stage_name, num_threads):
    run_in_threads([checked_call(stage_name, t, BIG, 8 * t, 16 + 8 * t) for t in range(num_threads)])


@pytest.mark.parametrize("num_threads", [2, 4])
def test_threads_on_every_stage_at_once(num_threads):
    """Every stage from ``num_threads`` threads at once, each thread its own inputs and stage order."""
    names = [n for n in moe_lab.STAGES if n != "row_loop"] + ["row_loop"]

    def thread_job(t):
        order = names[t:] + names[:t]

        def job():
            for i, name in enumerate(order):
                shape = (9 + t, 8) if name in ("row_loop", "naive") else (300 + 7 * t, 6 + (i % 3))
                if name == "row_loop":
                    shape = (9 + t, 4)
                checked_call(name, 10 * t + i, shape, 4 * t, 8 + t, repeats=1)()
        return job

    run_in_threads([thread_job(t) for t in range(num_threads)])


def test_threads_mixing_best_sizes():
    """best on a decode size and on a one_launch size from two threads at once."""
    run_in_threads([checked_call("best", 1, (40, 8), 0, 32, repeats=3),
                    checked_call("best", 2, BIG, 0, 32, repeats=3)])
