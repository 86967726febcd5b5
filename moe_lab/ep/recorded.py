"""Recorded EP runs: writing a run with its provenance, and reading runs back checked.

The schema of an EP CSV is :data:`moe_lab.measure.records.EP` (columns, kinds, provenance), plus the
columns of :data:`NEW_COLUMNS` where that schema does not have them yet: the kernel timing mode, the
repeat, and the back-to-back all-gather measure. :data:`SCHEMA` is the union, used to write and read.
One row per (batch, routing, rank, stage, repeat). Files recorded before a column existed are read
with its :data:`DEFAULTS`.
"""

from __future__ import annotations

import datetime
import math
from pathlib import Path

from moe_lab import paths
from moe_lab.measure import records

"""Where recorded NCCL runs live (one tidy CSV per run)."""

NEW_COLUMNS = (
    records.Column("kernel_mode", required=False, nullable=True),  # "eager" or "graph"; empty on gloo
    records.Column("repeat", "count", required=False),  # which pass of the sweep, from 0
    records.Column("allgather_stream_us", "time", required=False, nullable=True),
    records.Column("allgather_stream_p20_us", "time", required=False, nullable=True),
    records.Column("allgather_stream_p80_us", "time", required=False, nullable=True),
)
SCHEMA = records.Schema("ep", records.EP.columns + tuple(c for c in NEW_COLUMNS
                                                         if c.name not in records.EP.names),
                        where=records.EP.where)
COLUMNS = tuple(SCHEMA.names)
TIMINGS = ("kernel_us", "kernel_p20_us", "kernel_p80_us", "allgather_us", "allgather_p20_us",
           "allgather_p80_us", "allgather_stream_us", "allgather_stream_p20_us",
           "allgather_stream_p80_us", "allgather_bytes")
"""The measured columns: empty on gloo."""
DEFAULTS = {"kernel_mode": "eager", "repeat": 0, "allgather_stream_us": math.nan,
            "allgather_stream_p20_us": math.nan, "allgather_stream_p80_us": math.nan}
"""Values of columns added after the first recorded runs, for files that lack them."""


def results_frame(results):
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


def write_csv(frame, out_dir=None, *, run_id: str | None = None) -> Path:
    """Add the provenance columns (:data:`moe_lab.measure.records.PROVENANCE`; the card the ranks reported)
    and write ``out_dir/ep_<backend>_ws<world>_<card>_<run_id>.csv``, checked against :data:`SCHEMA`;
    return its path."""
    run_id = run_id or datetime.datetime.now(datetime.timezone.utc).strftime("ep-%Y%m%d-%H%M%S")
    frame = frame.copy()
    gpu = bool(frame["backend"].eq("nccl").any())
    where = records.provenance(run_id)
    if not gpu:
        where.update(card="cpu", driver="n/a")
    for name, value in where.items():
        if name not in frame or name == "run_id":
            frame[name] = value
    card = records.slug(str(frame["card"].iloc[0]).lower())
    name = f"ep_{frame['backend'].iloc[0]}_ws{frame['world_size'].iloc[0]}_{card}_{run_id}.csv"
    path = Path(out_dir if out_dir is not None else paths.data("ep")) / name
    return records.write(frame, path, SCHEMA)


def load_recorded(directory=None):
    """Every recorded NCCL run in ``directory`` as one checked DataFrame, or None when there is none.

    Each file is checked against :data:`SCHEMA` (columns, numbers, finite positive timings, ISO
    dates) by :func:`moe_lab.measure.records.load`; an error names the file and the row.
    """
    import pandas as pd

    frames = []
    for path in sorted(Path(directory if directory is not None else paths.data("ep")).glob("*.csv")):
        frame = records.load(path, SCHEMA)
        for name, value in DEFAULTS.items():
            if name not in frame:
                frame[name] = value
        frames.append(frame[frame["backend"] == "nccl"])
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else None


def latest(frame):
    """The rows of the most recent run (latest date, then run_id) in a recorded frame."""
    runs = frame[["date", "run_id"]].drop_duplicates()
    key = runs.sort_values(["date", "run_id"]).iloc[-1]  # ISO dates, checked on load: text order works
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
