"""Host cost of the drop-in against rtp-llm's function: wall time per eager call, side by side (GPU).

    python -m moe_lab.measure.hostcost --out data/hostcost            # both processes, recorded
    python -m moe_lab.measure.hostcost --process fresh --json         # one process's rows, printed as JSON

Where a caller runs without CUDA graphs (eager prefill, most host-bound code) each call costs the host
work around its launch. That is measured the way such a caller pays it: many back-to-back calls
(:data:`CALLS`) with ONE ``torch.cuda.synchronize()`` at the end, wall time divided by the number of
calls; :data:`REPEATS` such loops per implementation, alternating between the two, the median kept.
When a call's device time exceeds its host time (rtp-llm at a million slots), the loop runs at the
device's pace and the number is that.

The two implementations, on the same ids in the same process: ``rtp-llm`` is rtp-llm's function as it
ships, retyped (``torch.zeros`` for the counts, ``torch.empty_like``, one launch of the scalar-1 kernel
through Triton's ``kernel[grid](...)``: our ``scalar_atomic`` stage's kernel); ``best`` is
``moe_lab.recompute_topk_ids_sum_expert_count``. Both are checked against the reference first.
Inputs: DeepSeek-V3 at EP 8, rank 0 (32 local experts), uniform routing, at :data:`SLOTS`.

Process states: ``fresh`` is a new Python process that only imports, warms up and measures;
``after_graphs`` is the same measurement after a few CUDA graphs of both calls were captured and
replayed in the process. Rows: schema :data:`moe_lab.measure.records.HOSTCOST`. Written to run as a script too
(``python moe_lab/measure/hostcost.py``) so that it can measure another checkout's ``moe_lab``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

SLOTS = (8, 512, 8192, 131072, 1048576)
TOPK, PRESET, EP_SIZE, RANK = 8, "deepseek-v3", 8, 0
CALLS = 1000
REPEATS = 5
WARMUP = 50
PROCESSES = ("fresh", "after_graphs")
IMPLS = ("rtp-llm", "best")


def rtp_llm(topk_ids, current_expert_start_id, num_local_experts):
    """rtp-llm's ``recompute_topk_ids_sum_expert_count`` as it ships: memset, allocation, one launch."""
    import triton

    from moe_lab.stages.scalar_atomic import scalar_atomic_kernel
    from moe_lab.stages.tl_full import block_size

    expert_count = torch.zeros(num_local_experts, dtype=torch.int32, device=topk_ids.device)
    adjusted = torch.empty_like(topk_ids)
    num_total = topk_ids.numel()
    block = block_size(topk_ids.shape[1])
    scalar_atomic_kernel[(triton.cdiv(num_total, block),)](topk_ids, adjusted, expert_count, num_total,
                                                           current_expert_start_id, num_local_experts,
                                                           BLOCK=block)
    return adjusted, expert_count


def _calls():
    import moe_lab

    return {"rtp-llm": rtp_llm, "best": moe_lab.recompute_topk_ids_sum_expert_count}


def _inputs(slots: int):
    from moe_lab import routing

    case = routing.case(PRESET, max(1, slots // TOPK), ep_size=EP_SIZE, rank=RANK, seed=slots)
    return case.topk_ids.cuda(), case.start, case.num_local


def per_call_us(fn, args, calls: int = CALLS) -> float:
    """Wall microseconds per call over ``calls`` back-to-back calls and one synchronize at the end."""
    torch.cuda.synchronize()
    began = time.perf_counter()
    for _ in range(calls):
        fn(*args)
    torch.cuda.synchronize()
    return (time.perf_counter() - began) / calls * 1e6


def _capture_a_few(calls, args) -> None:
    """Capture and replay a graph of each call (what an engine does at start-up), then drop them."""
    for fn in calls.values():
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn(*args)
        for _ in range(3):
            graph.replay()
    torch.cuda.synchronize()


def measure(process: str, slots=SLOTS, calls: int = CALLS, repeats: int = REPEATS) -> list[dict]:
    """Rows for this process (``process`` names its state: see the module docstring)."""
    from moe_lab import verify

    fns = _calls()
    rows = []
    for n in slots:
        args = _inputs(n)
        want = verify.reference(*[a.cpu() if torch.is_tensor(a) else a for a in args])
        for name, fn in fns.items():  # checked first; this also compiles and warms up
            for _ in range(WARMUP):
                got = fn(*args)
            if not (torch.equal(got[0].cpu(), want[0]) and torch.equal(got[1].cpu(), want[1])):
                raise AssertionError(f"{name} is wrong at {n} slots: nothing timed")
        if process == "after_graphs":
            _capture_a_few(fns, args)
        times = {name: [] for name in fns}
        for _ in range(repeats):  # alternate, so drift hits both alike
            for name, fn in fns.items():
                times[name].append(per_call_us(fn, args, calls))
        for name, values in times.items():
            rows.append({"impl": name, "process": process, "num_tokens": args[0].shape[0], "topk": TOPK,
                         "num_local": args[2], "slots": args[0].numel(), "calls": calls, "repeats": repeats,
                         "us_per_call": statistics.median(values), "min_us": min(values),
                         "max_us": max(values)})
    return rows


def run_fresh(slots=SLOTS, calls: int = CALLS, repeats: int = REPEATS, env=None) -> list[dict]:
    """:func:`measure` in a new Python process that imports this same ``moe_lab`` (its folder first on the
    child's path, whether it is installed or run from a checkout)."""
    cmd = [sys.executable, "-m", "moe_lab.measure.hostcost", "--process", "fresh", "--json", "--calls",
           str(calls), "--repeats", str(repeats), "--slots", *map(str, slots)]
    env = dict(os.environ if env is None else env)
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # holds moe_lab/
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH", "")) if p)
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    if out.returncode:
        raise RuntimeError(f"the fresh process failed: {out.stderr.strip()[-800:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def pieces(slots: int = 8192, calls: int = 2000) -> dict[str, float]:
    """Microseconds per call of each piece of host work around a launch, each alone in its own loop
    (launches included where the piece launches; one synchronize per loop)."""
    import triton

    import moe_lab
    from moe_lab.checks import check_args
    from moe_lab.stages import best, one_launch
    from moe_lab.stages.scalar_atomic import scalar_atomic_kernel
    from moe_lab.stages.tl_full import block_size

    ids, start, num_local = _inputs(slots)
    device = ids.device
    adjusted = torch.empty_like(ids)
    counts = torch.zeros(num_local, dtype=torch.int32, device=device)
    chosen = best.kernel(best.choose(ids.numel(), num_local)) if hasattr(best, "kernel") else None
    block = block_size(ids.shape[1])
    grid = (triton.cdiv(ids.numel(), block),)
    work = {
        "drop-in call": lambda: moe_lab.recompute_topk_ids_sum_expert_count(ids, start, num_local),
        "best.run": lambda: best.run(ids, start, num_local),
        "rtp-llm call": lambda: rtp_llm(ids, start, num_local),
        "check_args": lambda: check_args(ids, start, num_local, stage="best"),
        "torch.empty_like(ids)": lambda: torch.empty_like(ids),
        "torch.empty(counts)": lambda: torch.empty(num_local, dtype=torch.int32, device=device),
        "torch.zeros(counts)": lambda: torch.zeros(num_local, dtype=torch.int32, device=device),
        "KERNEL.launch (prepared buffers)": (lambda: chosen.launch(ids, adjusted, counts, start, num_local))
        if chosen is not None else None,
        "triton kernel[grid](...) (rtp-llm's launch)": lambda: scalar_atomic_kernel[grid](
            ids, adjusted, counts, ids.numel(), start, num_local, BLOCK=block),
        "one_launch.scratch(device)": lambda: one_launch.scratch(device),
        "torch.cuda.is_current_stream_capturing()": torch.cuda.is_current_stream_capturing,
        "torch.cuda.current_device()": torch.cuda.current_device,
        "ids.device": lambda: ids.device,
    }
    out = {}
    for name, fn in work.items():
        if fn is None:  # a piece this moe_lab does not have
            continue
        for _ in range(WARMUP):
            fn()
        out[name] = min(per_call_us(fn, (), calls) for _ in range(3))
    return out


def profile(slots: int = 8192, calls: int = 3000, top: int = 25) -> str:
    """cProfile of ``calls`` drop-in calls at ``slots``: the functions with the most time of their own."""
    import cProfile
    import io
    import pstats

    import moe_lab

    args = _inputs(slots)
    for _ in range(WARMUP):
        moe_lab.recompute_topk_ids_sum_expert_count(*args)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        moe_lab.recompute_topk_ids_sum_expert_count(*args)
    torch.cuda.synchronize()
    prof.disable()
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(top)
    return text.getvalue()


def table(rows) -> str:
    """rtp-llm against best per size and process, microseconds per call."""
    lines = [f"{'process':13s} {'slots':>8s} {'rtp-llm':>9s} {'best':>9s}  best/rtp"]
    for process in PROCESSES:
        for n in sorted({r["slots"] for r in rows}):
            got = {r["impl"]: r["us_per_call"] for r in rows if r["process"] == process and r["slots"] == n}
            if len(got) == 2:
                lines.append(f"{process:13s} {n:8d} {got['rtp-llm']:9.2f} {got['best']:9.2f}  "
                             f"{got['best'] / got['rtp-llm']:8.2f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m moe_lab.measure.hostcost",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--process", choices=(*PROCESSES, "both"), default="both")
    ap.add_argument("--slots", nargs="+", type=int, default=list(SLOTS))
    ap.add_argument("--calls", type=int, default=CALLS)
    ap.add_argument("--repeats", type=int, default=REPEATS)
    ap.add_argument("--json", action="store_true", help="print the rows as one JSON line, write nothing")
    ap.add_argument("--out", default=None, help="folder for the recorded CSV (schema records.HOSTCOST)")
    ap.add_argument("--code", default="", help="what moe_lab was measured (e.g. a commit), on every row")
    ap.add_argument("--profile", action="store_true", help="print where a call's host time goes, and stop")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("moe_lab.measure.hostcost needs a CUDA GPU: host cost around a GPU launch", file=sys.stderr)
        return 2
    if args.profile:
        for n in args.slots:
            print(f"-- {n} slots: us per call of each piece alone")
            for name, us in pieces(n).items():
                print(f"  {us:8.2f}  {name}")
        print(profile(args.slots[len(args.slots) // 2]))
        return 0
    rows = []
    if args.process in ("fresh", "both"):
        rows += (measure("fresh", args.slots, args.calls, args.repeats) if args.process == "fresh"
                 else run_fresh(args.slots, args.calls, args.repeats))
    if args.process in ("after_graphs", "both"):
        rows += measure("after_graphs", args.slots, args.calls, args.repeats)
    if args.json:
        print(json.dumps(rows))
        return 0
    if args.out:
        import pandas as pd

        from moe_lab.measure import records

        prov = records.provenance()
        frame = pd.DataFrame(rows).assign(code=args.code or "unnamed", **prov)
        path = records.write(frame, os.path.join(args.out, f"hostcost_{prov['run_id']}.csv"),
                             records.HOSTCOST)
        print(f"wrote {len(frame)} rows to {path}", file=sys.stderr)
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
