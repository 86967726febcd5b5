"""Where the atomics go: per-slot atomics against one atomic per bin, side by side.

:func:`atomics_side_by_side` takes two records of counter traffic (anything with an ``atomics`` array
of shape ``[programs, counters]``: a :class:`moe_lab.inspection.tracer.KernelTrace` from the tracer,
which ran the real kernel in Triton's interpreter, or the model's
:class:`moe_lab.inspection.atomics.AtomicTraffic`) and draws, for each,
the atomics every program sends to every counter (top) and the total each counter receives (bottom), on
the same colour and bar scales so the two stages compare at a glance.
"""

from __future__ import annotations

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from moe_lab.inspection.launches import COUNTERS_PER_LINE
from moe_lab.measure.figure import figure


def _matrix(traffic, name: str) -> np.ndarray:
    atomics = getattr(traffic, "atomics", None)
    if atomics is None or np.ndim(atomics) != 2:
        raise TypeError(f"{name} must have an `atomics` array of shape [programs, counters] (a trace from "
                        f"moe_lab.inspection.tracer.trace or a model from atomic_traffic), got "
                        f"{type(traffic).__name__}")
    return np.asarray(atomics)


def atomics_side_by_side(left, right, *, titles: tuple[str, str] = ("scalar_atomic", "block_histogram"),
                         suptitle: str = "") -> Figure:
    """Two stages' atomics per program and counter (heat maps) and per counter (bars), one scale each.

    ``left`` and ``right`` hold ``atomics[program, counter]``; they must cover the same counters.
    Counters are grouped by 128-byte line (dotted separators every 32 counters).
    """
    a, b = _matrix(left, "left"), _matrix(right, "right")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"left and right must cover the same counters, got {a.shape[1]} and {b.shape[1]}: "
                         f"trace both stages on the same input")
    if len(titles) != 2:
        raise ValueError(f"titles must name the two panels, got {titles!r}")
    num_counters = a.shape[1]
    top = max(int(a.max(initial=0)), int(b.max(initial=0)), 1)
    norm = LogNorm(vmin=1, vmax=max(top, 2))
    totals = [m.sum(axis=0) for m in (a, b)]
    bar_top = max(int(t.max(initial=0)) for t in totals) or 1

    fig = figure(12.8, 6.4)
    grid = fig.add_gridspec(2, 2, height_ratios=(2.2, 1))
    image = None
    for col, (matrix, total, title) in enumerate(zip((a, b), totals, titles, strict=True)):
        ax = fig.add_subplot(grid[0, col])
        shown = np.ma.masked_equal(matrix, 0)  # programs that send nothing to a counter stay white
        image = ax.imshow(shown, aspect="auto", interpolation="nearest", cmap="viridis", norm=norm,
                          extent=(-0.5, num_counters - 0.5, matrix.shape[0] - 0.5, -0.5))
        ax.set_title(f"{title}: {matrix.shape[0]} programs, {int(matrix.sum()):,} atomics", fontsize=13)
        ax.set_ylabel("program", fontsize=12)
        ax.tick_params(labelsize=11)
        for edge in range(COUNTERS_PER_LINE, num_counters, COUNTERS_PER_LINE):
            ax.axvline(edge - 0.5, color="white", ls=":", lw=1)

        bars = fig.add_subplot(grid[1, col])
        bars.bar(np.arange(num_counters), np.maximum(total, 0.8), color="#444444", width=0.8)
        bars.set_yscale("log")
        bars.set_ylim(0.8, bar_top * 5)  # headroom for the label above the tallest bar
        bars.set_xlim(-0.5, num_counters - 0.5)
        bars.set_xlabel("counter (local expert); 32 counters = one 128-byte line", fontsize=12)
        bars.set_ylabel("atomics per counter", fontsize=12)
        bars.tick_params(labelsize=11)
        busiest = int(np.argmax(total)) if total.size else 0
        if total.size:
            bars.annotate(f"busiest: {int(total[busiest]):,}", (busiest, total[busiest]), xytext=(8, 2),
                          textcoords="offset points", fontsize=12, va="bottom", color="#d62728")
    cbar = fig.colorbar(image, ax=fig.axes[0::2], location="right", shrink=0.9, pad=0.01)
    cbar.set_label("atomics from one program to one counter", fontsize=11)
    if suptitle:
        fig.suptitle(suptitle, fontsize=13)
    return fig


__all__ = ["atomics_side_by_side"]
