"""``python -m moe_lab.workbook.book``: executes notebooks in a copy and renders HTML (tiny ones here)."""

from __future__ import annotations

import os
import subprocess
import sys

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from moe_lab.workbook import book


def needs_nbconvert():
    """The book renders HTML with nbconvert, an optional tool (the GPU machine's environment lacks it)."""
    pytest.importorskip("nbconvert",
                        reason="moe_lab.workbook.book renders HTML with nbconvert, which is not installed")


@pytest.fixture(autouse=True)
def restore_environment():
    """book.main sets a few variables for the kernels it starts; undo that after each test."""
    names = ("MOE_LAB_QUIET", "TQDM_DISABLE", "PYTHONPATH")
    saved = {k: os.environ.get(k) for k in names}
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def tiny(path, code):
    path.parent.mkdir(parents=True, exist_ok=True)
    nb = new_notebook(cells=[new_markdown_cell("# A tiny notebook\nfor the book test"),
                             new_code_cell(code)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_book_executes_a_copy_and_renders_html(tmp_path, capsys):
    needs_nbconvert()
    src = tiny(tmp_path / "nb" / "01_tiny.ipynb",
               "import os, moe_lab\nprint('answer', 6 * 7, os.path.basename(os.getcwd()))")
    out = tmp_path / "out"
    assert book.main(["--out", str(out), str(src)]) == 0
    page = (out / "01_tiny.html").read_text()
    assert "answer 42 nb" in page  # ran, in the notebook's own folder
    assert "A tiny notebook" in (out / "index.html").read_text()
    executed = nbformat.read(out / "01_tiny.ipynb", as_version=4)
    assert executed.cells[1].outputs, "the copy holds the outputs"
    assert not nbformat.read(src, as_version=4).cells[1].get("outputs"), "the source is untouched"
    assert str(out / "01_tiny.html") in capsys.readouterr().out
    # built again into its own folder: replaced as a whole
    assert book.main(["--out", str(out), str(src)]) == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


def test_book_reports_a_failing_notebook_and_still_builds_the_rest(tmp_path, capsys):
    needs_nbconvert()
    bad = tiny(tmp_path / "nb" / "02_bad.ipynb", "raise RuntimeError('planted failure')")
    good = tiny(tmp_path / "nb" / "03_good.ipynb", "print('fine')")
    out = tmp_path / "out"
    assert book.main(["--out", str(out), str(bad), str(good)]) == 1
    captured = capsys.readouterr()
    assert "1 failed: 02_bad" in captured.out and "planted failure" in captured.err
    assert "planted failure" in (out / "02_bad.html").read_text()
    assert "fine" in (out / "03_good.html").read_text()
    assert "(failed)" in (out / "index.html").read_text()


def test_the_book_builds_over_its_own_output(tmp_path, capsys):
    """An executed solution notebook holds solutions: that is no reason to refuse the book's own folder."""
    needs_nbconvert()
    src = tmp_path / "nb"
    src.mkdir()
    code = "def f():\n    # BEGIN SOLUTION\n    return 42\n    # END SOLUTION\nprint(f())"
    nb = new_notebook(cells=[new_markdown_cell("# x"), new_code_cell(code)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, src / "03_x.ipynb")
    out = tmp_path / "book"
    assert book.main(["--out", str(out), str(src / "03_x.ipynb")]) == 0
    (out / ".ipynb_checkpoints").mkdir()
    (out / ".ipynb_checkpoints" / "03_x-checkpoint.ipynb").write_text("{}")
    page = out / "03_x.html"
    page.write_text(page.read_text() + "<!-- my note -->")
    assert book.main(["--out", str(out), str(src / "03_x.ipynb")]) == 0
    said = capsys.readouterr().out
    assert "03_x.html" in said and "kept as you left it" in said
    assert "<!-- my note -->" in page.read_text() and (out / "index.html").exists()


def test_book_refuses_missing_notebooks(tmp_path, capsys):
    assert book.main(["--out", str(tmp_path), str(tmp_path / "nope.ipynb")]) == 1
    assert "nope.ipynb" in capsys.readouterr().err


def test_module_runs_from_the_command_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "moe_lab.workbook.book", "--help"], capture_output=True,
                          text=True)
    assert done.returncode == 0 and "--out" in done.stdout
