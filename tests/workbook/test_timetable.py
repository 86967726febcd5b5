"""The time estimate (:mod:`moe_lab.workbook.timetable`) and the timetables held to it.

* the model, on small notebooks: words, code lines, figures, tables, listings, exercise minutes,
  predictions, the walk-throughs revealed after a check or a prediction, and the take-home split, each
  counted the way the module says;
* the real notebooks: each path notebook's ``**Time:** NN min`` line, the instructor guide's timetable
  and notebooks/README.md's table agree with the estimate within :data:`TOLERANCE_MIN` minutes, and the
  path 00-07 with its break is estimated at no more than :data:`PATH_LIMIT_MIN` minutes.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("nbformat", reason="the notebooks built here need nbformat (the workbook's packages)")

from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output  # noqa: E402

from moe_lab.workbook import timetable  # noqa: E402
from moe_lab.workbook.exercises import EXERCISES  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
TOLERANCE_MIN = 3
"""How far a stated time may be from the estimate, per notebook."""
PATH_LIMIT_MIN = 190
"""The path 00-07, exercises and the break included, may be estimated at most this long."""
TIME = re.compile(r"\*\*Time:\*\* (\d+) min\b")


def _estimate(*cells, name="03_x"):
    return timetable.estimate(json.loads(json.dumps(new_notebook(cells=list(cells)))), name)


def test_prose_code_and_items_are_counted_as_the_model_says():
    words = " ".join(["word"] * 360)  # two minutes of prose
    e = _estimate(
        new_markdown_cell(f"# Title\n\n{words}\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
                          "```python\nx = 1\ny = 2\n```"),
        new_code_cell("a = 1\n\nb = 2\nc = 3", outputs=[new_output("stream", name="stdout", text="short\n")]),
        new_code_cell("plot()", outputs=[new_output("display_data", data={"image/png": "iVBOR",
                                                                           "text/plain": "F"})]),
        new_code_cell("table()", outputs=[new_output("execute_result", data={
            "text/html": "<table><tr><td>1</td></tr></table>", "text/plain": "1"})]),
        new_code_cell("listing()", outputs=[new_output("stream", name="stdout", text="line\n" * 12)]),
        new_code_cell("show()", outputs=[new_output("display_data", data={
            "text/html": '<div class="moe-lab-code">code</div>', "text/plain": "a\nb\nc\nd\n"})]),
    )
    assert e.path.words == 361  # the heading's word too; the table's and the code block's are not prose
    assert e.path.code_lines == 2 + 3 + 1 + 1 + 1 + 1 + 4  # code block, cells (not blank lines), shown code
    assert e.path.items == 4  # the markdown table, the figure, the HTML table, the listing
    assert e.minutes == round(361 / 180 + 13 * 3 / 60 + 4)


def test_an_exercise_counts_its_own_minutes_not_its_cells():
    stub = new_code_cell("def my_block_size(topk):\n    # BEGIN SOLUTION\n    return 1\n    # END SOLUTION\n")
    check = new_code_cell('check("block_size", my_block_size)', outputs=[new_output(
        "stream", name="stdout", text="block_size: all 16 runs pass.\n")])
    e = _estimate(new_markdown_cell("Exercise"), stub, check)
    assert e.path.exercises == ("block_size",) and e.path.code_lines == 0
    assert e.path.exercise_minutes == EXERCISES["block_size"].minutes
    assert e.minutes == round(1 / 180 + EXERCISES["block_size"].minutes)


def test_a_prediction_counts_its_minute_not_its_cells_code():
    recorded = new_output("execute_result",
                          data={"text/plain": "relaxed: prediction recorded\n  a\n  b\n  c"})
    said = new_code_cell('predict("relaxed",\n        faster_at_1_token=True,\n'
                         '        faster_at_1M_tokens=False,\n        )', outputs=[recorded])
    e = _estimate(new_markdown_cell("Predict"), said, new_code_cell("x = predicted('relaxed')"))
    assert e.path.predictions == 1 and e.path.code_lines == 1  # the other cell's line only
    assert e.minutes == round(1 / 180 + timetable.MINUTES_PER_PREDICTION + 3 / 60)


@pytest.fixture
def walkthrough_file(tmp_path, monkeypatch):
    """A walk-through of ``block_size`` with 11 words of prose, one embedded source and one table."""
    from moe_lab.workbook.exercises import gated

    monkeypatch.setattr(gated, "WALKTHROUGHS", tmp_path)
    (tmp_path / "block_size.md").write_text(
        "### Shipped\n\n" + " ".join(["word"] * 10) + "\n\n{{source moe_lab.stages.tl_full:block_size}}\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n")
    (tmp_path / "relaxed.prediction.md").write_text(" ".join(["word"] * 90) + "\n")
    return tmp_path


def test_a_revealed_walkthrough_counts_from_its_file_once_shown_or_not(walkthrough_file):
    from moe_lab.stages import tl_full
    from moe_lab.workbook.show import show_source

    code = show_source(tl_full.block_size)
    source_lines = sum(1 for ln in code.text.split("\n") if ln.strip())
    cell = 'after_check("block_size", lambda: table())'
    gated_only = _estimate(new_code_cell(cell, outputs=[new_output("display_data", data={
        "text/plain": "block_size: the shipped answer ... appear here once check passes"})]))
    assert (gated_only.path.words, gated_only.path.items) == (1 + 10, 1)  # heading, prose; the table
    assert gated_only.path.code_lines == 1 + source_lines  # the cell's line and the embedded source
    revealed = _estimate(new_code_cell(cell, outputs=[
        new_output("display_data", data={"text/markdown": "### Shipped\n\nword", "text/plain": "x"}),
        new_output("display_data", data={"text/html": f'<div class="moe-lab-code">{code.text}</div>',
                                         "text/plain": repr(code)}),
        new_output("display_data", data={"text/markdown": "| a | b |", "text/plain": "| a | b |"}),
        new_output("display_data", data={"text/html": "<table><tr><td>1</td></tr></table>",
                                         "text/plain": "1"})]))  # what the cell shows besides: a table
    assert (revealed.path.words, revealed.path.code_lines) == (gated_only.path.words,
                                                               gated_only.path.code_lines)
    assert revealed.path.items == gated_only.path.items + 1
    none = _estimate(new_code_cell('after_check("block_size", debug_kernel, walkthrough=False)'))
    assert (none.path.words, none.path.code_lines, none.path.items) == (0, 1, 0)
    prediction = _estimate(new_code_cell('after_prediction("relaxed", table)'))
    assert prediction.path.words == 90 and prediction.minutes == round(90 / 180 + 3 / 60)


def test_a_take_home_heading_ends_the_path_part():
    words = " ".join(["word"] * 900)  # five minutes
    e = _estimate(new_markdown_cell(f"# 05\n\n{words}\n\n## Take-home: the launch sweep\n\n{words}"),
                  new_code_cell('check("ticket", k)'), name="05_x")
    assert e.on_path and e.path.words == 901 and e.take_home.words == 904
    assert e.path.exercises == () and e.take_home.exercises == ("ticket",)
    assert e.minutes == 5 and e.take_home_minutes == 5 + EXERCISES["ticket"].minutes
    off = _estimate(new_markdown_cell(f"# 10\n\n{words}\n\n## Take-home\n\n{words}"), name="10_x")
    assert not off.on_path and off.minutes == 10  # a take-home notebook: all of it


def test_the_command_prints_the_table_and_the_path_total():
    done = subprocess.run([sys.executable, "-m", "moe_lab.workbook.timetable"], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:3] == ["notebook", "words", "code"]
    assert sum(ln.startswith(tuple(f"{n}_" for n in timetable.PATH)) for ln in lines) == len(timetable.PATH)
    every = sorted(NOTEBOOKS.glob("[0-9]*.ipynb"))
    total = timetable.path_minutes([timetable.estimate_file(p) for p in every])
    assert f"= {total} min" in lines[-1] and f"{timetable.BREAK_MINUTES}-minute break" in lines[-1]


# ----------------------------------------------------------------------------- the real notebooks

def _estimates() -> dict[str, timetable.Estimate]:
    return {p.name: timetable.estimate_file(p) for p in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
            if p.name[:2] in timetable.PATH}


def _first_markdown(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return "".join(next(c for c in cells if c["cell_type"] == "markdown")["source"])


def _stated(rows: dict[str, int], where: str) -> list[str]:
    wrong = []
    for name, e in _estimates().items():
        if name not in rows:
            wrong.append(f"{where} has no time for {name} (estimated {e.minutes} min)")
        elif abs(rows[name] - e.minutes) > TOLERANCE_MIN:
            wrong.append(f"{where} says {name} takes {rows[name]} min; the estimate is {e.minutes} min")
    return wrong


def test_each_notebooks_time_line_agrees_with_the_estimate():
    rows = {}
    for name in _estimates():
        found = TIME.findall(_first_markdown(NOTEBOOKS / name))
        if found:
            rows[name] = int(found[0])
    wrong = _stated(rows, "its **Time:** line")
    assert not wrong, "\n".join(wrong) + f"\n(within {TOLERANCE_MIN} min)\n" + timetable.table(
        list(_estimates().values()))


def test_the_guides_timetable_agrees_with_the_estimate():
    text = (ROOT / "docs" / "instructor-guide.md").read_text()
    section = text[text.index("## Learning path and timing"):]
    section = section[:section.index("\n## ", 1)]
    row = re.compile(r"^\|[^|]*\| *`(\d\d_\w+\.ipynb)` *\| *(\d+) *\|", re.M)
    rows = {m[1]: int(m[2]) for m in row.finditer(section)}
    wrong = _stated(rows, "the guide's timetable")
    assert not wrong, "\n".join(wrong) + f"\n(within {TOLERANCE_MIN} min)"


def test_the_notebooks_readme_agrees_with_the_estimate():
    text = (NOTEBOOKS / "README.md").read_text()
    row = re.compile(r"^\| *\[\w+\]\((\d\d_\w+)\.ipynb\) *\| *(\d+) min *\|", re.M)
    rows = {f"{m[1]}.ipynb": int(m[2]) for m in row.finditer(text)}
    wrong = _stated(rows, "notebooks/README.md")
    assert not wrong, "\n".join(wrong) + f"\n(within {TOLERANCE_MIN} min)"


def test_the_path_fits_its_three_hours():
    estimates = list(_estimates().values())
    assert [e.notebook[:2] for e in estimates] == list(timetable.PATH)
    total = timetable.path_minutes(estimates)
    assert total <= PATH_LIMIT_MIN, (f"the path 00-07 is estimated at {total} min with its break, more than "
                                     f"{PATH_LIMIT_MIN}:\n" + timetable.table(estimates))


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
