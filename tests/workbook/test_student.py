"""The student edition (moe_lab.workbook.student): solutions become stubs, outputs go, notebooks still run.

A small notebook built here (a Triton kernel exercise, a plain-function exercise, their check cells) is
turned into its student copy, which is executed top to bottom with nbclient: it must not crash and its
check cells must say "not done yet"; the solution copy, executed the same way, passes its checks. The
real student edition, run once per session, is tested in ``test_student_run.py``.

Kernels run in a Jupyter kernel of this very interpreter (the ``kernel_name`` fixture of conftest.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from moe_lab.workbook import student

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"

KERNEL_CELL = '''\
@triton.jit
def masked_block_kernel(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local,
                        BLOCK: tl.constexpr):
    """One masked block of BLOCK slots per program."""
    # BEGIN SOLUTION
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    in_bounds = offs < num_total
    ids = tl.load(ids_ptr + offs, mask=in_bounds, other=-1)
    is_local = (ids >= start) & (ids < start + num_local)
    adjusted = tl.where(is_local, ids - start, -1)
    tl.store(adjusted_ptr + offs, adjusted, mask=in_bounds)
    tl.atomic_add(count_ptr + adjusted, 1, mask=is_local)
    # END SOLUTION
'''

FUNCTION_CELL = '''\
def block_size(topk: int) -> int:
    # BEGIN SOLUTION
    rounded_block = triton.next_power_of_2(min(256, 1024 // topk))
    return rounded_block
    # END SOLUTION
'''


def _fixture_notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Fixture: one kernel exercise, one function exercise"),
        nbformat.v4.new_code_cell("import triton\nimport triton.language as tl\nimport moe_lab\n"
                                  "from moe_lab.workbook import exercises"),
        nbformat.v4.new_code_cell(KERNEL_CELL),
        nbformat.v4.new_code_cell('ok_block = exercises.check("masked_block", masked_block_kernel)\nok_block',
                                  metadata={"tags": ["nbval-check-output"]}),
        nbformat.v4.new_code_cell(FUNCTION_CELL),
        nbformat.v4.new_code_cell('ok_size = exercises.check("block_size", block_size)\nok_size',
                                  metadata={"tags": ["nbval-check-output", "keep-me"]}),
        nbformat.v4.new_code_cell('print("reached the end", bool(ok_block), bool(ok_size))',
                                  metadata={"tags": ["nbval-check-output"]}),
    ]
    # a stored output and count, as in an executed solution notebook
    nb.cells[6].outputs = [nbformat.v4.new_output("stream", name="stdout",
                                                  text="reached the end True True\n")]
    nb.cells[6].execution_count = 7
    return nb


def _execute(path: Path, kernel_name: str, timeout: int = 600) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, kernel_name=kernel_name, timeout=timeout,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def _text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type in ("execute_result", "display_data"):
            parts.append(out.get("data", {}).get("text/plain", ""))
        elif out.output_type == "error":
            parts.append(f"{out.ename}: {out.evalue}")
    return "".join(parts)


# ------------------------------------------------------------------------------------------- cells


def test_kernel_body_becomes_pass_stub_at_the_same_indentation():
    source, removed = student.strip_solutions(KERNEL_CELL)
    assert "    pass  # YOUR CODE HERE" in source.splitlines()
    assert "BEGIN SOLUTION" not in source and "END SOLUTION" not in source
    assert "tl.atomic_add" not in source and "tl.load" not in source
    assert '"""One masked block of BLOCK slots per program."""' in source  # the docstring stays
    assert len(removed) == 1 and any("tl.atomic_add" in ln for ln in removed[0])
    compile(source, "<student>", "exec")


def test_plain_function_body_becomes_not_implemented():
    source, _ = student.strip_solutions(FUNCTION_CELL)
    assert '    raise NotImplementedError("YOUR CODE HERE: write the body of block_size")' in source
    assert "next_power_of_2" not in source
    scope = {}
    exec(compile(source, "<student>", "exec"), scope)
    with pytest.raises(NotImplementedError, match="YOUR CODE HERE"):
        scope["block_size"](6)


def test_nested_and_top_level_solutions():
    source = ("class Holder:\n"
              "    @staticmethod\n"
              "    def twice(x):\n"
              "        # BEGIN SOLUTION\n"
              "        return 2 * x\n"
              "        # END SOLUTION\n"
              "# BEGIN SOLUTION\n"
              "answer = 42\n"
              "# END SOLUTION\n"
              "done = True\n")
    out, removed = student.strip_solutions(source)
    assert '        raise NotImplementedError("YOUR CODE HERE: write the body of twice")' in out
    assert "pass  # YOUR CODE HERE\ndone = True" in out
    assert removed == [["        return 2 * x"], ["answer = 42"]]
    scope = {}
    exec(compile(out, "<student>", "exec"), scope)
    assert scope["done"] is True and "answer" not in scope


@pytest.mark.parametrize("source, message", [
    ("def f():\n    # BEGIN SOLUTION\n    return 1\n", "never closed"),
    ("def f():\n    return 1\n    # END SOLUTION\n", "without a '# BEGIN SOLUTION'"),
    ("def f():\n    # BEGIN SOLUTION\n    # BEGIN SOLUTION\n    return 1\n    # END SOLUTION\n", "again"),
])
def test_unbalanced_markers_are_refused_with_notebook_and_cell(tmp_path, source, message):
    nb = _fixture_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(source))
    src = tmp_path / "nb"
    src.mkdir()
    nbformat.write(nb, src / "01_bad.ipynb")
    with pytest.raises(student.MarkerError) as info:
        student.make_student_edition(src, tmp_path / "out")
    text = str(info.value)
    assert "01_bad.ipynb" in text and "cell 7" in text and message in text
    assert not (tmp_path / "out").exists()  # nothing written when a notebook is refused


def test_a_solution_repeated_outside_its_markers_is_refused(tmp_path):
    nb = _fixture_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell("The answer:\n```python\n" + KERNEL_CELL + "```"))
    src = tmp_path / "nb"
    src.mkdir()
    nbformat.write(nb, src / "02_leaky.ipynb")
    with pytest.raises(ValueError, match="02_leaky.ipynb: a solution also appears outside its markers"):
        student.make_student_edition(src, tmp_path / "out")


def test_refuses_to_overwrite_the_solutions(tmp_path):
    nbformat.write(_fixture_notebook(), tmp_path / "a.ipynb")
    before = (tmp_path / "a.ipynb").read_bytes()
    with pytest.raises(ValueError, match="would overwrite the source notebooks"):
        student.make_student_edition(tmp_path, tmp_path)
    with pytest.raises(ValueError, match="src_dir"):
        student.make_student_edition(tmp_path / "missing", tmp_path / "out")
    assert (tmp_path / "a.ipynb").read_bytes() == before


# ---------------------------------------------------------------------------------------- notebook


def test_student_copy_of_fixture_is_clean(tmp_path):
    src = tmp_path / "notebooks"
    src.mkdir()
    nbformat.write(_fixture_notebook(), src / "03_fixture.ipynb")
    plain = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1", execution_count=3,
                                                                      outputs=[])])
    nbformat.write(plain, src / "00_plain.ipynb")
    (src / "figure.png").write_bytes(b"\x89PNG fake")
    (src / "03_fixture.py").write_text("# a paired script: holds solutions, must not be copied\n")
    written = student.make_student_edition(src, tmp_path / "student").written
    names = sorted(p.name for p in written)
    assert names == ["00_plain.ipynb", "03_fixture.ipynb", "README.md", "figure.png"]
    nb = nbformat.read(tmp_path / "student" / "03_fixture.ipynb", as_version=4)
    nbformat.validate(nb)
    text = nbformat.writes(nb)
    assert "BEGIN SOLUTION" not in text and "tl.atomic_add" not in text and "next_power_of_2" not in text
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    assert tags[3] == [] and tags[5] == ["keep-me"]  # output-compare tags off the check cells only
    assert tags[6] == ["nbval-check-output"]
    assert nb.metadata["moe_lab"] == {"edition": "student"}
    readme = (tmp_path / "student" / "README.md").read_text()
    assert "not done yet" in readme and "`masked_block`" in readme and "03_fixture.ipynb" in readme
    assert readme.startswith("# moe-lab, student edition\n\nThis folder is the **student edition**")
    # the source is untouched
    again = nbformat.read(src / "03_fixture.ipynb", as_version=4)
    assert "BEGIN SOLUTION" in again.cells[2].source and again.cells[6].execution_count == 7


def test_student_copy_of_fixture_runs_and_says_not_done_yet(tmp_path, kernel_name):
    src = tmp_path / "notebooks"
    src.mkdir()
    nbformat.write(_fixture_notebook(), src / "03_fixture.ipynb")
    student.make_student_edition(src, tmp_path / "student")

    done = _execute(tmp_path / "student" / "03_fixture.ipynb", kernel_name)
    outputs = [_text(c) for c in done.cells if c.cell_type == "code"]
    assert not any(o.output_type == "error" for c in done.cells for o in c.get("outputs", [])), outputs
    assert "masked_block: not done yet" in outputs[2]
    assert "block_size: not done yet" in outputs[4]
    assert outputs[5].strip() == "reached the end False False"

    solved = _execute(src / "03_fixture.ipynb", kernel_name)  # and the solution passes the same checks
    outputs = [_text(c) for c in solved.cells if c.cell_type == "code"]
    assert "masked_block: all 42 runs pass." in outputs[2], outputs[2]
    assert "block_size: all 41 runs pass." in outputs[4], outputs[4]
    assert outputs[5].strip() == "reached the end True True"


def test_command_line(tmp_path):
    src = tmp_path / "notebooks"
    src.mkdir()
    nbformat.write(_fixture_notebook(), src / "03_fixture.ipynb")
    env = dict(os.environ, MOE_LAB_QUIET="1",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "moe_lab.workbook.student", "--src", str(src), "--out",
                           str(tmp_path / "student")], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "03_fixture.ipynb: 2 exercises" in proc.stdout
    assert (tmp_path / "student" / "README.md").exists()


def test_command_line_refuses_a_missing_folder(tmp_path, capsys):
    assert student.main(["--src", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")]) == 2
    assert "moe_lab.workbook.student: src_dir must be a folder" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ the guide


def test_instructor_guide_matches_the_notebooks():
    """docs/instructor-guide.md names every notebook, only notebooks that exist, and puts each exercise
    in the notebook whose check cell runs it."""
    import re

    from moe_lab.workbook.exercises import EXERCISES

    guide = (REPO / "docs" / "instructor-guide.md").read_text()
    named = set(re.findall(r"\b\d\d_\w+\.ipynb\b", guide))
    present = {p.name for p in NOTEBOOKS.glob("*.ipynb")}
    assert not named - present, f"the guide names notebooks that do not exist: {sorted(named - present)}"
    assert not present - named, f"notebooks missing from the guide: {sorted(present - named)}"
    for name in EXERCISES:
        rows = [ln for ln in guide.splitlines() if ln.startswith(f"| `{name}` |")]
        assert len(rows) == 1, f"the guide's exercise table needs one row for {name!r}"
        in_row = re.findall(r"\d\d_\w+\.ipynb", rows[0])
        assert in_row and all(n.startswith(EXERCISES[name].notebook) for n in in_row), rows[0]
    for path in NOTEBOOKS.glob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            for name in re.findall(r"\bcheck\(\s*['\"](\w+)['\"]", cell.source):
                assert name in EXERCISES, f"{path.name} checks an unknown exercise {name!r}"
                assert path.name.startswith(EXERCISES[name].notebook), (
                    f"{path.name} runs exercise {name!r}, which EXERCISES places in notebook "
                    f"{EXERCISES[name].notebook}")
                assert path.name in [ln for ln in guide.splitlines() if ln.startswith(f"| `{name}` |")][0]


def test_a_predictions_answers_become_ellipses():
    """A prediction in the solution edition holds real answers between the markers, inside the call;
    the student copy keeps the call and leaves every answer as ``...`` (predict: "not done yet")."""
    cell = ('predict("relaxed",\n'
            '        # BEGIN SOLUTION\n'
            '        faster_at_1_token=False, faster_at_1M_tokens=False,\n'
            '        # END SOLUTION\n'
            '        )')
    out, removed = student.strip_solutions(cell)
    assert out == 'predict("relaxed",\n        faster_at_1_token=..., faster_at_1M_tokens=...,\n        )'
    assert removed == [["        faster_at_1_token=False, faster_at_1M_tokens=False,"]]
    compile(out, "cell", "exec")  # still valid Python
    # anything that is not only keyword arguments keeps the usual stub
    body = "x = 1\n# BEGIN SOLUTION\ny = f(a=1)\n# END SOLUTION\n"
    assert student.strip_solutions(body)[0] == "x = 1\npass  # YOUR CODE HERE\n"
