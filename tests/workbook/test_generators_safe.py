"""The student and book generators cannot lose work, and regenerate over their own output.

Generating again replaces what the generator wrote and nobody changed, keeps a notebook the learner
changed (saying so, with the command that replaces it when its source changed since), leaves the
learner's own files and JupyterLab's checkpoints alone, and refuses, with a message a shell can paste,
only what it must: the source folder, a folder it did not write, a file or link in the way."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import nbformat
import pytest

from moe_lab import paths
from moe_lab.workbook import book, generated, markers, student

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



def _env():
    return dict(os.environ, MOE_LAB_QUIET="1",
                PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))


def _student_cli(*args, cwd, monkeypatch, capsys):
    """``(exit status, stdout, stderr)`` of the command line run in ``cwd`` (in this process: the one
    test that runs it as a shell would is the one that pastes the command it prints)."""
    monkeypatch.chdir(cwd)
    status = student.main([str(a) for a in args])
    said = capsys.readouterr()
    return status, said.out, said.err


def _learner_edits(path: Path, text: str = "return 256") -> bytes:
    nb = nbformat.read(path, as_version=4)
    stub = 'raise NotImplementedError("YOUR CODE HERE: write the body of block_size")'
    assert stub in nb.cells[1].source
    nb.cells[1].source = nb.cells[1].source.replace(stub, text)
    nbformat.write(nb, path)
    return path.read_bytes()


def _revise(src: Path, name: str) -> None:
    nb = nbformat.read(src / name, as_version=4)
    nb.cells[0].source += ", revised"
    nbformat.write(nb, src / name)


def _add(src: Path, name: str) -> None:
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# y")]), src / name)


# ------------------------------------------------------------------------------ regenerating works

def test_generating_twice_replaces_what_nobody_changed(tmp_path):
    src = _source(tmp_path)
    student.make_student_edition(src, tmp_path / "student")
    manifest = json.loads((tmp_path / "student" / generated.MANIFEST).read_text())
    assert manifest["kind"] == "student edition" and "03_x.ipynb" in manifest["files"]
    _revise(src, "03_x.ipynb")
    outcome = student.make_student_edition(src, tmp_path / "student")
    assert outcome.kept == [] and tmp_path / "student" / "03_x.ipynb" in outcome.written
    assert "revised" in (tmp_path / "student" / "03_x.ipynb").read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".student.")]  # no temp left behind


def test_prose_about_the_markers_does_not_stop_regeneration(tmp_path):
    """00's prose explains the markers; only a marker line in a code cell is a solution."""
    src = _source(tmp_path)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
        "# Tour\n\n* Exercises are code cells with a solution between `# BEGIN SOLUTION` and\n"
        "  `# END SOLUTION`.\n* Run all.\n"), nbformat.v4.new_code_cell('print("# BEGIN SOLUTION")')])
    nbformat.write(nb, src / "00_tour.ipynb")
    student.make_student_edition(src, tmp_path / "student")
    tour = tmp_path / "student" / "00_tour.ipynb"
    prose = nbformat.read(tour, as_version=4).cells[0].source
    assert "BEGIN SOLUTION" not in prose and "**student edition**" in prose and "* Run all." in prose
    assert not markers.holds_solutions(tour) and markers.holds_solutions(src / "03_x.ipynb")
    assert student.make_student_edition(src, tmp_path / "student").kept == []  # again, nothing refused


def test_jupyterlab_checkpoints_and_the_learners_own_files_are_left_alone(tmp_path):
    src = _source(tmp_path)
    out = tmp_path / "student"
    student.make_student_edition(src, out)
    (out / ".ipynb_checkpoints").mkdir()
    (out / ".ipynb_checkpoints" / "03_x-checkpoint.ipynb").write_bytes((out / "03_x.ipynb").read_bytes())
    (out / "Untitled.ipynb").write_text("{}")
    (out / "notes").mkdir()
    (out / "notes" / "mine.md").write_text("my notes")
    before = _snapshot(out)
    outcome = student.make_student_edition(src, out)
    assert outcome.kept == [] and _snapshot(out) == before


def test_a_notebook_the_learner_changed_is_kept_and_the_rest_regenerated(tmp_path, capsys, monkeypatch):
    src = _source(tmp_path)
    out = tmp_path / "my student"  # a folder with a space: every command printed must still paste
    student.make_student_edition(src, out)
    mine = _learner_edits(out / "03_x.ipynb")
    _add(src, "04_y.ipynb")
    assert student.main(["--src", str(src), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert (out / "03_x.ipynb").read_bytes() == mine and (out / "04_y.ipynb").exists()
    assert "03_x.ipynb': kept as you left it" in said and "--replace" not in said
    # its source changes: still kept, and the one command that replaces it is printed
    _revise(src, "03_x.ipynb")
    status, said, err = _student_cli("--src", src, "--out", "my student", "--quiet", cwd=tmp_path,
                                     monkeypatch=monkeypatch, capsys=capsys)
    assert status == 0, err
    assert (out / "03_x.ipynb").read_bytes() == mine
    assert "has changed since your copy was generated" in said and "03_x.ipynb" in said
    command = next(line.strip() for line in said.splitlines() if "--replace" in line)
    words = shlex.split(command)
    assert words[words.index("--out") + 1] == "my student" and words[-2:] == ["--replace", "03_x.ipynb"]
    replaced = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True, env=_env(),
                              timeout=300)
    assert replaced.returncode == 0, replaced.stderr
    assert "revised" in (out / "03_x.ipynb").read_text()
    assert (out / "03_x.yours.ipynb").read_bytes() == mine  # their copy, beside it
    assert "03_x.yours.ipynb" in replaced.stdout
    assert student.make_student_edition(src, out).kept == []  # their copy is a file of their own now


def test_an_interrupted_update_is_finished_by_the_next_run(tmp_path, monkeypatch):
    src = _source(tmp_path)
    _add(src, "04_y.ipynb")
    out = tmp_path / "student"
    student.make_student_edition(src, out)
    _revise(src, "03_x.ipynb")
    _revise(src, "04_y.ipynb")
    real, moved = os.replace, []

    def dies_on_the_second_notebook(a, b):
        if str(b).endswith(".ipynb"):
            moved.append(b)
            if len(moved) == 2:
                raise KeyboardInterrupt
        return real(a, b)

    monkeypatch.setattr(generated.os, "replace", dies_on_the_second_notebook)
    with pytest.raises(KeyboardInterrupt):
        student.make_student_edition(src, out)
    monkeypatch.setattr(generated.os, "replace", real)
    assert "revised" in (out / "03_x.ipynb").read_text() and "revised" not in (out / "04_y.ipynb").read_text()
    outcome = student.make_student_edition(src, out)
    assert outcome.kept == []  # the file moved before the stop is recognised as generated, not as work
    assert "revised" in (out / "04_y.ipynb").read_text()


def test_a_notebook_with_solutions_copied_in_is_kept_and_named(tmp_path, capsys):
    src = _source(tmp_path)
    student.make_student_edition(src, tmp_path / "student")
    target = tmp_path / "student" / "03_x.ipynb"
    target.write_bytes((src / "03_x.ipynb").read_bytes())  # a solution notebook copied in by hand
    assert student.main(["--src", str(src), "--out", str(tmp_path / "student")]) == 0
    assert "it holds solutions" in capsys.readouterr().out
    assert b"BEGIN SOLUTION" in target.read_bytes()


def test_the_source_defaults_to_the_checkouts_solution_edition(tmp_path):
    outcome = student.make_student_edition(out_dir=tmp_path / "student")
    names = {p.name for p in outcome.written}
    assert {p.name for p in paths.notebooks().glob("*.ipynb")} <= names and "README.md" in names
    readme = (tmp_path / "student" / "README.md").read_text()
    assert "This folder is the **student edition**" in readme and "**solution edition**" in readme


# -------------------------------------------------------------------------- refusing what it must

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


def test_refusals_suggest_commands_a_shell_can_paste(tmp_path, monkeypatch, capsys):
    _source(tmp_path)
    status, _, err = _student_cli("--src", "notebooks", "--out", ".", cwd=tmp_path, monkeypatch=monkeypatch,
                                  capsys=capsys)
    assert status == 2 and "would overwrite the source notebooks" in err
    suggested = shlex.split(err.split("e.g. ", 1)[1])
    assert suggested[0] == "--out" and len(suggested) == 2, suggested  # one folder, not "student edition"
    spaced = tmp_path / "a b"
    spaced.mkdir()
    (spaced / "mine.txt").write_text("x")
    status, _, err = _student_cli("--src", "notebooks", "--out", "a b", cwd=tmp_path, monkeypatch=monkeypatch,
                                  capsys=capsys)
    assert status == 2 and "--out 'a b' holds files this tool did not create" in err


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
    said = capsys.readouterr().err
    assert f"use --src {paths.notebooks()}" in said, said  # the checkout's solution edition
    assert _snapshot(src) == before


def test_a_folder_with_files_it_did_not_create_is_refused(tmp_path):
    src = _source(tmp_path)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.md").write_text("my notes")
    with pytest.raises(generated.RefusedOutput, match="holds files this tool did not create"):
        student.make_student_edition(src, out)
    assert (out / "notes.md").read_text() == "my notes"
    (out / "03_x.ipynb").write_bytes((src / "03_x.ipynb").read_bytes())
    with pytest.raises(generated.RefusedOutput, match="holds the solution edition"):
        student.make_student_edition(src, out)


def test_a_file_of_the_learners_in_the_way_is_refused_and_nothing_is_written(tmp_path):
    src = _source(tmp_path)
    out = tmp_path / "student"
    student.make_student_edition(src, out)
    (out / "04_y.ipynb").write_text("my own notebook")  # then the workbook gains a notebook of that name
    _add(src, "04_y.ipynb")
    _revise(src, "03_x.ipynb")
    before = _snapshot(out)
    with pytest.raises(generated.RefusedOutput, match="04_y.ipynb was not created by this tool"):
        student.make_student_edition(src, out)
    assert _snapshot(out) == before


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
