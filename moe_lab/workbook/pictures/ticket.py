"""The ``one_launch`` ticket as a timeline: adds, barrier, release, and the last program's swap.

:func:`ticket_timeline` draws a few programs of one launch as rows against time. Each program counts its
tiles in registers, adds its histogram into the scratch accumulators (relaxed atomics), waits at a
barrier for all its threads, then takes a ticket with an ``acq_rel`` atomic: the *release* half makes its
adds visible before the ticket counts. The program that draws the last ticket *acquires* everyone's adds,
swaps the scratch back to zero (reading the totals), stores them as ``expert_count`` and resets the
ticket. Programs finish in any order; the picture uses the order it is given.
"""

from __future__ import annotations

from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch

from moe_lab.measure.figure import figure

PHASES = {  # phase -> (colour, label in the legend)
    "count": ("#9ecae1", "count tiles in registers (tl.histogram)"),
    "adds": ("#fdae6b", "add histogram to scratch (relaxed atomics)"),
    "barrier": ("#bdbdbd", "barrier: all threads' adds issued"),
    "release": ("#d62728", "ticket: acq_rel atomic (release half waits for the adds)"),
    "swap": ("#31a354", "last program: acquire, swap scratch to 0, store counts, reset ticket"),
}


def ticket_timeline(work=(5.0, 3.0, 6.5, 4.0), *, title: str = "") -> Figure:
    """Timeline of ``len(work)`` programs, program ``p`` spending ``work[p]`` time units counting.

    The programs take tickets in the order they finish; the one that draws ``len(work) - 1`` does the swap.
    """
    work = [float(w) for w in work]
    if len(work) < 2 or any(w <= 0 for w in work):
        raise ValueError(f"work must give two or more positive counting times, one per program, got {work!r}")
    adds, barrier, release, swap = 0.8, 0.3, 1.2, 2.4
    ticket_time = {p: w + adds + barrier for p, w in enumerate(work)}   # when each program's ticket is issued
    order = sorted(ticket_time, key=lambda p: (ticket_time[p], p))      # ties: lower program id first
    ticket_of = {p: i for i, p in enumerate(order)}
    last = order[-1]
    rows = len(work)

    fig = figure(12.8, 1.1 * rows + 2.4)
    ax = fig.add_subplot()
    for p, w in enumerate(work):
        y = rows - 1 - p
        spans = [("count", 0.0, w), ("adds", w, adds), ("barrier", w + adds, barrier),
                 ("release", ticket_time[p], release)]
        if p == last:
            spans.append(("swap", ticket_time[p] + release, swap))
        for phase, x0, width in spans:
            ax.broken_barh([(x0, width)], (y - 0.35, 0.7), facecolors=PHASES[phase][0], edgecolor="white")
        end = ticket_time[p] + release
        text = f"ticket {ticket_of[p]}" + (" = last" if p == last else ": done, exits")
        ax.text(end + (swap if p == last else 0) + 0.15, y, text, va="center", fontsize=12,
                fontweight="bold" if p == last else "normal")
    y_last = rows - 1 - last
    for p in order[:-1]:  # the acquire makes every earlier release visible to the last program
        arrow = FancyArrowPatch((ticket_time[p] + release, rows - 1 - p),
                                (ticket_time[last] + release, y_last),
                                arrowstyle="-|>", mutation_scale=12, color="#d62728", lw=1, alpha=0.6,
                                connectionstyle="arc3,rad=-0.15")
        ax.add_patch(arrow)
    ax.set_yticks(range(rows), [f"program {p}" for p in reversed(range(rows))], fontsize=12)
    ax.set_xlabel("time (arbitrary units; programs run at the same time on different SMs)", fontsize=12)
    ax.set_xlim(0, max(ticket_time.values()) + release + swap + 3.5)
    ax.set_ylim(-0.8, rows - 0.2)
    ax.tick_params(axis="x", labelsize=11)
    ax.spines[["top", "right"]].set_visible(False)
    handles = [ax.bar(0, 0, color=c, label=label) for c, label in PHASES.values()]
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=11, frameon=False)
    ax.set_title(title or ("one_launch: each program adds, then takes a ticket; "
                           "the last ticket swaps the totals out"),
                 fontsize=13)
    return fig


__all__ = ["PHASES", "ticket_timeline"]
