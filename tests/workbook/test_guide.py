"""The instructor guide's timetable and the notebooks' own time lines say the same thing.

Every notebook states its time in its first markdown cell, in exactly one of two forms:
``**Time:** NN min`` (on the three-hour path) or ``**Take-home:** about NN min``. The guide's table under
"Learning path and timing" lists every notebook with its minutes and one break row
(``| h:mm-h:mm | break | 10 | ...``) between two notebooks of the path; the path (``00`` to ``07``) with
its break takes at most 190 minutes, and the clock column follows from the minutes, the break included.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
GUIDE = ROOT / "docs" / "instructor-guide.md"
PATH_LIMIT = 190                                          # minutes, the break included
BREAK_MINUTES = 10
PATH_NOTEBOOKS = tuple(f"{n:02d}" for n in range(8))      # 00 .. 07: the three-hour path
TIME = re.compile(r"\*\*Time:\*\* (\d+) min\b")
TAKE_HOME = re.compile(r"\*\*Take-home:\*\* about (\d+) min\b")
ROW = re.compile(r"^\| *(?P<clock>[^|]+?) *\| *`(?P<notebook>\d\d_\w+\.ipynb)` *\| *(?P<minutes>[^|]+?) *\|")
BREAK = re.compile(r"^\| *(?P<clock>[^|]+?) *\| *break *\| *(?P<minutes>\d+) *\|")


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


def _timetable(text: str) -> list[str]:
    start = text.index("## Learning path and timing")
    end = text.index("\n## ", start + 1)
    return text[start:end].splitlines()


def guide_rows(text: str) -> dict[str, tuple[str, str]]:
    """``{notebook: (clock column, minutes column)}`` from the timetable of the guide."""
    rows = {}
    for line in _timetable(text):
        m = ROW.match(line)
        if m:
            if m["notebook"] in rows:
                raise AssertionError(f"the guide's timetable lists {m['notebook']} twice")
            rows[m["notebook"]] = (m["clock"], m["minutes"])
    return rows


def guide_path(text: str) -> list[tuple[str, str, int | None]]:
    """The timetable's path in order: ``(notebook or "break", clock column, minutes)``; a notebook's
    minutes are None here (they come from the notebook itself)."""
    path = []
    for line in _timetable(text):
        m, b = ROW.match(line), BREAK.match(line)
        if m and m["notebook"][:2] in PATH_NOTEBOOKS:
            path.append((m["notebook"], m["clock"], None))
        elif b:
            path.append(("break", b["clock"], int(b["minutes"])))
    return path


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
    path = guide_path(GUIDE.read_text())
    names = [name for name, _, _ in path if name != "break"]
    assert [name[:2] for name in names] == list(PATH_NOTEBOOKS), \
        "the path must be notebooks 00 to 07, each once, in order"
    breaks = [(i, minutes) for i, (name, _, minutes) in enumerate(path) if name == "break"]
    assert len(breaks) == 1, (f"the timetable needs exactly one break row ('| h:mm-h:mm | break | "
                              f"{BREAK_MINUTES} | ...'), found {len(breaks)}")
    at, minutes = breaks[0]
    assert minutes == BREAK_MINUTES, f"the break is {minutes} min, the path plans {BREAK_MINUTES}"
    assert 0 < at < len(path) - 1, "the break sits between two notebooks of the path, not at an end"
    elapsed = 0
    for name, clock_col, minutes in path:
        if minutes is None:
            minutes = notebook_time(NOTEBOOKS / name)[1]
        want = f"{clock(elapsed)}-{clock(elapsed + minutes)}"
        assert clock_col == want, f"{name}: the guide's clock says {clock_col!r}, the minutes give {want!r}"
        elapsed += minutes
    assert elapsed <= PATH_LIMIT, (f"the path 00-07 with its break takes {elapsed} min, more than "
                                   f"{PATH_LIMIT}: " + ", ".join(f"{name[:5]} {m}" for name, _, m in path))


def test_the_path_reader_needs_one_break_between_notebooks(tmp_path):
    table = "\n".join(["## Learning path and timing", "", "| time | notebook | minutes | what | exercises |",
                       "|---|---|---|---|---|",
                       "| 0:00-0:10 | `00_tour.ipynb` | 10 | | |", "| 0:10-0:20 | break | 10 | | |",
                       "| 0:20-0:35 | `01_the_problem.ipynb` | 15 | | |", "", "## Next", ""])
    assert guide_path(table) == [("00_tour.ipynb", "0:00-0:10", None), ("break", "0:10-0:20", 10),
                                 ("01_the_problem.ipynb", "0:20-0:35", None)]
