"""The races of the stress run: two calls at once, the ways callers really make them (GPU only).

Each function runs ``trials`` trials of one race on fresh random ids with poisoned outputs and returns
how many results were wrong, checked bit-exact against :func:`moe_lab.verify.reference`. The control
``old_shared_scratch`` (``one_launch`` with one scratch per device shared by every call, the design before
per-stream scratches, kept only here) shows that the races do catch a shared scratch. The command line
and the re-timing are :mod:`moe_lab.measure.stress`.
"""

from __future__ import annotations

import _thread
import random
import signal
import threading
import time

import torch

NUM_EXPERTS, NUM_LOCAL = 256, 32  # deepseek-v3 at EP 8: ids in [-1, 256), 32 local experts per rank
CONTROL = "old_shared_scratch"
POISON = -7

# ---------------------------------------------------------------------------------------------
# The calls under test: (ids, start, num_local, adjusted, counts) -> writes adjusted and counts

_OLD_SCRATCH: dict[str, torch.Tensor] = {}


def old_scratch(device: torch.device) -> torch.Tensor:
    """The design this tool guards against: one scratch per device, shared by every call."""
    from moe_lab.stages import one_launch

    key = str(device)
    if key not in _OLD_SCRATCH:
        _OLD_SCRATCH[key] = torch.zeros(one_launch.SCRATCH_SIZE, dtype=torch.int32, device=device)
    return _OLD_SCRATCH[key]


def call_for(stage: str):
    from moe_lab.stages import best, one_launch

    if stage == "best":
        return lambda ids, s, n, a, c: best.run(ids, s, n, adjusted_out=a, expert_count_out=c)
    if stage == "one_launch":
        return lambda ids, s, n, a, c: one_launch.launch(ids, a, c, s, n)
    if stage == CONTROL:
        return lambda ids, s, n, a, c: one_launch.launch(ids, a, c, s, n,
                                                         scratch_buffer=old_scratch(ids.device))
    raise ValueError(f"unknown stage {stage!r}")


def old_best(topk_ids, start, num_local):
    """``best`` as it was: ``decode`` up to 4096 slots, then ``one_launch`` on the one shared scratch per
    device."""
    from moe_lab.stages import _launch, best, decode, one_launch, relaxed

    start, num_local, adjusted, counts = _launch.prepare(topk_ids, start, num_local, stage="best",
                                                         zero_counts=False)
    kind = best.choose(topk_ids.numel(), num_local)
    if kind != "relaxed":
        kind = "decode" if topk_ids.numel() <= 4096 else "one_launch"
    if kind == "decode":
        decode.launch(topk_ids, adjusted, counts, start, num_local)
    elif kind == "one_launch":
        one_launch.launch(topk_ids, adjusted, counts, start, num_local,
                          scratch_buffer=old_scratch(topk_ids.device))
    else:
        counts.zero_()
        relaxed.launch(topk_ids, adjusted, counts, start, num_local)
    return adjusted, counts


# ---------------------------------------------------------------------------------------------
# One checked job: fresh ids, poisoned outputs, a call, a bit-exact comparison


class Job:
    """Static buffers for one caller: ids, poisoned outputs, and the check against the reference."""

    def __init__(self, shape, seed: int):
        self.gen = torch.Generator(device="cuda").manual_seed(seed)
        self.ids = torch.empty(shape, dtype=torch.int32, device="cuda")
        self.adjusted = torch.empty_like(self.ids)
        self.counts = torch.empty(NUM_LOCAL, dtype=torch.int32, device="cuda")
        self.start = 0

    def refresh(self, start: int | None = None) -> None:
        """New random ids (with -1 padding and remote ids) and poisoned outputs, on the current stream."""
        torch.randint(-1, NUM_EXPERTS, self.ids.shape, generator=self.gen, out=self.ids)
        self.adjusted.fill_(POISON)
        self.counts.fill_(POISON)
        if start is not None:
            self.start = start

    def run(self, call) -> None:
        call(self.ids, self.start, NUM_LOCAL, self.adjusted, self.counts)

    def wrong(self) -> bool:
        from moe_lab import verify

        want_ids, want_counts = verify.reference(self.ids, self.start, NUM_LOCAL)
        return not (torch.equal(self.adjusted, want_ids) and torch.equal(self.counts, want_counts))


def _gate(streams) -> None:
    """Hold ``streams`` behind a short GPU sleep, so work queued on them next starts together."""
    torch.cuda._sleep(200_000)  # about 0.1 ms: time for the CPU to queue every call behind it
    here = torch.cuda.current_stream()
    for s in streams:
        s.wait_stream(here)


def _starts(trial: int) -> tuple[int, int]:
    return NUM_LOCAL * (trial % 8), NUM_LOCAL * ((trial + 3) % 8)


def test_two_streams(stage, shape, trials) -> int:
    call, jobs = call_for(stage), [Job(shape, 1), Job(shape, 2)]
    streams = [torch.cuda.Stream(), torch.cuda.Stream()]
    wrong = 0
    for trial in range(trials):
        for job, start in zip(jobs, _starts(trial)):
            job.refresh(start)
        _gate(streams)
        for job, stream in zip(jobs, streams):
            with torch.cuda.stream(stream):
                job.run(call)
        for stream in streams:
            torch.cuda.current_stream().wait_stream(stream)
        wrong += sum(job.wrong() for job in jobs)
    return wrong


def _threads(stage, shape, trials, shared: bool) -> int:
    call = call_for(stage)
    one = torch.cuda.Stream()
    barrier, wrong, errors = threading.Barrier(2), [0, 0], []

    def body(t):
        try:
            job, stream = Job(shape, 10 + t), one if shared else torch.cuda.Stream()
            with torch.cuda.stream(stream):
                for trial in range(trials):
                    job.refresh(_starts(trial)[t])
                    barrier.wait()  # both threads launch at about the same time
                    job.run(call)
                    wrong[t] += job.wrong()  # on this thread's stream, after its own call
        except BaseException as err:  # reported by the main thread
            errors.append(err)
            barrier.abort()

    threads = [threading.Thread(target=body, args=(t,)) for t in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return sum(wrong)


def test_two_threads_own_streams(stage, shape, trials) -> int:
    return _threads(stage, shape, trials, shared=False)


def test_two_threads_one_stream(stage, shape, trials) -> int:
    return _threads(stage, shape, trials, shared=True)


def test_two_graphs(stage, shape, trials) -> int:
    call, jobs = call_for(stage), [Job(shape, 21), Job(shape, 22)]
    for job, start in zip(jobs, _starts(0)):
        job.refresh(start)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up: compile, and let eager calls fill the scratch pool
        for job in jobs:
            job.run(call)
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    graphs = []
    for job in jobs:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            job.run(call)
        graphs.append(graph)
    streams = [torch.cuda.Stream(), torch.cuda.Stream()]
    wrong = 0
    for _ in range(trials):
        for job in jobs:
            job.refresh()  # the start is baked into each graph
        _gate(streams)
        for graph, stream in zip(graphs, streams):
            with torch.cuda.stream(stream):
                graph.replay()
        for stream in streams:
            torch.cuda.current_stream().wait_stream(stream)
        wrong += sum(job.wrong() for job in jobs)
    return wrong


def test_interrupted(stage, shape, trials) -> int:
    call, loop_job, job = call_for(stage), Job(shape, 31), Job(shape, 32)
    loop_job.refresh(0)
    rng = random.Random(0)
    wrong = 0
    # a shell that starts us in the background ignores SIGINT; put Python's own handler back for the test
    saved = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        for trial in range(trials):
            wrong += _interrupted_trial(call, loop_job, job, rng, trial)
    finally:
        signal.signal(signal.SIGINT, saved)
    return wrong


def _interrupted_trial(call, loop_job, job, rng, trial) -> int:
    """Launch in a loop until a timer interrupts the main thread, then one checked call."""
    timer = threading.Timer(rng.uniform(0.0002, 0.003), _thread.interrupt_main)
    try:
        timer.start()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            loop_job.run(call)
        raise RuntimeError("the timer's KeyboardInterrupt never came")
    except KeyboardInterrupt:
        pass
    finally:
        timer.cancel()
    torch.cuda.synchronize()
    job.refresh(_starts(trial)[0])
    job.run(call)
    return int(job.wrong())


TEST_FUNCTIONS = {"two_streams": test_two_streams, "two_threads_own_streams": test_two_threads_own_streams,
                  "two_threads_one_stream": test_two_threads_one_stream, "two_graphs": test_two_graphs,
                  "interrupted": test_interrupted}
