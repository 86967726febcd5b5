"""Recorded GPU benchmark results: load them, list the runs, say where they came from, filter them.

A run of ``python -m moe_lab.measure.bench`` on a GPU writes one tidy CSV into ``data/bench/``: one row per
(stage, mode, preset, distribution, num_tokens), with the timings and, repeated on every row, the
provenance of the run (card, driver, CUDA, torch, triton, python, date, run_id). Notebooks on a
machine without a GPU plot these files; they never time Triton's interpreter. Every file is checked
as it is read (:func:`moe_lab.measure.records.load`): a wrong value is reported with its file and row, never
plotted.

    df = results.load()                          # the latest run
    results.provenance(df)                       # 'NVIDIA H100 80GB HBM3, driver ..., 2026-11-26'
    results.select(df, distribution="uniform", stage=["tl_full", "scalar_atomic"])
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from moe_lab import backend, paths
from moe_lab.measure import records

KEY = ["stage", "mode", "preset", "distribution", "num_tokens"]
"""The columns that name one measurement: a run has one row per combination."""

PROVENANCE = list(records.PROVENANCE)
COLUMNS = [c for c in records.BENCH.names if c not in PROVENANCE]
"""The measurement columns of a benchmark CSV (schema and kinds: :data:`moe_lab.measure.records.BENCH`)."""


class Run(NamedTuple):
    """One recorded benchmark run."""
    run_id: str
    card: str
    date: str
    rows: int
    path: str


def _default_location() -> Path:
    return paths.data("bench")


def _csv_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(path.glob("*.csv")) if path.is_dir() else []
    if not files:
        why = "does not exist" if not path.exists() else "holds no *.csv file"
        raise FileNotFoundError(
            f"no recorded benchmark results: {path} {why}. Recorded results live in the repository's "
            f"data/bench/ (set {paths.DATA_ENV} to another data folder holding bench/, or pass path=). "
            f"Record new ones on a GPU with `make bench`.")
    return files


def _read(file: Path) -> pd.DataFrame:
    return records.load(file, records.BENCH)  # checked: names the file and row of any bad value


def _read_all(path) -> pd.DataFrame:
    location = _default_location() if path is None else Path(path).expanduser()
    files = _csv_files(location)
    frames = [_read(f) for f in files]
    home: dict[str, Path] = {}
    for file, frame in zip(files, frames):  # a run is one file: the same run id twice is a copy or a mix
        for run_id in pd.unique(frame["run_id"]):
            if run_id in home:
                raise ValueError(f"run_id {run_id!r} is recorded in two files, {home[run_id]} and {file}; "
                                 f"a run is one file: remove the copy")
            home[run_id] = file
    return pd.concat(frames, ignore_index=True)


def _runs_of(df: pd.DataFrame) -> list[Run]:
    out = []
    for run_id, rows in df.groupby("run_id", sort=False):
        first = rows.iloc[0]
        out.append(Run(str(run_id), str(first["card"]), str(first["date"]), len(rows),
                       str(first.get("source", ""))))
    # Oldest first by the parsed date (the loader checked it is a real ISO day), then the time in the id.
    return sorted(out, key=lambda r: (_dt.date.fromisoformat(r.date), records.run_order(r.run_id), r.run_id))


def runs(path=None) -> list[Run]:
    """Every recorded run, oldest first: ``Run(run_id, card, date, rows, path)``."""
    return _runs_of(_read_all(path))


def load(path=None, run_id=None) -> pd.DataFrame:
    """Recorded results as a DataFrame (schema: :data:`COLUMNS` + :data:`PROVENANCE` + ``source``).

    ``path``: a CSV file or a folder of them (default: ``bench/`` of :func:`moe_lab.paths.data`).
    ``run_id``: ``None`` for the latest run, ``"all"`` for every run, or one run's id.
    """
    df = _read_all(path)
    if run_id == "all":
        return df
    known = _runs_of(df)
    if run_id is None:
        run_id = known[-1].run_id
    elif str(run_id) not in {r.run_id for r in known}:
        raise ValueError(f"run_id={run_id!r} is not recorded; known runs: "
                         f"{', '.join(f'{r.run_id} ({r.card}, {r.date})' for r in known)}")
    return df[df["run_id"] == str(run_id)].reset_index(drop=True)


def _values(df: pd.DataFrame, column: str) -> str:
    if column not in df.columns:
        return "?"
    seen = [str(v) for v in pd.unique(df[column].dropna())]
    return " / ".join(seen) if seen else "?"


def provenance(df: pd.DataFrame) -> str:
    """One line: where and with what these results were measured."""
    if len(df) == 0:
        raise ValueError("provenance(df): df is empty, so there is nothing to describe")
    return (f"{_values(df, 'card')}, driver {_values(df, 'driver')}, CUDA {_values(df, 'cuda')}, "
            f"torch {_values(df, 'torch')}, triton {_values(df, 'triton')}, {_values(df, 'date')}")


def short_provenance(df: pd.DataFrame) -> str:
    """Card and date only, for plot titles."""
    return f"{_values(df, 'card')}, {_values(df, 'date')}"


def select(df: pd.DataFrame, **filters) -> pd.DataFrame:
    """Rows matching every filter: ``column=value`` or ``column=[values...]``; ``None`` skips a filter.

    Raises ``ValueError`` for an unknown column, or when a filter leaves no rows (naming the values
    that exist), so a typo never turns into an empty plot.
    """
    out = df
    for column, want in filters.items():
        if want is None:
            continue
        if column not in out.columns:
            raise ValueError(f"select: no column {column!r}; columns are {', '.join(map(str, df.columns))}")
        wanted = list(want) if isinstance(want, (list, tuple, set, frozenset)) else [want]
        kept = out[out[column].isin(wanted)]
        if kept.empty:
            have = ", ".join(map(str, sorted(pd.unique(out[column]), key=str)))
            raise ValueError(f"select: no rows with {column}={want!r} (after the filters before it); "
                             f"present: {have}")
        out = kept
    return out.reset_index(drop=True)


LIVE_TOKENS = (1, 64, 1024, 16384, 262144, 1048576)
"""Batch sizes a notebook measures live on a GPU (a few seconds per stage)."""


def measure_or_load(stages, *, preset="deepseek-v3", distributions=("uniform", "hot"), tokens=None,
                    modes=("eager",), reference_stages=("copy",), mode=None) -> pd.DataFrame:
    """What the notebooks plot: a live measurement on a GPU, else the latest recorded run.

    With a GPU, ``moe_lab.measure.bench.sweep`` times ``stages`` and ``reference_stages`` now, at ``tokens``
    (default :data:`LIVE_TOKENS`), in each of ``modes`` ("eager": the whole Python call; "graph":
    CUDA-graph replay; ``mode="graph"`` is short for ``modes=("graph",)``).
    Without one nothing is timed (the interpreter's speed means nothing): the recorded results are
    loaded and narrowed to ``stages`` plus ``reference_stages`` (the device copy, when recorded).
    Prints one line saying which of the two happened and where the numbers come from. Raises
    ``FileNotFoundError`` without a GPU when nothing is recorded.
    """
    stages = list(stages)
    if mode is not None:  # one mode by name, the same as modes=(mode,)
        modes = (mode,)
    if backend.has_gpu():
        from moe_lab.measure import bench

        extra = [s for s in reference_stages if s not in stages]
        df = bench.sweep(stages + extra, presets=(preset,), distributions=tuple(distributions),
                         tokens=tuple(tokens or LIVE_TOKENS), modes=tuple(modes))
        print(f"measured live now: {provenance(df)}")
        return df
    df = load()
    wanted = stages + [s for s in reference_stages if s in set(df["stage"])]
    df = select(df, stage=wanted, preset=preset, distribution=list(distributions), mode=list(modes))
    print(f"no GPU here, so nothing is timed: recorded results from {provenance(df)}")
    return df


__all__ = ["LIVE_TOKENS", "COLUMNS", "PROVENANCE", "KEY", "Run", "load", "runs",
           "provenance", "short_provenance", "select", "measure_or_load"]
