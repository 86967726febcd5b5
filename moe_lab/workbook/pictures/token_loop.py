"""Programs over tokens and their top-k slots: which program walks which slot, and in which order.

``programs_over_tokens(num_tokens, topk, tokens_per_program)`` draws one row per token and one column per
top-k slot. A band on the left names the program that owns each token (program ``pid`` owns tokens
``pid * tokens_per_program`` to ``pid * tokens_per_program + tokens_per_program - 1``); each cell shows the
flat slot ``token * topk + k`` and the step at which that program reaches it (``step`` counts the
program's scalar loop: token by token, slot by slot). Rows past ``num_tokens`` (the last program's
spare tokens) are grey: the program skips them. Given the ids and a rank's ``start``/``num_local``, the
cells show each id and mark the local ones, whose atomic adds 1 to a counter.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from moe_lab.measure.figure import figure
from moe_lab.workbook.pictures.tiling import _IN_BOUNDS, _LOCAL, _MASKED, _positive_int

MAX_ROWS = 24  # beyond this the labels cannot be read at 1280x720; pass a smaller example
MAX_TOPK = 10
_PROGRAM_BANDS = ("#fdd0a2", "#c7e9c0")  # alternate programs: orange, green


def programs_over_tokens(num_tokens: int, topk: int, tokens_per_program: int, *, ids=None,
                         start: int | None = None, num_local: int | None = None, title: str = "") -> Figure:
    """Tokens (rows) by top-k slots (columns), banded by the program that owns each token.

    Each cell shows the flat slot and the program's step number there (and, with ``ids``, the id).
    Rows past ``num_tokens`` are grey (skipped by ``if token < num_tokens``). With ``ids``, ``start`` and
    ``num_local``, cells holding a local id are blue: those steps add 1 to a counter.
    """
    num_tokens = _positive_int("num_tokens", num_tokens)
    topk = _positive_int("topk", topk)
    per_program = _positive_int("tokens_per_program", tokens_per_program)
    num_programs = -(-num_tokens // per_program)
    rows = num_programs * per_program
    if rows > MAX_ROWS or topk > MAX_TOPK:
        raise ValueError(f"num_tokens={num_tokens}, tokens_per_program={per_program} and topk={topk} give "
                         f"{rows} rows of {topk} slots, more than {MAX_ROWS} rows of {MAX_TOPK} readable "
                         f"ones; draw a smaller example")
    values = None
    if ids is not None:
        values = np.asarray(ids.cpu() if hasattr(ids, "cpu") else ids)
        if values.shape != (num_tokens, topk):
            raise ValueError(f"ids has shape {tuple(values.shape)} but num_tokens and topk give "
                             f"{(num_tokens, topk)}; pass the [num_tokens, topk] ids")
        if (start is None) != (num_local is None):
            raise ValueError("pass both start and num_local to mark the local slots, or neither")

    band = 0.9  # width of the program band, in cell widths
    fig = figure(min(12.0, max(9.0, 3.0 + 1.25 * topk)), 1.4 + 0.42 * rows)
    ax = fig.subplots()
    for p in range(num_programs):
        top = p * per_program
        ax.add_patch(Rectangle((-band, top), band, per_program, facecolor=_PROGRAM_BANDS[p % 2],
                               edgecolor="#555555", linewidth=1.2))
        ax.text(-band / 2, top + per_program / 2, f"program\n{p}", ha="center", va="center", fontsize=9,
                fontweight="bold")
    for token in range(rows):
        p, i = divmod(token, per_program)
        for k in range(topk):
            step = i * topk + k
            inside = token < num_tokens
            color = _IN_BOUNDS if inside else _MASKED
            if inside and values is not None and start is not None:
                if start <= int(values[token, k]) < start + num_local:
                    color = _LOCAL
            ax.add_patch(Rectangle((k, token), 1, 1, facecolor=color, edgecolor="#555555", linewidth=0.8))
            if inside:
                text = f"slot {token * topk + k}" + ("" if values is None else f"  id {values[token, k]}")
                text += f"\nstep {step}"
            else:
                text = "skipped"
            ax.text(k + 0.5, token + 0.5, text, ha="center", va="center", fontsize=8,
                    color="#333333" if inside else "#555555")
    for p in range(1, num_programs):  # a program boundary
        ax.axhline(p * per_program, xmin=0, xmax=1, color="#222222", lw=1.6)
    ax.set_xlim(-band, topk)
    ax.set_ylim(rows, 0)
    ax.set_xticks(np.arange(topk) + 0.5, [f"k={k}" for k in range(topk)], fontsize=9)
    ax.set_yticks(np.arange(rows) + 0.5, [f"token {t}" for t in range(rows)], fontsize=9)
    ax.set_xlabel("the token's top-k slots (the inner loop `for k in range(topk)`)", fontsize=10)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title(title or f"{num_tokens} tokens x top-{topk}, {per_program} tokens per program: "
                 f"{num_programs} programs, each walks its slots one step at a time", fontsize=10)
    handles = [Patch(facecolor=_IN_BOUNDS, edgecolor="#555555", label="a step of the loop"),
               Patch(facecolor=_MASKED, edgecolor="#555555", label="token >= num_tokens: skipped")]
    if values is not None and start is not None:
        handles.insert(1, Patch(facecolor=_LOCAL, edgecolor="#555555",
                                label=f"local id ({start} <= id < {start + num_local}): atomic adds 1"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=9, frameon=False)
    return fig


__all__ = ["programs_over_tokens", "MAX_ROWS", "MAX_TOPK"]
