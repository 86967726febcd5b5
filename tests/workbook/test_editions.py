"""The two editions, one name each: the student edition (``student/``, what ``make lab`` opens) and the
solution edition (``notebooks/``, what ``make solutions`` opens, the tested source).

* ``make lab`` writes the student edition (on first use, and updates it on every run) and opens
  JupyterLab on that folder; ``make solutions`` opens ``notebooks/``; ``make clean`` leaves ``student/``
  (the learner's work) alone;
* the README's first lines, notebooks/README.md, the generated student/README.md, the Makefile's help,
  the instructor guide and the testing guide name both editions and say which is which, and no other
  name for them is used.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OTHER_NAMES = re.compile(r"\b(workshop|learner'?s|answer|stub|exercise) edition\b|\bsolutions? notebooks?\b",
                         re.I)
"""Other names for the two editions: each concept has one name."""


def make_dry_run(target: str) -> list[list[str]]:
    done = subprocess.run(["make", "-n", "-s", target, "VENV=/venv"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    wanted = ("tools/lab.py", "moe_lab.workbook.student", "rm -rf")  # make's other lines set up .venv
    return [shlex.split(line) for line in done.stdout.splitlines() if any(w in line for w in wanted)]


def test_make_lab_writes_the_student_edition_then_opens_it(load_tool):
    assert make_dry_run("lab")[-1] == ["/venv/bin/python", "tools/lab.py", "--port=8888"]
    write, lab = load_tool("lab").commands("student")  # what tools/lab.py runs, in order
    assert write[1:3] == ["-m", "moe_lab.workbook.student"] and lab[1:4] == ["-m", "jupyter", "lab"]
    out = write[write.index("--out") + 1]
    assert out == "student" and f"--notebook-dir={out}" in lab
    assert "--LabApp.default_url=/lab/tree/00_tour.ipynb" in lab


def test_make_solutions_opens_the_solution_edition(load_tool):
    assert make_dry_run("solutions")[-1] == ["/venv/bin/python", "tools/lab.py", "--solutions", "--port=8888"]
    commands = load_tool("lab").commands("solution")
    assert len(commands) == 1, commands  # nothing is generated
    assert "--notebook-dir=notebooks" in commands[0]
    assert "--LabApp.default_url=/lab/tree/00_tour.ipynb" in commands[0]


def test_make_clean_keeps_the_learners_work():
    clean = " ".join(" ".join(c) for c in make_dry_run("clean"))
    assert "rm -rf" in clean and "student" not in clean, clean


@pytest.mark.parametrize("where", ["README.md", "notebooks/README.md", "docs/instructor-guide.md",
                                   "docs/testing.md", "Makefile", "student/README.md"])
def test_each_document_names_both_editions_and_no_other_name(where, tmp_path):
    if where == "student/README.md":
        from moe_lab.workbook.student import make_student_edition

        make_student_edition(out_dir=tmp_path / "student")
        text = (tmp_path / "student" / "README.md").read_text()
    else:
        text = (ROOT / where).read_text()
    flat = re.sub(r"\s+", " ", text.replace("#", " ").replace("@echo", " ").replace('"', " "))
    assert re.search(r"student edition", flat, re.I) and re.search(r"solution edition", flat, re.I), where
    assert not OTHER_NAMES.search(flat), f"{where}: {OTHER_NAMES.search(flat).group(0)!r}; say student " \
                                         f"edition or solution edition"


def test_the_readme_says_which_edition_is_which_in_its_first_lines():
    first = "\n".join((ROOT / "README.md").read_text().splitlines()[:12])
    assert "student edition" in first and "solution edition" in first and "make lab" in first, first
