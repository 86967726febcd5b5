"""Static teaching pictures for the notebooks, one module per picture family.

Each function returns a matplotlib ``Figure`` sized to read on a 1280x720 screen (the figure rule is
:mod:`moe_lab.measure.figure`); the notebooks show it before the prose that explains it.
"""
