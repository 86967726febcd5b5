"""Write the student edition of the notebooks: solutions replaced by stubs, outputs cleared.

The workbook comes in two editions. The **solution edition** (``notebooks/``) holds every exercise's
answer; it is the source of truth, executed and nbval-tested, and the instructor's answer key. The
**student edition** (``student/``, what ``make lab`` opens) is generated from it: the exercises are stubs
for the learner to write. Inside a code cell of the solution edition, a solution sits between two marker
lines at the indentation of the code it belongs to (:mod:`moe_lab.workbook.markers`)::

    @triton.jit
    def kernel(ids_ptr, adjusted_ptr, count_ptr, num_total, start, num_local, BLOCK: tl.constexpr):
        # BEGIN SOLUTION
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        ...
        # END SOLUTION

The student edition replaces the lines between the markers, and the markers, with one stub line at the
marker's indentation, which keeps the cell valid Python and contains ``YOUR CODE HERE`` (the text by which
:mod:`moe_lab.workbook.exercises` knows the exercise is not done yet). Which stub, by this rule:

* inside a ``def`` decorated with anything containing ``jit`` (``@triton.jit``): ``pass  # YOUR CODE HERE``
  (a kernel that does nothing; its check says "not done yet");
* inside any other ``def``: ``raise NotImplementedError("YOUR CODE HERE: ...")``;
* outside any ``def``: ``pass  # YOUR CODE HERE``. Keep solutions inside function bodies: a name that
  only a top-level solution defines is missing from the student edition;
* keyword arguments of a call (a prediction, ``predict("relaxed", a=True, b=False,)`` with the markers
  around ``a=True, b=False,``): each becomes ``name=...``, which ``predict`` reads as not answered yet.

Every notebook of the source folder is copied (notebooks without exercises too) with its outputs and
execution counts cleared; ``nbval-check-output`` tags are removed from exercise and check cells (a
student's output differs from the stored one); a markdown paragraph or list item that describes the
solution markers (which the student edition does not have) becomes :data:`STUDENT_NOTE`; a README.md for
students is written next to them. Unbalanced, nested or near-miss markers (``# begin solution``,
``#BEGIN SOLUTIONS``) are refused with an error naming the notebook and the cell.

Generating again updates the folder in place (:mod:`moe_lab.workbook.generated`): every file as generated
is replaced, a notebook the learner changed is kept as they left it (and reported, with the command that
replaces it when its source has changed since), files the learner added are left alone.

    python -m moe_lab.workbook.student --out student          # or: make student (make lab does it too)
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import nbformat

from moe_lab import paths
from moe_lab.workbook import generated
from moe_lab.workbook.exercises.catalogue import MARKER
from moe_lab.workbook.markers import has_solution
from moe_lab.workbook.stubs import (  # noqa: F401  (the student edition's names, in one place)
    CHECK_RE,
    KERNEL_STUB,
    STUDENT_NOTE,
    TOP_LEVEL_STUB,
    MarkerError,
    leaked_solutions,
    strip_solutions,
    student_markdown,
    student_notebook,
)

_ASSET_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".csv"}
KIND = "student edition"

STUDENT_README = """\
# moe-lab, student edition

This folder is the **student edition** of the moe-lab workbook: every exercise is a stub for you to
write. The **solution edition** (`notebooks/` in the repository, opened by `make solutions`) holds the
answers; it is the tested source this folder was generated from.

`make lab`, from the repository root, opens this folder in JupyterLab on `00_tour.ipynb` (it writes the
folder first if it is missing). Work through the notebooks in order.

How an exercise works:

1. A code cell holds a kernel (or a function) whose body is `pass  # YOUR CODE HERE` or
   `raise NotImplementedError("YOUR CODE HERE: ...")`. Replace that line with your code and run the cell.
2. The next cell calls `moe_lab.workbook.exercises.check("<name>", <your kernel>)`. It runs your code on
   adversarial inputs (padding, tails, remote experts, huge ids, int64) with poisoned outputs and
   shows one PASS / FAIL block: one line per group of cases and, at the first failure, the case, its
   input, the expected and the actual values, and a hint. Until you write the body it says
   `not done yet`. Stuck? `moe_lab.workbook.exercises.example("<name>")` shows a worked example,
   `moe_lab.workbook.exercises.hint("<name>", 1)` a nudge (levels 2 and 3 say more), and
   `moe_lab.workbook.exercises.progress()` what you have passed so far.
3. The shipped answer and its walk-through appear once your check passes (run their cell again), or
   when you ask with `moe_lab.workbook.exercises.solution("<name>")`.
4. Run the rest of the notebook as usual: every cell runs even while an exercise is not done.

Without a GPU the kernels run in Triton's interpreter on the CPU (slower, exact); the checker also
checks every load, store and atomic against the buffers, so a missing mask is caught on a laptop.
Performance figures come from recorded GPU runs when no GPU is present.

The exercises (`moe_lab.workbook.exercises.EXERCISES` lists them):

{table}

Your work here is safe. `make lab` and `make student` (`python -m moe_lab.workbook.student --out
student`) regenerate this folder from `notebooks/`, but a notebook you changed is kept as you left it,
and files you add are left alone. When the source of a notebook you changed has changed since, they say
so and print the one command that replaces your copy with the new one (yours is then kept beside it as
`NAME.yours.ipynb`).
"""


# --------------------------------------------------------------------------------------------------
# a folder

def make_student_edition(src_dir=None, out_dir="student", *, replace=()) -> generated.Outcome:
    """Write the student edition of every notebook in ``src_dir`` (default: the checkout's solution
    edition, :func:`moe_lab.paths.notebooks`) into ``out_dir``; return what was done.

    Notebooks with exercises get their solutions replaced by stubs; every notebook is written without
    outputs; picture and CSV files beside the notebooks are copied; ``out_dir/README.md`` explains the
    edition. ``out_dir`` is updated file by file (:mod:`moe_lab.workbook.generated`): a notebook the learner
    changed is kept (``outcome.kept``) unless named in ``replace`` (then their copy is moved beside it,
    ``outcome.backups``). Refused (:class:`~moe_lab.workbook.generated.RefusedOutput`): an ``out_dir`` that
    is or contains the sources, a folder this tool did not write, a file or link in the way. Raises
    :class:`MarkerError` (naming the notebook and cell) for unbalanced or near-miss markers,
    ``ValueError`` for a student edition given as source or a solution that would leak.
    """
    src, out = Path(src_dir) if src_dir is not None else paths.notebooks(), Path(out_dir)
    if not src.is_dir():
        raise ValueError(f"src_dir must be a folder of notebooks, got {str(src)!r} (not a folder)")
    notebooks = sorted(p for p in src.glob("*.ipynb"))
    if not notebooks:
        raise ValueError(f"src_dir {str(src)!r} has no .ipynb notebooks")
    manifest = generated.read_manifest(src)
    if manifest is not None:
        raise ValueError(f"--src {generated.quoted(src)} is a generated {manifest.get('kind', 'folder')}, "
                         f"not the solution edition: use {_src_flag()}")
    students = []
    for path in notebooks:  # convert everything first: nothing is written if one notebook is refused
        if path.is_symlink():
            raise ValueError(f"{path} is a symlink: the source notebooks must be real files")
        nb = nbformat.read(path, as_version=4)
        if nb.metadata.get("moe_lab", {}).get("edition") == "student":
            raise ValueError(f"--src {generated.quoted(src)}: {path.name} is a student edition (its "
                             f"solutions are gone): use {_src_flag()}")
        student, removed = student_notebook(nb, name=str(path))
        leaks = leaked_solutions(student, removed)
        if leaks:
            raise ValueError(f"{path}: a solution also appears outside its markers, so the student "
                             f"edition would show it; lines such as {leaks[0][0]!r}")
        students.append((path, student, len([c for c in nb.cells if c.cell_type == "code"
                                             and has_solution(c.source)])))
    if not any(n for _, _, n in students) and any(
            MARKER in c.source for _, nb, _ in students for c in nb.cells if c.cell_type == "code"):
        raise ValueError(f"--src {generated.quoted(src)} holds stubs but no solutions: it looks like a "
                         f"student edition; use {_src_flag()}")
    with generated.replacing(out, src, kind=KIND, replace=replace) as build:
        for path, student, _ in students:
            nbformat.write(student, build.tmp / path.name)
        for asset in sorted(src.rglob("*")):
            if (asset.is_file() and not asset.is_symlink() and asset.suffix.lower() in _ASSET_SUFFIXES
                    and ".ipynb_checkpoints" not in asset.parts):
                target = build.tmp / asset.relative_to(src)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(asset, target)
        (build.tmp / "README.md").write_text(STUDENT_README.format(table=_exercise_table(students)))
    return build.outcome


def _src_flag() -> str:
    """``--src`` and the solution edition's folder, as a shell would take them."""
    try:
        return f"--src {generated.here(paths.notebooks())}"
    except paths.MissingFiles:
        return "--src notebooks"


def _exercise_table(students) -> str:
    try:
        from moe_lab.workbook.exercises import EXERCISES
    except Exception:  # the table is a convenience; the edition does not depend on it
        EXERCISES = {}
    rows = ["| exercise | notebook | what you write |", "|---|---|---|"]
    by_prefix = {p.name[:2]: p.name for p, _, n in students if n}
    for ex in EXERCISES.values():
        rows.append(f"| `{ex.name}` | {by_prefix.get(ex.notebook, ex.notebook)} | {ex.description} |")
    return "\n".join(rows)


def _command(*args) -> str:
    """A command line a shell can paste: this interpreter (relative to here when below it) and ``args``
    (already shell words)."""
    return " ".join([generated.here(sys.executable), *map(str, args)])


def kept_notes(outcome: generated.Outcome, src: Path, src_arg=None) -> list[str]:
    """What to tell the learner about each notebook of theirs that was kept."""
    notes = []
    for kept in outcome.kept:
        mine = generated.quoted(kept.path)
        if kept.dropped:
            notes.append(f"{mine}: kept as you left it (the workbook no longer has this file)")
            continue
        extra = " (it holds solutions: a copy of the solution edition?)" if kept.solutions else ""
        if not kept.source_changed:
            notes.append(f"{mine}: kept as you left it{extra}")
            continue
        name = kept.path.relative_to(outcome.out).as_posix()
        backup = kept.path.with_name(f"{kept.path.stem}.yours{kept.path.suffix}").name
        args = ["-m", "moe_lab.workbook.student"] + (["--src", generated.here(src_arg)] if src_arg else []) \
            + ["--out", generated.here(outcome.out), "--replace", generated.quoted(name)]
        notes.append(f"{mine}: kept as you left it{extra}; its source {paths.shown(src / name)} has changed "
                     f"since your copy was generated. To replace your copy with the new one (yours is "
                     f"kept beside it, as {backup} or a numbered name):\n    {_command(*args)}")
    return notes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m moe_lab.workbook.student",
        description="Write or update the student edition of the notebooks (solutions replaced by stubs, "
                    "outputs cleared). Notebooks you changed are kept as you left them.")
    parser.add_argument("--src", default=None,
                        help="folder of solution notebooks (default: the checkout's notebooks/)")
    parser.add_argument("--out", default="student", help="folder to write (default: student)")
    parser.add_argument("--replace", action="append", default=[], metavar="NOTEBOOK",
                        help="replace this notebook even though you changed it (your copy is kept "
                             "beside it as NAME.yours.ipynb); may be given several times")
    parser.add_argument("--quiet", action="store_true",
                        help="print only what concerns your own work, and one line of summary")
    args = parser.parse_args(argv)
    try:
        src = Path(args.src) if args.src else paths.notebooks()
        out = Path(args.out).absolute()
        replace = [Path(r).absolute().relative_to(out).as_posix() if Path(r).absolute().is_relative_to(out)
                   else r for r in args.replace]  # student/03_x.ipynb or 03_x.ipynb
        outcome = make_student_edition(src, args.out, replace=replace)
    except (ValueError, OSError) as err:  # RefusedOutput, MarkerError and paths.MissingFiles among them
        print(f"moe_lab.workbook.student: {err}", file=sys.stderr)
        return 2
    notebooks = [p for p in outcome.written if p.suffix == ".ipynb"]
    if not args.quiet:
        for p in outcome.written:
            nb = nbformat.read(p, as_version=4) if p.suffix == ".ipynb" else None
            n = sum(MARKER in c.source for c in nb.cells if c.cell_type == "code") if nb else 0
            print(f"{p}" + (f": {n} exercise{'s' if n != 1 else ''}" if n else ""))
    for mine, theirs in outcome.backups.items():
        print(f"{generated.quoted(mine)}: replaced by the new student edition; your copy is now "
              f"{generated.quoted(theirs)}")
    for note in kept_notes(outcome, src, args.src):
        print(note)
    kept = len([k for k in outcome.kept if not k.dropped])
    print(f"student edition in {outcome.out}: {len(notebooks) + kept} notebooks"
          + (f", {kept} of them kept as you left them" if kept else "")
          + "; the solution edition is " + paths.shown(src))
    return 0


if __name__ == "__main__":
    sys.exit(main())
