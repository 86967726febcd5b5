"""Around the checks: levelled hints, the shipped solution, progress, worked examples, predictions."""

from __future__ import annotations

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


def hint(name: str, level: int = 1) -> Text:
    """The level-``level`` hint of exercise ``name``: 1 a nudge, 2 more specific, 3 nearly the answer."""
    ex = exercise(name)
    if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 3:
        raise ValueError(f"level must be 1, 2 or 3, got {level!r}: 1 is a nudge, 3 nearly the answer")
    more = f" (hint('{name}', {level + 1}) says more)" if level < 3 else \
        f" (solution('{name}') shows the shipped answer)"
    return Text(f"{name}, hint {level} of 3: {ex.levels[level - 1]}{more}")


def solution(name: str):
    """The shipped answer of exercise ``name`` (its source, then its walk-through). Only when asked."""
    from moe_lab.workbook.exercises.answers import answer
    from moe_lab.workbook.exercises.reveal import Shown, walkthrough
    from moe_lab.workbook.show import show_source

    exercise(name)
    return Shown([show_source(answer(name)), *walkthrough(name)])


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
    key: str
    text: str
    stage: str
    baseline: str
    num_tokens: int


QUESTIONS: dict[str, tuple[Question, ...]] = {
    "relaxed": (
        Question("faster_at_1_token", "relaxed is faster than scalar_atomic at 1 token", "relaxed",
                 "scalar_atomic", 1),
        Question("faster_at_1M_tokens", "relaxed is faster than scalar_atomic at 1M tokens", "relaxed",
                 "scalar_atomic", 1 << 20),
    ),
}
"""The predictions an exercise asks for (answered from the recorded H100 benchmark)."""

FASTER = 0.95
""""Faster" means a median at most this fraction of the baseline's (5 % beyond run-to-run noise)."""

_WHERE = dict(mode="graph", preset="deepseek-v3", distribution="uniform")


def _recorded(stages) -> "object":
    """The recorded benchmark rows of ``stages`` (the one place this module reads recorded data)."""
    from moe_lab.measure import results

    df = results.load()
    return results.select(df, stage=list(stages), **_WHERE), results.short_provenance(df)


def predict(name: str, **answers) -> Text:
    """Record a prediction for exercise ``name`` (e.g. ``predict("relaxed", faster_at_1_token=True,
    faster_at_1M_tokens=False)``); :func:`reveal` answers it from recorded H100 data."""
    ex = exercise(name)
    questions = {q.key: q for q in QUESTIONS.get(ex.name, ())}
    if not questions:
        raise ValueError(f"name must be an exercise that asks for a prediction "
                         f"({', '.join(map(repr, QUESTIONS))}), got {name!r}")
    unknown = sorted(set(answers) - set(questions))
    if unknown or not answers:
        raise ValueError(f"predict({name!r}, ...) takes {', '.join(f'{k}=True/False' for k in questions)}; "
                         f"got {', '.join(unknown) or 'no answers'}")
    for key, value in answers.items():
        if not isinstance(value, bool):
            raise TypeError(f"{key} must be True or False, got {value!r}")
    PREDICTIONS_MADE[name] = dict(answers)
    lines = [f"{name}: prediction recorded"]
    lines += [f"  {questions[k].text}: {v}" for k, v in answers.items()]
    lines.append(f"  reveal({name!r}) answers it from the recorded H100 numbers")
    return Text("\n".join(lines))


def reveal(name: str) -> Text:
    """Answer the recorded prediction of ``name`` from the recorded benchmark (CUDA-graph replay)."""
    ex = exercise(name)
    questions = QUESTIONS.get(ex.name, ())
    if not questions:
        raise ValueError(f"name must be one of {', '.join(map(repr, QUESTIONS))}, got {name!r}")
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
           "predict", "reveal"]
