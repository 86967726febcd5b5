"""Show library source and generated code in a notebook, syntax-highlighted, from the library itself.

The notebooks never keep a second copy of a kernel: they display the code that runs.

    show_source(tl_full.tl_full_kernel)         # a @triton.jit kernel, a function, a class, a module
    show_source("scalar_atomic")                # a stage's whole module, by stage name
    show_diff(tl_full.tl_full_kernel, scalar_atomic.scalar_atomic_kernel)
    show_side_by_side(tl_full.tl_full_kernel, scalar_atomic.scalar_atomic_kernel)
    show_text(ptx, "ptx")                       # any text: PTX, LLVM IR, a diff

Each returns a :class:`Code` object that renders as highlighted HTML in Jupyter (via pygments, with
inline styles, so exported HTML keeps its colours) and as plain text anywhere else.
"""

from __future__ import annotations

import difflib
import html
import inspect
import os
from pathlib import Path

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent
_PRE_STYLE = ("font-family: var(--jp-code-font-family, monospace); font-size: 90%; white-space: pre; "
              "margin: 0; padding: 4px")


class Code:
    """A piece of text with a language; ``_repr_html_`` highlights it, ``repr`` is the plain text."""

    def __init__(self, text: str, language: str = "python", header: str = ""):
        self.text = text
        self.language = language
        self.header = header

    def __str__(self) -> str:
        return (f"# {self.header}\n" if self.header else "") + self.text

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        head = (f'<div style="font-size:85%;color:#666;margin-bottom:2px">{html.escape(self.header)}</div>'
                if self.header else "")
        return head + highlight(self.text, self.language)


def highlight(text: str, language: str = "python") -> str:
    """``text`` as HTML, highlighted with pygments when it is installed and knows ``language``."""
    try:
        from pygments import highlight as _highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import get_lexer_by_name
        from pygments.util import ClassNotFound
    except ImportError:
        return _plain(text)
    try:
        lexer = get_lexer_by_name(language)
    except ClassNotFound:
        return _plain(text)
    formatter = HtmlFormatter(noclasses=True, style="default", cssclass="moe-lab-code",
                              prestyles=_PRE_STYLE)
    return f'<div style="overflow-x:auto">{_highlight(text, lexer, formatter)}</div>'


def _plain(text: str) -> str:
    return f'<pre style="{_PRE_STYLE}">{html.escape(text)}</pre>'


def _target(obj):
    """The Python object whose source to read: unwrap Triton kernels, resolve stage names."""
    if isinstance(obj, str):
        from .registry import stage

        return stage(obj).load()
    fn = getattr(obj, "fn", None)  # triton.JITFunction (and autotuners) keep the Python function here
    while fn is not None and not inspect.isfunction(obj):
        obj, fn = fn, getattr(fn, "fn", None)
    return obj


def source(obj) -> tuple[str, str]:
    """``(source text, "path, lines a-b")`` of a function, kernel, class, module or stage name."""
    target = _target(obj)
    try:
        lines, first = inspect.getsourcelines(target)
        path = inspect.getsourcefile(target)
    except (TypeError, OSError) as err:
        raise TypeError(f"show_source: cannot find the source of {obj!r} ({err}); pass a function, a "
                        f"@triton.jit kernel, a class, a module or a stage name") from None
    where = os.path.relpath(path, _PACKAGE_ROOT) if path else "?"
    if where.startswith(".."):
        where = path
    first = max(first, 1)
    return "".join(lines), f"{where}, lines {first}-{first + len(lines) - 1}"


def show_source(obj) -> Code:
    """The source of ``obj`` as the library has it, with its file and line numbers."""
    text, where = source(obj)
    return Code(text.rstrip("\n"), "python", where)


def show_diff(a, b, *, context: int = 3) -> Code:
    """Unified diff between the sources of two objects (``a`` old, ``b`` new)."""
    text_a, where_a = source(a)
    text_b, where_b = source(b)
    diff = difflib.unified_diff(text_a.splitlines(keepends=True), text_b.splitlines(keepends=True),
                                fromfile=where_a, tofile=where_b, n=context)
    return Code("".join(diff).rstrip("\n") or "(no difference)", "diff")


class SideBySide:
    """Two :class:`Code` blocks next to each other (HTML), or one after the other (plain text)."""

    def __init__(self, left: Code, right: Code):
        self.left, self.right = left, right

    def __repr__(self) -> str:
        return f"{self.left!r}\n\n{self.right!r}"

    def _repr_html_(self) -> str:
        cell = '<td style="vertical-align:top;text-align:left;padding:0 6px">{}</td>'
        return ('<table style="border:none;font-size:85%"><tr>' + cell.format(self.left._repr_html_())
                + cell.format(self.right._repr_html_()) + "</tr></table>")


def show_side_by_side(a, b) -> SideBySide:
    """The sources of two objects next to each other, to compare by eye when a diff is all noise."""
    return SideBySide(show_source(a), show_source(b))


def show_text(text: str, language: str = "text", header: str = "") -> Code:
    """Any text (PTX: ``"ptx"``, LLVM IR: ``"llvm"``, a diff: ``"diff"``), highlighted."""
    return Code(text.rstrip("\n"), language, header)


__all__ = ["Code", "SideBySide", "highlight", "source", "show_source", "show_diff", "show_side_by_side",
           "show_text"]
