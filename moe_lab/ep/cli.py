"""Command line: ``python -m moe_lab.ep``, the GPU run that fills ``data/ep/`` (and a CPU check)."""

from __future__ import annotations

import argparse
import os

import torch

from moe_lab import routing
from moe_lab.ep.api import run_sweep
from moe_lab.ep.config import BACKENDS, KERNEL_MODES, MEASURED_STAGES
from moe_lab.ep.recorded import TIMINGS, results_frame, write_csv


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m moe_lab.ep",
        description="Run an expert-parallel group, check conservation, and (NCCL) record timings.")
    parser.add_argument("--backend", choices=BACKENDS, default="nccl")
    parser.add_argument("--world-size", type=int, default=2)
    parser.add_argument("--preset", choices=list(routing.PRESETS), default="deepseek-v3")
    parser.add_argument("--tokens-per-rank", default="1024,4096,16384,65536",
                        help="comma-separated batch sizes, each run on every rank")
    parser.add_argument("--distribution", default="uniform", help="comma-separated: uniform,zipf,hot")
    parser.add_argument("--stages", default=",".join(MEASURED_STAGES), help="stages to time (NCCL)")
    parser.add_argument("--stage", default="best", help="stage whose output the conservation check sees")
    parser.add_argument("--kernel-mode", choices=KERNEL_MODES, default="eager",
                        help="time kernels as eager calls or as CUDA-graph replays")
    parser.add_argument("--repeats", type=int, default=1,
                        help="run the whole sweep this many times in the group (column 'repeat')")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout-s", type=float, default=300.0)
    parser.add_argument("--out", default=None, help="folder for the CSV (NCCL only), e.g. data/ep/")
    args = parser.parse_args(argv)
    if args.backend == "nccl":
        os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
        os.environ.setdefault("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1")
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if gpus < args.world_size:
            parser.error(f"--backend nccl --world-size {args.world_size} needs {args.world_size} GPUs "
                         f"(one per rank); this machine has {gpus}. Use --backend gloo to check on CPU")
    elif args.out:
        parser.error("--out records GPU timings, which need --backend nccl; gloo runs check only")
    try:
        batches = [int(t) for t in _names(args.tokens_per_rank)]
    except ValueError:
        parser.error(f"--tokens-per-rank must be comma-separated ints, got {args.tokens_per_rank!r}")
    try:
        results = run_sweep(args.world_size, preset=args.preset, batches=batches,
                            distributions=_names(args.distribution), backend=args.backend,
                            stage=args.stage, seed=args.seed, timeout_s=args.timeout_s,
                            stages=_names(args.stages), kernel_mode=args.kernel_mode, repeats=args.repeats)
    except (ValueError, TypeError) as e:
        parser.error(str(e))
    frame = results_frame(results)
    failed = [r for r in results if not r.checks_passed]
    for r in results:
        print(r)
        for v in r.violations:
            print("   ", v)
    if args.out:
        path = write_csv(frame, args.out)
        print(f"wrote {len(frame)} rows to {path}")
    if not args.out or args.backend != "nccl":
        print(frame.drop(columns=[c for c in TIMINGS if frame[c].isna().all()]).to_string())
    else:
        cols = ["repeat", "distribution", "tokens_per_rank", "rank", "stage", "allgather_us",
                "allgather_stream_us", "kernel_us"]
        print(frame[cols].to_string(index=False))
    return 1 if failed else 0
