"""The solution markers of the solution edition, and how to find them.

In the solution edition (``notebooks/``) an exercise's answer sits in a code cell between two marker
lines, each alone on its line at the indentation of the code it belongs to::

    # BEGIN SOLUTION
    ...
    # END SOLUTION

Only such lines in code cells are markers: prose that mentions them (a markdown cell, a string, a line
with other text on it) is not.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

BEGIN = "# BEGIN SOLUTION"
END = "# END SOLUTION"

BEGIN_RE = re.compile(r"^\s*# BEGIN SOLUTION\s*$")
END_RE = re.compile(r"^\s*# END SOLUTION\s*$")


def has_solution(source: str) -> bool:
    """Whether a code cell's ``source`` holds a solution (a line that is exactly the begin marker)."""
    return any(BEGIN_RE.match(line) for line in source.split("\n"))


def without_solutions(source: str) -> str:
    """A code cell's ``source`` less its solutions (the markers and every line between them)."""
    out, inside = [], False
    for line in source.split("\n"):
        if BEGIN_RE.match(line):
            inside = True
        elif END_RE.match(line):
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out)


def holds_solutions(path: Path) -> bool:
    """Whether the notebook at ``path`` has a code cell with a solution (False for a file that is not a
    readable notebook)."""
    try:
        cells = json.loads(Path(path).read_text(errors="replace")).get("cells", [])
    except (OSError, ValueError, AttributeError):
        return False
    for cell in cells if isinstance(cells, list) else []:
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            source = cell.get("source", "")
            if has_solution("".join(source) if isinstance(source, list) else str(source)):
                return True
    return False


__all__ = ["BEGIN", "END", "BEGIN_RE", "END_RE", "has_solution", "without_solutions", "holds_solutions"]
