"""Answers that wait for the learner: try before you see, even after *Run All*.

What answers an exercise (the shipped kernel, a worked walk-through, a formula) is shown by a cell placed
after the exercise's check, and only once that check has passed in this kernel session, or when the
learner asks with :func:`moe_lab.workbook.exercises.solution`. What answers a prediction (a measured
table) is shown only once a prediction has been recorded with ``predict``. Until then each such cell
shows one line saying how to see it.

    after_check("masked_block")                              # the exercise's walk-through
    after_check("masked_block", show_source(tl_full.tl_full_kernel), lambda: verify.verify("tl_full"))
    after_prediction("relaxed", lambda: recorded_table())    # callables run only when revealed

A walk-through is a markdown file, ``walkthroughs/<exercise>.md`` beside this module. A line of it that
reads ``{{source moe_lab.stages.tl_full:tl_full_kernel}}`` shows that object's source, as
``show_source`` would.
"""

from __future__ import annotations

import html
import importlib
import re
import sys
import types
from pathlib import Path

from moe_lab.workbook.exercises import learn
from moe_lab.workbook.exercises.catalogue import exercise

WALKTHROUGHS = Path(__file__).resolve().parent / "walkthroughs"
_SOURCE = re.compile(r"^\{\{source ([\w.]+):([\w.]+)\}\}$")


class Shown:
    """Several things shown one after the other: text, markdown, code, tables, figures."""

    def __init__(self, parts):
        self.parts = list(parts)

    def __repr__(self) -> str:
        return "\n\n".join(repr(part) for part in self.parts)

    def _repr_html_(self) -> str:
        out = []
        for part in self.parts:
            rich = getattr(part, "_repr_html_", None)
            out.append(rich() if rich is not None else f"<pre>{html.escape(repr(part))}</pre>")
        return "\n".join(out)

    def _ipython_display_(self):  # figures and widgets display themselves, one after the other
        from IPython.display import display

        for part in self.parts:
            display(part)


class Markdown:
    """Markdown text: rendered by Jupyter, itself elsewhere."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def _repr_markdown_(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        try:
            from markdown_it import MarkdownIt
        except ImportError:
            return f"<pre>{html.escape(self.text)}</pre>"
        return MarkdownIt("commonmark").enable("table").render(self.text)


def walkthrough(name: str) -> list:
    """The walk-through of exercise ``name`` as parts to show (markdown and source), or ``[]``."""
    from moe_lab.workbook.show import show_source

    exercise(name)
    path = WALKTHROUGHS / f"{name}.md"
    if not path.is_file():
        return []
    parts, text = [], []
    for line in path.read_text().splitlines():
        found = _SOURCE.match(line.strip())
        if not found:
            text.append(line)
            continue
        if "".join(text).strip():
            parts.append(Markdown("\n".join(text).strip("\n")))
        text = []
        obj = importlib.import_module(found[1])
        for attr in found[2].split("."):
            obj = getattr(obj, attr)
        parts.append(show_source(obj))
    if "".join(text).strip():
        parts.append(Markdown("\n".join(text).strip("\n")))
    return parts


def _realised(shown) -> list:
    return [item() if callable(item) and not hasattr(item, "_repr_html_") else item for item in shown]


def after_check(name: str, *shown):
    """The walk-through of exercise ``name`` and ``shown``, once its check has passed in this kernel
    session; before that, one line saying how to see them. Callables in ``shown`` run only then."""
    ex = exercise(name)
    if learn.PASSED.get(name):
        return Shown(walkthrough(name) + _realised(shown))
    return learn.Text(f"{ex.name}: the shipped answer and its walk-through appear here once "
                      f"check(\"{ex.name}\", ...) passes (then run this cell again), or now with "
                      f"solution(\"{ex.name}\").")


def after_prediction(name: str, *shown):
    """``shown`` once a prediction for ``name`` is recorded (``predict``); before that, one line saying so.
    Callables in ``shown`` run only then."""
    exercise(name)
    if name not in learn.QUESTIONS:
        raise ValueError(f"name must be an exercise that asks for a prediction "
                         f"({', '.join(learn.QUESTIONS)}), got {name!r}")
    if name in learn.PREDICTIONS_MADE:
        return Shown(_realised(shown))
    return learn.Text(f"{name}: this answers your prediction; record one first with predict(\"{name}\", ...) "
                      f"and run this cell again.")


class _Reveal(types.ModuleType):
    """The package exports one ``reveal``: this module, which called answers a recorded prediction
    (``reveal("relaxed")``, :func:`moe_lab.workbook.exercises.learn.reveal`)."""

    def __call__(self, name: str):
        return learn.reveal(name)


sys.modules[__name__].__class__ = _Reveal


__all__ = ["Shown", "Markdown", "walkthrough", "after_check", "after_prediction", "WALKTHROUGHS"]
