"""Spec first, answer after: no exercise's answer is visible before its check cell, in the solution
edition or in the generated student edition (source, markdown and stored outputs all count)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from moe_lab.workbook import student
from moe_lab.workbook.exercises import EXERCISES, hidden
from moe_lab.workbook.show import source

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
    assert "03_leaky.ipynb: exercise 'masked_block'" in capsys.readouterr().out


# ------------------------------------------------------------------------------- the real notebooks

def _notebooks():
    return sorted(NOTEBOOKS.glob("*.ipynb"))


@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: p.name)
def test_no_answer_before_its_check_in_the_solution_edition(path):
    found = hidden.leaks(nbformat.read(path, as_version=4), path.name)
    assert not found, "\n".join(map(str, found))


def test_no_answer_before_its_check_in_the_student_edition(tmp_path):
    written = student.make_student_edition(NOTEBOOKS, tmp_path / "student")
    found = []
    for path in written:
        if path.suffix == ".ipynb":
            found += hidden.leaks(nbformat.read(path, as_version=4), f"student/{path.name}")
    assert not found, "\n".join(map(str, found))
