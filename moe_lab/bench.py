"""The benchmark: every stage, real router data, eager and CUDA-graph timings, one tidy CSV per run.

    python -m moe_lab.bench                 # the full sweep, written to data/bench/<date>_<card>.csv
    python -m moe_lab.bench --quick         # a small sweep (seconds), printed, not written

GPU only: under Triton's interpreter a "timing" measures Python, not a kernel, so this refuses.
Each number is the median of many runs of ``triton.testing.do_bench`` (eager: the whole Python call,
as a user pays it, allocation and launch included) or ``do_bench_cudagraph`` (the same call captured
in a CUDA graph and replayed, which removes the CPU's launch cost and leaves the GPU's). Every stage's
output is checked bit-exact against the reference on the very input it is timed on, and the row says
so (``correct``). A same-size device copy (``copy``) gives the floor: a kernel that must read and
write these bytes cannot beat it. Schema: see ``COLUMNS``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import platform
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import torch

from . import backend, results, routing
from .registry import STAGES

COLUMNS = ["stage", "mode", "preset", "num_experts", "topk", "ep_size", "num_local", "distribution",
           "num_tokens", "num_slots", "median_us", "p20_us", "p80_us", "bytes", "gbps", "correct",
           "card", "driver", "cuda", "torch", "triton", "python", "date", "run_id"]
TOKENS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576)
FAST_STAGES = ("tl_full", "scalar_atomic", "relaxed", "block_histogram", "decode", "one_launch", "best",
               "copy", "zeros")  # for the presets after the first in a full run
OTHER_TOKENS = (1, 16, 256, 4096, 65536, 1048576)
DATA_DIR = results.DATA_DIR


def require_gpu() -> None:
    if not backend.has_gpu():
        raise SystemExit("moe_lab.bench needs a CUDA GPU: under Triton's interpreter a timing measures "
                         "Python, not the kernel. Recorded GPU results are in data/bench/ "
                         "(moe_lab.results.load()).")


def driver_version() -> str:
    """The NVIDIA driver's version from nvidia-smi, or "unknown" where it cannot be asked."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    lines = out.stdout.strip().splitlines()
    return lines[0] if out.returncode == 0 and lines else "unknown"


def provenance() -> dict:
    import triton

    return {"card": torch.cuda.get_device_name(), "driver": driver_version(), "cuda": torch.version.cuda,
            "torch": torch.__version__, "triton": triton.__version__,
            "python": platform.python_version(), "date": _dt.date.today().isoformat()}


EAGER_REPEATS = 3


def _timer(mode):
    """``fn -> (median, p20, p80)`` in ms.

    eager: ``do_bench`` of single calls; at small sizes that measures the CPU's launch path, which
    now and then stalls for a whole measurement window (we saw one 8 us call read 230 us), so the
    reported numbers are those of the middle of ``EAGER_REPEATS`` independent do_bench runs.
    graph: ``do_bench_cudagraph``: replays of a captured call, no CPU launch cost left.
    """
    from triton.testing import do_bench, do_bench_cudagraph

    if mode == "eager":
        def timer(fn):
            runs = sorted(do_bench(fn, warmup=10, rep=40, quantiles=[0.5, 0.2, 0.8])
                          for _ in range(EAGER_REPEATS))
            return runs[len(runs) // 2]
        return timer
    return lambda fn: do_bench_cudagraph(fn, rep=40, quantiles=[0.5, 0.2, 0.8])


def _callables(name, ids, start, num_local):
    """The function to time for a row, and a check that its last output was right (or None)."""
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
    """Time ``stages`` (default: all, plus ``copy`` and ``zeros``) over the grid; one row each."""
    require_gpu()
    from tqdm.auto import tqdm

    stages = list(stages or (*STAGES, "copy", "zeros"))
    meta = provenance()
    meta["run_id"] = f"{meta['date']}_{re.sub(r'[^A-Za-z0-9]+', '-', meta['card']).strip('-')}"
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
                fn, check = _callables(name, ids, full.start, full.num_local)
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
                        med, p20, p80 = _timer(mode)(fn)
                    except Exception as err:  # noqa: BLE001 - report and go on with the sweep
                        print(f"skip {name} {mode} n={n}: {type(err).__name__}: {err}"[:200], file=sys.stderr)
                        continue
                    nbytes = 2 * ids.numel() * ids.element_size() + 4 * full.num_local
                    rows.append({"stage": name, "mode": mode, "preset": preset_name,
                                 "num_experts": full.preset.num_experts, "topk": full.preset.topk,
                                 "ep_size": ep_size, "num_local": full.num_local, "distribution": dist,
                                 "num_tokens": n, "num_slots": ids.numel(), "median_us": med * 1e3,
                                 "p20_us": p20 * 1e3, "p80_us": p80 * 1e3, "bytes": nbytes,
                                 "gbps": nbytes / (med * 1e-3) / 1e9, "correct": ok, **meta})
    bar.close()
    return pd.DataFrame(rows, columns=COLUMNS)


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Median microseconds, stages as columns, one row per (preset, distribution, mode, tokens)."""
    return df.pivot_table(index=["preset", "distribution", "mode", "num_tokens"], columns="stage",
                          values="median_us").round(2)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m moe_lab.bench", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sweep, printed only")
    ap.add_argument("--out", type=Path, default=DATA_DIR, help="folder for the CSV (default data/bench)")
    ap.add_argument("--presets", nargs="+", default=["deepseek-v3", "mixtral", "deepseek-v2-lite",
                                                     "qwen3-moe"])
    ap.add_argument("--distributions", nargs="+", default=list(routing.DISTRIBUTIONS))
    ap.add_argument("--tokens", nargs="+", type=int, default=list(TOKENS))
    ap.add_argument("--modes", nargs="+", default=["eager", "graph"], choices=["eager", "graph"])
    ap.add_argument("--stages", nargs="+", default=None)
    ap.add_argument("--ep-size", type=int, default=8)
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    require_gpu()
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
        frames.append(sweep(args.stages if first else FAST_STAGES, (preset_name,), args.distributions,
                            args.tokens if first else OTHER_TOKENS, args.modes, args.ep_size,
                            progress=not args.no_progress))
        df = pd.concat(frames, ignore_index=True)
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / f"{df.run_id.iloc[0]}.csv"
        df.to_csv(path, index=False)
        print(f"wrote {len(df)} rows to {path}", file=sys.stderr)
    bad = df[df.correct == False]  # noqa: E712 - pandas comparison
    if len(bad):
        print(f"MISMATCH against the reference in {len(bad)} rows:\n{bad.head(20)}", file=sys.stderr)
        return 1
    print(summary(df[df.preset == args.presets[0]]).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
