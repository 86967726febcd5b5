"""Benchmark of the dispatch layout: ``python -m moe_lab.measure.dispatch_bench [--out DIR] [--tokens N]``.

DeepSeek-V3 under EP8 (256 experts, top-8, 32 local experts, hidden 7168 in fp8 with 56 fp32 scales),
uniform routing, 64 to 32K tokens after the all-gather. For each size, first checks every timed
path against the reference (the fused op exactly, twice, bit for bit; the chain up to row order),
then times, eager (``do_bench``) and under CUDA-graph replay (``do_bench_cudagraph``), through
:func:`moe_lab.measure.timing.time_us`:

* ``fused``: :func:`~moe_lab.dispatch.prepare_dispatch` in its graph-safe mode (no host read);
* ``fused_sync``: the same with its one host read (eager only: a host read cannot be captured);
* ``chain``: the whole chain it replaces, host round trips included (eager only, same reason);
* ``chain_device``: the chain's device part (memset, recombination, prefix, atomic scatter, scale
  transposition) on buffers sized beforehand;
* ``gather``: ``index_select`` of the same row bytes into the same order: the data-movement floor;
* ``fused_wide_copy``: ``fused`` with 16 KB copy steps instead of 4 KB (graph only): a launch-rule probe;
* ``fused_launch1``: the fused op's first launch alone (graph only): what the second one costs is the rest;
* ``fused_two_launch`` (sizes the single-launch rule covers) and ``fused_one_launch`` (the next sizes
  up, to 16384 slots): ``fused`` with the other path forced (graph only), to place that rule.

Writes ``dispatch_<run_id>.csv`` (one row per path, mode and size, with provenance) under ``--out``
(default ``$OUT``, else ``data/dispatch/``), prints the targets table, and exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from moe_lab import backend
from moe_lab.dispatch import compare, inputs, launch
from moe_lab.dispatch.op import first_launch, prepare_dispatch
from moe_lab.dispatch.reference import prepare_dispatch_reference
from moe_lab.measure import chain, records, timing
from moe_lab.paths import data as data_folder

TOKENS = (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
NUM_EXPERTS, TOPK, NUM_LOCAL, HIDDEN = 256, 8, 32, 7168
START = 3 * NUM_LOCAL  # rank 3 of 8
COLUMNS = ["path", "mode", "num_tokens", "topk", "num_local", "hidden", "local_slots", "rows",
           "bytes_moved", "median_us", "p20_us", "p80_us"] + list(records.PROVENANCE)


def routed(num_tokens: int, seed: int):
    """Uniform top-8 routing over 256 experts, drawn on the GPU; fp8 rows; fp32 scales."""
    g = torch.Generator(device="cuda").manual_seed(seed)
    ids = torch.rand(num_tokens, NUM_EXPERTS, generator=g, device="cuda").argsort(dim=1)[:, :TOPK]
    ids = ids.to(torch.int32).contiguous()
    x = torch.randint(0, 256, (num_tokens, HIDDEN), generator=g, device="cuda", dtype=torch.uint8)
    scales = torch.rand(num_tokens, HIDDEN // 128, generator=g, device="cuda") + 0.5
    return ids, x.view(torch.float8_e4m3fn), scales


def check_size(ids, x, scales, want) -> list[str]:
    """Every timed path against the reference; an empty list when all agree."""
    found = []
    first = prepare_dispatch(ids, START, NUM_LOCAL, x, scales, graph_safe=True)
    second = prepare_dispatch(ids, START, NUM_LOCAL, x, scales, graph_safe=True)
    found += [f"fused: {p}" for p in compare.problems(first, want, x, scales)]
    real = want["real"]
    m = real.numel()
    for name in ("adjusted_ids", "expert_count", "offsets", "output_index", "m_indices"):
        if not torch.equal(getattr(first, name), getattr(second, name)):
            found.append(f"fused: {name} differs between two runs")
    # bytes: fp8 has no indexing kernels
    a, b = first.rows[:m].view(torch.uint8), second.rows[:m].view(torch.uint8)
    if not torch.equal(a[real], b[real]):
        found.append("fused: rows differ between two runs")
    synced = prepare_dispatch(ids, START, NUM_LOCAL, x, scales)
    found += [f"fused_sync: {p}" for p in compare.problems(synced, want, x, scales)]
    found += [f"chain: {p}" for p in compare.problems(chain.run(ids, START, NUM_LOCAL, x, scales), want, x,
                                                      scales, ordered=False)]
    return found


def paths(ids, x, scales, want) -> dict:
    """The timed callables of one size: ``{name: (fn, modes)}``."""
    m = want["m_indices"].numel()
    aligned = (want["offsets"][1:] - want["offsets"][:-1]).to(torch.int32)
    bufs = chain.buffers(ids, NUM_LOCAL, x, scales, m)
    real_rows = want["real"].nonzero().flatten()
    # the token of every real row, in row order: what a gather of the same bytes reads
    order = torch.full((m,), -1, dtype=torch.int64, device=ids.device)
    flat = want["output_index"].reshape(-1).long()
    local = flat >= 0
    order[flat[local]] = torch.arange(flat.numel(), device=ids.device)[local] // TOPK
    tokens = order[real_rows]
    x_bytes = x.view(torch.uint8)
    gathered = torch.empty(tokens.numel(), HIDDEN, dtype=torch.uint8, device=ids.device)
    both, eager = ("eager", "graph"), ("eager",)
    args = inputs.check(ids, START, NUM_LOCAL, x, scales, 128, "expert", needs_triton=True)

    def wide():  # the same op with 16 KB copy steps (fewer, fatter programs): a launch-rule probe
        old, launch.COPY_BYTES = launch.COPY_BYTES, 16384
        try:
            return prepare_dispatch(ids, START, NUM_LOCAL, x, scales, graph_safe=True)
        finally:
            launch.COPY_BYTES = old
    timed = {
        "fused": (lambda: prepare_dispatch(ids, START, NUM_LOCAL, x, scales, graph_safe=True), both),
        "fused_sync": (lambda: prepare_dispatch(ids, START, NUM_LOCAL, x, scales), eager),
        "chain": (lambda: chain.run(ids, START, NUM_LOCAL, x, scales), eager),
        "chain_device": (lambda: chain.device_part(ids, START, NUM_LOCAL, x, scales, aligned, bufs), both),
        "gather": (lambda: torch.index_select(x_bytes, 0, tokens, out=gathered), both),
        "fused_wide_copy": (wide, ("graph",)),
        "fused_launch1": (lambda: first_launch(ids, args), ("graph",)),
    }
    forced = ("fused_two_launch", 0) if ids.numel() <= launch.SINGLE_SLOTS else ("fused_one_launch", 1 << 30)
    if ids.numel() <= 16384:

        def other_path(limit=forced[1]):
            old, launch.SINGLE_SLOTS = launch.SINGLE_SLOTS, limit
            try:
                return prepare_dispatch(ids, START, NUM_LOCAL, x, scales, graph_safe=True)
            finally:
                launch.SINGLE_SLOTS = old
        timed[forced[0]] = (other_path, ("graph",))
    return timed


BUDGET_S = 270
"""The sweep stops starting new sizes after this many seconds (the whole run must stay under 6 minutes)."""


def sweep(tokens=TOKENS, run_id=None, budget_s: float = BUDGET_S):
    """``(rows, failures)``: one CSV row per path, mode and size; the checks that failed."""
    prov = records.provenance(run_id)
    out, failures = [], []
    began = time.time()
    for n in tokens:
        if time.time() - began > budget_s:
            print(f"time budget of {budget_s:.0f} s spent: sizes from {n} tokens on are not measured",
                  flush=True)
            break
        ids, x, scales = routed(n, seed=n)
        want = prepare_dispatch_reference(ids, START, NUM_LOCAL, x, scales)
        found = check_size(ids, x, scales, want)
        failures += [f"{n} tokens: {p}" for p in found]
        if found:
            print(f"{n} tokens: FAILED {found[0]}", flush=True)
            continue
        local_slots = int(want["real"].sum())
        rows = want["m_indices"].numel()
        moved = 2 * local_slots * (HIDDEN + 4 * (HIDDEN // 128))  # read + write of rows and scales
        for name, (fn, modes) in paths(ids, x, scales, want).items():
            for mode in modes:
                med, p20, p80 = timing.time_us(fn, mode=mode)
                out.append(dict(path=name, mode=mode, num_tokens=n, topk=TOPK, num_local=NUM_LOCAL,
                                hidden=HIDDEN, local_slots=local_slots, rows=rows, bytes_moved=moved,
                                median_us=med, p20_us=p20, p80_us=p80, **prov))
        print(f"{n} tokens checked and timed", flush=True)
    return out, failures


def load(path=None):
    """The newest recorded run (a DataFrame) from ``path`` (default ``data/dispatch/``), or None."""
    folder = Path(path) if path is not None else data_folder("dispatch")
    files = sorted(folder.glob("dispatch_*.csv")) if folder.is_dir() else []
    if not files:
        return None
    return records.load(files[-1], records.DISPATCH)  # checked: columns, timings, dates, file and row named


def targets(rows) -> str:
    """The targets table, graph replay: fused vs the chain's device part and vs the gather."""
    import pandas as pd

    df = pd.DataFrame(rows)
    g = df[df["mode"] == "graph"].pivot_table(index="num_tokens", columns="path", values="median_us")
    e = df[df["mode"] == "eager"].pivot_table(index="num_tokens", columns="path", values="median_us")
    lines = [("tokens | fused us | chain device us | gather us | chain/fused | fused/gather | "
              "eager: fused_sync us, chain us | targets")]
    for n in g.index:
        f, c, gat = g.loc[n, "fused"], g.loc[n, "chain_device"], g.loc[n, "gather"]
        met = [f <= c, f <= 1.5 * gat] + ([c >= 3 * f] if n <= 512 else [])
        lines.append(f"{n} | {f:.1f} | {c:.1f} | {gat:.1f} | {c / f:.2f}x | {f / gat:.2f}x | "
                     f"{e.loc[n, 'fused_sync']:.1f}, {e.loc[n, 'chain']:.1f} | "
                     f"{'met' if all(met) else 'MISSED'}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m moe_lab.measure.dispatch_bench",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.environ.get("OUT"),
                    help="folder for the CSV (default: $OUT, else data/dispatch/)")
    ap.add_argument("--tokens", type=int, nargs="+", default=list(TOKENS),
                    help="token counts after the all-gather (default: 64 to 32768)")
    args = ap.parse_args(argv)
    if any(t <= 0 for t in args.tokens) or len(set(args.tokens)) != len(args.tokens):
        ap.error(f"--tokens must be distinct positive integers, got {args.tokens}")
    if not backend.has_gpu():
        print("python -m moe_lab.measure.dispatch_bench needs a CUDA GPU: under Triton's interpreter a "
              "timing measures Python, not the kernels. Recorded results live in data/dispatch/.",
              file=sys.stderr)
        return 2
    began = time.time()
    rows, failures = sweep(sorted(args.tokens))
    out = Path(args.out) if args.out else data_folder("dispatch")
    out.mkdir(parents=True, exist_ok=True)
    if rows:
        import pandas as pd

        path = out / f"dispatch_{rows[0]['run_id']}.csv"
        pd.DataFrame(rows, columns=COLUMNS).to_csv(path, index=False)
        print(f"wrote {path}")
        print(targets(rows))
    print(f"took {time.time() - began:.0f} s")
    for f in failures:
        print("FAILED", f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
