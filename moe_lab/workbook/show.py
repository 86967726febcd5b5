"""Show library source and generated code in a notebook, syntax-highlighted, from the library itself.

The notebooks never keep a second copy of a kernel: they display the code that runs.

    show_source(tl_full.tl_full_kernel)         # a @triton.jit kernel, a function, a class, a module
    show_source("scalar_atomic")                # a stage's whole module, by stage name
    show_source(kernel, leave_out="WRITE_COUNTS")  # its `if WRITE_COUNTS:` branch as one line
    show_diff(tl_full.tl_full_kernel, scalar_atomic.scalar_atomic_kernel)
    show_side_by_side(tl_full.tl_full_kernel, scalar_atomic.scalar_atomic_kernel)
    show_text(ptx, "ptx")                       # any text: PTX, LLVM IR, a diff
    show_verify(verify.verify("best"))          # a verify table: a summary line, failures in red
    show_note(backend.describe())               # one small grey note

Each returns an object that renders as HTML in Jupyter (code highlighted via pygments, with inline
styles, so exported HTML keeps its colours) and as plain text anywhere else. Code longer than
:data:`SCROLL_LINES` lines sits in a scrolling box, so a long IR listing does not run down the page.
"""

from __future__ import annotations

import difflib
import html
import inspect
import re

from moe_lab import paths

_PRE_STYLE = ("font-family: var(--jp-code-font-family, monospace); font-size: 90%; white-space: pre; "
              "margin: 0; padding: 4px")
SCROLL_LINES = 40
"""Code with more lines than this is shown in a box of about this height that scrolls."""
_SCROLL_STYLE = f"max-height:{SCROLL_LINES * 1.35:.0f}em;overflow:auto;border:1px solid #e0e0e0"


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
        body = highlight(self.text, self.language)
        if self.text.count("\n") >= SCROLL_LINES:  # long listings scroll inside the page
            lines = self.text.count("\n") + 1
            body = (f'<div style="{_SCROLL_STYLE}">{body}</div>'
                    f'<div style="font-size:80%;color:#666">{lines} lines: scroll the box</div>')
        return head + body


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
        from moe_lab.registry import stage

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
    where = paths.shown(path) if path else "?"
    first = max(first, 1)
    return "".join(lines), f"{where}, lines {first}-{first + len(lines) - 1}"


def show_source(obj, *, leave_out: str = "", note: str = "") -> Code:
    """The source of ``obj`` as the library has it, with its file and line numbers.

    ``leave_out="NAME"`` shows the branch under ``if NAME:`` as one line, ``...  # note``: for a kernel
    whose branch answers an exercise the learner has not met yet (``note`` says so).
    """
    text, where = source(obj)
    if leave_out:
        text = without_branch(text, leave_out, note or "left out here")
        where += f" (the {leave_out} branch left out)"
    return Code(text.rstrip("\n"), "python", where)


def without_branch(text: str, name: str, note: str) -> str:
    """``text`` with the body of its ``if name:`` branch replaced by one line ``...  # note`` (the
    ``if`` line keeps its code, not its comment). A ValueError when ``text`` has no such branch."""
    lines = text.split("\n")
    head = re.compile(rf"^(\s*)(?:if|elif)\s+{re.escape(name)}\s*:")
    at = next((i for i, line in enumerate(lines) if head.match(line)), None)
    if at is None:
        raise ValueError(f"leave_out={name!r}: the source has no `if {name}:` branch to leave out")
    indent = len(head.match(lines[at])[1])
    end = at + 1
    def inside(line: str) -> bool:
        return not line.strip() or len(line) - len(line.lstrip()) > indent

    while end < len(lines) and inside(lines[end]):
        end += 1
    while end > at + 1 and not lines[end - 1].strip():  # blank lines after the branch stay
        end -= 1
    body = lines[at + 1] if at + 1 < end else lines[at]
    body_indent = body[: len(body) - len(body.lstrip())] if at + 1 < end else " " * (indent + 4)
    header = lines[at].split("  #")[0].rstrip()
    return "\n".join(lines[:at] + [header, f"{body_indent}...  # {note}"] + lines[end:])


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
        # Two columns where each has room for about 90 characters (a wide screen); at 1280 px they stack.
        box = '<div style="flex:1 1 48em;min-width:0;overflow-x:auto">{}</div>'
        return ('<div style="display:flex;flex-wrap:wrap;gap:4px 12px;font-size:85%">'
                + box.format(self.left._repr_html_()) + box.format(self.right._repr_html_()) + "</div>")


def show_side_by_side(a, b) -> SideBySide:
    """The sources of two objects next to each other, to compare by eye when a diff is all noise."""
    return SideBySide(show_source(a), show_source(b))


def show_text(text: str, language: str = "text", header: str = "") -> Code:
    """Any text (PTX: ``"ptx"``, LLVM IR: ``"llvm"``, a diff: ``"diff"``), highlighted."""
    return Code(text.rstrip("\n"), language, header)


class Note:
    """One short line of text shown small and grey (HTML), or as itself (plain text)."""

    def __init__(self, text: str):
        self.text = str(text)

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        return (f'<div style="font-size:90%;color:#555;border-left:3px solid #9ecae1;padding:2px 8px">'
                f"{html.escape(self.text)}</div>")


def show_note(text: str) -> Note:
    """A small note, for a remark that is not a result (e.g. ``backend.describe()``)."""
    return Note(text)


class VerifyTable:
    """A :func:`moe_lab.verify.verify` table: a summary line, then the cases, failures in red.

    The plain text is the summary and the table as pandas prints it; ``.df`` is the DataFrame.
    """

    def __init__(self, df, title: str = ""):
        if "ok" not in getattr(df, "columns", ()):
            raise TypeError(f"show_verify: expected the DataFrame verify.verify(...) returns (with an 'ok' "
                            f"column), got {type(df).__name__}; call show_verify(verify.verify(stage))")
        self.df, self.title = df, title

    @property
    def failed(self) -> int:
        return int((~self.df["ok"].astype(bool)).sum())

    def summary(self) -> str:
        n, bad = len(self.df), self.failed
        head = f"{self.title}: " if self.title else ""
        return head + (f"all {n} cases pass" if not bad else f"{bad} of {n} cases FAIL")

    def __repr__(self) -> str:
        return self.summary() + "\n" + self.df.to_string()

    def _repr_html_(self) -> str:
        bad = self.failed
        color = "#1a7f37" if not bad else "#b00020"
        rows = []
        for case, row in self.df.iterrows():
            ok = bool(row["ok"])
            style = "" if ok else ' style="background:#fde2e1"'
            mark = ('<span style="color:#1a7f37">&#10003; pass</span>' if ok
                    else '<span style="color:#b00020;font-weight:bold">&#10007; FAIL</span>')
            detail = html.escape(str(row.get("detail", "")))
            td = "<td style='text-align:left'>{}</td>"
            cells = (html.escape(str(case)), mark, detail)
            rows.append(f"<tr{style}>" + "".join(td.format(c) for c in cells) + "</tr>")
        return (f'<div style="font-weight:bold;color:{color};margin:2px 0">'
                f"{html.escape(self.summary())}</div>"
                '<table style="font-size:90%"><thead><tr><th style="text-align:left">case</th>'
                '<th style="text-align:left">result</th><th style="text-align:left">detail</th></tr></thead>'
                f"<tbody>{''.join(rows)}</tbody></table>")


def show_verify(df, title: str = "") -> VerifyTable:
    """``verify.verify(...)``'s table, readable: a pass/fail summary on top, failing cases in red."""
    return VerifyTable(df, title)


__all__ = ["Code", "Note", "SideBySide", "VerifyTable", "highlight", "source", "show_source",
           "without_branch", "show_diff", "show_side_by_side", "show_text", "show_note", "show_verify",
           "SCROLL_LINES"]
