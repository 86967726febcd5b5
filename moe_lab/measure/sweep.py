"""The harness every launch-parameter sweep in ``tools/`` shares: one row per configuration tried.

    sweep = Sweep("tools/tune_sems.py")          # GPU only; the output folder is argv[1] or $OUT
    sweep.record(slots=8, config="decode w8", us=timing.time_us(f, "graph")[0], ok=sweep.correct(...))
    sweep.write("sems.csv")                      # checked against records.TUNING, with provenance

Rows are printed as they come (a long sweep shows progress), checked against the PyTorch reference where
the script asks, and written once at the end with the card, versions and date of this machine
(:func:`moe_lab.measure.records.provenance`) and the script that made them, through
:func:`moe_lab.measure.records.write` (schema :data:`moe_lab.measure.records.TUNING`). What each sweep
found is recorded in ``data/tuning/`` and read by notebooks 05 and 06.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from moe_lab import verify
from moe_lab.measure import records


class Sweep:
    """Rows of one sweep, from ``script`` (its path, written on every row), written to ``out_dir``."""

    def __init__(self, script: str, out_dir: str | os.PathLike | None = None):
        if not torch.cuda.is_available():
            raise SystemExit(f"{script} times kernels on a CUDA GPU; there is none here")
        out = out_dir or (sys.argv[1] if len(sys.argv) > 1 else os.environ.get("OUT"))
        if not out:
            raise SystemExit(f"{script}: give the output folder as the first argument or in $OUT")
        self.script, self.out_dir, self.rows = script, Path(out), []
        self.device = torch.device("cuda")

    def record(self, **row) -> dict:
        """Keep one row and print it on one line."""
        self.rows.append(row)
        print(" ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
              flush=True)
        return row

    @staticmethod
    def correct(ids, start, num_local, adjusted, counts) -> bool:
        """Whether ``adjusted`` and ``counts`` are the reference's for these ids, bit for bit."""
        want_ids, want_counts = verify.reference(ids, start, num_local)
        return bool(torch.equal(adjusted, want_ids) and torch.equal(counts, want_counts))

    def write(self, name: str) -> Path:
        """Write every row, with provenance and the script's name, to ``out_dir/name`` (checked first)."""
        import pandas as pd

        frame = pd.DataFrame(self.rows).assign(**records.provenance(), script=self.script)
        path = records.write(frame, self.out_dir / name, records.TUNING)
        print("wrote", len(self.rows), "rows to", path, flush=True)
        return path


__all__ = ["Sweep"]
