"""Stress ``best`` and ``one_launch`` the ways callers really use them, and re-time ``best`` (GPU).

    python -m moe_lab.measure.stress --out $OUT            # everything (written to finish within 8 minutes)
    python -m moe_lab.measure.stress --out $OUT --trials 50 --rounds 1   # a quick smoke run

Correctness, each trial on fresh random ids with poisoned outputs, checked bit-exact against
``verify.reference``, at 8M slots, at a mid size (64K slots: ``handoff`` for ``best``) and at a decode
size (256 tokens x top-8: ``decode`` for ``best``, ``one_launch`` for ``one_launch``):

* ``two_streams``: two calls on two streams released at the same instant (both wait on one event
  queued behind a GPU sleep, so they really overlap);
* ``two_threads_own_streams`` / ``two_threads_one_stream``: two Python threads calling at once,
  each on its own stream, or both on one shared stream;
* ``two_graphs``: two CUDA graphs, each a captured call on its own static buffers, replayed at the
  same instant on two streams;
* ``interrupted``: a loop of launches stopped by a KeyboardInterrupt at a random moment (raised in
  the main thread by a timer, as Ctrl-C would), then a checked call.

The control, stage ``old_shared_scratch``: ``one_launch`` with one scratch per device shared by every
call (the design before per-stream scratches, copied here only), under ``two_streams`` and
``two_graphs``: its wrong results show that the tool does catch the race. Exits 1 if any stage other
than the control gives a wrong result.

Re-timing, in the same run: ``best``, ``old_best`` (``best`` on the old shared scratch) and
``scalar_atomic`` (rtp-llm's kernel with its memset) through ``moe_lab.measure.timing.time_us`` (eager and
graph replay), median and 20th/80th percentiles, on the deepseek-v3 preset at EP 8
from 1 to 1M tokens, in ``--rounds`` rounds with the order of the stages rotated each round.

Writes ``$OUT/stress_<date>.csv`` and ``$OUT/retime_<date>.csv`` and prints a short table last.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import statistics
import sys
import time

import torch

from moe_lab.measure.races import _OLD_SCRATCH, CONTROL, TEST_FUNCTIONS, old_best

SIZES = {"8M": (1 << 20, 8), "mid": (8192, 8), "decode": (256, 8)}  # (tokens, topk)
STAGES = ("best", "one_launch")
TESTS = ("two_streams", "two_threads_own_streams", "two_threads_one_stream", "two_graphs", "interrupted")
CONTROL_TESTS = ("two_streams", "two_graphs")
RETIME_TOKENS = (1, 16, 256, 1024, 4096, 16384, 65536, 262144, 1 << 20)
RETIME_STAGES = ("best", "old_best", "scalar_atomic")
# the columns of both CSVs are moe_lab.measure.records.STRESS and moe_lab.measure.records.RETIME


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.environ.get("OUT"),
                        help="folder for the CSVs (default: $OUT)")
    parser.add_argument("--trials", type=int, default=1000, help="trials per test at 8M and decode sizes")
    parser.add_argument("--mid-trials", type=int, default=None,
                        help="trials at the mid size (default: --trials)")
    parser.add_argument("--rounds", type=int, default=3, help="re-timing rounds (0: no re-timing)")
    parser.add_argument("--sizes", default=",".join(SIZES), help=f"comma list of {', '.join(SIZES)}")
    args = parser.parse_args(argv)
    if not args.out:
        parser.error("--out is required (or set $OUT): the folder the CSVs are written to")
    if args.trials < 1:
        parser.error(f"--trials must be >= 1, got {args.trials}")
    if args.mid_trials is None:
        args.mid_trials = args.trials
    if args.mid_trials < 1:
        parser.error(f"--mid-trials must be >= 1, got {args.mid_trials}")
    if args.rounds < 0:
        parser.error(f"--rounds must be >= 0, got {args.rounds}")
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown or not sizes:
        parser.error(f"--sizes: unknown size(s) {unknown or sizes}; choose from {', '.join(SIZES)}")
    args.sizes = sizes
    return args


def require_gpu() -> None:
    """Exit with a clear message where there is no CUDA GPU (or kernels run in the interpreter)."""
    import moe_lab

    if not torch.cuda.is_available() or moe_lab.backend.INTERPRETER:
        raise SystemExit("python -m moe_lab.measure.stress needs a GPU: it races CUDA streams, threads and "
                         "graphs against each other and times kernels; run it on a machine with a CUDA GPU")


def stress(args, prov) -> list[dict]:
    rows = []
    for size in args.sizes:
        shape = SIZES[size]
        trials = args.mid_trials if size == "mid" else args.trials
        plan = [(test, stage) for stage in STAGES for test in TESTS] + [(t, CONTROL) for t in CONTROL_TESTS]
        for test, stage in plan:
            began = time.monotonic()
            wrong = TEST_FUNCTIONS[test](stage, shape, trials)
            checked = trials * (1 if test == "interrupted" else 2)  # two calls per trial race each other
            rows.append({"test": test, "stage": stage, "size": size, "slots": shape[0] * shape[1],
                         "trials": trials, "results": checked, "wrong": wrong, **prov})
            print(f"{test:24s} {stage:19s} {size:6s} trials={trials:5d} wrong={wrong:4d} "
                  f"({time.monotonic() - began:5.1f} s)", flush=True)
    return rows


# ---------------------------------------------------------------------------------------------
# Re-timing


def retime(args, prov) -> list[dict]:
    from moe_lab import routing, verify
    from moe_lab.measure import timing
    from moe_lab.stages import best, scalar_atomic

    case = routing.case("deepseek-v3", max(RETIME_TOKENS), ep_size=8, rank=3, seed=0)
    all_ids, start, num_local = case.args()
    all_ids = all_ids.cuda()
    fns = {"best": best.run, "old_best": old_best, "scalar_atomic": scalar_atomic.run}
    rows = []
    for rnd in range(args.rounds):
        order = RETIME_STAGES[rnd % len(RETIME_STAGES):] + RETIME_STAGES[:rnd % len(RETIME_STAGES)]
        for tokens in RETIME_TOKENS:
            ids = all_ids[:tokens].contiguous()
            for name in order:
                def fn(f=fns[name]):
                    return f(ids, start, num_local)
                for scratch in _OLD_SCRATCH.values():  # the control tests leave it dirty on purpose
                    scratch.zero_()
                want = verify.reference(ids, start, num_local)
                for mode in ("eager", "graph"):
                    # a wrong kernel's time means nothing: check before and after timing
                    right = all(torch.equal(a, b) for a, b in zip(fn(), want))
                    median, p20, p80 = timing.time_us(fn, mode)  # the project's one timer
                    right = right and all(torch.equal(a, b) for a, b in zip(fn(), want))
                    rows.append({"stage": name, "mode": mode, "round": rnd, "tokens": tokens,
                                 "slots": ids.numel(), "median_us": round(median, 3),
                                 "p20_us": round(p20, 3), "p80_us": round(p80, 3), "correct": right, **prov})
        print(f"re-timing round {rnd + 1}/{args.rounds} done", flush=True)
    return rows


def write_csv(path, schema, rows) -> None:
    """Write ``rows`` checked against ``schema`` (moe_lab.measure.records), whole or not at all."""
    import pandas as pd

    from moe_lab.measure import records

    records.write(pd.DataFrame(rows), path, schema)


def table(stress_rows, retime_rows) -> str:
    lines = ["", "stress: wrong results / results checked (two per trial where two calls race; control: the "
                 "old shared scratch, expected to be wrong)"]
    for r in stress_rows:
        tag = "  (control)" if r["stage"] == CONTROL else ""
        lines.append(f"  {r['test']:24s} {r['stage']:19s} {r['size']:6s} {r['wrong']:4d} / "
                     f"{r['results']}{tag}")
    if retime_rows:
        lines.append("re-timing, deepseek-v3 EP 8: the median over rounds of each round's median us; "
                     "spread = highest / lowest round median - 1 (run-to-run noise)")
        lines.append(f"  {'tokens':>8s} {'mode':6s} " + " ".join(f"{s:>13s}" for s in RETIME_STAGES)
                     + "  best/old_best  best spread  old spread")
        for tokens in RETIME_TOKENS:
            for mode in ("eager", "graph"):
                medians = {s: [r["median_us"] for r in retime_rows if r["stage"] == s and r["mode"] == mode
                               and r["tokens"] == tokens] for s in RETIME_STAGES}
                low = {s: statistics.median(m) if m else float("nan") for s, m in medians.items()}
                spread = {s: max(m) / min(m) - 1 if m and min(m) > 0 else float("nan")
                          for s, m in medians.items()}
                ratio = low["best"] / low["old_best"] if low["old_best"] else float("nan")
                cells = " ".join(f"{low[s]:13.2f}" for s in RETIME_STAGES)
                lines.append(f"  {tokens:8d} {mode:6s} {cells}  {ratio:13.3f}  {spread['best']:10.1%}  "
                             f"{spread['old_best']:9.1%}")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    require_gpu()
    import moe_lab  # noqa: F401  (chooses the backend before the stages import triton)
    from moe_lab.measure import records
    from moe_lab.stages import one_launch

    os.makedirs(args.out, exist_ok=True)
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d_%H%M%S")
    prov = records.provenance(f"stress-{stamp}")  # card, driver, cuda, torch, triton, python, date, run_id
    began = time.monotonic()
    print(f"{prov['card']}, driver {prov['driver']}, torch {prov['torch']}, triton {prov['triton']}; "
          f"graphs told apart by capture id: {one_launch.capture_ids_available()}", flush=True)
    stress_rows = stress(args, prov)
    write_csv(os.path.join(args.out, f"stress_{stamp}.csv"), records.STRESS, stress_rows)
    retime_rows = retime(args, prov) if args.rounds else []
    if retime_rows:
        write_csv(os.path.join(args.out, f"retime_{stamp}.csv"), records.RETIME, retime_rows)
    print(table(stress_rows, retime_rows))
    failed = [r for r in stress_rows if r["stage"] != CONTROL and r["wrong"]]
    failed += [r for r in retime_rows if not r["correct"]]  # a timed output that was wrong
    control = [r for r in stress_rows if r["stage"] == CONTROL]
    print(f"\n{len(failed)} failing test(s) or wrong timed output(s); control wrong in "
          f"{sum(1 for r in control if r['wrong'])} of {len(control)} runs; {time.monotonic() - began:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
