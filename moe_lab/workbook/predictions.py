"""Feedback on a prediction that is a number: how it compares with the recorded one.

A yes/no prediction about a stage is answered by :func:`moe_lab.workbook.exercises.reveal` ("you said
True: right"). A number (tokens, a ratio, a time) is answered by the notebook's own cell, through
:func:`moe_lab.workbook.exercises.after_prediction`; :func:`judge` says there whether each number
predicted was right, next to the recorded value or range it is compared with:

    after_prediction("launch_bound", lambda: judge("launch_bound", within=2, eager_tokens=16384,
                                                   graph_tokens=256), answer_table)

A recorded answer is a number, or the values it ranges over (the sizes a question covers: a pair, a
column): any prediction between their smallest and largest is as right as they are. A number counts as
right when it lies within a factor ``within`` of that value or range: a reading off a log-log figure is
not exact, so ``within`` says how close is close for that question.

:func:`when_predicted` shows further cells' answers to the same prediction (a table in a take-home section)
once a prediction is recorded, without repeating the walk-through its first answer showed.
"""

from __future__ import annotations

from numbers import Real

from moe_lab.workbook.exercises import after_prediction, predicted
from moe_lab.workbook.exercises.learn import QUESTIONS, Text


def _span(value) -> tuple[float, float]:
    """A recorded answer as ``(low, high)``: a number, or the values it ranges over (a pair, a column)."""
    if isinstance(value, Real) and not isinstance(value, bool):
        return float(value), float(value)
    try:
        values = [float(v) for v in value]
    except (TypeError, ValueError):
        values = []
    if not values:
        raise TypeError(f"a recorded answer is a number or the values it ranges over, got {value!r}")
    return min(values), max(values)


def _number(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 or float(x).is_integer() else f"{x:.2f}"


def is_right(said: float, recorded, within: float) -> bool:
    """Whether ``said`` lies within a factor ``within`` of ``recorded`` (a number or a range)."""
    lo, hi = _span(recorded)
    if said <= 0 or lo <= 0:  # no factor to speak of: only the value itself is right
        return lo <= said <= hi
    return lo / within <= said <= hi * within


def judge(name: str, *, within: float, **recorded) -> Text:
    """Each number predicted for ``name`` against its recorded value or range (``key=value``, one per
    question of ``name``): right or wrong."""
    keys = {q.key: q for q in QUESTIONS.get(name, ())}
    if not keys or any(q.kind != "number" for q in keys.values()):
        numbers = ", ".join(n for n, qs in QUESTIONS.items() if all(q.kind == "number" for q in qs))
        raise ValueError(f"name must be a question answered by a number ({numbers}), got {name!r}")
    if isinstance(within, bool) or not isinstance(within, Real) or within < 1:
        raise ValueError(f"within must be a factor of 1 or more, got {within!r}")
    unknown = sorted(set(recorded) - set(keys))
    if unknown or not recorded:
        raise ValueError(f"judge({name!r}, ...) takes the recorded values of {', '.join(keys)}; "
                         f"got {', '.join(unknown) or 'none'}")
    said = predicted(name)
    if not said:
        return Text(f"{name}: no prediction recorded yet: run predict({name!r}, ...) first")
    lines, right = [f"{name}: your prediction against the recorded numbers (right: within a factor "
                    f"{within:g})"], 0
    for key, value in recorded.items():
        lo, hi = _span(value)
        shown = _number(lo) if lo == hi else f"{_number(lo)} to {_number(hi)}"
        if key not in said:
            lines.append(f"  {keys[key].text}: recorded {shown}")
            continue
        ok = is_right(said[key], value, within)
        right += ok
        lines.append(f"  {keys[key].text}: recorded {shown}; you said {_number(said[key])}: "
                     f"{'right' if ok else 'wrong'}")
    lines.append(f"  {right} of {sum(k in said for k in recorded)} predictions right")
    return Text("\n".join(lines))


def when_predicted(name: str, *shown):
    """``shown`` once a prediction for ``name`` is recorded, without the prediction's walk-through (the
    cell that first answers it shows that); before that, the same one line as ``after_prediction``."""
    if not predicted(name):
        return after_prediction(name)
    from moe_lab.workbook.exercises.gated import Shown

    return Shown(item() if callable(item) and not hasattr(item, "_repr_html_") else item for item in shown)


__all__ = ["is_right", "judge", "when_predicted"]
