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
from moe_lab import verify
from moe_lab.inspection import hooks
from moe_lab.stages import best, decode, one_launch

interpreter_only = pytest.mark.skipif(not moe_lab.backend.INTERPRETER,
                                      reason="runs the kernels in Triton's interpreter (no GPU here)")

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
    forward = hooks.original("create_atomic_rmw")

    def rmw(*args, **kwargs):
        seen[0] += 1
        if seen[0] == n:
            raise KeyboardInterrupt("simulated Stop button")
        return forward(*args, **kwargs)

    return rmw, seen


def interrupted(fn, n: int = 3):
    """Run ``fn`` with a KeyboardInterrupt raised at its ``n``-th atomic; True when it was interrupted."""
    rmw, seen = interrupt_on_atomic(n)
    with hooks.hooked(create_atomic_rmw=rmw):
        with pytest.raises(KeyboardInterrupt):
            fn()
    return seen[0] == n


@interpreter_only
@pytest.mark.parametrize("stage_name", ["best", "one_launch"])
def test_interrupted_call_does_not_affect_the_next(stage_name):
    run = moe_lab.stage(stage_name).run
    # programs add to the scratch (atomic 1), take a ticket (2); the 3rd atomic is program 1's add
    assert interrupted(lambda: run(ids_for(0), 0, 32))
    for seed in range(1, 4):
        ids = ids_for(seed)
        assert_exact(run(ids, 0, 32), ids, 0, 32)


@interpreter_only
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


@interpreter_only
def test_dirty_scratch_is_not_picked_up():
    """Dirty every scratch the library hands out and has kept: the next call still starts from zero."""
    for buffer in [one_launch.scratch(torch.device("cpu"))] + list(one_launch._BY_STREAM.values()):
        buffer.fill_(12345)
    for stage_name in ("best", "one_launch"):
        ids = ids_for(7)
        assert_exact(moe_lab.stage(stage_name).run(ids, 0, 32), ids, 0, 32)


@interpreter_only
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


@interpreter_only
@pytest.mark.parametrize("num_threads", [2, 4])
@pytest.mark.parametrize("stage_name", ["best", "one_launch"])
def test_threads_on_large_inputs(stage_name, num_threads):
    run_in_threads([checked_call(stage_name, t, BIG, 8 * t, 16 + 8 * t) for t in range(num_threads)])


@interpreter_only
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


@interpreter_only
def test_threads_mixing_best_sizes():
    """best on a decode size and on a one_launch size from two threads at once."""
    run_in_threads([checked_call("best", 1, (40, 8), 0, 32, repeats=3),
                    checked_call("best", 2, BIG, 0, 32, repeats=3)])


# --- on a CUDA GPU: who gets which scratch ----------------------------------------------------

@pytest.mark.gpu
def test_gpu_streams_get_their_own_scratch_and_threads_on_one_stream_share_it():
    device = torch.device("cuda")
    here = one_launch.scratch(device)
    assert one_launch.scratch(device) is here  # kept: no allocation per eager call
    other = torch.cuda.Stream()
    with torch.cuda.stream(other):
        theirs = one_launch.scratch(device)
    assert theirs.data_ptr() != here.data_ptr()
    seen = []
    thread = threading.Thread(target=lambda: seen.append(one_launch.scratch(device)))
    thread.start()
    thread.join()
    assert seen[0] is here  # another thread on the same (default) stream shares it: launches are ordered


@pytest.mark.gpu
def test_gpu_graphs_captured_on_one_stream_get_their_own_scratch():
    ids = torch.randint(-1, 256, (4096, 8), dtype=torch.int32, device="cuda")
    outs = [(torch.empty_like(ids), torch.empty(32, dtype=torch.int32, device="cuda")) for _ in range(2)]
    best.run(ids, 0, 32, adjusted_out=outs[0][0], expert_count_out=outs[0][1])  # warm-up, fills spares
    torch.cuda.synchronize()
    used, graphs = [], []
    real = one_launch.scratch

    def spy(device, stream=None):
        used.append(real(device, stream))
        return used[-1]

    one_launch.scratch = spy
    try:
        for adjusted, counts in outs:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):  # both on PyTorch's one default capture stream
                best.run(ids, 0, 32, adjusted_out=adjusted, expert_count_out=counts)
            graphs.append(graph)
    finally:
        one_launch.scratch = real
    assert len(used) == 2 and used[0].data_ptr() != used[1].data_ptr()
    for graph in graphs:
        graph.replay()
    torch.cuda.synchronize()
    want = verify.reference(ids, 0, 32)
    for adjusted, counts in outs:
        assert torch.equal(adjusted, want[0]) and torch.equal(counts, want[1])


# --- the capture bookkeeping, on the CPU (no graph is captured: the capture id is faked) ---------

@pytest.fixture
def clean_tables(monkeypatch):
    monkeypatch.setattr(one_launch, "_BY_STREAM", {})
    monkeypatch.setattr(one_launch, "_SPARE", {})
    return one_launch


def test_one_scratch_per_captured_graph_and_stream(clean_tables, monkeypatch):
    cpu = torch.device("cpu")
    capture = {"id": 11}
    monkeypatch.setattr(one_launch, "_capture_id", lambda stream: capture["id"])
    first = one_launch._captured(0, cpu, stream=5)
    assert one_launch._captured(0, cpu, stream=5) is first  # later launches of the same graph share it
    assert one_launch._captured(0, cpu, stream=6) is not first  # a side stream of the capture: its own
    capture["id"] = 12  # the next graph captured on the same stream
    second = one_launch._captured(0, cpu, stream=5)
    assert second is not first and second.data_ptr() != first.data_ptr()
    assert not first.any() and not second.any() and first.shape == (one_launch.SCRATCH_SIZE,)


def test_without_capture_ids_every_captured_launch_gets_its_own(clean_tables, monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(one_launch, "_capture_id", lambda stream: None)
    buffers = [one_launch._captured(0, cpu, stream=5) for _ in range(3)]
    assert len({b.data_ptr() for b in buffers}) == 3
    assert len(one_launch._BY_STREAM) == 3  # all kept alive for the process


def test_captures_take_pre_zeroed_spares_first(clean_tables, monkeypatch):
    cpu = torch.device("cpu")
    one_launch._fill_spares(0, cpu)
    spares = list(one_launch._SPARE[0])
    assert len(spares) == one_launch.SPARES and not any(s.any() for s in spares)
    monkeypatch.setattr(one_launch, "_capture_id", lambda stream: 7)
    taken = one_launch._captured(0, cpu, stream=1)
    assert taken is spares[-1] and len(one_launch._SPARE[0]) == one_launch.SPARES - 1
    one_launch._fill_spares(0, cpu)  # an eager call tops the pool up again
    assert len(one_launch._SPARE[0]) == one_launch.SPARES


def test_capture_id_reads_the_driver_answer(monkeypatch):
    import ctypes

    def fake_driver(status, capture, rc=0):
        def fn(stream, status_out, id_out, *optional):
            assert all(o.value is None for o in optional)  # every optional output NULL
            ctypes.cast(status_out, ctypes.POINTER(ctypes.c_int))[0] = status
            ctypes.cast(id_out, ctypes.POINTER(ctypes.c_uint64))[0] = capture
            return rc
        return fn

    monkeypatch.setattr(one_launch, "_CAPTURE_INFO", [fake_driver(1, 42)])
    assert one_launch._capture_id(123) == 42
    monkeypatch.setattr(one_launch, "_CAPTURE_INFO", [fake_driver(0, 42)])
    assert one_launch._capture_id(123) is None  # not capturing
    monkeypatch.setattr(one_launch, "_CAPTURE_INFO", [fake_driver(1, 42, rc=1)])
    assert one_launch._capture_id(123) is None  # the driver refused
    monkeypatch.setattr(one_launch, "_CAPTURE_INFO", [None])
    assert one_launch._capture_id(123) is None and not one_launch.capture_ids_available()


def test_spares_start_on_their_own_128_byte_line(clean_tables):
    """A captured graph's scratch has its counters on the same lines as an eager one (counter e in line
    e // 32); a spare that started mid-line would spread 32 counters over two lines."""
    one_launch._fill_spares(0, torch.device("cpu"))
    spares = list(one_launch._SPARE[0])
    first = min(s.data_ptr() for s in spares)
    assert all(s.numel() == one_launch.SCRATCH_SIZE and not s.any() for s in spares)
    assert all((s.data_ptr() - first) % 128 == 0 for s in spares)
