"""A prediction that is a number is marked right or wrong against the recorded value or range
(:func:`moe_lab.workbook.predictions.judge`), and a second answer to the same prediction waits for it
without repeating its walk-through (:func:`moe_lab.workbook.predictions.when_predicted`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from moe_lab.workbook import exercises
from moe_lab.workbook.exercises import gated, learn
from moe_lab.workbook.predictions import is_right, judge, when_predicted


@pytest.fixture(autouse=True)
def fresh_session(monkeypatch):
    monkeypatch.setattr(learn, "PREDICTIONS_MADE", {})


def test_right_means_within_the_factor_of_the_value_or_the_range():
    assert is_right(256, 256, within=2) and is_right(500, 256, within=2) and is_right(128, 256, within=2)
    assert not is_right(513, 256, within=2) and not is_right(127, 256, within=2)
    assert is_right(1.9, (1.71, 2.25), within=1.2) and is_right(2.69, (1.71, 2.25), within=1.2)
    assert not is_right(2.71, (1.71, 2.25), within=1.2) and not is_right(1.42, (1.71, 2.25), within=1.2)
    assert is_right(2.0, pd.Series([2.18, 1.71, 2.25]), within=1.0)   # a column: its smallest to largest
    assert not is_right(1.7, pd.Series([2.18, 1.71, 2.25]), within=1.0)
    assert is_right(0, 0, within=2) and not is_right(0, 1, within=2)  # no factor around zero


def test_judge_marks_each_number_with_the_recorded_one():
    assert "no prediction recorded yet" in repr(judge("launch_bound", within=2, eager_tokens=16384,
                                                      graph_tokens=256))
    exercises.predict("launch_bound", eager_tokens=16384, graph_tokens=1024)
    said = repr(judge("launch_bound", within=2, eager_tokens=np.int64(16384), graph_tokens=256))
    assert "eager: recorded 16,384; you said 16,384: right" in said
    assert "graph replay: recorded 256; you said 1,024: wrong" in said
    assert said.endswith("1 of 2 predictions right")
    exercises.predict("graph_replay", lead_eager=1.5, lead_graph=3.0)
    said = repr(judge("graph_replay", within=1.2, lead_eager=pd.Series([1.52, 1.71, 1.51]),
                      lead_graph=(1.71, 2.25)))
    assert "eager: recorded 1.51 to 1.71; you said 1.50: right" in said
    assert "graph replay: recorded 1.71 to 2.25; you said 3: wrong" in said


def test_judge_refuses_what_it_cannot_mark():
    with pytest.raises(ValueError, match="answered by a number"):
        judge("relaxed", within=2, faster_at_1_token=1.0)
    with pytest.raises(ValueError, match="within must be a factor of 1 or more"):
        judge("copy_floor", within=0.5, best_over_copy=1.2)
    with pytest.raises(ValueError, match="takes the recorded values of best_over_copy, fraction_of_spec"):
        judge("copy_floor", within=1.2, best_over_time=1.2)
    exercises.predict("copy_floor", best_over_copy=1.2, fraction_of_spec=0.7)
    with pytest.raises(TypeError, match="a number or the values it ranges over"):
        judge("copy_floor", within=1.2, best_over_copy="1.19")


def test_a_second_answer_waits_for_the_prediction_and_shows_no_walkthrough_again(tmp_path, monkeypatch):
    monkeypatch.setattr(gated, "WALKTHROUGHS", tmp_path)
    (tmp_path / "graph_nodes.prediction.md").write_text("### What the recorded numbers say\n\nA node.\n")
    ran = []
    before = repr(when_predicted("graph_nodes", lambda: ran.append(1) or "table"))
    assert before == repr(exercises.after_prediction("graph_nodes")) and "record one first" in before
    assert ran == []
    exercises.predict("graph_nodes", zeros_us=1.0, scalar_atomic_us=2.7)
    first = repr(exercises.after_prediction("graph_nodes", lambda: "table"))
    again = repr(when_predicted("graph_nodes", "note", lambda: ran.append(1) or "table"))
    assert first.count("What the recorded numbers say") == 1
    assert "What the recorded numbers say" not in again and again == "'note'\n\n'table'" and ran == [1]
