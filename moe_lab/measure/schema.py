"""The shape of a recorded CSV and the checks every row gets: :class:`Column`, :class:`Rule`,
:class:`Schema` and :func:`validate`. The schemas themselves, and reading and writing files, are
:mod:`moe_lab.measure.records`.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

KINDS = ("text", "int", "count", "float", "time", "bool", "date")
"""What a column holds. ``int``: a whole number > 0; ``count``: a whole number >= 0 (both at most
:data:`INT_MAX`); ``float``: a finite number >= 0; ``time``: a finite number of microseconds > 0;
``bool``: True/False; ``date``: an ISO date, ``YYYY-MM-DD`` (zero-padded, a real day)."""

INT_MAX = 2**63 - 1
"""Largest whole number a column holds: what an int64 column (pandas' ``Int64``) stores."""

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
class Rule:
    """A relation every row of a schema must hold, between columns or with the library.

    ``broken(df)`` is True where a row breaks it (the frame is typed, every column of ``needs``
    present); ``detail(row)`` says what that row holds instead."""
    what: str
    needs: tuple[str, ...]
    broken: Callable[[pd.DataFrame], pd.Series]
    detail: Callable[[pd.Series], str]


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
    rules: tuple[Rule, ...] = ()
    """Relations every row must hold (:class:`Rule`)."""

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


# ----------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------

_TRUE = {"true", "1", "1.0", "yes"}
_FALSE = {"false", "0", "0.0", "no"}
_EXPECT = {
    "int": "a whole number above 0 and at most 2**63 - 1",
    "count": "a whole number, 0 or more and at most 2**63 - 1",
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
        text = str(value).strip()
        whole = int(text) if re.fullmatch(r"[+-]?[0-9]+", text) else int(number)  # digits: exact past 2**53
        if whole > INT_MAX:
            raise ValueError(value)
        return whole
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
    _check_rules(out, schema, where, first_line)
    _check_runs(out, schema, source, where, first_line)
    if schema.key and all(k in out.columns for k in schema.key):
        twice = _first_twice(out[list(schema.key)])
        if twice:
            raise ValueError(f"{where}, rows {twice[0] + first_line} and {twice[1] + first_line}: the same "
                             f"measurement twice ({', '.join(schema.key)}); keep one of them")
    twice = _first_twice(df)  # every value equal, as recorded
    if twice:
        raise ValueError(f"{where}, rows {twice[0] + first_line} and {twice[1] + first_line}: the same row "
                         f"twice (every value equal): a row was recorded or copied twice; keep one of them")
    return out


def _first_twice(frame: pd.DataFrame) -> tuple[int, int] | None:
    """``(i, j)``: the first row ``j`` equal to an earlier row, and the first such earlier row ``i``."""
    later = frame.duplicated(keep="first").to_numpy()
    if not later.any():
        return None
    j = int(np.flatnonzero(later)[0])
    groups = frame.groupby(list(frame.columns), dropna=False, sort=False).ngroup().to_numpy()
    return int(np.flatnonzero(groups == groups[j])[0]), j


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


def _check_rules(out: pd.DataFrame, schema: Schema, where: str, first_line: int) -> None:
    tomorrow = _dt.datetime.now(_dt.timezone.utc).date() + _dt.timedelta(days=1)
    for col in schema.columns:
        if col.kind == "date" and col.name in out.columns:
            for i, value in enumerate(out[col.name].tolist()):
                if value is not None and value is not pd.NA and _dt.date.fromisoformat(value) > tomorrow:
                    raise ValueError(f"{where}, row {i + first_line}: column {col.name!r} is {value}, a date "
                                     f"in the future (today is {tomorrow - _dt.timedelta(days=1)}); fix or "
                                     f"re-record the file")
    for rule in schema.rules:
        if not all(n in out.columns for n in rule.needs):
            continue
        present = out[list(rule.needs)].notna().all(axis=1)
        broken = (rule.broken(out).fillna(False).astype(bool) & present).to_numpy()
        if broken.any():
            i = int(np.flatnonzero(broken)[0])
            raise ValueError(f"{where}, row {i + first_line}: {rule.what} does not hold: "
                             f"{rule.detail(out.iloc[i])}; fix or re-record the file")


def _check_runs(out: pd.DataFrame, schema: Schema, source, where: str, first_line: int) -> None:
    """One run id, one provenance; a file named after a run holds only that run."""
    if "run_id" not in out.columns:
        return
    ids = out["run_id"].astype(str).tolist()
    if source is not None:
        stem = Path(str(source)).stem
        named = [r for r in dict.fromkeys(ids) if stem == r or stem.endswith("_" + r)]
        if named:
            for i, r in enumerate(ids):
                if r != named[0]:
                    raise ValueError(f"{where}, row {i + first_line}: run_id {r!r} does not agree with its "
                                     f"file, which is named after run {named[0]!r}; a file holds one run "
                                     f"(a cut or mixed file: re-record it)")
    others = [c for c in schema.provenance if c != "run_id" and c in out.columns]
    first: dict[str, int] = {}
    for i, r in enumerate(ids):
        j = first.setdefault(r, i)
        for c in others:
            a, b = out[c].iloc[j], out[c].iloc[i]
            if not (_empty(a) and _empty(b)) and str(a) != str(b):
                raise ValueError(f"{where}, row {i + first_line}: column {c!r} is {b!r}, but row "
                                 f"{j + first_line} of the same run {r!r} says {a!r}; one run is measured "
                                 f"on one machine: fix or re-record the file")


__all__ = ["KINDS", "INT_MAX", "PROVENANCE", "Column", "Rule", "Schema", "validate"]
