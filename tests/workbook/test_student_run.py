"""The student edition run as a learner runs it: generated from ``notebooks/``, then every notebook of the
path and the take-home ones executed top to bottom, in path order, each by a fresh kernel (nbclient), once
for the whole session. What that run shows is then tested:

* every notebook runs to the end, and every check cell says "not done yet" (the stubs are stubs);
* what is on screen after *Run All* (sources and outputs, markdown included) shows at most a fifth of any
  exercise's answer lines, from its own notebook or an earlier one, and no prediction's measured answer
  before a prediction is recorded (:mod:`moe_lab.workbook.exercises.onscreen`; the same scan as
  ``python -m moe_lab.workbook.exercises.hidden``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("nbclient", reason="running notebooks needs nbclient (the workbook's dev packages)")

from moe_lab.workbook import book, student  # noqa: E402  (after the skip: needs the workbook packages)
from moe_lab.workbook.exercises import onscreen  # noqa: E402
from moe_lab.workbook.stubs import CHECK_RE  # noqa: E402

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
pytestmark = pytest.mark.long  # the whole student edition, once


@pytest.fixture(scope="module")
def student_run(tmp_path_factory, kernel_name):
    """``[(path, executed notebook, error or None)]`` of the whole student edition, in path order."""
    out = tmp_path_factory.mktemp("run") / "student"
    outcome = student.make_student_edition(NOTEBOOKS, out)
    notebooks = sorted((p for p in outcome.written if p.suffix == ".ipynb"), key=lambda p: p.name)
    if not notebooks:
        pytest.skip(f"no notebooks in {NOTEBOOKS}")
    runs = []
    for path in notebooks:
        nb, error, _ = book.execute(path, kernel_name=kernel_name, timeout=600)
        runs.append((path, nb, error))
    return runs


def _outputs(cell) -> str:
    return onscreen.cell_text({"cell_type": "raw", "source": "", "outputs": cell.get("outputs", [])})


def test_every_notebook_runs_to_the_end(student_run):
    assert [p.name for p, _, _ in student_run] == sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    failed = [f"{p.name}: {error[-1500:]}" for p, _, error in student_run if error]
    assert not failed, "\n\n".join(failed)


def test_every_check_and_prediction_says_not_done_yet(student_run):
    failures, checked = [], 0
    for path, nb, _ in student_run:
        text = path.read_text()
        assert "BEGIN SOLUTION" not in text, f"{path.name} still holds a solution marker"
        for cell in nb.cells:
            prediction = "predict(" in cell.source and "=...," in cell.source  # left as ...: records nothing
            if cell.cell_type == "code" and (CHECK_RE.search(cell.source) or prediction):
                checked += 1
                if "not done yet" not in _outputs(cell):
                    failures.append(f"{path.name}: a check or prediction cell did not say 'not done yet':\n"
                                    f"{cell.source}\n-> {_outputs(cell)[:500]}")
    assert checked, "no check cell ran"
    assert not failures, "\n\n".join(failures)


def _report(student_run) -> onscreen.Report:
    return onscreen.scan([onscreen.screen(nb, path.stem, error) for path, nb, error in student_run])


def test_no_exercise_shows_more_than_a_fifth_of_its_answer_after_run_all(student_run):
    report = _report(student_run)
    assert {e.exercise for e in report.exercises} >= {"naive", "masked_block", "ticket"}, report
    over = [e for e in report.exercises if e.over]
    assert not over, f"answers on screen before the learner has tried (at most {onscreen.BAR:.0%}):\n{report}"


def test_no_prediction_is_answered_on_screen_before_it_is_made(student_run):
    report = _report(student_run)
    assert report.predictions, "no prediction among the notebooks"
    early = [p for p in report.predictions if p.answered]
    assert not early, "\n".join(map(str, early))
