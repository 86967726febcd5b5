"""The atomics explorer: which program covers which slots, and where each stage sends its atomics."""

from __future__ import annotations

import ipywidgets
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

from moe_lab.inspection import atomics
from moe_lab.workbook.explorers.cases import figure, integer_axis, make_case, skew_distribution
from moe_lab.workbook.explorers.explorer import Explorer, Hold, control
from moe_lab.workbook.explorers.routing import routing_controls

STATE_COLORS = ["#2ca02c", "#d9d9d9", "#fdd0a2", "#d62728"]  # local, remote, padding, masked
BLOCK_DEFAULT = 0
"""The block control's value for "the stage's own rule" (a dropdown cannot show ``None``)."""
GRID_LIBRARY = -1
"""The programs control's value for "the library's grid on this machine"."""
BLOCK_OPTIONS = [("stage's rule", BLOCK_DEFAULT)] + [(str(2**i), 2**i) for i in range(4, 13)]
GRID_OPTIONS = ([("one per tile", 0), ("library's, here", GRID_LIBRARY)] + [(str(n), n) for n in (1, 2, 4, 8)]
                + [(f"H100: 4 x {atomics.H100_SMS}", 4 * atomics.H100_SMS)])
MAX_ROWS = 16
"""Programs (and tiles) drawn at most: the first ``MAX_ROWS - 1`` and the last, so labels stay readable."""


def _shown_rows(n: int, max_rows: int) -> list[int]:
    """All rows if they fit, else the first ``max_rows - 1`` and the last one."""
    return list(range(n)) if n <= max_rows else list(range(max_rows - 1)) + [n - 1]


def _cut_marker(ax, rows, n):
    """A dashed line above the last row when rows were left out in between."""
    if len(rows) < n:
        ax.axhline(len(rows) - 1.5, color="black", lw=1.5, ls="--")


def _row_labels(ax, labels):
    ax.set_yticks(range(len(labels)), labels, fontsize=8 if len(labels) <= 12 else 7)


def atomics_view(stage="scalar_atomic", preset="deepseek-v3", num_tokens=200, ep_size=8, rank=0,
                 skew=0.0, pad_fraction=0.1, block=None, num_programs=0, seed=0, max_rows=MAX_ROWS):
    """Which program covers which slots, and how many atomics hit each counter and line, per program.

    ``stage`` is any stage in :data:`moe_lab.inspection.atomics.MODELLED_STAGES`; ``block`` slots per tile
    (``None`` or ``0``: the stage's own rule); ``num_programs`` only matters when the kernel has a
    persistent grid, ``block_histogram`` or ``one_launch`` (``0``: one program per tile, ``None`` or
    ``-1``: the library's grid on this machine, ``n``: a grid of ``n`` programs, e.g. ``4 * 132`` on
    an H100), and is ignored otherwise.
    Returns ``(figure, AtomicTraffic)``; the traffic is computed from the inputs
    (:func:`moe_lab.inspection.atomics.atomic_traffic`), which the tests check against the real kernels.
    """
    from moe_lab.measure import plots

    block = None if block == BLOCK_DEFAULT else block
    num_programs = None if num_programs == GRID_LIBRARY else num_programs
    case = make_case(preset, num_tokens, ep_size, rank, skew, pad_fraction, seed)
    num_total, num_local = case.topk_ids.numel(), case.num_local
    launch = atomics.launch_config(stage, num_tokens, case.preset.topk, num_local, block=block)
    grid_arg = num_programs if launch.kernel in atomics.HISTOGRAM_STAGES else None
    traffic = atomics.atomic_traffic(stage, case.topk_ids, case.start, num_local, block=block,
                                     num_programs=grid_arg)
    launch = traffic.launch
    _, _, label = skew_distribution(skew)

    fig = figure(height=5.8)
    fig.suptitle(f"{case.preset.name}, {num_tokens} tokens x top-{case.preset.topk} = {num_total} slots, "
                 f"EP {ep_size} rank {rank} (experts {case.start}..{case.start + num_local - 1}), {label}, "
                 f"{int(num_tokens * pad_fraction)} padded rows", fontsize=10)
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 1.25])
    ax_cov = top.subplots()
    ax_cnt, ax_line, ax_cmp = bottom.subplots(1, 3, width_ratios=[2.2, 0.8, 1.3])

    # which program covers which slots
    tiles = _shown_rows(launch.num_tiles, max_rows)
    states = traffic.slot_state.reshape(launch.num_tiles, launch.block)[tiles] if tiles \
        else np.zeros((0, launch.block), dtype=np.int8)
    ax_cov.imshow(states, aspect="auto", interpolation="nearest", cmap=ListedColormap(STATE_COLORS),
                  vmin=-0.5, vmax=3.5, extent=(-0.5, launch.block - 0.5, len(tiles) - 0.5, -0.5))
    _row_labels(ax_cov, [f"tile {t}: prog {traffic.tile_program[t]}" if launch.persistent else f"prog {t}"
                         for t in tiles])
    _cut_marker(ax_cov, tiles, launch.num_tiles)
    integer_axis(ax_cov)
    ax_cov.set_xlabel(f"lane within the tile (slot = tile * {launch.block} + lane)", fontsize=9)
    shown_note = "" if len(tiles) == launch.num_tiles else f"; rows: the first {len(tiles) - 1} and the last"
    via = f" (best runs {launch.kernel})" if launch.kernel != launch.stage else ""
    layout = ("persistent: program p takes tiles p, p+N, ..." if launch.persistent and launch.num_programs > 1
              else "one program" if launch.num_programs == 1 else "one tile each")
    ax_cov.set_title(f"{launch.stage}{via}: {launch.num_programs} program(s), {launch.num_tiles} tile(s) of "
                     f"{launch.block} slots ({layout}){shown_note}", fontsize=10)
    ax_cov.legend(handles=[Patch(color=c, label=n) for c, n in zip(STATE_COLORS, atomics.STATE_NAMES)],
                  loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=9, frameon=False)

    # atomics per counter per program
    progs = _shown_rows(launch.num_programs, max_rows)
    what = "stores" if launch.writes == "stores" else "atomics"
    per_counter = (traffic.stores if what == "stores" else traffic.atomics)[progs] if progs \
        else np.zeros((0, num_local), dtype=np.int64)
    # colour: how many atomics (or stores); number: for histogram atomics, the value each one adds
    labels = None
    if progs and launch.writes != "per-slot atomics":
        labels = (traffic.stored if launch.writes == "stores" else traffic.values)[progs]
    _heat(ax_cnt, per_counter, annotate=num_local <= 32 and len(progs) <= max_rows, labels=labels)
    for line in range(atomics.COUNTERS_PER_LINE, num_local, atomics.COUNTERS_PER_LINE):
        ax_cnt.axvline(line - 0.5, color="#d62728", lw=1.2)
    _row_labels(ax_cnt, [str(p) for p in progs])
    _cut_marker(ax_cnt, progs, launch.num_programs)
    integer_axis(ax_cnt)
    lines_note = "; red: 128-byte lines" if num_local > atomics.COUNTERS_PER_LINE else ""
    ax_cnt.set_xlabel("counter (local expert)" + lines_note, fontsize=9)
    ax_cnt.set_ylabel("program")
    total = int((traffic.stores if what == "stores" else traffic.atomics).sum())
    sem = f", {launch.sem}" if launch.sem else ""
    note = {"per-slot atomics": f"one per local slot{sem}",
            "per-bin atomics": f"one per expert per program{sem}\nnumbers: the value each adds",
            "stores": "no atomics\nnumbers: the value stored",
            atomics.PER_BIN_TICKET: f"to scratch{sem}, numbers: value added\n"
                                    f"+{int(traffic.ticket.sum())} acq_rel tickets; the last program "
                                    f"stores the counts"}
    ax_cnt.set_title(f"{what} per counter per program: {total}, {note[launch.writes]}", fontsize=9)
    # atomics per 128-byte line per program
    per_line = traffic.line_atomics[progs] if progs else np.zeros((0, traffic.num_lines), np.int64)
    _heat(ax_line, per_line, annotate=len(progs) <= max_rows)
    _row_labels(ax_line, [str(p) for p in progs])
    _cut_marker(ax_line, progs, launch.num_programs)
    ax_line.set_xticks(range(traffic.num_lines))
    ax_line.set_xlabel(f"line ({atomics.COUNTERS_PER_LINE} counters)", fontsize=9)
    ax_line.set_title("atomics per line\nper program", fontsize=9)

    _compare(ax_cmp, case, num_local, plots)
    return fig, traffic


def _compare(ax, case, num_local, plots):
    """The same input under every way of counting, one program per tile."""
    names, totals, busiest = [], [], []
    for other in ("scalar_atomic", "block_histogram", "one_launch", "decode"):
        try:
            t = atomics.atomic_traffic(other, case.topk_ids, case.start, num_local,
                                       num_programs=0 if other in atomics.HISTOGRAM_STAGES else None)
        except ValueError:
            continue
        names.append(other)
        totals.append(t.total_atomics)
        busiest.append(int(t.line_atomics.sum(axis=0).max()) if t.line_atomics.size else 0)
    x = np.arange(len(names))
    ax.bar(x - 0.2, totals, 0.4, label="all atomics", color=[plots.color(n) for n in names])
    ax.bar(x + 0.2, busiest, 0.4, label="busiest line", color="#555555")
    for xi, (t, b) in enumerate(zip(totals, busiest)):
        ax.text(xi - 0.2, t, str(t), ha="center", va="bottom", fontsize=8)
        ax.text(xi + 0.2, b, str(b), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, [n.replace("_", "_\n") for n in names], fontsize=8)
    ax.set_yscale("symlog", linthresh=1)
    ax.set_ylim(0, max(totals + [1]) * 30)
    ax.set_title("same input, every stage:\natomics in all, on the busiest line", fontsize=9)
    ax.legend(fontsize=8, loc="upper right")


def _heat(ax, values, annotate, labels=None):
    """Counts as a heatmap (zero cells blank), optionally with a number in every non-zero cell."""
    shown = np.where(values > 0, values, np.nan).astype(float)
    vmax = max(2, int(values.max())) if values.size else 2
    ax.imshow(shown, aspect="auto", interpolation="nearest", cmap="OrRd", vmin=0, vmax=vmax)
    ax.set_facecolor("#f7f7f7")
    if annotate and np.count_nonzero(values) <= 160:  # text is the slow part of drawing
        labels = values if labels is None else labels
        size = 8 if values.shape[1] <= 16 else 7
        for (i, j), v in np.ndenumerate(values):
            if v:
                ax.text(j, i, str(int(labels[i, j])), ha="center", va="center", fontsize=size,
                        color="white" if v > 0.6 * vmax else "black")


def atomics_explorer(stage="scalar_atomic", preset="deepseek-v3", num_tokens=200, ep_size=8, rank=0,
                     skew=0.0, pad_fraction=0.1, block=None, num_programs=0, seed=0) -> Explorer:
    """Program / atomic visualiser (:func:`atomics_view`)."""
    w = ipywidgets
    c = {"stage": control(w.Dropdown, options=list(atomics.MODELLED_STAGES), value=stage,
                          description="stage"),
         "block": control(w.Dropdown, options=BLOCK_OPTIONS,
                          value=BLOCK_DEFAULT if block is None else block, description="block"),
         "num_programs": control(w.Dropdown, options=GRID_OPTIONS,
                                 value=GRID_LIBRARY if num_programs is None else num_programs,
                                 description="programs")}
    hold = Hold()
    c.update(routing_controls(hold, preset, num_tokens, ep_size, rank, skew, pad_fraction, seed))
    explorer = Explorer(atomics_view, c, name="atomics explorer", hold=hold)
    c["block"].tooltip = "slots per tile"
    c["num_programs"].tooltip = "grid size (block_histogram and one_launch only)"
    return explorer
