"""The workbook's one figure rule: every plot, picture and explorer is drawn at this DPI and layout."""

from __future__ import annotations

DPI = 80
"""Dots per inch of every figure of the workbook (plots, pictures, explorers): 1 pt is 1.1 px, so 9 pt
text stays readable on a 1280x720 screen."""


def figure(width: float, height: float):
    """A matplotlib ``Figure`` of ``width`` x ``height`` inches at :data:`DPI`, with constrained layout.

    Built with ``matplotlib.figure.Figure`` rather than ``pyplot``: nothing is shown behind your back and
    nothing accumulates in pyplot's figure list.
    """
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")
