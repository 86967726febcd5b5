"""The benchmark: every stage, real router data, eager and CUDA-graph timings, one tidy CSV per run.

    python -m moe_lab.measure.bench                 # the full sweep, written to data/bench/<date>_<card>.csv
    python -m moe_lab.measure.bench --quick         # a small sweep (seconds), printed, not written

GPU only: under Triton's interpreter a "timing" measures Python, not a kernel, so this refuses.
Every number comes from :func:`moe_lab.measure.timing.time_us` (eager: the whole Python call, as a user pays
it, allocation and launch included; graph: the same call captured in a CUDA graph and replayed, which
removes the CPU's launch cost and leaves the GPU's). Every stage's output is checked bit-exact against
the reference on the very input it is timed on, and the row says so (``correct``). A same-size device
copy (``copy``) gives the floor: a kernel that must read and write these bytes cannot beat it. The
CSV's schema and provenance columns: :data:`moe_lab.measure.records.BENCH`; it is checked before it is
written.
"""

from __future__ import annotations

import argparse
import numbers
import sys
from pathlib import Path

import pandas as pd
import torch

from moe_lab import paths, routing
from moe_lab.measure import records, timing
from moe_lab.measure.timing import driver_version, require_gpu  # noqa: F401  (public here too: bench.require_gpu())
from moe_lab.registry import STAGES

COLUMNS = records.BENCH.names
TOKENS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576)
OTHER_TOKENS = (1, 16, 256, 4096, 65536, 1048576)
BASELINES = records.BENCH_BASELINES
"""Rows that time no stage: a same-size device copy (the floor) and the counts' memset."""


def fast_stages() -> tuple[str, ...]:
    """The vectorised stages (``tl_full`` on, in registry order) and the baselines: what a full run
    times for the presets after the first (the slow early stages would take most of the GPU time)."""
    names = list(STAGES)
    return (*names[names.index("tl_full"):], *BASELINES)


def check_tokens(tokens, name: str = "tokens") -> tuple[int, ...]:
    """``tokens`` as a tuple of distinct whole numbers above 0, in the order given; else ValueError."""
    if isinstance(tokens, (str, bytes)) or not hasattr(tokens, "__iter__"):
        raise TypeError(f"{name} must be a sequence of token counts such as (16, 4096), got {tokens!r}")
    values = list(tokens)
    if not values:
        raise ValueError(f"{name} is empty: give at least one number of tokens, e.g. (16, 4096)")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{name} must hold whole numbers, got {v!r} ({type(v).__name__}) in {values}")
        if v <= 0:
            raise ValueError(f"{name} must be above 0 (a batch of tokens), got {v} in {values}; drop it")
    twice = sorted({int(v) for v in values if values.count(v) > 1})
    if twice:
        raise ValueError(f"{name} repeats {twice} in {values}: each size is measured once per run "
                         f"(a repeat would give two rows for one measurement); give each size once")
    return tuple(int(v) for v in values)


def _check_choice(values, allowed, name):
    if isinstance(values, str):
        values = (values,)
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise ValueError(f"{name}={list(values)!r}: each must be one of {', '.join(map(str, allowed))}")
    return tuple(values)


def timed_call(name, ids, start, num_local):
    """The function to time for one row (no arguments) and a check that its last output was right.

    ``name`` is a stage of the registry, ``"copy"`` (a device copy of ``ids``) or ``"zeros"`` (the
    counts' memset); the check is None for those two, which have no output to check.
    """
    if name == "copy":
        dst = torch.empty_like(ids)
        return (lambda: dst.copy_(ids)), None
    if name == "zeros":
        return (lambda: torch.zeros(num_local, dtype=torch.int32, device=ids.device)), None
    run = STAGES[name].run
    last = {}

    def fn():
        last["out"] = run(ids, start, num_local)

    def check(ref):
        fn()
        torch.cuda.synchronize()
        got = last["out"]
        return bool(torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1]))

    return fn, check


def sweep(stages=None, presets=("deepseek-v3",), distributions=("uniform", "hot"), tokens=TOKENS,
          modes=("eager", "graph"), ep_size=8, rank=0, progress=True, seed=0) -> pd.DataFrame:
    """Time ``stages`` (default: all, plus ``copy`` and ``zeros``) over the grid; one row each.

    Raises ``ValueError``/``TypeError`` for a bad argument and
    :class:`moe_lab.measure.timing.GPURequiredError` without a GPU (it never exits the interpreter).
    """
    tokens = check_tokens(tokens)
    stages = _check_choice(tuple(stages or (*STAGES, *BASELINES)), (*STAGES, *BASELINES), "stages")
    modes = _check_choice(modes, timing.MODES, "modes")
    distributions = _check_choice(distributions, routing.DISTRIBUTIONS, "distributions")
    require_gpu("moe_lab.measure.bench")
    from tqdm.auto import tqdm

    meta = records.provenance()
    rows = []
    grid = [(p, d) for p in presets for d in distributions]
    bar = tqdm(total=len(grid) * len(tokens) * len(stages) * len(modes), disable=not progress,
               desc="bench")
    for preset_name, dist in grid:
        full = routing.case(preset_name, max(tokens), distribution=dist, ep_size=ep_size, rank=rank,
                            seed=seed)
        ids_full = full.topk_ids.cuda()
        for n in tokens:
            ids = ids_full[:n].contiguous()
            ref = STAGES["torch"].run(ids, full.start, full.num_local)
            for name in stages:
                fn, check = timed_call(name, ids, full.start, full.num_local)
                ok = None
                skip = (name == "row_loop" and full.preset.topk & (full.preset.topk - 1)) or \
                    name in STAGES and (STAGES[name].bench_max_slots or 1 << 62) < ids.numel()
                if not skip and check is not None:
                    ok = check(ref)
                for mode in modes:
                    bar.update()
                    if skip or (name == "torch" and mode == "graph"):  # bincount syncs: not capturable
                        continue
                    try:
                        med, p20, p80 = timing.time_us(fn, mode)
                    except Exception as err:  # noqa: BLE001 - report and go on with the sweep
                        print(f"skip {name} {mode} n={n}: {type(err).__name__}: {err}"[:200], file=sys.stderr)
                        continue
                    nbytes = 2 * ids.numel() * ids.element_size() + 4 * full.num_local
                    rows.append({"stage": name, "mode": mode, "preset": preset_name,
                                 "num_experts": full.preset.num_experts, "topk": full.preset.topk,
                                 "ep_size": ep_size, "num_local": full.num_local, "distribution": dist,
                                 "num_tokens": n, "num_slots": ids.numel(), "median_us": med,
                                 "p20_us": p20, "p80_us": p80, "bytes": nbytes,
                                 "gbps": nbytes / (med * 1e-6) / 1e9, "correct": ok, **meta})
    bar.close()
    return pd.DataFrame(rows, columns=COLUMNS)


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Median microseconds, stages as columns, one row per (preset, distribution, mode, tokens)."""
    return df.pivot_table(index=["preset", "distribution", "mode", "num_tokens"], columns="stage",
                          values="median_us").round(2)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m moe_lab.measure.bench", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sweep, printed only")
    ap.add_argument("--out", type=Path, default=None, help="folder for the CSV (default data/bench)")
    ap.add_argument("--presets", nargs="+", default=["deepseek-v3", "mixtral", "deepseek-v2-lite",
                                                     "qwen3-moe"])
    ap.add_argument("--distributions", nargs="+", default=list(routing.DISTRIBUTIONS))
    ap.add_argument("--tokens", nargs="+", type=int, default=list(TOKENS),
                    help="numbers of tokens, each above 0 and given once")
    ap.add_argument("--modes", nargs="+", default=["eager", "graph"], choices=["eager", "graph"])
    ap.add_argument("--stages", nargs="+", default=None)
    ap.add_argument("--ep-size", type=int, default=8)
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    try:
        check_tokens(args.tokens, "--tokens")
    except (TypeError, ValueError) as err:
        ap.error(str(err))  # exits 2 with the usage line, as argparse does for its own checks
    try:
        require_gpu("python -m moe_lab.measure.bench")
    except timing.GPURequiredError as err:
        print(err, file=sys.stderr)
        return 2
    if args.quick:
        df = sweep(["scalar_atomic", "best", "copy"], ("deepseek-v3",), ("uniform",), (16, 4096, 65536),
                   ("eager", "graph"), progress=not args.no_progress)
        print(summary(df).to_string())
        return 0
    frames = []
    for i, preset_name in enumerate(args.presets):  # one preset at a time: a long run saves as it goes
        # Unless told otherwise, the first preset gets every stage and size, the others the fast
        # stages at fewer sizes (the slow early stages would take most of the GPU time).
        first = i == 0 or args.stages is not None
        frames.append(sweep(args.stages if first else fast_stages(), (preset_name,), args.distributions,
                            args.tokens if first else OTHER_TOKENS, args.modes, args.ep_size,
                            progress=not args.no_progress))
        df = pd.concat(frames, ignore_index=True)
        out = args.out if args.out is not None else paths.data("bench")
        path = records.write(df, out / f"{df.run_id.iloc[0]}.csv", records.BENCH)
        print(f"wrote {len(df)} rows to {path}", file=sys.stderr)
    bad = df[df.correct == False]  # noqa: E712 - pandas comparison
    if len(bad):
        print(f"MISMATCH against the reference in {len(bad)} rows:\n{bad.head(20)}", file=sys.stderr)
        return 1
    print(summary(df[df.preset == args.presets[0]]).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
