"""The instructor guide's timetable and the notebooks' own time lines say the same thing.

Every notebook states its time in its first markdown cell, in exactly one of two forms:
``**Time:** NN min`` (on the three-hour path) or ``**Take-home:** about NN min``. The guide's table under
"Learning path and timing" lists every notebook with its minutes; the path (``00`` to ``07``) adds up to
180 minutes and its clock column follows from the minutes.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
GUIDE = ROOT / "docs" / "instructor-guide.md"
PATH_MINUTES = 180
PATH_NOTEBOOKS = tuple(f"{n:02d}" for n in range(8))      # 00 .. 07: the three-hour path
TIME = re.compile(r"\*\*Time:\*\* (\d+) min\b")
TAKE_HOME = re.compile(r"\*\*Take-home:\*\* about (\d+) min\b")
ROW = re.compile(r"^\| *(?P<clock>[^|]+?) *\| *`(?P<notebook>\d\d_\w+\.ipynb)` *\| *(?P<minutes>[^|]+?) *\|")


def notebook_time(path: Path) -> tuple[str, int]:
    """``("path", minutes)`` or ``("take-home", minutes)`` from the first markdown cell of ``path``."""
    cells = json.loads(path.read_text())["cells"]
    first = next((c for c in cells if c["cell_type"] == "markdown"), None)
    if first is None:
        raise AssertionError(f"{path.name} has no markdown cell to carry its time line")
    text = "".join(first["source"])
    found = ([("path", int(m)) for m in TIME.findall(text)]
             + [("take-home", int(m)) for m in TAKE_HOME.findall(text)])
    if len(found) != 1:
        raise AssertionError(f"{path.name}: the first markdown cell must carry exactly one time line "
                             f"('**Time:** NN min' or '**Take-home:** about NN min'), found {len(found)}")
    return found[0]


def guide_rows(text: str) -> dict[str, tuple[str, str]]:
    """``{notebook: (clock column, minutes column)}`` from the timetable of the guide."""
    start = text.index("## Learning path and timing")
    end = text.index("\n## ", start + 1)
    rows = {}
    for line in text[start:end].splitlines():
        m = ROW.match(line)
        if m:
            if m["notebook"] in rows:
                raise AssertionError(f"the guide's timetable lists {m['notebook']} twice")
            rows[m["notebook"]] = (m["clock"], m["minutes"])
    return rows


def clock(minutes: int) -> str:
    return f"{minutes // 60}:{minutes % 60:02d}"


def test_time_line_reader_accepts_the_two_forms_and_nothing_else(tmp_path):
    def nb(text):
        path = tmp_path / "x.ipynb"
        path.write_text(json.dumps({"cells": [{"cell_type": "markdown", "source": [text]}]}))
        return path

    assert notebook_time(nb("# T\n\n**Time:** 35 min\n")) == ("path", 35)
    assert notebook_time(nb("# T\n\n**Take-home:** about 40 min\n")) == ("take-home", 40)
    for bad in ("# T\n\nTime: 35 min", "# T\n\n**Time:** 35 min, **Take-home:** about 5 min", "# T"):
        with pytest.raises(AssertionError, match="exactly one time line"):
            notebook_time(nb(bad))


def test_every_notebook_states_its_time_in_its_first_cell():
    notebooks = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    assert notebooks, "no notebooks found"
    for path in notebooks:
        kind, minutes = notebook_time(path)
        expected = "path" if path.name[:2] in PATH_NOTEBOOKS else "take-home"
        where, form = (("on the three-hour path", "**Time:** NN min") if expected == "path"
                       else ("take-home", "**Take-home:** about NN min"))
        assert kind == expected, f"{path.name} is {where}: its time line should be {form}"
        assert 0 < minutes <= 90, f"{path.name}: {minutes} min is not a plausible time for one notebook"


def test_the_guide_lists_every_notebook_with_the_notebooks_own_time():
    rows = guide_rows(GUIDE.read_text())
    notebooks = {p.name: p for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")}
    assert set(rows) == set(notebooks), (f"the guide's timetable and notebooks/ differ: only in the guide "
                                         f"{sorted(set(rows) - set(notebooks))}, only in notebooks/ "
                                         f"{sorted(set(notebooks) - set(rows))}")
    for name, path in sorted(notebooks.items()):
        kind, minutes = notebook_time(path)
        clock_col, minutes_col = rows[name]
        if kind == "path":
            assert minutes_col == str(minutes), (f"{name} says **Time:** {minutes} min; "
                                                 f"the guide's table says {minutes_col!r}: "
                                                 f"update the guide's timetable")
        else:
            assert (clock_col, minutes_col) == ("take-home", f"about {minutes}"), (
                f"{name} says **Take-home:** about {minutes} min; the guide's row says {clock_col!r}, "
                f"{minutes_col!r}: mark it 'take-home' with 'about {minutes}'")


def test_the_path_is_three_hours_and_the_clock_adds_up():
    rows = guide_rows(GUIDE.read_text())
    path = [(name, notebook_time(NOTEBOOKS / name)[1]) for name in sorted(rows) if name[:2] in PATH_NOTEBOOKS]
    assert [name[:2] for name, _ in path] == list(PATH_NOTEBOOKS), \
        "the path must be notebooks 00 to 07, each once"
    total = sum(minutes for _, minutes in path)
    assert total == PATH_MINUTES, (f"the path 00-07 adds up to {total} min, not {PATH_MINUTES}: "
                                   + ", ".join(f"{name[:2]} {m}" for name, m in path))
    elapsed = 0
    for name, minutes in path:
        want = f"{clock(elapsed)}-{clock(elapsed + minutes)}"
        assert rows[name][0] == want, \
            f"{name}: the guide's clock says {rows[name][0]!r}, the minutes give {want!r}"
        elapsed += minutes
