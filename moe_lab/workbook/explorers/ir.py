"""The IR diff viewer: what two stages compile to for an H100, side by side as a diff, no GPU needed."""

from __future__ import annotations

import functools
import html

import ipywidgets

from moe_lab.inspection import ir
from moe_lab.registry import STAGES
from moe_lab.workbook.explorers.explorer import Explorer, control


def ir_stages() -> tuple[str, ...]:
    """The stages with one Triton kernel of their own, in registry order (read when asked, so a stage
    registered later is there too)."""
    return tuple(s.name for s in STAGES.values() if s.single_kernel)


@functools.lru_cache(maxsize=64)
def _ir_texts(stage_a, stage_b, level, topk, num_local, context):
    """``(diff, atomics of a, atomics of b)``, compiled once per choice (compiling takes seconds)."""
    ir.prefetch([stage_a, stage_b], topk=topk, num_local=num_local)  # one compile job for both
    diff = ir.ir_diff(stage_a, stage_b, level=level, context=context, topk=topk, num_local=num_local)
    atoms = [ir.atomic_lines(ir.compile_ir(s, level, topk=topk, num_local=num_local))
             for s in (stage_a, stage_b)]
    return diff, atoms[0], atoms[1]


def ir_diff_view(stage_a="scalar_atomic", stage_b="relaxed", level="ptx", topk=8, num_local=32,
                 context=3):
    """A highlighted unified diff of the code ``stage_a`` and ``stage_b`` compile to for an H100.

    Uses :func:`moe_lab.inspection.ir.ir_diff` (compiles for sm_90 on this machine; no GPU needed). Comparing
    ``scalar_atomic`` with ``relaxed`` is the comparison of memory orders (acq_rel vs relaxed).
    Returns ``(html, data)``: ``data["diff"]`` the plain diff (``""`` when the code is the same),
    ``added``/``removed`` line counts, and ``atomics_a``/``atomics_b``, the atomic instructions of
    each side (:func:`moe_lab.inspection.ir.atomic_lines`).
    """
    from moe_lab.workbook.show import highlight

    level = str(level).lower()
    if level not in ir.LEVELS:
        raise ValueError(f"level must be one of {', '.join(ir.LEVELS)}, got {level!r}")
    diff, atoms_a, atoms_b = _ir_texts(stage_a, stage_b, level, int(topk), int(num_local), int(context))
    lines = diff.splitlines()
    added = sum(1 for s in lines if s.startswith("+") and not s.startswith("+++"))
    removed = sum(1 for s in lines if s.startswith("-") and not s.startswith("---"))
    def atoms(name, found):
        kinds = sorted(set(found))
        shown = "; ".join(html.escape(k) for k in kinds[:4]) + (" ..." if len(kinds) > 4 else "")
        return (f"<li><b>{html.escape(name)}</b>: {len(found)} atomic line(s): "
                f"<code>{shown or '-'}</code></li>")

    head = (f'<div style="font-size:90%;margin:2px 0"><b>{html.escape(stage_a)}</b> &rarr; '
            f'<b>{html.escape(stage_b)}</b>, {level.upper()} for an H100 (sm_90), topk={topk}, '
            f'num_local={num_local}: {removed} line(s) removed, {added} added'
            f'<ul style="margin:2px 0">{atoms(stage_a, atoms_a)}{atoms(stage_b, atoms_b)}</ul></div>')
    body = highlight(diff, "diff") if diff.strip() else \
        '<pre style="color:#555">(identical: the two stages compile to the same code)</pre>'
    page = head + f'<div style="max-height:320px;overflow:auto;font-size:85%">{body}</div>'
    return page, {"diff": diff, "added": added, "removed": removed, "atomics_a": atoms_a,
                  "atomics_b": atoms_b, "identical": not diff.strip()}



def ir_explorer(stage_a="scalar_atomic", stage_b="relaxed", level="ptx", topk=8, num_local=32) -> Explorer:
    """IR diff viewer (:func:`ir_diff_view`): two stages and a level, compiled for an H100."""
    w = ipywidgets
    c = {"stage_a": control(w.Dropdown, options=list(ir_stages()), value=stage_a, description="from"),
         "stage_b": control(w.Dropdown, options=list(ir_stages()), value=stage_b, description="to"),
         "level": control(w.Dropdown, options=[(lv.upper(), lv) for lv in ir.LEVELS], value=level,
                          description="level"),
         "topk": control(w.Dropdown, options=[2, 6, 8], value=topk, description="topk"),
         "num_local": control(w.Dropdown, options=[8, 16, 32, 64, 128], value=num_local,
                              description="local experts")}
    return Explorer(ir_diff_view, c, name="IR diff viewer")
