"""GPU check of the data layer: the timer, a small benchmark sweep written and read back, the CLI.

    OUT=/tmp/out python tools/check_data_gpu.py

Times a copy in both modes with ``moe_lab.timing.time_us``; runs ``moe_lab.bench.sweep`` on a small grid
(scalar_atomic, best, copy, zeros; 1, 1024 and 64K tokens; uniform and hot; eager and graph); writes
it with ``records.write`` to ``$OUT/bench/``, reads it back with ``records.load`` and
``results.load``; runs ``python -m moe_lab.bench --quick`` and checks that bad ``--tokens`` exit 2.
Writes ``$OUT/check_data_gpu.log`` and the CSV; exits 1 on any failed check.
"""

import math
import os
import subprocess
import sys
from pathlib import Path

import torch

import moe_lab  # noqa: F401  (chooses where kernels run before any is defined)
from moe_lab import bench, records, results, timing

out = Path(os.environ.get("OUT", "."))
out.mkdir(parents=True, exist_ok=True)
log = open(out / "check_data_gpu.log", "w")  # the whole run writes to it
failures = []


def say(text):
    print(text, flush=True)
    log.write(text + "\n")
    log.flush()


def check(ok, what):
    say(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        failures.append(what)


timing.require_gpu("tools/check_data_gpu.py")
meta = records.provenance()
say(f"provenance: {meta}")

src = torch.randint(0, 256, (1 << 16, 8), dtype=torch.int32, device="cuda")
dst = torch.empty_like(src)
for mode in timing.MODES:
    med, p20, p80 = timing.time_us(lambda: dst.copy_(src), mode)
    say(f"copy of 512K ids, {mode}: median {med:.2f} us, p20 {p20:.2f}, p80 {p80:.2f}")
    check(all(math.isfinite(v) and v > 0 for v in (med, p20, p80)) and p20 <= med <= p80,
          f"time_us({mode}) gives finite positive, ordered quantiles")

df = bench.sweep(["scalar_atomic", "best", "copy", "zeros"], presets=("deepseek-v3",),
                 distributions=("uniform", "hot"), tokens=(1, 1024, 65536), modes=("eager", "graph"),
                 progress=False)
check(len(df) == 4 * 3 * 2 * 2, f"sweep gives one row per stage, size, routing and mode ({len(df)} rows)")
check(bool(df.loc[~df["stage"].isin(bench.BASELINES), "correct"].eq(True).all()),
      "every timed stage output is bit-exact")
path = records.write(df, out / "bench" / f"{df['run_id'].iloc[0]}.csv", records.BENCH)
back = records.load(path, records.BENCH)
check(len(back) == len(df) and (back["median_us"] > 0).all(), f"records.write then load round-trips ({path})")
check(set(results.load(path.parent)["run_id"]) == {meta["run_id"]}, "results.load reads it as the latest run")
say(bench.summary(df).to_string())

for argv, want in ((["--quick", "--no-progress"], 0), (["--tokens", "16", "16"], 2), (["--tokens", "-4"], 2)):
    run = subprocess.run([sys.executable, "-m", "moe_lab.bench", *argv], capture_output=True, text=True)
    say(f"python -m moe_lab.bench {' '.join(argv)}: exit {run.returncode}\n"
        f"{run.stdout[-1500:]}{run.stderr[-600:]}")
    check(run.returncode == want, f"python -m moe_lab.bench {' '.join(argv)} exits {want}")

say(f"{len(failures)} failed check(s)" if failures else "all checks passed")
sys.exit(1 if failures else 0)
