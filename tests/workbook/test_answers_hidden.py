"""Answers hidden until the learner has tried.

* Spec first, answer after (:func:`hidden.leaks`): no exercise's answer is visible before its check
  cell, in the solution edition or in the generated student edition (source, markdown and stored
  outputs all count).
* On screen after *Run All* (:mod:`moe_lab.workbook.exercises.onscreen`): the scan that reads what a
  learner sees, tested here on small notebooks; the real student edition is run and scanned in
  ``test_student_run.py``.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from moe_lab.workbook import student
from moe_lab.workbook.exercises import EXERCISES, hidden, learn, onscreen
from moe_lab.workbook.show import show_source, source

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"

STUB = '''\
@triton.jit
def my_masked_kernel(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local, BLOCK: tl.constexpr):
    # BEGIN SOLUTION
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    is_local = (ids >= start) & (ids < start + num_local) & in_bounds
    adjusted = tl.where(is_local, ids - start, -1)
    tl.store(adjusted_ptr + offs, adjusted, mask=in_bounds)
    tl.atomic_add(count_ptr + adjusted, tl.full([BLOCK], 1, tl.int32), mask=is_local)
    # END SOLUTION
'''


def _notebook(*before, after=()):
    cells = [new_markdown_cell("# Vectorise\n**Time:** 10 min"),
             new_markdown_cell("Spec: one masked block of BLOCK slots per program. "
                               "`example('masked_block')` shows a worked example."),
             *before,
             new_code_cell(STUB),
             new_code_cell('moe_lab.workbook.exercises.check("masked_block", my_masked_kernel)'),
             new_markdown_cell("The shipped version:"),
             new_code_cell("show_source(tl_full.tl_full_kernel)"),
             *after]
    return new_notebook(cells=cells)


def test_spec_stub_check_then_answer_is_clean():
    library, _ = source("tl_full")
    shown_after = new_code_cell("show_source(tl_full.tl_full_kernel)",
                                outputs=[new_output("stream", name="stdout", text=library)])
    assert hidden.leaks(_notebook(after=[shown_after]), "fixture") == []


def test_the_learner_solution_between_markers_does_not_count():
    """The stub cell above the check holds the solution (in the solution edition): that is allowed."""
    nb = _notebook()
    assert "tl.full([BLOCK], 1, tl.int32)" in nb.cells[2].source
    assert hidden.leaks(nb) == []


@pytest.mark.parametrize("cell, what", [
    (new_code_cell("show_source(tl_full.tl_full_kernel)"), "shows tl_full_kernel"),
    (new_code_cell('show_source("tl_full")'), 'shows "tl_full"'),
    (new_code_cell("show_diff(naive.naive_kernel, tl_full.tl_full_kernel)"), "shows tl_full_kernel"),
])
def test_library_source_before_the_check_is_a_leak(cell, what):
    found = hidden.leaks(_notebook(cell), "fixture")
    assert found and found[0].exercise == "masked_block" and what in found[0].what, found
    said = "fixture: exercise 'masked_block' (checked in cell 4) is answered earlier, in cell 2"
    assert said in str(found[0])


def test_answer_in_a_stored_output_is_a_leak():
    text, _ = source(__import__("moe_lab.stages.tl_full", fromlist=["x"]).tl_full_kernel)
    cell = new_code_cell("print(some_text)", outputs=[new_output("stream", name="stdout", text=text)])
    found = hidden.leaks(_notebook(cell))
    assert found and "lines of the shipped answer" in found[0].what, found


def test_the_block_size_formula_in_prose_is_a_leak():
    nb = new_notebook(cells=[
        new_markdown_cell("The fix is `triton.next_power_of_2(min(256, 1024 // topk))`."),
        new_code_cell("def my_block_size(topk):\n    # BEGIN SOLUTION\n    return 1\n    # END SOLUTION\n"),
        new_code_cell('moe_lab.workbook.exercises.check("block_size", my_block_size)'),
    ])
    found = hidden.leaks(nb)
    assert [f.exercise for f in found] == ["block_size"] and "the formula" in found[0].what
    nb.cells[0].source = "The rule min(256, 1024 // topk) gives 170 for topk 6. Fix it."
    assert hidden.leaks(nb) == []


def test_every_exercise_has_answer_marks():
    for ex in EXERCISES.values():
        assert ex.answer_kernels or ex.answer_formulas or len(hidden._distinctive_lines(ex)) >= 3, ex.name


def test_command_line_reports_and_exits_1(tmp_path, capsys):
    path = tmp_path / "03_leaky.ipynb"
    nbformat.write(_notebook(new_code_cell("show_source(tl_full.tl_full_kernel)")), path)
    assert hidden.main([str(path)]) == 1
    said = capsys.readouterr().out
    assert "03_leaky.ipynb: exercise 'masked_block'" in said
    assert "masked_block" in said and "of 6" in said  # the on-screen table, per exercise


# --------------------------------------------------------------------------------- on screen, scanned

def _shown(obj) -> dict:
    """A display output of ``obj`` as Jupyter stores it (text/html and text/plain)."""
    code = show_source(obj)
    return new_output("display_data", data={"text/html": code._repr_html_(), "text/plain": repr(code)})


def _screen(name, *cells):
    return onscreen.screen(new_notebook(cells=list(cells)), name)


def _ex(report, name):
    return next(e for e in report.exercises if e.exercise == name)


def test_code_lines_are_whole_statements_without_comments():
    code = ('''@triton.jit
def k(x_ptr, n, BLOCK: tl.constexpr):
    """A docstring is not an answer."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)  # a comment
    tl.atomic_add(x_ptr + offs, 1,
                  mask=offs < n)
    if n:
        pass
''')
    assert onscreen.code_lines(code) == ["offs=tl.program_id(0)*BLOCK+tl.arange(0,BLOCK)",
                                         "tl.atomic_add(x_ptr+offs,1,mask=offs<n)"]


@pytest.mark.parametrize("screen_text, seen", [
    ("local = (expert >= start) & (expert < start + num_local)", True),
    ("    local = (expert >= start) & (expert < start + num_local)  # the test", True),
    ("local = (expert >= start) & (expert < start + num_local) & valid_slot", False),
    ("is_local = (expert >= start) & (expert < start + num_local)", False),
    ("+    local = (expert >= start) & (expert < start + num_local)", True),  # a diff line
    ("so write `local = (expert >= start) & (expert < start + num_local)`. Then", True),
    ("local = (expert >= start) & (expert < start +\n         num_local)", True),
])
def test_a_statement_shows_only_whole(screen_text, seen):
    answer = "local=(expert>=start)&(expert<start+num_local)"
    assert any(onscreen.shows(line, answer) for line in onscreen.screen_lines(screen_text)) is seen


def test_the_shipped_kernel_in_an_output_is_on_screen_as_html_and_text():
    from moe_lab.stages import tl_full

    cell = new_code_cell("show_source(tl_full.tl_full_kernel)", outputs=[_shown(tl_full.tl_full_kernel)])
    html_only = new_code_cell("x", outputs=[new_output("display_data", data={
        "text/html": _shown(tl_full.tl_full_kernel)["data"]["text/html"]})])
    for shown in (cell, html_only):
        found = _ex(onscreen.scan([_screen("03_x", new_markdown_cell("# 03"), shown)]), "masked_block")
        assert found.fraction == 1.0 and found.over and found.where() == "03_x cell 1 (6 lines)", found


def test_an_earlier_notebook_counts_a_later_one_does_not():
    from moe_lab.stages import tl_full

    shown = new_code_cell("show_source(tl_full.tl_full_kernel)", outputs=[_shown(tl_full.tl_full_kernel)])
    earlier = onscreen.scan([_screen("02_a", shown), _screen("03_b", new_markdown_cell("# 03"))])
    assert _ex(earlier, "masked_block").fraction == 1.0 and "02_a cell 0" in str(earlier)
    later = onscreen.scan([_screen("03_b", new_markdown_cell("# 03")), _screen("04_c", shown)])
    assert _ex(later, "masked_block").fraction == 0.0 and not _ex(later, "masked_block").over


def test_the_scaffolding_an_exercise_builds_on_is_not_its_answer():
    from moe_lab.stages import naive, row_loop
    from moe_lab.workbook.exercises.answers import DEBUG_SOURCE

    assert "moe_lab.stages.row_loop:row_loop_kernel" in EXERCISES["naive"].builds_on  # explicit data
    scaffold = _screen("02_x", new_code_cell("show_source(row_loop.row_loop_kernel)",
                                             outputs=[_shown(row_loop.row_loop_kernel)]),
                       new_code_cell("debug_kernel()", outputs=[new_output("execute_result", data={
                           "text/plain": DEBUG_SOURCE})]))
    report = onscreen.scan([scaffold])
    assert _ex(report, "naive").fraction == 0.0 and _ex(report, "debug").fraction == 0.0, report
    answered = onscreen.scan([_screen("02_x", new_code_cell("show_source(naive.naive_kernel)",
                                                            outputs=[_shown(naive.naive_kernel)]))])
    assert _ex(answered, "naive").fraction == 1.0
    assert _ex(answered, "debug").fraction == 1.0  # naive's range test is the puzzle's fix


def test_a_formula_in_prose_answers_block_size():
    report = onscreen.scan([_screen("03_x", new_markdown_cell(
        "The rule is `triton.next_power_of_2(min(256, 1024 // topk))`."))])
    found = _ex(report, "block_size")
    assert found.fraction == 1.0 and found.form.startswith("the formula"), found


def test_the_learners_solution_between_markers_is_not_on_screen():
    found = _ex(onscreen.scan([_screen("03_x", new_code_cell(STUB))]), "masked_block")
    assert found.seen == {}, found


def test_a_predictions_measured_answer_shown_before_it_is_made():
    saved = dict(learn.PREDICTIONS_MADE)
    try:
        made = str(learn.predict("relaxed", faster_at_1_token=True, faster_at_1M_tokens=False))
        answer = str(learn.reveal("relaxed"))
    finally:
        learn.PREDICTIONS_MADE.clear()
        learn.PREDICTIONS_MADE.update(saved)
    table = new_code_cell("show_table()", outputs=[new_output("stream", name="stdout", text=answer)])
    predict = new_code_cell('predict("relaxed", ...)', outputs=[new_output("stream", name="stdout",
                                                                           text=made)])
    early = onscreen.scan([_screen("04_x", table, predict)]).predictions
    assert early and early[0].answered and early[0].recorded == ("04_x", 1), early
    assert "ANSWERED ON SCREEN" in str(early[0])
    late = onscreen.scan([_screen("04_x", predict, table)]).predictions
    assert late and not late[0].answered, late
    never = onscreen.scan([_screen("03_a", table), _screen("04_x", new_markdown_cell("# 04"))]).predictions
    assert never[0].answered and never[0].recorded is None


# ------------------------------------------------------------------------------- the real notebooks

def _notebooks():
    return sorted(NOTEBOOKS.glob("*.ipynb"))


@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: p.name)
def test_no_answer_before_its_check_in_the_solution_edition(path):
    found = hidden.leaks(nbformat.read(path, as_version=4), path.name)
    assert not found, "\n".join(map(str, found))


def test_no_answer_before_its_check_in_the_student_edition(tmp_path):
    written = student.make_student_edition(NOTEBOOKS, tmp_path / "student").written
    found = []
    for path in written:
        if path.suffix == ".ipynb":
            found += hidden.leaks(nbformat.read(path, as_version=4), f"student/{path.name}")
    assert not found, "\n".join(map(str, found))
