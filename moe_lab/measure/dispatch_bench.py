"""Benchmark of the dispatch layout: ``python -m moe_lab.measure.dispatch_bench [--out DIR] [--tokens N]``.

DeepSeek-V3 under EP8 (256 experts, top-8, 32 local experts, hidden 7168 in fp8 with 56 fp32 scales),
uniform routing, 64 to 32K tokens after the all-gather. For each size it first checks every timed path
against the reference (the fused op exactly and twice to the same bits; the chain up to row order),
then times it:

* under CUDA-graph replay (``mode="graph"``, :func:`moe_lab.measure.timing.time_us`): ``fused``
  (:func:`~moe_lab.dispatch.prepare_dispatch`, graph-safe), ``chain`` (the chain's device part: memset
  and recombination, prefix, atomic scatter; :func:`.chain.device_part`), ``chain_transpose`` (the
  chain's scale transpose alone), ``chain_with_transpose`` (both), ``gather`` (``index_select`` of the
  same row bytes into the same order: the data-movement floor), and the ``fused_*`` variants of
  :data:`VARIANTS` (the same op with another launch plan forced, to place the launch rules);
* eager, as a host pays it (``mode="host"``, :func:`moe_lab.measure.timing.host_us`: wall time per call of
  many back-to-back calls, one sync at the end): ``fused`` (graph-safe), ``fused_exact`` (exact sizing, one
  host read), ``dropin`` (``moe_lab.recompute_topk_ids_sum_expert_count`` on the same ids) and
  ``chain_run`` (the whole chain, its host round trip included).

Writes ``dispatch_<run_id>.csv`` through :mod:`moe_lab.measure.records` (schema ``DISPATCH``: one row per
path, mode and size, with card, versions and date) under ``--out`` (default ``$OUT``, else
``data/dispatch/``), prints the targets table, and exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

import moe_lab
from moe_lab import backend
from moe_lab.dispatch import blocks, compare, inputs, launch, op
from moe_lab.dispatch.reference import prepare_dispatch_reference
from moe_lab.measure import chain, records, timing
from moe_lab.paths import data as data_folder

TOKENS = (64, 128, 256, 512, 1024, 2048, 4096, 8192, 32768)
NUM_EXPERTS, TOPK, NUM_LOCAL, HIDDEN = 256, 8, 32, 7168
START = 3 * NUM_LOCAL  # rank 3 of 8
IDS, TABLE = launch.FROM_IDS, launch.FROM_TABLE
VARIANTS = {  # name: (launch-plan overrides, or "blocks" for the token-block design; the sizes timed)
    "fused_one_t16": (dict(source=IDS, tile_tokens=16), (256, 512)),
    "fused_two_t4": (dict(source=TABLE, tile_tokens=4), (64, 128, 256, 512, 1024)),
    "fused_two_t16": (dict(source=TABLE, tile_tokens=16), (64, 128, 2048)),
    "fused_blocks": ("blocks", (64, 128, 256, 512, 1024)),
}
"""Launch plans timed beside the op's own choice (graph replay), to place the rules of :mod:`.launch`:
``one``/``two`` launches of the tile design with ``t`` tokens a tile, or the token-block design."""


def variants_for(num_tokens: int) -> list[str]:
    """The variants timed at this size."""
    return [name for name, (_, sizes) in VARIANTS.items() if num_tokens in sizes]


def routed(num_tokens: int, seed: int):
    """Uniform top-8 routing over 256 experts, drawn on the GPU; fp8 rows; fp32 scales."""
    g = torch.Generator(device="cuda").manual_seed(seed)
    ids = torch.rand(num_tokens, NUM_EXPERTS, generator=g, device="cuda").argsort(dim=1)[:, :TOPK]
    ids = ids.to(torch.int32).contiguous()
    x = torch.randint(0, 256, (num_tokens, HIDDEN), generator=g, device="cuda", dtype=torch.uint8)
    scales = torch.rand(num_tokens, HIDDEN // 128, generator=g, device="cuda") + 0.5
    return ids, x.view(torch.float8_e4m3fn), scales


def fused(ids, x, scales, name: str | None = None, graph_safe: bool = True):
    """``prepare_dispatch`` itself, or with the plan of variant ``name`` forced."""
    if name is None:
        return op.prepare_dispatch(ids, START, NUM_LOCAL, x, scales, graph_safe=graph_safe)
    a = inputs.check(ids, START, NUM_LOCAL, x, scales, 128, "expert", needs_triton=True)
    override = VARIANTS[name][0]
    if override == "blocks":
        return op.run_blocks(_blocks_plan(ids.shape[0], a.scale_cols), ids, a, x, scales, graph_safe)
    p = launch.plan(ids.shape[0], TOPK, NUM_LOCAL, HIDDEN, a.scale_cols, a.packed, 128, False, graph_safe,
                    **override)
    return op.run(p, ids, a, x, scales, graph_safe)


def _blocks_plan(num_tokens: int, scale_cols: int):
    cap = inputs.max_rows(num_tokens * TOPK, NUM_LOCAL, 128)
    return blocks.plan(num_tokens, TOPK, launch.bins_for(NUM_LOCAL), HIDDEN, scale_cols, False, cap)


def plan_text(num_tokens: int, name: str | None = None) -> str:
    """The launch plan of ``fused`` (or of a variant) at this size, in words."""
    override = VARIANTS[name][0] if name is not None else {}
    if override == "blocks" or (name is None and launch.uses_blocks(num_tokens, TOPK, NUM_LOCAL)):
        bp = _blocks_plan(num_tokens, HIDDEN // 128)
        cols = bp.layout.constexprs["COPY_COLS"]
        return (f"token blocks, {bp.block_tokens} tokens a block, {cols} columns, "
                f"{bp.layout.num_warps} warps")
    p = launch.plan(num_tokens, TOPK, NUM_LOCAL, HIDDEN, HIDDEN // 128, False, 128, False, True, **override)
    return (f"{p.name}, tile {p.tile_tokens} tokens, {p.layout.constexprs['COPY_COLS']} columns, "
            f"{p.layout.num_warps} warps")


def _same_bits(a, b, want) -> list[str]:
    """Every output of two graph-safe runs the same, padding rows of rows/scales apart (never written)."""
    found = [name for name in ("adjusted_ids", "expert_count", "offsets", "output_index", "m_indices")
             if not torch.equal(getattr(a, name), getattr(b, name))]
    real = want["real"]
    m = real.numel()
    if not torch.equal(a.rows[:m].view(torch.uint8)[real], b.rows[:m].view(torch.uint8)[real]):
        found.append("rows")
    if not torch.equal(a.scales[:m][real], b.scales[:m][real]):
        found.append("scales")
    return [f"{n} differs between two runs" for n in found]


def chain_parts(ids, x, scales, want) -> dict:
    """The chain's buffers and device steps for this size (counts aligned beforehand, as the host would)."""
    aligned = (want["offsets"][1:] - want["offsets"][:-1]).to(torch.int32)
    bufs = chain.buffers(ids, NUM_LOCAL, x, scales, want["m_indices"].numel())
    return {"bufs": bufs,
            "device": lambda: chain.device_part(ids, START, NUM_LOCAL, x, scales, aligned, bufs)}


def check_size(ids, x, scales, want, names) -> list[str]:
    """Every timed path against the reference; an empty list when all agree."""
    found = []
    first, second = fused(ids, x, scales), fused(ids, x, scales)
    found += [f"fused: {p}" for p in compare.problems(first, want, x, scales)]
    found += [f"fused: {p}" for p in _same_bits(first, second, want)]
    found += [f"fused_exact: {p}" for p in compare.problems(fused(ids, x, scales, graph_safe=False), want, x,
                                                            scales)]
    for name in names:
        found += [f"{name}: {p}" for p in compare.problems(fused(ids, x, scales, name), want, x, scales)]
    found += [f"chain_run: {p}" for p in compare.problems(chain.run(ids, START, NUM_LOCAL, x, scales), want,
                                                          x, scales, ordered=False)]
    parts = chain_parts(ids, x, scales, want)
    parts["device"]()
    chain.transpose(parts["bufs"])
    b = parts["bufs"]
    layout = op.DispatchLayout(b["adjusted"], b["counts"], want["offsets"], b["index"], b["m_indices"],
                               b["rows"], b["gemm_scales"], b["m_indices"].numel())
    found += [f"chain: {p}" for p in compare.problems(layout, want, x, scales, ordered=False)]
    return found


def paths(ids, x, scales, want, names) -> dict:
    """The timed callables of one size: ``{name: (fn, modes)}``."""
    real_rows = want["real"].nonzero().flatten()
    m = want["m_indices"].numel()
    # the token of every real row, in row order: what a gather of the same bytes reads
    order = torch.full((m,), -1, dtype=torch.int64, device=ids.device)
    flat = want["output_index"].reshape(-1).long()
    local = flat >= 0
    order[flat[local]] = torch.arange(flat.numel(), device=ids.device)[local] // TOPK
    tokens = order[real_rows]
    x_bytes = x.view(torch.uint8)
    gathered = torch.empty(tokens.numel(), HIDDEN, dtype=torch.uint8, device=ids.device)
    parts = chain_parts(ids, x, scales, want)
    parts["device"]()

    def with_transpose():
        parts["device"]()
        chain.transpose(parts["bufs"])
    graph, host = ("graph",), ("host",)
    timed = {
        "fused": (lambda: fused(ids, x, scales), ("graph", "host")),
        "fused_exact": (lambda: fused(ids, x, scales, graph_safe=False), host),
        "dropin": (lambda: moe_lab.recompute_topk_ids_sum_expert_count(ids, START, NUM_LOCAL), host),
        "chain_run": (lambda: chain.run(ids, START, NUM_LOCAL, x, scales), host),
        "chain": (parts["device"], graph),
        "chain_transpose": (lambda: chain.transpose(parts["bufs"]), graph),
        "chain_with_transpose": (with_transpose, graph),
        "gather": (lambda: torch.index_select(x_bytes, 0, tokens, out=gathered), graph),
    }
    for name in names:
        timed[name] = ((lambda n=name: fused(ids, x, scales, n)), graph)
    return timed


BUDGET_S = 240
"""The sweep stops starting new sizes after this many seconds (the whole run must stay under 5 minutes)."""


def sweep(tokens=TOKENS, run_id=None, budget_s: float = BUDGET_S, variants: bool = True):
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
        names = variants_for(n) if variants else []
        found = check_size(ids, x, scales, want, names)
        failures += [f"{n} tokens: {p}" for p in found]
        if found:
            print(f"{n} tokens: FAILED {found[0]}", flush=True)
            continue
        local_slots = int(want["real"].sum())
        moved = 2 * local_slots * (HIDDEN + 4 * (HIDDEN // 128))  # read + write of rows and scales
        for name, (fn, modes) in paths(ids, x, scales, want, names).items():
            for mode in modes:
                med, p20, p80 = timing.time_us(fn, mode="graph") if mode == "graph" else timing.host_us(fn)
                plan = plan_text(n, None if name == "fused" else name) if name.startswith("fused") and \
                    name != "fused_exact" else ""
                out.append(dict(path=name, mode=mode, num_tokens=n, topk=TOPK, num_local=NUM_LOCAL,
                                hidden=HIDDEN, local_slots=local_slots, rows=want["m_indices"].numel(),
                                bytes_moved=moved, median_us=med, p20_us=p20, p80_us=p80, plan=plan, **prov))
        print(f"{n} tokens checked and timed ({time.time() - began:.0f} s)", flush=True)
    return out, failures


def load(path=None):
    """The newest recorded run (a DataFrame) from ``path`` (default ``data/dispatch/``), or None."""
    folder = Path(path) if path is not None else data_folder("dispatch")
    files = list(folder.glob("dispatch_*.csv")) if folder.is_dir() else []
    files.sort(key=lambda f: records.run_order(f.stem.removeprefix("dispatch_")))  # by date and time of day
    if not files:
        return None
    return records.load(files[-1], records.DISPATCH)  # checked: columns, timings, dates, file and row named


TARGETS = {"chain_small": 2.0, "chain_large": 1.25, "gather": 1.5, "host": 2.0, "small_until": 4096,
           "gather_from": 4096}
"""The targets: ``fused`` at least 2x faster than ``chain`` up to 4096 tokens and 1.25x above, within
1.5x of ``gather`` from 4096 tokens up (graph replay); eager ``fused`` and ``fused_exact`` at most 2x
the ``dropin``'s wall time per call."""


def shipped(df, mode: str = "graph"):
    """Per size, the median of the plan the op's rules choose now, from the ``fused`` row or, where the
    rules changed since the run, from the variant row that timed that plan (matched by its ``plan``);
    NaN where the run timed no row of that plan."""
    import pandas as pd

    out = {}
    for n, rows in df[(df["mode"] == mode) & df["path"].str.startswith("fused")].groupby("num_tokens"):
        want = plan_text(int(n))
        same = rows[rows["plan"].fillna("") == want] if "plan" in rows else rows.iloc[:0]
        pick = same[same["path"] == "fused"] if (same["path"] == "fused").any() else same
        out[n] = pick["median_us"].iloc[0] if len(pick) else float("nan")  # NaN: that plan was not timed
    return pd.Series(out, dtype=float)


def verdicts(rows):
    """A DataFrame per size: the timings the targets use, the ratios and whether each target is met.

    ``fused`` is the plan the op's rules choose (:func:`shipped`); ``plan`` names it."""
    import pandas as pd

    df = pd.DataFrame(rows)
    if "plan" not in df:
        df["plan"] = ""
    g = df[df["mode"] == "graph"].pivot_table(index="num_tokens", columns="path", values="median_us")
    h = df[df["mode"] == "host"].pivot_table(index="num_tokens", columns="path", values="median_us")
    t = TARGETS
    out = pd.DataFrame(index=g.index)
    out["fused"], out["chain"], out["gather"] = shipped(df).reindex(g.index), g["chain"], g["gather"]
    if "chain_with_transpose" in g:
        out["chain+T"] = g["chain_with_transpose"]
    out["chain/fused"] = out["chain"] / out["fused"]
    out["fused/gather"] = out["fused"] / out["gather"]
    need = [t["chain_small"] if n <= t["small_until"] else t["chain_large"] for n in g.index]
    out["vs chain"] = ["not timed" if r != r else "met" if r >= q else "missed"  # r != r: NaN
                       for r, q in zip(out["chain/fused"], need)]
    out["vs gather"] = ["" if n < t["gather_from"] else "not timed" if r != r else
                        "met" if r <= t["gather"] else "missed" for n, r in zip(g.index, out["fused/gather"])]
    if not h.empty:
        for name in ("fused", "fused_exact"):
            ratio = h[name] / h["dropin"]
            out[f"host {name}/dropin"] = ratio
            out[f"host {name}"] = ["met" if r <= t["host"] else "missed" for r in ratio]
    out["plan"] = [plan_text(int(n)) for n in g.index]
    return out


def targets(rows) -> str:
    """The targets table as text (one line per size)."""
    return verdicts(rows).round(2).to_string()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m moe_lab.measure.dispatch_bench",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.environ.get("OUT"),
                    help="folder for the CSV (default: $OUT, else data/dispatch/)")
    ap.add_argument("--tokens", type=int, nargs="+", default=list(TOKENS),
                    help="token counts after the all-gather (default: 64 to 32768)")
    ap.add_argument("--no-variants", action="store_true", help="time only the op's own plan")
    args = ap.parse_args(argv)
    if any(t <= 0 for t in args.tokens) or len(set(args.tokens)) != len(args.tokens):
        ap.error(f"--tokens must be distinct positive integers, got {args.tokens}")
    if not backend.has_gpu():
        print("python -m moe_lab.measure.dispatch_bench needs a CUDA GPU: under Triton's interpreter a "
              "timing measures Python, not the kernels. Recorded results live in data/dispatch/.",
              file=sys.stderr)
        return 2
    began = time.time()
    rows, failures = sweep(sorted(args.tokens), variants=not args.no_variants)
    if rows:
        import pandas as pd

        path = Path(args.out or data_folder("dispatch")) / f"dispatch_{rows[0]['run_id']}.csv"
        records.write(pd.DataFrame(rows), path, records.DISPATCH)
        print(f"wrote {path}")
        print(targets(rows))
    print(f"took {time.time() - began:.0f} s")
    for f in failures:
        print("FAILED", f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
