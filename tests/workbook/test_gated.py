"""What answers an exercise waits for its check to pass (or for solution()); what answers a prediction
waits for the prediction."""

from __future__ import annotations

import pytest

from moe_lab.workbook import exercises
from moe_lab.workbook.exercises import gated, learn


@pytest.fixture(autouse=True)
def fresh_session(monkeypatch):
    monkeypatch.setattr(learn, "PASSED", {})
    monkeypatch.setattr(learn, "PREDICTIONS_MADE", {})


@pytest.fixture
def walkthroughs(tmp_path, monkeypatch):
    monkeypatch.setattr(gated, "WALKTHROUGHS", tmp_path)
    (tmp_path / "masked_block.md").write_text(
        "### The shipped version\n\nThe library's `tl_full` stage:\n\n"
        "{{source moe_lab.stages.tl_full:tl_full_kernel}}\n\n"
        "Why `other=-1`: padded lanes look like padding.\n")
    return tmp_path


def test_nothing_is_shown_before_the_check_passes(walkthroughs):
    ran = []
    shown = exercises.after_check("masked_block", lambda: ran.append(1) or "table")
    assert 'once check("masked_block", ...) passes' in repr(shown)
    assert 'solution("masked_block")' in repr(shown)
    assert "tl_full_kernel" not in repr(shown) and not ran  # not even computed
    learn.PASSED["masked_block"] = False  # a failed check reveals nothing either
    assert "tl_full_kernel" not in repr(exercises.after_check("masked_block"))


def test_a_passed_check_shows_the_walkthrough_then_the_rest(walkthroughs):
    learn.PASSED["masked_block"] = True
    shown = exercises.after_check("masked_block", lambda: "the table")
    text = repr(shown)
    order = [text.index(part) for part in ("### The shipped version", "def tl_full_kernel", "Why `other=-1`")]
    assert order == sorted(order)
    assert text.endswith("'the table'")
    assert "tl_full_kernel" in shown._repr_html_()


def test_solution_shows_the_answer_and_walkthrough_when_asked(walkthroughs):
    text = repr(exercises.solution("masked_block"))
    assert "def tl_full_kernel" in text and "Why `other=-1`" in text


def test_a_prediction_gates_what_answers_it():
    assert "record one first" in repr(exercises.after_prediction("relaxed", lambda: 1 / 0))
    exercises.predict("relaxed", faster_at_1_token=True, faster_at_1M_tokens=False)
    shown = exercises.after_prediction("relaxed", lambda: "answer")
    assert shown._repr_html_().endswith("<pre>&#x27;answer&#x27;</pre>")
    assert repr(shown).startswith("### What the recorded numbers say")  # walkthroughs/relaxed.prediction.md


def test_bad_names_are_refused():
    with pytest.raises(ValueError, match="name must be one of"):
        exercises.after_check("no_such_exercise")
    with pytest.raises(ValueError, match="asks for a prediction or a notebook's question"):
        exercises.after_prediction("masked_block")


def test_a_walkthrough_can_leave_out_a_later_exercises_branch(tmp_path, monkeypatch):
    monkeypatch.setattr(gated, "WALKTHROUGHS", tmp_path)
    (tmp_path / "block_histogram.md").write_text(
        "The shipped kernel:\n\n"
        '{{source moe_lab.stages.block_histogram:block_histogram_kernel leave_out=WRITE_COUNTS "later"}}\n')
    learn.PASSED["block_histogram"] = True
    text = repr(exercises.after_check("block_histogram"))
    assert "if WRITE_COUNTS:\n        ...  # later" in text
    assert "tl.store(count_ptr + bins, counts" not in text


def test_solution_shows_the_answer_once_when_the_walkthrough_has_it(walkthroughs):
    assert repr(exercises.solution("masked_block")).count("def tl_full_kernel") == 1


def test_a_notebooks_question_gates_its_answer_too():
    assert "record one first" in repr(exercises.after_prediction("launch_bound", lambda: 1 / 0))
    said = exercises.predict("launch_bound", eager_tokens=16384, graph_tokens=256)
    assert "prediction recorded" in repr(said) and "the next cell answers it" in repr(said)
    assert learn.predicted("launch_bound") == {"eager_tokens": 16384, "graph_tokens": 256}
    answered = repr(exercises.after_prediction("launch_bound", lambda: "answer"))
    assert answered.startswith("**What it means.**") and answered.endswith("'answer'")
    with pytest.raises(ValueError, match="answered by the cell after its predict"):
        exercises.reveal("launch_bound")


def test_an_unanswered_prediction_records_nothing_and_says_what_to_write():
    said = repr(exercises.predict("relaxed", faster_at_1_token=..., faster_at_1M_tokens=...))
    assert said == ("relaxed: not done yet: replace each ... with your prediction (faster_at_1_token="
                    "True/False, faster_at_1M_tokens=True/False), then run this cell again")
    assert "relaxed" not in learn.PREDICTIONS_MADE
    assert "record one first" in repr(exercises.after_prediction("relaxed", lambda: 1 / 0))
    half = repr(exercises.predict("relaxed", faster_at_1_token=True, faster_at_1M_tokens=...))
    assert "not done yet" in half and "faster_at_1M_tokens=True/False" in half and "1_token=" not in half
    assert learn.predicted("relaxed") == {}
    with pytest.raises(TypeError, match="eager_tokens must be a number, got True"):
        exercises.predict("launch_bound", eager_tokens=True, graph_tokens=1)


def test_a_predictions_own_walkthrough_comes_first(tmp_path, monkeypatch):
    monkeypatch.setattr(gated, "WALKTHROUGHS", tmp_path)
    (tmp_path / "copy_floor.prediction.md").write_text("Why: the copy is the floor.\n")
    assert "the copy is the floor" not in repr(exercises.after_prediction("copy_floor", "table"))
    exercises.predict("copy_floor", best_over_copy=1.2, fraction_of_spec=0.7)
    assert repr(exercises.after_prediction("copy_floor", "table")) == "Why: the copy is the floor.\n\n'table'"
