"""Static teaching pictures for the notebooks, one module per picture family.

Each function returns a matplotlib ``Figure`` sized to read on a 1280x720 screen; the notebooks show it
before the prose that explains it.
"""

DPI = 80
"""Dots per inch of every figure of the workbook (plots, pictures, explorers): 1 pt is 1.1 px, so 9 pt
text stays readable on a 1280x720 screen."""


def figure(width: float, height: float):
    """A figure of ``width`` x ``height`` inches at :data:`DPI`, with constrained layout."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")
