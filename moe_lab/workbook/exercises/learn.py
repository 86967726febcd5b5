"""Around the checks: levelled hints, the shipped solution, progress, worked examples, predictions."""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch

from moe_lab import verify
from moe_lab.workbook.exercises.catalogue import EXERCISES, exercise

PASSED: dict[str, bool] = {}
"""Exercise name -> whether its latest check in this kernel session passed."""

PREDICTIONS_MADE: dict[str, dict] = {}
"""Exercise name -> the learner's recorded answers."""


class Text:
    """Plain text that shows as itself in Jupyter and in a terminal (no quotes, no stray repr)."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__


def hint_level(value, lowest: int, refusal: str) -> int:
    """``value`` as a hint level from ``lowest`` to 3: an int or an integer-like value (a numpy int), never a
    bool; anything else raises ValueError with ``refusal`` followed by what was given."""
    level = None
    if not isinstance(value, bool):
        try:
            level = operator.index(value)
        except TypeError:
            pass
    if level is None or not lowest <= level <= 3:
        raise ValueError(f"{refusal}, got {value!r} ({type(value).__name__})")
    return level


def hint(name: str, level: int = 1) -> Text:
    """The level-``level`` hint of exercise ``name``: 1 a nudge, 2 more specific, 3 nearly the answer."""
    ex = exercise(name)
    level = hint_level(level, 1, "level must be 1, 2 or 3 (1 is a nudge, 3 nearly the answer)")
    more = f" (hint('{name}', {level + 1}) says more)" if level < 3 else \
        f" (solution('{name}') shows the shipped answer)"
    return Text(f"{name}, hint {level} of 3: {ex.levels[level - 1]}{more}")


def solution(name: str):
    """The shipped answer of exercise ``name`` (its source, then its walk-through). Only when asked."""
    from moe_lab.workbook.exercises.answers import answer
    from moe_lab.workbook.exercises.gated import Shown, walkthrough
    from moe_lab.workbook.show import show_source

    exercise(name)
    code = show_source(answer(name))
    parts = walkthrough(name)
    shown_already = any(getattr(part, "text", None) == code.text for part in parts)  # in the walk-through
    return Shown(parts if shown_already else [code, *parts])


def progress() -> Text:
    """Which exercises passed in this kernel session (the latest check of each counts)."""
    lines = ["exercise          notebook  status"]
    for ex in EXERCISES.values():
        state = {True: "passed", False: "tried, not passed yet"}.get(PASSED.get(ex.name), "not tried")
        lines.append(f"{ex.name:<17} {ex.notebook:<9} {state}")
    done = sum(1 for v in PASSED.values() if v)
    lines.append(f"{done} of {len(EXERCISES)} passed")
    return Text("\n".join(lines))


# ------------------------------------------------------------------------------------ worked examples

_EXAMPLE_IDS = {
    "naive": ([[9, 3, -1], [12, 8, 30], [25, 10, 9]], 8, 16),
    "debug": ([[0, 5], [3, 2], [-1, -1], [2, 6]], 2, 2),  # start > 0: the bug hides on rank 0
    "masked_block": ([[9, 3, -1], [12, 8, 30], [25, 10, 9]], 8, 16),
    "relaxed": ([[9, 3, -1], [12, 8, 30], [25, 10, 9]], 8, 16),
    "block_histogram": ([[9, 3, -1], [12, 9, 30], [25, 10, 9]], 8, 6),
    "decode": ([[9, 3, -1], [12, 9, 30], [25, 10, 9]], 8, 6),
    "ticket": ([[9, 3, -1], [12, 9, 30], [25, 10, 9]], 8, 6),
}


def example(name: str) -> Text:
    """The worked example of exercise ``name``: a tiny input and what the kernel must produce."""
    ex = exercise(name)
    if ex.runner:  # an exercise with a checker of its own shows its own worked example
        import importlib

        return importlib.import_module(ex.runner.partition(":")[0]).example()
    if name == "block_size":
        from moe_lab.stages.tl_full import block_size

        rows = ", ".join(f"topk {k} -> {block_size(k)}" for k in (1, 2, 6, 8, 9))
        return Text("block_size: the slots one program covers, a power of two, for each topk:\n"
                    f"  {rows}")
    ids_list, start, num_local = _EXAMPLE_IDS[name]
    ids = torch.tensor(ids_list, dtype=torch.int32)
    adjusted, counts = verify.reference(ids, start, num_local)
    lines = [f"{name}: start={start}, num_local={num_local} (this rank owns experts {start}.."
             f"{start + num_local - 1})",
             f"  topk_ids     = {ids.tolist()}",
             f"  adjusted     = {adjusted.tolist()}   (id - start if local, else -1)",
             f"  expert_count = {counts.tolist()}   (how many slots went to each local expert)"]
    if name in ("decode", "ticket"):
        lines.append("  the counters arrive poisoned (not zeroed): every one must be stored, zeros included")
    if name == "ticket":
        lines.append("  scratch arrives zeroed and must be zero again when the launch ends")
    lines.append(f"  launch: {ex.launch}")
    return Text("\n".join(lines))


# ------------------------------------------------------------------------------------ predictions

@dataclass(frozen=True)
class Question:
    """One thing a learner predicts. A ``bool`` question with a ``stage`` and a ``baseline`` reads "stage
    is faster than baseline at num_tokens" and :func:`reveal` answers it from the recorded benchmark; a
    ``number`` question (tokens, a ratio) is answered by the notebook's own cell, through
    :func:`moe_lab.workbook.exercises.after_prediction`."""

    key: str
    text: str
    stage: str = ""
    baseline: str = ""
    num_tokens: int = 0
    kind: str = "bool"

    @property
    def form(self) -> str:
        return f"{self.key}=True/False" if self.kind == "bool" else f"{self.key}=<a number>"


QUESTIONS: dict[str, tuple[Question, ...]] = {
    "relaxed": (
        Question("faster_at_1_token", "relaxed is faster than scalar_atomic at 1 token", "relaxed",
                 "scalar_atomic", 1),
        Question("faster_at_1M_tokens", "relaxed is faster than scalar_atomic at 1M tokens", "relaxed",
                 "scalar_atomic", 1 << 20),
    ),
    "graph_nodes": (
        Question("zeros_us", "a memset of the counters alone, us under graph replay", kind="number"),
        Question("scalar_atomic_us", "scalar_atomic (memset + kernel) at 8 slots, us under graph replay",
                 kind="number"),
    ),
    "launch_bound": (
        Question("eager_tokens", "the most tokens at which best is still flat, eager", kind="number"),
        Question("graph_tokens", "the most tokens at which best is still flat, graph replay", kind="number"),
    ),
    "copy_floor": (
        Question("best_over_copy", "best's time over the copy's at 8M slots, graph replay", kind="number"),
        Question("fraction_of_spec", "best's bandwidth as a fraction of 3.35 TB/s", kind="number"),
    ),
    "graph_replay": (
        Question("lead_eager", "scalar_atomic time / best time at decode sizes, eager", kind="number"),
        Question("lead_graph", "scalar_atomic time / best time at decode sizes, graph replay", kind="number"),
    ),
}
"""What a learner predicts, by name: an exercise's prediction (``relaxed``, answered by its check) or a
notebook's question (answered by the cell after it)."""

FASTER = 0.95
""""Faster" means a median at most this fraction of the baseline's (5 % beyond run-to-run noise)."""

_WHERE = dict(mode="graph", preset="deepseek-v3", distribution="uniform")


def _recorded(stages) -> "object":
    """The recorded benchmark rows of ``stages`` (the one place this module reads recorded data)."""
    from moe_lab.measure import results

    df = results.load()
    return results.select(df, stage=list(stages), **_WHERE), results.short_provenance(df)


def _questions(name) -> dict[str, Question]:
    if not isinstance(name, str) or name not in QUESTIONS:
        raise ValueError(f"name must be an exercise that asks for a prediction or a notebook's question "
                         f"({', '.join(map(repr, QUESTIONS))}), got {name!r}")
    return {q.key: q for q in QUESTIONS[name]}


def predict(name: str, **answers) -> Text:
    """Record a prediction (e.g. ``predict("relaxed", faster_at_1_token=True, faster_at_1M_tokens=False)``).

    A value left as ``...`` is not answered yet: nothing is recorded, and one line says what to write.
    ``reveal`` (or the check) answers an exercise's prediction; a notebook's question is answered by the
    cell after it once a prediction is recorded.
    """
    questions = _questions(name)
    unknown = sorted(set(answers) - set(questions))
    if unknown or not answers:
        raise ValueError(f"predict({name!r}, ...) takes {', '.join(q.form for q in questions.values())}; "
                         f"got {', '.join(unknown) or 'no answers'}")
    for key, value in answers.items():
        if value is ...:
            continue
        if questions[key].kind == "bool" and not isinstance(value, bool):
            raise TypeError(f"{key} must be True or False, got {value!r}")
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if questions[key].kind == "number" and not number:
            raise TypeError(f"{key} must be a number, got {value!r}")
    missing = [k for k, v in answers.items() if v is ...]
    if missing:
        return Text(f"{name}: not done yet: replace each ... with your prediction "
                    f"({', '.join(questions[k].form for k in missing)}), then run this cell again")
    PREDICTIONS_MADE[name] = dict(answers)
    lines = [f"{name}: prediction recorded"]
    lines += [f"  {questions[k].text}: {v}" for k, v in answers.items()]
    if any(q.stage for q in questions.values()):
        lines.append(f"  reveal({name!r}) answers it from the recorded H100 numbers")
    else:
        lines.append("  the next cell answers it from the recorded numbers")
    return Text("\n".join(lines))


def predicted(name: str) -> dict:
    """The answers recorded with ``predict(name, ...)`` in this kernel session (``{}`` when none)."""
    _questions(name)
    return dict(PREDICTIONS_MADE.get(name, {}))


def reveal(name: str) -> Text:
    """Answer the recorded prediction of ``name`` from the recorded benchmark (CUDA-graph replay)."""
    questions = tuple(q for q in _questions(name).values() if q.stage)
    if not questions:
        revealed = [n for n, qs in QUESTIONS.items() if any(q.stage for q in qs)]
        raise ValueError(f"reveal answers the predictions of {', '.join(map(repr, revealed))}; {name!r} is "
                         f"answered by the cell after its predict(...)")
    made = PREDICTIONS_MADE.get(name)
    if made is None:
        return Text(f"{name}: no prediction recorded yet: run predict({name!r}, "
                    f"{', '.join(q.key + '=...' for q in questions)}) first")
    stages = {s for q in questions for s in (q.stage, q.baseline)}
    rows, where = _recorded(stages)
    lines = [f"{name}: the recorded numbers ({where}; {_WHERE['preset']}, {_WHERE['distribution']}, "
             f"graph replay)"]
    right = 0
    for q in questions:
        def median(stage):
            sel = rows[(rows["stage"] == stage) & (rows["num_tokens"] == q.num_tokens)]
            return float(sel["median_us"].median()) if len(sel) else None
        mine, base = median(q.stage), median(q.baseline)
        if mine is None or base is None:
            lines.append(f"  {q.text}: not in the recorded data")
            continue
        truth = mine <= FASTER * base
        said = made.get(q.key)
        mark = "" if said is None else f"  you said {said}: {'right' if said == truth else 'wrong'}"
        right += said == truth
        lines.append(f"  {q.text}: {truth} ({q.stage} {mine:.2f} us, {q.baseline} {base:.2f} us){mark}")
    lines.append(f"  {right} of {len(made)} predictions right")
    return Text("\n".join(lines))


__all__ = ["PASSED", "PREDICTIONS_MADE", "Text", "hint", "solution", "progress", "example", "QUESTIONS",
           "Question", "predict", "predicted", "reveal"]
