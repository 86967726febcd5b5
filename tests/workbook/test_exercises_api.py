"""The learner-facing API around the checks: result object, levelled hints, solution, progress, worked
examples, predictions, the debugging puzzle."""

from __future__ import annotations

import exercise_kernels as K
import numpy as np
import pytest
import torch

from moe_lab import verify
from moe_lab.workbook import exercises
from moe_lab.workbook.exercises import learn


@pytest.fixture(autouse=True)
def fresh_session(monkeypatch):
    monkeypatch.setattr(learn, "PASSED", {})
    monkeypatch.setattr(learn, "PREDICTIONS_MADE", {})


def test_result_is_one_block_in_text_and_html():
    passed = exercises.check("masked_block", K.masked_block_solution)
    failed = exercises.check("masked_block", K.masked_block_other_zero)
    assert bool(passed) is True and bool(failed) is False
    assert repr(passed).startswith("PASS  masked_block\n") and repr(failed).startswith("FAIL  masked_block\n")
    assert "True" not in repr(passed) and "False" not in repr(failed)  # no stray bool line
    html = failed._repr_html_()
    assert html.count("<div") == 1 and "FAIL" in html and "padded slots loaded as 0?" in html
    stub = exercises.check("masked_block", K.masked_block_stub)
    assert stub.status == "NOT DONE" and not stub


def test_hints_come_in_three_levels():
    texts = [str(exercises.hint("masked_block", level)) for level in (1, 2, 3)]
    assert len(set(texts)) == 3
    assert "hint 1 of 3" in texts[0] and "hint('masked_block', 2) says more" in texts[0]
    assert "solution('masked_block')" in texts[2]
    for ex in exercises.EXERCISES.values():
        assert len(ex.levels) == 3 and all(ex.levels), ex.name
    # level 1 gives nothing away; level 3 comes close
    assert "other=-1" not in texts[0] and "other=-1" in texts[2]


@pytest.mark.parametrize("level", [0, 4, "2", True, 1.0])
def test_a_bad_hint_level_is_a_clear_error(level):
    with pytest.raises(ValueError, match="level must be 1, 2 or 3"):
        exercises.hint("masked_block", level)


def test_check_with_hint_shows_that_level_only_on_failure():
    failed = exercises.check("masked_block", K.masked_block_other_zero, hint=2)
    assert "hint (level 2): " + exercises.EXERCISES["masked_block"].levels[1] in failed.text
    passed = exercises.check("masked_block", K.masked_block_solution, hint=2)
    assert "level 2" not in passed.text
    with pytest.raises(ValueError, match="hint must be 0"):
        exercises.check("masked_block", K.masked_block_solution, hint=5)


def test_hint_levels_may_be_numpy_integers_but_not_bools():
    """A level computed with numpy (np.int64) is a level; True is not a level, and a float is not either."""
    failed = exercises.check("masked_block", K.masked_block_other_zero, hint=np.int64(2))
    assert "hint (level 2): " + exercises.EXERCISES["masked_block"].levels[1] in failed.text
    assert str(exercises.hint("masked_block", np.int32(3))) == str(exercises.hint("masked_block", 3))
    for level in (True, np.bool_(True), 1.0, "1", np.float64(1.0), 4, -1):
        with pytest.raises(ValueError, match=r"hint must be 0 \(none\) or a level 1, 2 or 3, got "):
            exercises.check("masked_block", K.masked_block_solution, hint=level)
    from moe_lab.workbook.exercises import stable_rank

    assert str(stable_rank.hint(np.int64(1))) == str(stable_rank.hint(1))
    with pytest.raises(ValueError, match="level must be 1, 2 or 3, got True"):
        stable_rank.hint(True)


def test_solution_shows_the_shipped_answer_for_every_exercise():
    for name in exercises.EXERCISES:
        text = str(exercises.solution(name))
        assert ("def " in text) and len(text.splitlines()) >= 2, name
    assert "tl_full_kernel" in str(exercises.solution("masked_block"))
    with pytest.raises(ValueError, match="name must be one of"):
        exercises.solution("nope")


def test_every_shipped_answer_passes_its_own_check():
    from moe_lab.workbook.exercises.answers import answer

    for name in exercises.EXERCISES:
        result = exercises.check(name, answer(name))
        assert result, result.text


def test_progress_lists_what_passed_in_this_session():
    total = len(exercises.EXERCISES)
    assert f"0 of {total} passed" in str(exercises.progress())
    exercises.check("masked_block", K.masked_block_solution)
    exercises.check("block_size", K.block_size_not_power_of_two)
    exercises.check("naive", K.naive_stub)  # not done yet: not counted as tried
    text = str(exercises.progress())
    rows = {line.split()[0]: line for line in text.splitlines()[1:-1]}
    assert rows["masked_block"].endswith("passed") and "tried, not passed yet" in rows["block_size"]
    assert rows["naive"].endswith("not tried") and text.endswith(f"1 of {total} passed")


def test_worked_examples_match_the_reference():
    for name in exercises.EXERCISES:
        text = str(exercises.example(name))
        assert text.startswith(name), text
    text = str(exercises.example("masked_block"))
    ids, start, num_local = learn._EXAMPLE_IDS["masked_block"]
    adjusted, counts = verify.reference(torch.tensor(ids, dtype=torch.int32), start, num_local)
    assert f"adjusted     = {adjusted.tolist()}" in text and f"expert_count = {counts.tolist()}" in text
    assert "poisoned" in str(exercises.example("decode")) and "zero again" in str(exercises.example("ticket"))
    assert "topk 6 -> 256" in str(exercises.example("block_size"))


def test_predict_then_reveal_from_the_recorded_data():
    assert "no prediction recorded yet" in str(exercises.reveal("relaxed"))
    said = exercises.predict("relaxed", faster_at_1_token=True, faster_at_1M_tokens=True)
    assert "prediction recorded" in str(said)
    text = str(exercises.reveal("relaxed"))
    assert "H100" in text and "graph replay" in text
    assert "at 1 token: True" in text and "at 1M tokens: False" in text  # the recorded numbers say so
    assert text.endswith("1 of 2 predictions right")
    # a passing check answers the prediction too
    result = exercises.check("relaxed", K.relaxed_solution)
    assert result and "predictions right" in result.text


@pytest.mark.parametrize("kwargs, error, message", [
    ({"faster_at_1_token": "yes"}, TypeError, "faster_at_1_token must be True or False"),
    ({"faster_at_2_tokens": True}, ValueError, "takes faster_at_1_token=True/False"),
    ({}, ValueError, "got no answers"),
])
def test_bad_predictions_are_clear_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        exercises.predict("relaxed", **kwargs)
    with pytest.raises(ValueError, match="exercise that asks for a prediction"):
        exercises.predict("naive", faster=True)


def test_the_debugging_puzzle():
    shown = str(exercises.debug_kernel())
    assert "(expert < num_local)" in shown and "def buggy_kernel" in shown
    buggy = exercises.buggy_kernel()
    result = exercises.check("debug", buggy)
    assert not result and "start <= id < start + num_local" in result.text
    # it runs in the interpreter, where printing inside works: right on rank 0, wrong with start > 0
    ids = torch.tensor([[0, 5], [3, 2], [-1, -1], [2, 6]], dtype=torch.int32)
    from moe_lab import interp

    for start, right in ((0, True), (2, False)):
        adjusted = torch.full_like(ids, verify.POISON)
        counts = torch.zeros(2, dtype=torch.int32)
        interp.interpreted(buggy)[(2,)](ids, adjusted, counts, ids.numel(), start, 2, BLOCK=4)
        want_adj, want_cnt = verify.reference(ids, start, 2)
        assert (torch.equal(adjusted, want_adj) and torch.equal(counts, want_cnt)) == right, start
    assert exercises.check("debug", K.debug_solution)
