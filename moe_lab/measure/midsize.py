"""Mid sizes against a copy: ``best`` and the designs tried for it, under CUDA-graph replay (GPU).

    python -m moe_lab.measure.midsize --out data/tuning    # best and a copy, 2K to 2M slots, recorded
    python -m moe_lab.measure.midsize --sweep --out $OUT   # every design and launch configuration tried

The target: ``best`` within 1.5x of a same-size device copy (the floor: one launch that reads and
writes the same bytes) at every size from 2K to 2M slots. There a copy costs about one launch, so what
``best`` adds over it is what decides: the histogram's instructions per slot (one SM streams only a few
thousand slots per microsecond through ``tl.histogram``), and, once several programs share the counts,
the round trips to L2 that tell the programs apart (``one_launch``: a release fence, a ticket, an
exchange by the last program). The designs tried, each checked against the reference on poisoned
outputs before and after it is timed:

* ``decode``, ``ol b<BLOCK> w<warps> p<programs per SM>`` (``one_launch``) and ``handoff ...`` (the
  same grid for the ``handoff`` stage): the library's kernels under other launch rules
  (``Kernel.launch`` overrides); from this sweep's numbers ``best`` runs ``decode`` up to 2048 slots
  and ``handoff`` above;
* ``decode_red b<BLOCK> w<warps>``: one program that zeroes the counts itself and counts with one
  relaxed atomic per local slot instead of ``tl.histogram`` (kept here, not in the library: slower).

Without ``--sweep`` the rows (``part=final``) time ``best``, the copy and ``one_launch`` under its own
rule (what ``best`` ran above 4096 slots before ``handoff``), with the timer's full runs.

Timings: :func:`moe_lab.measure.timing.time_us` in graph mode (``--sweep``: shorter runs); rows: schema
:data:`moe_lab.measure.records.TUNING` (``part`` is ``sweep`` or ``final``).
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
import triton
import triton.language as tl

SIZES = tuple(2048 << i for i in range(11))  # 2K to 2M slots
TOPK, PRESET, EP_SIZE, RANK = 8, "deepseek-v3", 8, 0
SWEEP_REP_MS = 5
TARGET = 1.5
POISON = -7


@triton.jit
def decode_red_kernel(ids_ptr, adjusted_ptr, count_ptr, fence_ptr, num_total, start, num_local,
                      BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    bins = tl.arange(0, NUM_BINS)
    tl.store(count_ptr + bins, tl.full([NUM_BINS], 0, tl.int32), mask=bins < num_local)  # one program
    tl.debug_barrier()  # every thread's zeros ...
    tl.atomic_add(fence_ptr, 0, sem="acq_rel")  # ... ordered before any add by a cumulative fence
    tl.debug_barrier()
    for tile in range(0, (num_total + BLOCK - 1) // BLOCK):
        slot = tile * BLOCK + tl.arange(0, BLOCK)
        valid_slot = slot < num_total
        expert = tl.load(ids_ptr + slot, mask=valid_slot, other=-1)
        local = (expert >= start) & (expert < start + num_local) & valid_slot
        local_expert = tl.where(local, expert - start, -1)
        tl.store(adjusted_ptr + slot, local_expert, mask=valid_slot)
        tl.atomic_add(count_ptr + local_expert, 1, mask=local, sem="relaxed")  # one add per local slot


def _warps(block: int) -> int:
    return 4 if block <= 1024 else 8


def candidates(slots: int, sweep: bool):
    """``{config: launch(ids, start, num_local, adjusted, counts)}`` worth timing at ``slots``."""
    from moe_lab.stages import best, decode, handoff, one_launch
    from moe_lab.stages.block_histogram import num_bins

    def library(launch, **knobs):
        return lambda ids, s, n, a, c: launch(ids, a, c, s, n, **knobs)

    found = {"copy": None, "best": lambda ids, s, n, a, c: best.run(ids, s, n, adjusted_out=a,
                                                                     expert_count_out=c)}
    if not sweep:
        if slots > 4096:
            found["one_launch"] = library(one_launch.launch)
        return found
    if slots <= 32768:
        found["decode"] = library(decode.launch)
    grid = [(b, _warps(b), 4) for b in (256, 512, 1024, 2048, 4096, 8192)]
    if slots >= 262144:
        grid += [(b, _warps(b), 8) for b in (1024, 2048, 4096)] + [(8192, 16, 4)]
    for b, w, p in grid:
        tiles = -(-slots // b)
        if not 1 < tiles <= 8192:
            continue
        found[f"ol b{b} w{w} p{p}"] = library(one_launch.launch, block=b, num_warps=w, programs_per_sm=p)
        found[f"handoff b{b} w{w} p{p}"] = library(handoff.launch, block=b, num_warps=w, programs_per_sm=p)
    if slots <= 32768:
        for b, w in ((1024, 4), (2048, 8), (4096, 16), (8192, 32)):
            fence = torch.zeros(1, dtype=torch.int32, device="cuda")

            def red(ids, s, n, a, c, b=b, w=w, fence=fence):
                decode_red_kernel[(1,)](ids, a, c, fence, ids.numel(), s, n, BLOCK=b, NUM_BINS=num_bins(n),
                                        num_warps=w)
            found[f"decode_red b{b} w{w}"] = red
    return found


def measure(sweep: bool = False, sizes=SIZES, rounds: int = 1) -> list[dict]:
    """One row per (config, size, round): median us under graph replay and whether it was right."""
    from moe_lab import routing, verify
    from moe_lab.measure import timing

    timing.require_gpu("moe_lab.measure.midsize")
    case = routing.case(PRESET, max(sizes) // TOPK, ep_size=EP_SIZE, rank=RANK, seed=0)
    all_ids = case.topk_ids.cuda()
    rows = []
    for rnd in range(rounds):
        for slots in sizes:
            ids = all_ids[:slots // TOPK].contiguous()
            want = verify.reference(ids, case.start, case.num_local)
            for config, launch in candidates(slots, sweep).items():
                adjusted = torch.empty_like(ids)
                counts = torch.empty(case.num_local, dtype=torch.int32, device="cuda")
                if launch is None:  # the copy: the floor

                    def fn():
                        adjusted.copy_(ids)
                else:

                    def fn(launch=launch):
                        launch(ids, case.start, case.num_local, adjusted, counts)
                ok = None
                try:
                    if launch is not None:
                        ok = _right(fn, adjusted, counts, want)
                    median, p20, p80 = timing.time_us(fn, "graph", SWEEP_REP_MS if sweep else timing.REP_MS)
                    if launch is not None:
                        ok = ok and _right(fn, adjusted, counts, want)
                except Exception as err:  # noqa: BLE001 - a configuration that fails is a row too
                    print(f"{config} at {slots}: {type(err).__name__}: {err}"[:300], file=sys.stderr)
                    median = p20 = p80 = None
                rows.append({"config": config, "us": median, "p20_us": p20, "p80_us": p80, "ok": ok,
                             "slots": slots, "num_local": case.num_local, "dist": "uniform",
                             "part": "sweep" if sweep else "final", "round": rnd})
                print(f"{slots:8d} {config:24s} {median if median else float('nan'):8.2f} us  ok={ok}",
                      flush=True)
    return rows


def _right(fn, adjusted, counts, want) -> bool:
    adjusted.fill_(POISON)
    counts.fill_(POISON)
    fn()
    torch.cuda.synchronize()
    return bool(torch.equal(adjusted, want[0]) and torch.equal(counts, want[1]))


def summary(rows) -> str:
    """Per size: the copy, best, their ratio, and the fastest correct configuration of each design."""
    lines = [f"{'slots':>8s} {'copy':>7s} {'best':>7s} {'ratio':>6s}  fastest correct of each design"]
    for slots in sorted({r["slots"] for r in rows}):
        here = [r for r in rows if r["slots"] == slots and r["us"] is not None]
        us = {c: min(r["us"] for r in here if r["config"] == c) for c in {r["config"] for r in here}}
        copy, best = us.get("copy"), us.get("best")
        ratio = f"{best / copy:6.2f}" if copy and best else "   n/a"
        fastest = {}
        for r in here:
            family = r["config"].split(" ")[0]
            if r["ok"] and family not in ("copy", "best") and r["us"] < fastest.get(family, (None, 1e9))[1]:
                fastest[family] = (r["config"], r["us"])
        tried = ", ".join(f"{c} {u:.2f}" for c, u in sorted(fastest.values(), key=lambda x: x[1]))
        lines.append(f"{slots:8d} {copy or float('nan'):7.2f} {best or float('nan'):7.2f} {ratio}  {tried}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m moe_lab.measure.midsize", description=__doc__.split("\n")[0])
    ap.add_argument("--sweep", action="store_true", help="every design and configuration, shorter timings")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--sizes", nargs="+", type=int, default=list(SIZES), help="slots (multiples of 8)")
    ap.add_argument("--out", default=None, help="folder for the CSV (schema records.TUNING)")
    args = ap.parse_args(argv)
    import pandas as pd

    from moe_lab.measure import records

    rows = measure(args.sweep, args.sizes, args.rounds)
    if args.out:
        prov = records.provenance()
        what = "midsize_sweep" if args.sweep else "midsize"
        script = "python -m moe_lab.measure.midsize" + (" --sweep" if args.sweep else "")
        frame = pd.DataFrame(rows).assign(script=script, **prov)
        path = records.write(frame, os.path.join(args.out, f"{what}_{records.slug(prov['card']).lower()}_"
                                                           f"{prov['date']}.csv"), records.TUNING)
        print(f"wrote {len(frame)} rows to {path}", file=sys.stderr)
    print(summary(rows))
    bad = [r for r in rows if r["ok"] is False and r["config"].split(" ")[0] in ("best", "ol", "decode")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
