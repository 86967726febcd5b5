"""How a grid of programs tiles the flat slots: programs as rows, lanes as columns.

``tiling(num_total, block)`` draws one row per program and one column per lane. Each cell is the slot
``pid * block + lane`` that lane handles; lanes past ``num_total`` are shaded (masked off). Given the
ids and a rank's ``start``/``num_local`` the cells also show each id and mark the lanes whose id is
local, which are the lanes whose atomic fires.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from moe_lab.measure.figure import figure

MAX_CELLS = 512  # beyond this the labels cannot be read at 1280x720; pass a smaller example

_IN_BOUNDS = "#ffffff"
_MASKED = "#bdbdbd"
_LOCAL = "#9ecae1"


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}; "
                         f"pass the number of {name.replace('_', ' ')}")
    return int(value)


def tiling(num_total: int, block: int, *, ids=None, start: int | None = None, num_local: int | None = None,
           title: str = "") -> Figure:
    """Programs (rows) by lanes (columns) over ``num_total`` flat slots cut into blocks of ``block``.

    Cells show the slot index (and, with ``ids``, the id in that slot). Masked lanes (slot >=
    ``num_total``) are grey. With ``ids``, ``start`` and ``num_local``, lanes holding a local id are
    blue: those are the lanes whose atomic adds to a counter.
    """
    num_total = _positive_int("num_total", num_total)
    block = _positive_int("block", block)
    num_programs = -(-num_total // block)
    if num_programs * block > MAX_CELLS:
        raise ValueError(f"num_total={num_total} with block={block} gives {num_programs * block} cells, more "
                         f"than {MAX_CELLS} readable ones; draw a smaller example")
    values = None
    if ids is not None:
        values = np.asarray(ids.cpu() if hasattr(ids, "cpu") else ids).reshape(-1)
        if values.size != num_total:
            raise ValueError(f"ids has {values.size} elements but num_total is {num_total}; pass the "
                             f"ids of exactly num_total slots")
        if (start is None) != (num_local is None):
            raise ValueError("pass both start and num_local to mark the local lanes, or neither")

    slot = np.arange(num_programs * block).reshape(num_programs, block)
    in_bounds = slot < num_total
    colors = np.where(in_bounds, _IN_BOUNDS, _MASKED).astype(object)
    if values is not None and start is not None:
        padded = np.full(slot.size, -1)
        padded[:num_total] = values
        local = ((padded >= start) & (padded < start + num_local)).reshape(slot.shape) & in_bounds
        colors[local] = _LOCAL

    width = min(12.0, 1.2 + 0.62 * block)
    height = 1.3 + 0.5 * num_programs
    fig = figure(width, height)
    ax = fig.subplots()
    for p in range(num_programs):
        for lane in range(block):
            ax.add_patch(_cell(lane, p, colors[p, lane]))
            s = slot[p, lane]
            text = f"{s}" if values is None or s >= num_total else f"{s}\nid {values[s]}"
            ax.text(lane + 0.5, p + 0.5, text if s < num_total else f"{s}\nmasked", ha="center", va="center",
                    fontsize=9, color="#333333" if s < num_total else "#555555")
    ax.set_xlim(0, block)
    ax.set_ylim(num_programs, 0)
    ax.set_xticks(np.arange(block) + 0.5, [str(i) for i in range(block)], fontsize=9)
    ax.set_yticks(np.arange(num_programs) + 0.5, [f"pid {p}" for p in range(num_programs)], fontsize=9)
    ax.set_xlabel("lane (tl.arange(0, BLOCK))", fontsize=10)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title(title or f"{num_total} slots, BLOCK={block}: {num_programs} programs, "
                 f"{num_programs * block - num_total} masked lanes", fontsize=10)
    handles = [Patch(facecolor=_IN_BOUNDS, edgecolor="#555555", label="in bounds"),
               Patch(facecolor=_MASKED, edgecolor="#555555", label="masked off")]
    if values is not None and start is not None:
        handles.insert(1, Patch(facecolor=_LOCAL, edgecolor="#555555",
                                label=f"local id ({start} <= id < {start + num_local}): atomic fires"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=9, frameon=False)
    return fig


def _cell(x, y, color):
    return Rectangle((x, y), 1, 1, facecolor=color, edgecolor="#555555", linewidth=0.8)
