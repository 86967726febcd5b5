"""Plots of routing and of benchmark results. Every function returns a matplotlib ``Figure``.

Figures are built with ``matplotlib.figure.Figure`` rather than ``pyplot``: nothing is shown
behind your back, nothing accumulates in pyplot's figure list, and no global style is touched. In a
notebook with ``%matplotlib inline`` a returned figure displays itself. Each function also takes
``ax=`` to draw into an axes you made (then it returns that axes' figure); benchmark plots take
``legend=False`` too, for small multiples that share one legend (:func:`figure_legend`).

Every stage keeps one colour (its registry entry) in every notebook. Benchmark plots carry the
card and date of the measurement in their title (see :mod:`moe_lab.measure.results`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

from moe_lab.measure import results
from moe_lab.measure.figure import DPI, figure
from moe_lab.registry import STAGES

BASELINE_COLORS = {
    "copy": "#000000",           # black: the floor
    "zeros": "#e377c2",          # pink
}
"""Colours of the benchmark's baselines; each stage's colour is in :data:`moe_lab.registry.STAGES`."""
DISTRIBUTION_COLORS = {"uniform": "#1f77b4", "zipf": "#ff7f0e", "hot": "#d62728"}


def color(stage: str) -> str:
    """The fixed colour of a stage (grey for names this module does not know)."""
    if stage in STAGES:
        return STAGES[stage].color
    return BASELINE_COLORS.get(stage, "#555555")


def _figure(ax=None, figsize=(6.4, 4.0)):
    if ax is not None:
        return ax.figure, ax
    fig = figure(*figsize)
    return fig, fig.subplots()


# --------------------------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------------------------

def routing_matrix(topk_ids, num_experts: int, *, ep_size: int | None = None, title: str = "",
                   ax=None) -> Figure:
    """Tokens (rows) by experts (columns): a dark cell where the router sent that token.

    ``-1`` (padding) sends a token nowhere. With ``ep_size`` the experts owned by each rank are
    separated by vertical lines.
    """
    ids = np.asarray(topk_ids.cpu() if hasattr(topk_ids, "cpu") else topk_ids)
    if ids.ndim != 2:
        raise ValueError(f"topk_ids must be 2-D [num_tokens, topk], got shape {ids.shape}")
    grid = np.zeros((ids.shape[0], num_experts))
    rows, cols = np.nonzero((ids >= 0) & (ids < num_experts))
    grid[rows, ids[rows, cols]] = 1
    fig, ax = _figure(ax, figsize=(6.4, 3.2))
    ax.imshow(grid, aspect="auto", cmap="Greys", interpolation="nearest", vmin=0, vmax=1)
    margin = max(1.0, num_experts / 100)  # so that a busy first or last expert is not hidden by the frame
    ax.set_xlim(-0.5 - margin, num_experts - 0.5 + margin)
    if ep_size:
        for r in range(1, ep_size):
            ax.axvline(r * num_experts / ep_size - 0.5, color="#d62728", lw=0.6, alpha=0.7)
    ax.set_xlabel("expert id" + (f" (red lines: the {ep_size} ranks' ranges)" if ep_size else ""))
    ax.set_ylabel("token")
    ax.set_title(title or f"routing matrix: {ids.shape[0]} tokens, top-{ids.shape[1]}")
    return fig


def routing_counts(cases: dict, *, ax_rank=None, ax_expert=None) -> Figure:
    """Slots per rank and per expert for several ``routing.RankInput`` of one preset (``{label: case}``).

    Left: how many slots each rank of the EP group receives. Right: slots per expert, sorted from
    the most to the least popular, which shows how skewed each distribution is.
    """
    if not cases:
        raise ValueError("routing_counts needs at least one case")
    if ax_rank is None or ax_expert is None:
        fig = figure(9.6, 3.4)
        ax_rank, ax_expert = fig.subplots(1, 2)
    fig = ax_rank.figure
    width = 0.8 / len(cases)
    for i, (label, case) in enumerate(cases.items()):
        experts = case.preset.num_experts
        ids = case.topk_ids.cpu().reshape(-1).long()
        per_expert = np.bincount(ids[ids >= 0].numpy(), minlength=experts)
        per_rank = per_expert.reshape(case.ep_size, -1).sum(axis=1)
        c = DISTRIBUTION_COLORS.get(case.distribution, None)
        ax_rank.bar(np.arange(case.ep_size) + (i - (len(cases) - 1) / 2) * width, per_rank, width,
                    label=label, color=c)
        ax_expert.plot(np.arange(experts), np.sort(per_expert)[::-1], label=label, color=c)
    first = next(iter(cases.values()))
    ax_rank.set_xlabel("rank")
    ax_rank.set_ylabel("slots routed to the rank")
    ax_rank.set_title(f"per rank (EP {first.ep_size})")
    ax_rank.legend()
    ax_expert.set_xlabel("experts, most popular first")
    ax_expert.set_ylabel("slots routed to the expert")
    ax_expert.set_title(f"per expert ({first.preset.num_experts} experts, top-{first.preset.topk})")
    ax_expert.set_yscale("symlog", linthresh=1)
    ax_expert.legend()
    return fig


# --------------------------------------------------------------------------------------------
# Benchmark results
# --------------------------------------------------------------------------------------------

def _curves(df, stages, preset, distribution, mode):
    """``{stage: rows sorted by num_tokens}`` for the stages present, plus the list of absent ones."""
    sub = results.select(df, preset=preset, distribution=distribution, mode=mode)
    dup = sub.duplicated(["stage", "num_tokens"])
    if dup.any():
        raise ValueError(f"df holds several measurements of the same (stage, num_tokens) for "
                         f"{preset}/{distribution}/{mode}, probably from several runs; pick one with "
                         f"results.select(df, run_id=...) or results.load() (latest run)")
    curves, absent = {}, []
    for s in stages:
        rows = sub[sub["stage"] == s].sort_values("num_tokens")
        if rows.empty:
            absent.append(s)
        else:
            curves[s] = rows
    if not curves:
        raise ValueError(f"none of the stages {list(stages)} is in df for {preset}/{distribution}/{mode}; "
                         f"present: {', '.join(sorted(set(sub['stage'])))}")
    copy = sub[sub["stage"] == "copy"].sort_values("num_tokens")
    return curves, absent, copy, sub


FONT = 9
"""Smallest font size of the benchmark plots, in points: 10 px at :data:`DPI`, readable at 1280x720."""
FLAT = 1.5
"""A stage is launch-bound at the sizes, from the smallest up, whose time is within ``FLAT`` times its
fastest time: there the time is fixed cost, and bytes / time says nothing about bandwidth."""
COPY_LABEL = "device copy"
"""The one legend label of the device copy, in every kind of panel (so a figure's legend lists it once)."""
GRAPH_NODE_US = 1.0
"""About what one node of a replayed CUDA graph costs on its own (a memset, a tiny copy): the level
under which no graph-mode call can go."""
MARKERS = "osD^vPX*h<>p"


def marker(stage: str) -> str:
    """A fixed marker per stage (registry order), so that two series on top of each other both show."""
    names = list(STAGES)
    return MARKERS[names.index(stage) % len(MARKERS)] if stage in names else "."


def launch_bound(rows) -> np.ndarray:
    """For one stage's rows sorted by ``num_tokens``: True at the sizes, from the smallest up, whose
    median is within :data:`FLAT` times the stage's fastest median (time flat: fixed cost, not bytes)."""
    t = np.asarray(rows["median_us"], dtype=float)
    if t.size == 0:
        return np.zeros(0, dtype=bool)
    flat = t <= FLAT * np.nanmin(t)
    return np.logical_and.accumulate(flat)  # only a prefix: once the time grows, it is bytes


def _log_axes(ax, log_y=True):
    """Log scales with ticks at decades on x, and on y at 1, 2, 5 x 10^n (decades only when the data
    span more than three), no minor ticks: readable, and several times faster to draw than
    matplotlib's default minor ticks on log axes. Call it after plotting."""
    ax.set_xscale("log")
    ax.xaxis.set_minor_locator(NullLocator())
    if log_y:
        ax.set_yscale("log")
        lo, hi = ax.get_ylim()
        subs = (1.0, 2.0, 5.0) if hi / max(lo, 1e-300) < 1e3 else (1.0,)  # 1-2-5 only over few decades
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=subs))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_locator(NullLocator())
    ax.tick_params(labelsize=FONT)


def _title(ax, what, preset, distribution, mode, sub, short=False):
    if short:  # stage_grid puts preset, mode and provenance in its suptitle
        ax.set_title(f"{what}: {distribution}", fontsize=FONT + 1)
    else:
        ax.set_title(f"{what}: {preset}, {distribution}, {mode}\n{results.short_provenance(sub)}",
                     fontsize=FONT + 1)


def _note_absent(ax, absent):
    if absent:
        ax.text(0.99, 0.01, "not measured: " + ", ".join(absent), transform=ax.transAxes,
                ha="right", va="bottom", fontsize=FONT, color="#555555")


def _legend(ax, legend):
    """One legend beside the axes, never over the data (``legend=False``: the caller makes one)."""
    if legend:
        ax.legend(fontsize=FONT, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0,
                  frameon=False)


def _label(stage, rows):
    wrong = rows["correct"].eq(False).fillna(False).any()  # NA: nothing to check (copy, zeros)
    return f"{stage} (INCORRECT)" if wrong else stage


def _draw_time(ax, df, stages, preset, distribution, mode, short=False, legend=True):
    curves, absent, copy, sub = _curves(df, stages, preset, distribution, mode)
    for s, rows in curves.items():
        ax.plot(rows["num_tokens"], rows["median_us"], "-", marker=marker(s), ms=4, mfc="none", lw=1.3,
                color=color(s), label=_label(s, rows))
        ax.fill_between(rows["num_tokens"], rows["p20_us"], rows["p80_us"], color=color(s), alpha=0.12,
                        lw=0)
    if not copy.empty:
        ax.plot(copy["num_tokens"], copy["median_us"], "--", color=color("copy"), lw=1,
                label=COPY_LABEL)  # the floor: no stage moves its bytes faster
    if mode == "graph":  # what a graph node costs on its own: no replayed call goes below it
        ax.axhline(GRAPH_NODE_US, color="#777777", lw=0.9, ls=":", label="one graph node, about 1 us")
    _log_axes(ax)
    ax.set_xlabel("tokens", fontsize=FONT)
    ax.set_ylabel("us per call (median, p20-p80 band)", fontsize=FONT)
    _title(ax, "time per call", preset, distribution, mode, sub, short)
    _note_absent(ax, absent)
    _legend(ax, legend)


WIDE = (8.4, 4.0)
"""Size of a one-panel benchmark plot: room for the legend beside the axes."""


def time_vs_tokens(df, stages, preset, distribution, mode="eager", ax=None, legend=True) -> Figure:
    """Median time per call against the number of tokens, log-log, with the device copy as floor
    (and, under graph replay, the level of one graph node)."""
    fig, ax = _figure(ax, WIDE)
    _draw_time(ax, df, stages, preset, distribution, mode, legend=legend)
    return fig


def bandwidth_table(df, stages, preset, distribution, mode="eager", relative=False) -> pd.DataFrame:
    """Achieved GB/s per stage (columns) and number of tokens (rows); with ``relative=True`` the
    fraction of the device copy's speed instead (copy time / stage time at the same size)."""
    curves, _, copy, _ = _curves(df, stages, preset, distribution, mode)
    if relative:
        if copy.empty:
            raise ValueError("relative=True needs the 'copy' rows, and df has none for this selection")
        floor = copy.set_index("num_tokens")["median_us"]
        table = {s: floor / rows.set_index("num_tokens")["median_us"] for s, rows in curves.items()}
    else:
        table = {s: rows.set_index("num_tokens")["gbps"] for s, rows in curves.items()}
    return pd.DataFrame(table).dropna(how="all")


def _draw_bandwidth(ax, df, stages, preset, distribution, mode, relative, short=False, legend=True):
    """Each stage's bandwidth where it is bytes-bound; its launch-bound sizes (see :func:`launch_bound`)
    only as faint grey points, since there the time is fixed cost and bytes / time means nothing."""
    curves, absent, copy, sub = _curves(df, stages, preset, distribution, mode)
    table = bandwidth_table(df, stages, preset, distribution, mode, relative)
    grey_label = f"grey: launch-bound (time <= {FLAT:g}x fastest)"
    labelled = False
    for s in table.columns:
        rows = curves[s]
        bound = pd.Series(launch_bound(rows), index=rows["num_tokens"].to_numpy())
        col = table[s].dropna()
        flat = bound.reindex(col.index).fillna(False).to_numpy(dtype=bool)
        if flat.any():  # one legend entry for all the grey points
            ax.plot(col.index[flat], col.values[flat], ls="none", marker=marker(s), ms=4, mfc="none",
                    color="#bbbbbb", label=f"_{s} (launch-bound)" if labelled else grey_label)
            labelled = True
        keep = ~flat
        if keep.any():  # the bytes-bound part only
            ax.plot(col.index[keep], col.values[keep], "-", marker=marker(s), ms=4, mfc="none", lw=1.3,
                    color=color(s), label=_label(s, rows))
    if relative:
        ax.axhline(1.0, ls="--", color=color("copy"), lw=1, label=COPY_LABEL)  # the copy's speed is 1
        ax.set_ylabel("fraction of a device copy's speed", fontsize=FONT)
    else:
        if not copy.empty:  # the copy too is launch-bound at small sizes: grey there
            flat = launch_bound(copy)
            ax.plot(copy["num_tokens"][flat], copy["gbps"][flat], "--", color="#bbbbbb", lw=1,
                    label=f"_{COPY_LABEL} (launch-bound)")
            ax.plot(copy["num_tokens"][~flat], copy["gbps"][~flat], "--", color=color("copy"), lw=1,
                    label=COPY_LABEL)
        ax.set_ylabel("GB/s (minimal bytes moved / time)", fontsize=FONT)
    _log_axes(ax)
    ax.set_xlabel("tokens", fontsize=FONT)
    _title(ax, "fraction of copy speed" if relative else "achieved bandwidth", preset, distribution,
           mode, sub, short)
    _note_absent(ax, absent)
    _legend(ax, legend)


def bandwidth(df, stages, preset, distribution, mode="eager", relative=False, ax=None,
              legend=True) -> Figure:
    """Achieved GB/s against tokens, the device copy's GB/s as reference line (``relative=True``:
    each stage as a fraction of the copy's speed). A stage's launch-bound sizes are grey points only."""
    fig, ax = _figure(ax, WIDE)
    _draw_bandwidth(ax, df, stages, preset, distribution, mode, relative, legend=legend)
    return fig


def speedup_table(df, stages, preset, distribution, mode="eager", over="previous") -> pd.DataFrame:
    """Speed-ups from the medians: one column per comparison, one row per number of tokens.

    ``over="previous"``: each stage over the one before it in ``stages``; column ``"a time / b time"``
    holds ``median(a) / median(b)``, what its name says: above 1 means ``b`` is faster than ``a``.
    ``over=<stage name>``: every other stage over that one."""
    stages = list(stages)
    curves, absent, _, _ = _curves(df, stages + ([over] if over not in ("previous", *stages) else []),
                                   preset, distribution, mode)
    med = {s: rows.set_index("num_tokens")["median_us"] for s, rows in curves.items()}
    if over == "previous":
        pairs = [(a, b) for a, b in zip(stages, stages[1:])]
    else:
        if over not in med:
            raise ValueError(f"over={over!r}: that stage is not in df for {preset}/{distribution}/{mode}")
        pairs = [(over, b) for b in stages if b != over]
    cols = {f"{a} time / {b} time": med[a] / med[b] for a, b in pairs if a in med and b in med}
    if not cols:
        raise ValueError(f"no pair of measured stages to compare among {stages} (absent: {absent})")
    return pd.DataFrame(cols).dropna(how="all")


def _draw_speedup(ax, df, stages, preset, distribution, mode, over, short=False, legend=True):
    table = speedup_table(df, stages, preset, distribution, mode, over)
    _, absent, _, sub = _curves(df, stages, preset, distribution, mode)
    for name in table.columns:
        col = table[name].dropna()
        faster = name.split(" / ")[1].removesuffix(" time")  # the line has the colour of the stage sped up
        ax.plot(col.index, col.values, "-", marker=marker(faster), ms=4, mfc="none", lw=1.3,
                color=color(faster), label=name)
    ax.axhline(1.0, ls="--", color="#555555", lw=1)
    _log_axes(ax)
    ax.set_xlabel("tokens", fontsize=FONT)
    ax.set_ylabel("speed-up (x, medians; >1 faster)", fontsize=FONT)
    what = "speed-up over the previous stage" if over == "previous" else f"speed-up over {over}"
    _title(ax, what, preset, distribution, mode, sub, short)
    _note_absent(ax, absent)
    _legend(ax, legend)


def speedup(df, stages, preset, distribution, mode="eager", over="previous", ax=None,
            legend=True) -> Figure:
    """Speed-up of each stage over the one before it in ``stages`` (or over the stage ``over``)."""
    fig, ax = _figure(ax, WIDE)
    _draw_speedup(ax, df, stages, preset, distribution, mode, over, legend=legend)
    return fig


def stage_grid(df, stages, preset, distributions=None, mode="eager",
               kinds=("time", "bandwidth", "speedup"), over="previous",
               bandwidth_relative=None) -> Figure:
    """Small multiples: one column per distribution, one row per kind of plot (``"time"``,
    ``"bandwidth"``, ``"speedup"``). ``bandwidth_relative``: True plots the fraction of a device
    copy's speed, False absolute GB/s with the copy's as reference line; None (default) picks the
    fraction when the copy was measured."""
    if distributions is None:
        distributions = [d for d in ("uniform", "zipf", "hot") if d in set(df["distribution"])]
    distributions = list(distributions)
    bad = [k for k in kinds if k not in ("time", "bandwidth", "speedup")]
    if bad or not kinds or not distributions:
        raise ValueError(f"stage_grid needs kinds from ('time', 'bandwidth', 'speedup') (got {kinds}) "
                         f"and at least one distribution (got {distributions})")
    fig = Figure(figsize=(3.9 * len(distributions) + 1.9, 2.9 * len(kinds) + 0.5), dpi=DPI,
                 layout="constrained")
    axes = fig.subplots(len(kinds), len(distributions), squeeze=False, sharex=True)
    relative = ("copy" in set(df["stage"])) if bandwidth_relative is None else bandwidth_relative
    sub = results.select(df, preset=preset, distribution=distributions, mode=mode)
    fig.suptitle(f"{preset}, {mode} mode; {results.short_provenance(sub)}", fontsize=FONT + 2)
    for j, dist in enumerate(distributions):
        for i, kind in enumerate(kinds):
            ax = axes[i, j]
            if kind == "time":
                _draw_time(ax, df, stages, preset, dist, mode, short=True, legend=False)
            elif kind == "bandwidth":
                _draw_bandwidth(ax, df, stages, preset, dist, mode, relative=relative, short=True,
                                legend=False)
            else:
                _draw_speedup(ax, df, stages, preset, dist, mode, over, short=True, legend=False)
            if j:  # one y label per row of panels
                ax.set_ylabel("")
    figure_legend(fig)
    return fig


def figure_legend(fig):
    """One legend for all panels of ``fig``, each label once: right of them, centred clear of a suptitle."""
    handles = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside right center", fontsize=FONT,
                   frameon=False)
    return fig


__all__ = ["BASELINE_COLORS", "DISTRIBUTION_COLORS", "FONT", "FLAT", "GRAPH_NODE_US", "color", "marker",
           "COPY_LABEL", "launch_bound", "figure_legend", "routing_matrix", "routing_counts",
           "time_vs_tokens", "bandwidth", "bandwidth_table", "speedup", "speedup_table", "stage_grid"]
