"""Every recorded CSV of the project in one place: its schema, its provenance, a validated reader and writer.

Kinds of file recorded on GPUs and read on laptops (among them):

* :data:`BENCH`: ``data/bench/*.csv`` from ``python -m moe_lab.measure.bench`` (one row per stage, mode,
  preset, distribution and number of tokens);
* :data:`EP`: ``data/ep/*.csv`` from ``python -m moe_lab.ep`` (one row per batch, rank and stage);
* :data:`TUNING`: ``data/tuning/*.csv`` from the launch-parameter sweeps in ``tools/tune_*.py``
  and ``python -m moe_lab.measure.midsize`` (one row per launch configuration tried, column ``config``);
* :data:`HOSTCOST`: ``data/hostcost/*.csv`` from ``python -m moe_lab.measure.hostcost`` (host microseconds
  per eager call of the drop-in and of rtp-llm's function, side by side).

Each row carries where it was measured (:data:`PROVENANCE`: card, driver, CUDA, torch, triton, python,
date, run id). :func:`provenance` gives those values for this machine, now. :func:`load` refuses a
file that is not what its schema says, naming the file, the row (its line in the file) and the value:
required columns present, numbers that parse, timings finite and positive, dates real ISO days
(``YYYY-MM-DD``; readers order runs by the parsed date). :func:`write` checks a frame the same way
before it writes it, and replaces the file only once it is complete.

    df = records.load("data/bench/2026-11-26_NVIDIA-H100-80GB-HBM3.csv", records.BENCH)
    records.write(frame.assign(**records.provenance()), path, records.BENCH)
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import platform
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

KINDS = ("text", "int", "count", "float", "time", "bool", "date")
"""What a column holds. ``int``: a whole number > 0; ``count``: a whole number >= 0; ``float``: a
finite number >= 0; ``time``: a finite number of microseconds > 0; ``bool``: True/False;
``date``: an ISO date, ``YYYY-MM-DD`` (zero-padded, a real day)."""

PROVENANCE = ("card", "driver", "cuda", "torch", "triton", "python", "date", "run_id")
"""Where and with what a row was measured; repeated on every row of a recorded CSV."""


@dataclass(frozen=True)
class Column:
    """One column of a recorded CSV: its name, its kind (one of :data:`KINDS`), whether the file must
    have it, whether a row may leave it empty, and whether it tells provenance."""
    name: str
    kind: str = "text"
    required: bool = True
    nullable: bool = False
    provenance: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Column {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")


@dataclass(frozen=True)
class Schema:
    """The columns of one kind of recorded CSV. Columns not named here are kept as text, unchecked."""
    name: str
    columns: tuple[Column, ...]
    where: str = ""
    key: tuple[str, ...] = ()
    """Columns that name one measurement: no two rows of a run may share them."""
    orders: tuple[tuple[str, ...], ...] = ()
    """Columns whose values must not decrease along a row where all are present (p20 <= median <= p80)."""

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    @property
    def provenance(self) -> list[str]:
        return [c.name for c in self.columns if c.provenance]

    def __getitem__(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"schema {self.name!r} has no column {name!r}; columns: {', '.join(self.names)}")


def _provenance_columns(extra=()) -> tuple[Column, ...]:
    cols = [Column(n, "date" if n == "date" else "text", provenance=True) for n in PROVENANCE]
    return tuple(cols) + tuple(Column(n, provenance=True) for n in extra)


BENCH = Schema("bench", (
    Column("stage"), Column("mode"), Column("preset"), Column("num_experts", "int"), Column("topk", "int"),
    Column("ep_size", "int"), Column("num_local", "int"), Column("distribution"),
    Column("num_tokens", "int"), Column("num_slots", "int"), Column("median_us", "time"),
    Column("p20_us", "time"), Column("p80_us", "time"), Column("bytes", "int"), Column("gbps", "float"),
    Column("correct", "bool", nullable=True),  # empty where there is no output to check (copy, zeros)
) + _provenance_columns(), where="data/bench/<date>_<card>.csv, written by python -m moe_lab.measure.bench",
    key=("run_id", "stage", "mode", "preset", "distribution", "num_tokens"),
    orders=(("p20_us", "median_us", "p80_us"),))

EP = Schema("ep", (
    Column("world_size", "int"), Column("backend"), Column("preset"), Column("num_experts", "int"),
    Column("topk", "int"), Column("num_local", "int"), Column("distribution"),
    Column("gathered_tokens", "int"), Column("num_slots", "int"), Column("checks_passed", "bool"),
    Column("rank", "count"), Column("start", "count"), Column("tokens_per_rank", "count"),
    Column("padding_rows", "count"), Column("local_slots", "count"), Column("stage"),
    # eager or graph, and which repeat of the measurement (absent from the first recorded runs)
    Column("kernel_mode", required=False, nullable=True), Column("repeat", "count", required=False),
    # timings are empty where nothing was timed (the gloo backend on CPU)
    Column("kernel_us", "time", nullable=True), Column("kernel_p20_us", "time", nullable=True),
    Column("kernel_p80_us", "time", nullable=True), Column("allgather_us", "time", nullable=True),
    Column("allgather_p20_us", "time", nullable=True), Column("allgather_p80_us", "time", nullable=True),
    Column("allgather_stream_us", "time", required=False, nullable=True),
    Column("allgather_stream_p20_us", "time", required=False, nullable=True),
    Column("allgather_stream_p80_us", "time", required=False, nullable=True),
    Column("allgather_bytes", "int", nullable=True),
) + _provenance_columns(), where="data/ep/ep_<backend>_ws<world>_<card>_<run_id>.csv, written by "
                                 "python -m moe_lab.ep",
    orders=(("kernel_p20_us", "kernel_us", "kernel_p80_us"),
            ("allgather_p20_us", "allgather_us", "allgather_p80_us")))

TUNING = Schema("tuning", (
    Column("config", nullable=True),  # a launch configuration, e.g. "bh b4096 w4 p0"; empty on stress rows
    Column("us", "time", nullable=True),  # median microseconds; empty where the configuration failed
    Column("ok", "bool", required=False, nullable=True),
    Column("slots", "int", required=False, nullable=True),
    Column("num_local", "int", required=False, nullable=True),
    Column("dist", required=False, nullable=True), Column("part", required=False, nullable=True),
) + _provenance_columns(extra=("script",)), where="data/tuning/<what>_<card>.csv, written by "
                                                   "tools/tune_*.py")

DISPATCH = Schema("dispatch", (
    Column("path"), Column("mode"), Column("num_tokens", "int"), Column("topk", "int"),
    Column("num_local", "int"), Column("hidden", "int"), Column("local_slots", "count"),
    Column("rows", "count"), Column("bytes_moved", "count"), Column("median_us", "time"),
    Column("p20_us", "time"), Column("p80_us", "time"),
    # the launch plan of a fused path, in words (absent from the first recorded runs; empty elsewhere)
    Column("plan", required=False, nullable=True),
) + _provenance_columns(), where="data/dispatch/dispatch_<date>_<card>.csv, written by "
                                 "python -m moe_lab.measure.dispatch_bench",
    key=("run_id", "path", "mode", "num_tokens"), orders=(("p20_us", "median_us", "p80_us"),))

STRESS = Schema("stress", (
    Column("test"), Column("stage"), Column("size"), Column("slots", "int"), Column("trials", "int"),
    Column("results", "int"), Column("wrong", "count"),
) + _provenance_columns(), where="data/stress/stress_<stamp>.csv, written by moe_lab.measure.stress",
    key=("run_id", "test", "stage", "size"))

RETIME = Schema("retime", (
    Column("stage"), Column("mode"), Column("round", "count"), Column("tokens", "int"),
    Column("slots", "int"), Column("median_us", "time"), Column("p20_us", "time"), Column("p80_us", "time"),
    Column("correct", "bool"),
) + _provenance_columns(), where="data/stress/retime_<stamp>.csv, written by moe_lab.measure.stress",
    key=("run_id", "stage", "mode", "round", "tokens"), orders=(("p20_us", "median_us", "p80_us"),))

HOSTCOST = Schema("hostcost", (
    Column("impl"), Column("process"), Column("num_tokens", "int"), Column("topk", "int"),
    Column("num_local", "int"), Column("slots", "int"), Column("calls", "int"), Column("repeats", "int"),
    Column("min_us", "time"), Column("us_per_call", "time"), Column("max_us", "time"),
    Column("code"),  # which moe_lab was measured (a commit, "before"/"after" a change)
) + _provenance_columns(),
    where="data/hostcost/hostcost_<run_id>.csv, written by python -m moe_lab.measure.hostcost",
    key=("run_id", "code", "impl", "process", "slots"), orders=(("min_us", "us_per_call", "max_us"),))

SCHEMAS = {s.name: s for s in (BENCH, EP, TUNING, DISPATCH, STRESS, RETIME, HOSTCOST)}


# ----------------------------------------------------------------------------------------------
# Provenance of a run made here, now
# ----------------------------------------------------------------------------------------------

def slug(text: str) -> str:
    """``text`` with every run of characters other than letters and digits made one ``-``."""
    return re.sub(r"[^A-Za-z0-9]+", "-", str(text)).strip("-") or "unknown"


def provenance(run_id: str | None = None) -> dict:
    """This machine's provenance, now: ``{card, driver, cuda, torch, triton, python, date, run_id}``.

    ``card`` is the CUDA device's name (``"cpu"`` without one); ``date`` today's ISO date (UTC);
    ``run_id`` defaults to ``<date>_<card>`` (the name of the benchmark's CSV).
    """
    import torch
    import triton

    from moe_lab.measure import timing

    gpu = torch.cuda.is_available()
    card = torch.cuda.get_device_name() if gpu else "cpu"
    date = _dt.datetime.now(_dt.timezone.utc).date().isoformat()
    return {"card": card, "driver": timing.driver_version() if gpu else "n/a",
            "cuda": torch.version.cuda or "n/a", "torch": torch.__version__, "triton": triton.__version__,
            "python": platform.python_version(), "date": date,
            "run_id": run_id if run_id is not None else f"{date}_{slug(card)}"}


# ----------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------

_TRUE = {"true", "1", "1.0", "yes"}
_FALSE = {"false", "0", "0.0", "no"}
_EXPECT = {
    "int": "a whole number above 0", "count": "a whole number, 0 or more",
    "float": "a finite number, 0 or more", "time": "a finite number of microseconds above 0",
    "bool": "True or False", "date": "an ISO date such as 2026-11-26", "text": "text",
}


def _empty(value) -> bool:
    if value is None or value is pd.NA:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def _number(value) -> float:
    if isinstance(value, bool):
        raise ValueError("a truth value is not a number")
    return float(str(value).strip()) if isinstance(value, str) else float(value)


def _parse(kind: str, value):
    """``value`` as ``kind``; raises ValueError when it is not one."""
    if kind == "text":
        return str(value)
    if kind == "bool":
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(value)
    if kind == "date":
        text = str(value).strip()
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):  # zero-padded: text order is date order
            raise ValueError(value)
        return _dt.date.fromisoformat(text).isoformat()  # a real day: 2026-02-30 is refused
    number = _number(value)
    if not math.isfinite(number):
        raise ValueError(value)
    if kind in ("int", "count"):
        if number != int(number) or number < (1 if kind == "int" else 0):
            raise ValueError(value)
        return int(number)
    if number < 0 or (kind == "time" and number == 0):
        raise ValueError(value)
    return number


def _where(source) -> str:
    return str(source) if source is not None else "the frame"


def validate(df: pd.DataFrame, schema: Schema, source=None, *, first_line: int = 2) -> pd.DataFrame:
    """A copy of ``df`` with every column of ``schema`` checked and typed (see :data:`KINDS`).

    Raises ``ValueError`` naming ``source`` (a file), the row (``first_line`` is the line of the first
    row: 2 in a CSV with a header), the column, the value and what was expected.
    """
    if not isinstance(schema, Schema):
        raise TypeError(f"schema must be a moe_lab.measure.records.Schema (records.BENCH, EP or TUNING), "
                        f"got {type(schema).__name__} {schema!r}")
    where = _where(source)
    if len(df) == 0:
        raise ValueError(f"{where} has a header but no rows: nothing was recorded in it; delete it or "
                         f"record it again")
    missing = [c for c in schema.required if c not in df.columns]
    if missing:
        raise ValueError(f"{where} is not a moe-lab {schema.name} file: it lacks the column(s) "
                         f"{', '.join(missing)} ({schema.where})")
    out = df.copy()
    for col in schema.columns:
        if col.name not in out.columns:
            continue
        parsed = []
        for i, value in enumerate(out[col.name].tolist()):
            if _empty(value):
                if not col.nullable:
                    raise ValueError(f"{where}, row {i + first_line}: column {col.name!r} is empty; "
                                     f"expected {_EXPECT[col.kind]}")
                parsed.append(pd.NA if col.kind != "text" else None)
                continue
            try:
                parsed.append(_parse(col.kind, value))
            except (ValueError, TypeError, OverflowError):
                raise ValueError(f"{where}, row {i + first_line}: column {col.name!r} is {value!r}; "
                                 f"expected {_EXPECT[col.kind]}. Fix or re-record the file") from None
        dtype = {"int": "Int64", "count": "Int64", "float": "Float64", "time": "Float64",
                 "bool": "boolean"}.get(col.kind, "object")
        series = pd.array(parsed, dtype=dtype)
        if col.kind in ("float", "time"):
            series = series.astype("float64")  # NaN where empty: plain floats plot and compute
        elif col.kind in ("int", "count") and not col.nullable:
            series = series.astype("int64")
        out[col.name] = series
    _check_orders(out, schema, where, first_line)
    if schema.key and all(k in out.columns for k in schema.key):
        twice = out.duplicated(list(schema.key), keep=False)
        if twice.any():
            lines = [int(i) + first_line for i in range(len(out)) if twice.iloc[i]][:2]
            raise ValueError(f"{where}, rows {lines[0]} and {lines[1]}: the same measurement twice "
                             f"({', '.join(schema.key)}); keep one of them")
    return out


def _check_orders(out: pd.DataFrame, schema: Schema, where: str, first_line: int) -> None:
    for names in schema.orders:
        if not all(n in out.columns for n in names):
            continue
        values = out[list(names)].to_numpy(dtype=float, na_value=float("nan"))
        for i, row in enumerate(values):
            if all(math.isfinite(v) for v in row) and any(a > b for a, b in zip(row, row[1:])):
                shown = ", ".join(f"{n}={v:g}" for n, v in zip(names, row))
                raise ValueError(f"{where}, row {i + first_line}: expected {' <= '.join(names)}, got "
                                 f"{shown}; fix or re-record the file")


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------

def _read_text(path: Path) -> None:
    """Refuse a file that is empty or not text, naming it."""
    try:
        head = path.read_bytes()[:8192]
    except OSError as err:
        raise FileNotFoundError(f"cannot read recorded CSV {path}: {err.strerror or err}") from None
    if not head.strip():
        raise ValueError(f"{path} is empty: not a recorded CSV (no header, no rows); delete it or record "
                         f"it again")
    if b"\x00" in head:
        raise ValueError(f"{path} is not a text CSV (it holds binary data); delete it or record it again")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start < len(head) - 4:  # not merely a character cut at the 8 KB boundary
            raise ValueError(f"{path} is not a UTF-8 text CSV (byte {err.start}); delete it or record "
                             f"it again") from None


def load(path, schema: Schema) -> pd.DataFrame:
    """The recorded CSV at ``path``, checked against ``schema`` and typed (see :func:`validate`).

    Every error names the file (and the row, where one row is wrong). The frame gains a ``source``
    column holding ``path``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no recorded CSV at {path}")
    _read_text(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path} is empty: not a recorded CSV; delete it or record it again") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not a readable CSV: {str(err).strip()[:200]}") from None
    df = validate(df, schema, path)
    df["source"] = str(path)
    return df


def write(df: pd.DataFrame, path, schema: Schema) -> Path:
    """Check ``df`` against ``schema`` and write it to ``path`` (schema columns first, then the rest).

    The file is written next to ``path`` under a temporary name and moved over ``path`` only once
    complete, so an interrupted write never leaves half a file. Returns ``path``.
    """
    path = Path(path)
    checked = validate(df.drop(columns=["source"], errors="ignore"), schema, f"frame for {path}",
                       first_line=0)
    order = [c for c in schema.names if c in checked.columns]
    checked = checked[order + [c for c in checked.columns if c not in order]]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            checked.to_csv(fh, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


__all__ = ["KINDS", "PROVENANCE", "Column", "Schema", "BENCH", "EP", "TUNING", "HOSTCOST", "SCHEMAS",
           "slug", "provenance", "validate", "load", "write"]
