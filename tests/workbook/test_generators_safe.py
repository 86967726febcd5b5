"""The student and book generators cannot lose work: every way of pointing them at the wrong folder
is refused with a clear message, and nothing is written until the new folder is complete."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from moe_lab import paths
from moe_lab.workbook import book, generated, student

REPO = Path(__file__).resolve().parents[2]

SOLVED = '''\
def block_size(topk: int) -> int:
    # BEGIN SOLUTION
    rounded = triton.next_power_of_2(min(256, 1024 // topk))
    return rounded
    # END SOLUTION
'''


def _source(tmp_path, cell=SOLVED) -> Path:
    src = tmp_path / "notebooks"
    src.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# x"),
                                         nbformat.v4.new_code_cell(cell)])
    nbformat.write(nb, src / "03_x.ipynb")
    return src


def _snapshot(folder: Path) -> dict:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in files}


def test_generating_twice_replaces_the_generated_folder(tmp_path):
    src = _source(tmp_path)
    student.make_student_edition(src, tmp_path / "student")
    manifest = json.loads((tmp_path / "student" / generated.MANIFEST).read_text())
    assert manifest["kind"] == "student edition" and "03_x.ipynb" in manifest["files"]
    student.make_student_edition(src, tmp_path / "student")  # unchanged since generated: allowed
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".student.")]  # no temp left behind


@pytest.mark.parametrize("out", ["notebooks", ".", "notebooks/inner"])
def test_out_that_is_or_holds_the_source_is_refused(tmp_path, out, monkeypatch):
    _source(tmp_path)
    (tmp_path / "README.md").write_text("the project's readme")
    monkeypatch.chdir(tmp_path)
    before = _snapshot(tmp_path)
    with pytest.raises(generated.RefusedOutput, match="would overwrite the source notebooks"):
        student.make_student_edition("notebooks", out)
    assert _snapshot(tmp_path) == before


def test_command_line_refuses_out_notebooks_and_out_dot(tmp_path, monkeypatch, capsys):
    _source(tmp_path)
    (tmp_path / "README.md").write_text("keep me")
    monkeypatch.chdir(tmp_path)
    for out in ("notebooks", "."):
        assert student.main(["--src", "notebooks", "--out", out]) == 2
        err = capsys.readouterr().err
        assert "would overwrite the source notebooks" in err, err
    assert (tmp_path / "README.md").read_text() == "keep me"


def test_a_student_edition_as_source_is_refused(tmp_path, monkeypatch, capsys):
    src = _source(tmp_path)
    student.make_student_edition(src, tmp_path / "student")
    before = _snapshot(src)
    with pytest.raises(ValueError, match="is a generated student edition"):
        student.make_student_edition(tmp_path / "student", tmp_path / "again")
    # the same notebooks copied elsewhere without the manifest: still recognised
    copy = tmp_path / "copied"
    copy.mkdir()
    (copy / "03_x.ipynb").write_bytes((tmp_path / "student" / "03_x.ipynb").read_bytes())
    with pytest.raises(ValueError, match="is a student edition"):
        student.make_student_edition(copy, tmp_path / "again")
    monkeypatch.chdir(tmp_path)
    assert student.main(["--src", "student", "--out", "notebooks"]) == 2
    assert "use --src notebooks" in capsys.readouterr().err
    assert _snapshot(src) == before


def test_a_folder_with_files_it_did_not_create_is_refused(tmp_path):
    src = _source(tmp_path)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.md").write_text("my notes")
    with pytest.raises(generated.RefusedOutput, match="holds files this tool did not create"):
        student.make_student_edition(src, out)
    assert (out / "notes.md").read_text() == "my notes"
    # a generated folder the learner added a file to
    student.make_student_edition(src, tmp_path / "student")
    (tmp_path / "student" / "my_try.ipynb").write_text("{}")
    with pytest.raises(generated.RefusedOutput, match="my_try.ipynb was not created by this tool"):
        student.make_student_edition(src, tmp_path / "student")


def test_a_generated_notebook_the_learner_edited_is_not_overwritten(tmp_path):
    src = _source(tmp_path)
    student.make_student_edition(src, tmp_path / "student")
    work = tmp_path / "student" / "03_x.ipynb"
    nb = nbformat.read(work, as_version=4)
    stub = 'raise NotImplementedError("YOUR CODE HERE: write the body of block_size")'
    nb.cells[1].source = nb.cells[1].source.replace(stub, "return 256")
    nbformat.write(nb, work)
    mine = work.read_bytes()
    with pytest.raises(generated.RefusedOutput, match="03_x.ipynb changed since it was generated"):
        student.make_student_edition(src, tmp_path / "student")
    assert work.read_bytes() == mine


def test_a_notebook_with_solutions_in_the_output_is_refused(tmp_path):
    src = _source(tmp_path)
    student.make_student_edition(src, tmp_path / "student")
    target = tmp_path / "student" / "03_x.ipynb"
    target.write_bytes((src / "03_x.ipynb").read_bytes())  # a solution notebook copied in by hand
    with pytest.raises(generated.RefusedOutput, match="holds solutions|changed since"):
        student.make_student_edition(src, tmp_path / "student")
    assert b"BEGIN SOLUTION" in target.read_bytes()


def test_symlinks_are_never_followed_out_of_the_output_folder(tmp_path):
    src = _source(tmp_path)
    student.make_student_edition(src, tmp_path / "student")
    target = tmp_path / "student" / "03_x.ipynb"
    target.unlink()
    target.symlink_to(src / "03_x.ipynb")  # a student notebook that is really the solution
    before = (src / "03_x.ipynb").read_bytes()
    with pytest.raises(generated.RefusedOutput, match="symlink"):
        student.make_student_edition(src, tmp_path / "student")
    assert (src / "03_x.ipynb").read_bytes() == before
    # the output folder itself a link to the sources
    (tmp_path / "linked").symlink_to(src, target_is_directory=True)
    with pytest.raises(generated.RefusedOutput):
        student.make_student_edition(src, tmp_path / "linked")
    assert (src / "03_x.ipynb").read_bytes() == before


@pytest.mark.parametrize("marker", ["# begin solution", "#BEGIN SOLUTIONS", "# BEGIN-SOLUTION",
                                    "## BEGIN SOLUTION ##", "# End Solution", "# begin of solution"])
def test_near_miss_markers_are_refused(tmp_path, marker):
    cell = f"def f():\n    {marker}\n    return 42\n    # END SOLUTION\n"
    if "end" in marker.lower():
        cell = f"def f():\n    # BEGIN SOLUTION\n    return 42\n    {marker}\n"
    src = _source(tmp_path, cell)
    with pytest.raises(student.MarkerError, match="looks like a solution marker"):
        student.make_student_edition(src, tmp_path / "student")
    assert not (tmp_path / "student").exists()


def test_a_failure_midway_leaves_the_old_folder_as_it_was(tmp_path, monkeypatch):
    src = _source(tmp_path)
    student.make_student_edition(src, tmp_path / "student")
    before = _snapshot(tmp_path / "student")

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(student, "_exercise_table", broken)
    with pytest.raises(OSError, match="disk full"):
        student.make_student_edition(src, tmp_path / "student")
    assert _snapshot(tmp_path / "student") == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".student.")]


# ------------------------------------------------------------------------------------------- book

def test_book_refuses_to_write_into_the_notebooks(tmp_path, capsys):
    src = _source(tmp_path)
    before = _snapshot(src)
    assert book.main(["--out", str(src), str(src / "03_x.ipynb")]) == 2
    assert "would overwrite the source notebooks" in capsys.readouterr().err
    assert book.main(["--out", str(paths.notebooks())]) == 2
    assert "would overwrite the source notebooks" in capsys.readouterr().err
    assert _snapshot(src) == before


def test_book_refuses_a_folder_it_did_not_create(tmp_path, capsys):
    src = _source(tmp_path)
    out = tmp_path / "site"
    out.mkdir()
    (out / "index.html").write_text("my own site")
    assert book.main(["--out", str(out), str(src / "03_x.ipynb")]) == 2
    assert "did not create" in capsys.readouterr().err
    assert (out / "index.html").read_text() == "my own site"


def test_student_command_line_refusal_exits_2(tmp_path):
    _source(tmp_path)
    env = dict(os.environ, MOE_LAB_QUIET="1",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "moe_lab.workbook.student", "--src", "notebooks",
                           "--out", "."],
                          cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and "would overwrite the source notebooks" in proc.stderr
