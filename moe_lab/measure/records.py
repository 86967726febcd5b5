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

* the file is a recorded CSV: at most :data:`MAX_BYTES`, UTF-8 text, ending with a line break after its
  last value, every row with as many values as the header. A file cut inside a row is therefore
  refused (no phantom run from half a row); a file cut exactly at a row boundary is not: with no
  footer or row count in the format, it cannot be told from a shorter run, and loads as one;
* no row twice (the same values in every column), and for the schemas with a :attr:`Schema.key`, no
  measurement twice;
* required columns present, numbers that parse, timings finite and positive, dates real ISO days
  (``YYYY-MM-DD``; readers order runs by the parsed date), none after tomorrow;
* every row agrees with its run: one run id carries one provenance (card, driver, versions, date), and
  a file named after a run (``<run id>.csv``, ``..._<run id>.csv``) holds only that run;
* every row agrees with itself (:attr:`Schema.rules`): ``num_slots = num_tokens * topk``,
  ``gbps = bytes / median_us / 1000``, a stage the library knows.

:func:`write` checks a frame the same way before it writes it, and replaces the file only once it is
complete.

    df = records.load("data/bench/2026-11-26_NVIDIA-H100-80GB-HBM3.csv", records.BENCH)
    records.write(frame.assign(**records.provenance()), path, records.BENCH)
"""

from __future__ import annotations

import csv
import datetime as _dt
import os
import platform
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from moe_lab.measure.schema import KINDS, PROVENANCE, Column, Rule, Schema, validate


def _provenance_columns(extra=()) -> tuple[Column, ...]:
    cols = [Column(n, "date" if n == "date" else "text", provenance=True) for n in PROVENANCE]
    return tuple(cols) + tuple(Column(n, provenance=True) for n in extra)


BENCH_BASELINES = ("copy", "zeros")
"""What the benchmark times beside the stages: a device copy of the ids and a zeroed counter buffer."""


def _slots(tokens: str) -> Rule:
    return Rule(f"num_slots = {tokens} * topk", ("num_slots", tokens, "topk"),
                lambda df: df["num_slots"] != df[tokens] * df["topk"],
                lambda r: f"num_slots={r['num_slots']}, {tokens} * topk = {r[tokens] * r['topk']}")


def _known_stages(baselines=()) -> Rule:
    def names() -> set[str]:
        from moe_lab.registry import STAGES

        return set(STAGES) | set(baselines)

    return Rule("stage is one the library knows", ("stage",), lambda df: ~df["stage"].isin(names()),
                lambda r: f"stage={r['stage']!r}; known: {', '.join(sorted(names()))}")


GBPS = Rule("gbps = bytes / median_us / 1000", ("gbps", "bytes", "median_us"),
            lambda df: ~pd.Series(np.isclose(df["gbps"].to_numpy(float), df["bytes"].to_numpy(float)
                                             / df["median_us"].to_numpy(float) / 1e3, rtol=1e-4, atol=1e-9),
                                  index=df.index),
            lambda r: f"gbps={r['gbps']:g}, bytes / median_us / 1000 = {r['bytes'] / r['median_us'] / 1e3:g}")

BENCH = Schema("bench", (
    Column("stage"), Column("mode"), Column("preset"), Column("num_experts", "int"), Column("topk", "int"),
    Column("ep_size", "int"), Column("num_local", "int"), Column("distribution"),
    Column("num_tokens", "int"), Column("num_slots", "int"), Column("median_us", "time"),
    Column("p20_us", "time"), Column("p80_us", "time"), Column("bytes", "int"), Column("gbps", "float"),
    Column("correct", "bool", nullable=True),  # empty where there is no output to check (copy, zeros)
) + _provenance_columns(), where="data/bench/<date>_<card>.csv, written by python -m moe_lab.measure.bench",
    key=("run_id", "stage", "mode", "preset", "distribution", "num_tokens"),
    orders=(("p20_us", "median_us", "p80_us"),),
    rules=(_slots("num_tokens"), GBPS, _known_stages(BENCH_BASELINES)))

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
            ("allgather_p20_us", "allgather_us", "allgather_p80_us")),
    rules=(_slots("gathered_tokens"), _known_stages()))

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


def run_order(run_id: str) -> tuple[str, str]:
    """Sort key of a run id, oldest first: its date, then its time of day (``<date>_<HHMMSS>_<card>``;
    an id without a time, as runs were named before, counts as the start of its day)."""
    found = re.match(r"(\d{4}-\d{2}-\d{2})(?:_(\d{6})(?=_|$))?", str(run_id))
    return (found.group(1), found.group(2) or "") if found else ("", str(run_id))


def provenance(run_id: str | None = None) -> dict:
    """This machine's provenance, now: ``{card, driver, cuda, torch, triton, python, date, run_id}``.

    ``card`` is the CUDA device's name (``"cpu"`` without one); ``date`` today's ISO date (UTC);
    ``run_id`` defaults to ``<date>_<HHMMSS>_<card>`` (UTC; the name of the benchmark's CSV).
    """
    import torch
    import triton

    from moe_lab.measure import timing

    gpu = torch.cuda.is_available()
    card = torch.cuda.get_device_name() if gpu else "cpu"
    now = _dt.datetime.now(_dt.timezone.utc)
    date = now.date().isoformat()
    return {"card": card, "driver": timing.driver_version() if gpu else "n/a",
            "cuda": torch.version.cuda or "n/a", "torch": torch.__version__, "triton": triton.__version__,
            "python": platform.python_version(), "date": date,
            "run_id": run_id if run_id is not None else f"{date}_{now:%H%M%S}_{slug(card)}"}


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------

MAX_BYTES = 64 * 2**20
"""Largest recorded CSV :func:`load` reads (64 MiB, some 250,000 benchmark rows: far more than any sweep
records); a larger file is refused before any of it is read."""
HEAD = 8192
"""Bytes read from the start of a file to tell a text CSV from anything else."""


def _read_text(path: Path) -> None:
    """Refuse a file that is too large, empty, not text, or cut short (it must end with a line break),
    naming it. Reads the first :data:`HEAD` bytes and the last one, never the whole file."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ValueError(f"{path} holds {size} bytes, more than the {MAX_BYTES} (64 MiB) a recorded CSV "
                             f"may: it is not one moe-lab run. Split it into one file per run, or delete it")
        with open(path, "rb") as fh:
            head = fh.read(HEAD)
            fh.seek(max(size - 1, 0))
            last = fh.read(1)
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
    if last not in (b"\n", b"\r"):
        with open(path, "rb") as fh:  # counted a chunk at a time: the file is never held whole
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b"")) + 1
        raise ValueError(f"{path} ends in the middle of its last row (line {lines}, no line break after its "
                         f"last value): the file was cut short. Record it again, or delete that line")


def _check_fields(path: Path) -> None:
    """Every row has as many values as the header (a row cut short is not padded with empties), and the
    whole file is UTF-8 text (read a line at a time)."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, [])
            for line, row in enumerate(reader, start=2):
                if row and len(row) != len(header):
                    raise ValueError(f"{path}, row {line}: {len(row)} values, but the header names "
                                     f"{len(header)} columns; the row was cut short or mangled: fix or "
                                     f"re-record the file")
    except UnicodeDecodeError:
        offset, line, byte = _first_bad_utf8(path)
        raise ValueError(f"{path} is not UTF-8 text: byte {offset} (line {line}) is {byte:#04x}, which UTF-8 "
                         f"text does not hold there; delete the file or record it again") from None
    except csv.Error as err:
        raise ValueError(f"{path}, line {reader.line_num}: not a readable CSV row ({err}); fix or re-record "
                         f"the file") from None


def _first_bad_utf8(path: Path) -> tuple[int, int, int]:
    """``(offset, line, value)`` of the first byte of ``path`` that is not UTF-8 text. A line at a time:
    a line break is never part of a multi-byte character."""
    offset = 0
    with open(path, "rb") as fh:
        for line, text in enumerate(fh, start=1):
            try:
                text.decode("utf-8")
            except UnicodeDecodeError as err:
                return offset + err.start, line, text[err.start]
            offset += len(text)
    raise ValueError(f"{path}: no byte that is not UTF-8 text was found on a second reading; the file "
                     f"changed while it was read")


def load(path, schema: Schema) -> pd.DataFrame:
    """The recorded CSV at ``path``, checked against ``schema`` and typed (see :func:`validate`).

    Every error names the file (and the row, where one row is wrong). The frame gains a ``source``
    column holding ``path``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no recorded CSV at {path}")
    _read_text(path)
    _check_fields(path)
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

    The file is written next to ``path`` under a temporary name and moved to ``path`` only once complete,
    so an interrupted write never leaves half a file. A recorded file is never replaced: an existing
    ``path`` raises :class:`FileExistsError` (the default run id carries the time of day, so two runs
    on one day write two files). Returns ``path``.
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
        try:
            os.link(tmp, path)  # fails if path exists: a recorded run is never written over
        except FileExistsError:
            raise FileExistsError(f"{path} exists: a recorded file is never replaced; record under another "
                                  f"run id, or move the old file away first") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


__all__ = ["KINDS", "PROVENANCE", "Column", "Rule", "Schema", "BENCH_BASELINES", "BENCH", "EP", "TUNING",
           "HOSTCOST", "SCHEMAS", "MAX_BYTES", "slug", "provenance", "validate", "load", "write"]
