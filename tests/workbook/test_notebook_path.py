"""The workbook's path: every notebook in order, each with its time, its kernel and a link to the next.

* the notebooks are the eleven of the path, 00 to 10;
* each one's kernel is the workbook's (``moe-lab``, installed by ``make lab``/``make setup``);
* each one's first markdown cell carries exactly one time line, ``**Time:** N min`` on the
  three-hour path (00-07: with a 10-minute break, at most 190) or ``**Take-home:** about N min`` (08-10);
* each one ends with a markdown link to the next one (the last back to 00);
* ``notebooks/README.md`` and 00's table link to every notebook, with the same times.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
PATH = ["00_tour", "01_the_problem", "02_first_kernels", "03_vectorise", "04_scalar_atomic",
        "05_contention_and_histograms", "06_decode_graphs_memory_order", "07_reading_the_benchmark"]
TAKE_HOME = ["08_expert_parallel", "09_explorers", "10_dispatch"]
ORDER = PATH + TAKE_HOME
PATH_LIMIT = 190      # minutes of the path 00-07, its one 10-minute break included
BREAK_MINUTES = 10
KERNELSPEC = {"display_name": "moe-lab (Python)", "language": "python", "name": "moe-lab"}
SET_KERNELSPEC = (  # the fix: run from the repository root
    """python -c 'import json, glob, pathlib; [pathlib.Path(p).write_text(json.dumps({"""
    """**(d := json.load(open(p))), "metadata": {**d["metadata"], "kernelspec": {"""
    """"display_name": "moe-lab (Python)", "language": "python", "name": "moe-lab"}}}, """
    """indent=1, ensure_ascii=False) + "\\n") for p in sorted(glob.glob("notebooks/*.ipynb"))]'""")
TIME_RE = re.compile(r"^\*\*Time:\*\* (\d+) min$|^\*\*Take-home:\*\* about (\d+) min$", re.M)


def load(name: str) -> dict:
    path = NOTEBOOKS / f"{name}.ipynb"
    if not path.exists():
        pytest.fail(f"{path.name} is missing from notebooks/")
    return json.loads(path.read_text())


def source(cell) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def first_markdown(nb) -> str:
    return next(source(c) for c in nb["cells"] if c["cell_type"] == "markdown")


def times(name: str) -> tuple[str, int]:
    """``("Time" or "Take-home", minutes)`` from the notebook's first markdown cell."""
    found = TIME_RE.findall(first_markdown(load(name)))
    assert len(found) == 1, (f"{name}: the first markdown cell needs exactly one line '**Time:** N min' or "
                             f"'**Take-home:** about N min', found {len(found)}")
    path_min, home_min = found[0]
    return ("Time", int(path_min)) if path_min else ("Take-home", int(home_min))


def test_the_notebooks_are_the_path():
    present = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
    assert present == ORDER, f"notebooks/ holds {present}, the path is {ORDER}"


@pytest.mark.parametrize("name", ORDER)
def test_kernel_is_the_workbooks(name):
    spec = load(name)["metadata"].get("kernelspec", {})
    same = spec.get("name") == KERNELSPEC["name"] and spec.get("display_name") == KERNELSPEC["display_name"]
    assert same, f"{name}: kernelspec is {spec}; set every notebook's with:\n{SET_KERNELSPEC}"


@pytest.mark.parametrize("name", ORDER)
def test_ends_with_a_link_to_the_next(name):
    nxt = ORDER[(ORDER.index(name) + 1) % len(ORDER)]
    cells = [c for c in load(name)["cells"] if source(c).strip()]
    last = cells[-1]
    want = f"[{nxt}]({nxt}.ipynb)"
    assert last["cell_type"] == "markdown" and want in source(last), (
        f"{name} must end with a markdown cell 'Next: {want}', ends with: {source(last)[-200:]!r}")


@pytest.mark.parametrize("name", ORDER)
def test_says_how_long_it_takes(name):
    kind, minutes = times(name)
    want = "Time" if name in PATH else "Take-home"
    assert kind == want, f"{name}: a '{kind}' line, expected '**{want}:**'"
    assert 5 <= minutes <= 120


def test_the_path_takes_three_hours():
    total = sum(times(n)[1] for n in PATH) + BREAK_MINUTES
    assert total <= PATH_LIMIT, {n: times(n)[1] for n in PATH}


def test_readme_and_tour_link_every_notebook_with_its_time():
    readme = (NOTEBOOKS / "README.md").read_text()
    tour = "\n".join(source(c) for c in load("00_tour")["cells"] if c["cell_type"] == "markdown")
    for name in ORDER:
        assert f"({name}.ipynb)" in readme, f"notebooks/README.md does not link {name}"
        assert f"({name}.ipynb)" in tour, f"00_tour's table does not link {name}"
    for name in PATH:
        minutes = times(name)[1]
        row = next((line for line in readme.splitlines() if f"({name}.ipynb)" in line and "|" in line), "")
        assert f"| {minutes} min |" in row, f"README has {name} as {row!r}; its first cell: {minutes} min"
        row = next((line for line in tour.splitlines() if f"({name}.ipynb)" in line and "|" in line), "")
        assert f"| {minutes} min |" in row, f"00's table has {name} as {row!r}; its first cell: {minutes} min"


def test_make_lab_opens_the_tour_with_news_off(load_tool):
    """``make lab``, ``make solutions`` and conda users run ``tools/lab.py``: the notebooks' kernel, the
    edition's tour, no news; the student edition is written or updated first, the solution edition not."""
    root = NOTEBOOKS.parent
    lab = load_tool("lab")
    for edition, folder in (("student", "student"), ("solution", "notebooks")):
        *before, jupyter = lab.commands(edition)
        assert jupyter[1:4] == ["-m", "jupyter", "lab"], jupyter
        assert "--LabApp.default_url=/lab/tree/00_tour.ipynb" in jupyter
        assert f"--notebook-dir={folder}" in jupyter
        assert f"--LabApp.app_settings_dir={root / '.jupyter' / 'lab' / 'settings'}" in jupyter
        assert [c[1:4] for c in before] == ([["-m", "moe_lab.workbook.student", "--out"]]
                                            if edition == "student" else [])
    overrides = json.loads((root / ".jupyter" / "lab" / "settings" / "overrides.json").read_text())
    assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"
    assert {"name": lab.KERNEL_NAME, "display_name": lab.KERNEL_DISPLAY} == \
        {k: KERNELSPEC[k] for k in ("name", "display_name")}
    makefile = (root / "Makefile").read_text()
    recipe = {target: makefile.split(f"\n{target}:", 1)[1].split("\n\n", 1)[0]
              for target in ("lab", "solutions")}
    assert "tools/lab.py" in recipe["lab"] and "--solutions" not in recipe["lab"], recipe
    assert "tools/lab.py --solutions" in recipe["solutions"], recipe
