"""Recorded EP runs: the CSV schema, writing a run with its provenance, and reading runs back checked.

The schema is data, in one place: :data:`SETUP_COLUMNS` (what was run, per rank and stage),
:data:`TIMING_COLUMNS` (what was measured, microseconds; empty on gloo) and :data:`PROVENANCE`
(where and with what it was measured), each column with its dtype. One row per
(batch, routing, rank, stage, repeat). Files recorded before a column existed are read with its
:data:`DEFAULTS`.
"""

from __future__ import annotations

import datetime
import math
import platform
import re
from pathlib import Path

import torch

DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "ep"
"""Where recorded NCCL runs live (one tidy CSV per run)."""

SETUP_COLUMNS = (
    ("world_size", "int"), ("backend", "str"), ("preset", "str"), ("num_experts", "int"),
    ("topk", "int"), ("num_local", "int"), ("distribution", "str"), ("gathered_tokens", "int"),
    ("num_slots", "int"), ("checks_passed", "bool"), ("rank", "int"), ("start", "int"),
    ("tokens_per_rank", "int"), ("padding_rows", "int"), ("local_slots", "int"), ("stage", "str"),
    ("kernel_mode", "str"), ("repeat", "int"),
)
TIMING_COLUMNS = (
    ("kernel_us", "float"), ("kernel_p20_us", "float"), ("kernel_p80_us", "float"),
    ("allgather_us", "float"), ("allgather_p20_us", "float"), ("allgather_p80_us", "float"),
    ("allgather_stream_us", "float"), ("allgather_stream_p20_us", "float"),
    ("allgather_stream_p80_us", "float"), ("allgather_bytes", "float"),
)
PROVENANCE = (
    ("card", "str"), ("driver", "str"), ("cuda", "str"), ("torch", "str"), ("triton", "str"),
    ("python", "str"), ("date", "str"), ("run_id", "str"),
)
COLUMNS = SETUP_COLUMNS + TIMING_COLUMNS + PROVENANCE
DEFAULTS = {"kernel_mode": "eager", "repeat": 0, "allgather_stream_us": math.nan,
            "allgather_stream_p20_us": math.nan, "allgather_stream_p80_us": math.nan}
"""Values of columns added after the first recorded runs, for files that lack them."""
TIMINGS = tuple(name for name, _ in TIMING_COLUMNS)


def results_frame(results) -> "pd.DataFrame":  # noqa: F821
    """One row per (batch, rank, stage, repeat): the group's set-up, the rank's share, its GPU timings.

    Without timings (gloo) there is one row per (batch, rank) with stage = the checked stage and
    empty timing columns.
    """
    import pandas as pd

    rows = []
    for res in results:
        base = dict(world_size=res.world_size, backend=res.backend, preset=res.preset,
                    num_experts=res.num_experts, topk=res.topk, num_local=res.num_local,
                    distribution=res.distribution, gathered_tokens=res.gathered_shape[0],
                    num_slots=res.gathered_shape[0] * res.topk, checks_passed=res.checks_passed)
        for rank in range(res.world_size):
            per_rank = dict(base, rank=rank, start=res.starts[rank],
                            tokens_per_rank=res.tokens_per_rank[rank],
                            padding_rows=res.padding_rows[rank], local_slots=res.local_slots[rank])
            timed = [] if res.timings is None else res.timings[res.timings["rank"] == rank].to_dict("records")
            if not timed:
                timed = [dict(stage=res.stage, kernel_mode="", repeat=0, **{c: math.nan for c in TIMINGS})]
            for t in timed:
                rows.append(dict(per_rank, **t))
    return pd.DataFrame(rows)


def provenance(gpu: bool) -> dict:
    """Everything but the card: driver, CUDA, PyTorch, Triton, Python, date."""
    import triton

    from moe_lab import bench

    return dict(driver=bench.driver_version() if gpu else "n/a", cuda=torch.version.cuda or "n/a",
                torch=torch.__version__, triton=triton.__version__, python=platform.python_version(),
                date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"))


def write_csv(frame, out_dir=DATA_DIR, *, run_id: str | None = None) -> Path:
    """Add the provenance columns and write ``out_dir/ep_<backend>_ws<world>_<card>_<run_id>.csv``
    with the columns of :data:`COLUMNS`, in that order; return its path."""
    now = datetime.datetime.now(datetime.timezone.utc)
    run_id = run_id or now.strftime("ep-%Y%m%d-%H%M%S")
    frame = frame.copy()
    if "card" not in frame:
        frame["card"] = "cpu"
    for name, value in {**DEFAULTS, **provenance(bool(frame["backend"].eq("nccl").any()))}.items():
        if name not in frame:
            frame[name] = value
    frame["run_id"] = run_id
    missing = [c for c, _ in COLUMNS if c not in frame]
    if missing:
        raise ValueError(f"frame lacks the columns {missing}; build it with results_frame()")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    card = re.sub(r"[^a-z0-9]+", "-", str(frame["card"].iloc[0]).lower()).strip("-") or "unknown"
    path = out_dir / f"ep_{frame['backend'].iloc[0]}_ws{frame['world_size'].iloc[0]}_{card}_{run_id}.csv"
    frame[[c for c, _ in COLUMNS]].to_csv(path, index=False)
    return path


def _validated(frame, path: Path):
    """``frame`` with the schema's dtypes, or a ValueError naming ``path``, the row and the column."""
    import pandas as pd

    for name, value in DEFAULTS.items():
        if name not in frame:
            frame[name] = value
    missing = [c for c, _ in COLUMNS if c not in frame]
    if missing:
        raise ValueError(f"{path}: not a recorded EP run, columns {missing} are missing")
    for name, kind in COLUMNS:
        if kind in ("int", "float"):
            values = pd.to_numeric(frame[name], errors="coerce")
            bad = values.isna() & frame[name].notna()
            if kind == "int":
                bad |= values.isna() | (values != values.round())
            if bad.any():
                row = int(bad.idxmax())
                raise ValueError(f"{path}, row {row + 2}: column {name!r} holds {frame[name][row]!r}, "
                                 f"not {'a whole number' if kind == 'int' else 'a number'}")
            frame[name] = values.astype("int64") if kind == "int" else values.astype("float64")
    timed = frame["backend"].eq("nccl")
    for name in ("kernel_us", "allgather_us"):
        bad = timed & ~(frame[name].map(math.isfinite) & (frame[name] > 0))
        if bad.any():
            row = int(bad.idxmax())
            raise ValueError(f"{path}, row {row + 2}: {name}={float(frame[name][row])!r} must be a finite "
                             f"time > 0")
    dates = pd.to_datetime(frame["date"], format="%Y-%m-%d", errors="coerce")
    if dates.isna().any():
        row = int(dates.isna().idxmax())
        raise ValueError(f"{path}, row {row + 2}: date={frame['date'][row]!r} is not an ISO date YYYY-MM-DD")
    return frame


def load_recorded(directory=DATA_DIR):
    """Every recorded NCCL run in ``directory`` as one checked DataFrame, or None when there is none.

    Each file is checked against the schema (columns, numbers, finite positive timings, ISO dates);
    an error names the file and the row.
    """
    import pandas as pd

    frames = []
    for path in sorted(Path(directory).glob("*.csv")):
        try:
            frame = pd.read_csv(path)
        except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
            raise ValueError(f"{path}: not a readable CSV ({type(e).__name__}: {e})") from None
        frame = _validated(frame, path)
        frames.append(frame[frame["backend"] == "nccl"])
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else None


def latest(frame):
    """The rows of the most recent run (latest date, then run_id) in a recorded frame."""
    key = frame[["date", "run_id"]].drop_duplicates().sort_values(["date", "run_id"]).iloc[-1]
    return frame[frame["run_id"] == key["run_id"]]


def recorded_table(run):
    """One row per (routing, tokens per rank, rank), one column per measure (medians, microseconds):
    the all-gather once (it does not depend on the stage), then each stage's kernel; with the
    p20-p80 spread of each and the rank's share of the slots."""
    keys = ["distribution", "tokens_per_rank", "rank"]
    medians = run.groupby(keys + ["stage"])[["kernel_us", "kernel_p20_us", "kernel_p80_us"]].median()
    kernel = medians["kernel_us"].unstack("stage").add_suffix(" us")
    spread = (medians["kernel_p80_us"] - medians["kernel_p20_us"]).unstack("stage").add_suffix(" p80-p20")
    shared = run.groupby(keys)[["local_slots", "allgather_us", "allgather_p20_us",
                                "allgather_p80_us"]].median()
    table = shared[["local_slots", "allgather_us"]].rename(columns={"allgather_us": "allgather us"})
    table["allgather p80-p20"] = shared["allgather_p80_us"] - shared["allgather_p20_us"]
    return table.join(kernel).join(spread)
