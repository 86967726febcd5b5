"""Interactive explorers for the notebooks: routing, atomics per program, IR diffs, performance.

Each explorer is a thin ipywidgets layer over a plain function that returns a figure (or HTML) and
the data behind it; the functions are what the tests check, and you can call them yourself:

* :func:`routing_view`: router output for a preset, seen from one rank: heatmap, slots per rank and
  per local expert (counted by the library's kernel), the rank's adjusted ids;
* :func:`atomics_view`: which program covers which slots, which lanes are masked, and how many
  atomics each counter and each 128-byte line of counters receives per program
  (:mod:`moe_lab.atomics`, checked against the real kernels);
* :func:`ir_diff_view`: a highlighted diff of the code two stages compile to for an H100
  (TTIR, TTGIR, LLVM IR or PTX), compiled on this machine, no GPU needed;
* :func:`perf_view`: recorded GPU timings (``data/bench``), or live ones on a GPU.

``routing_explorer()``, ``atomics_explorer()``, ``ir_explorer()`` and ``perf_explorer()`` return an
:class:`Explorer` (an ``ipywidgets.interactive``). Displayed in a notebook it shows the controls and,
below them, a static rendering of the default values, so that a viewer without widgets (nbval,
``make book``, GitHub) still sees a figure. Once you move a control the live view takes over and the
static one is cleared.
"""

from __future__ import annotations

import base64
import functools
import html
import io

import ipywidgets
import numpy as np
from matplotlib import colormaps
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from . import atomics, routing
from .registry import STAGES

DPI = 80

# --------------------------------------------------------------------------------------------
# Skew: one slider from uniform through Zipf to one hot expert
# --------------------------------------------------------------------------------------------

ZIPF_MAX = 2.0
SKEW_HOT = 2.25
SKEW_OPTIONS = ([("uniform", 0.0)] + [(f"zipf s={s:g}", s) for s in np.arange(0.25, ZIPF_MAX + 0.01, 0.25)]
                + [("hot expert", SKEW_HOT)])
"""``(label, skew)`` pairs for the skew slider: 0 is uniform, ``0 < s <= 2`` Zipf with exponent s,
:data:`SKEW_HOT` one hot expert (this rank's first) in every token's top-k."""


def skew_distribution(skew: float) -> tuple[str, float, str]:
    """``(distribution, zipf_s, label)`` for a skew value (see :data:`SKEW_OPTIONS`)."""
    try:
        skew = float(skew)
    except (TypeError, ValueError):
        raise TypeError(f"skew must be a number, got {type(skew).__name__} ({skew!r})") from None
    if not 0.0 <= skew <= SKEW_HOT:
        raise ValueError(f"skew must be in [0, {SKEW_HOT}]: 0 uniform, up to {ZIPF_MAX} Zipf "
                         f"exponent, {SKEW_HOT} one hot expert; got {skew}")
    if skew == 0.0:
        return "uniform", 0.0, "uniform"
    if skew <= ZIPF_MAX:
        return "zipf", skew, f"zipf s={skew:g}"
    return "hot", 0.0, "hot expert"


def make_case(preset="deepseek-v3", num_tokens=256, ep_size=8, rank=0, skew=0.0, pad_fraction=0.0,
              seed=0) -> routing.Case:
    """:func:`moe_lab.routing.case` with the skew slider's single number."""
    distribution, zipf_s, _ = skew_distribution(skew)
    return routing.case(preset, num_tokens, distribution=distribution, ep_size=ep_size, rank=rank,
                        pad_fraction=pad_fraction, zipf_s=zipf_s if zipf_s else 1.2, seed=seed)


def ep_sizes(preset: str) -> list[int]:
    """EP group sizes that split ``preset``'s experts evenly (every divisor of num_experts)."""
    n = routing.preset(preset).num_experts
    return [d for d in range(1, n + 1) if n % d == 0]


def _figure(figsize) -> Figure:
    return Figure(figsize=figsize, dpi=DPI, layout="constrained")


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes, at the workbook's small DPI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# 1. Routing
# --------------------------------------------------------------------------------------------

def routing_view(preset="deepseek-v3", num_tokens=256, ep_size=8, rank=0, skew=0.0, pad_fraction=0.0,
                 seed=0):
    """Router output for ``preset``, seen from ``rank`` of an EP group of ``ep_size``.

    Returns ``(figure, data)``. The figure: the routing heatmap (tokens x experts, the rank's experts
    framed), slots per rank, slots per local expert as counted by the library's kernel
    (``moe_lab.recompute_topk_ids_sum_expert_count``), and the rank's adjusted ids. ``data`` holds
    the numbers: ``per_rank``, ``expert_count``, ``adjusted``, ``topk_ids``, ``start``, ``num_local``...
    """
    import moe_lab
    from . import backend, plots
    from .stages import best

    case = make_case(preset, num_tokens, ep_size, rank, skew, pad_fraction, seed)
    p, ids = case.preset, case.topk_ids
    _, _, label = skew_distribution(skew)
    adjusted, expert_count = moe_lab.recompute_topk_ids_sum_expert_count(
        ids.to(backend.device()), case.start, case.num_local)
    adjusted, expert_count = adjusted.cpu(), expert_count.cpu().numpy()
    flat = ids.reshape(-1).long()
    per_expert = np.bincount(flat[flat >= 0].numpy(), minlength=p.num_experts)
    per_rank = per_expert.reshape(ep_size, -1).sum(axis=1)
    padded_rows = int(num_tokens * pad_fraction)

    fig = _figure((11.0, 6.6))
    (ax_map, ax_rank), (ax_local, ax_adj) = fig.subplots(2, 2, width_ratios=[1.25, 1])
    plots.routing_matrix(ids, p.num_experts, ep_size=ep_size if ep_size > 1 else None, ax=ax_map,
                         title=f"{p.name}: {num_tokens} tokens, top-{p.topk}, {label}")
    ax_map.axvspan(case.start - 0.5, case.start + case.num_local - 0.5, color="#1f77b4", alpha=0.18)
    if padded_rows:
        ax_map.axhspan(num_tokens - padded_rows - 0.5, num_tokens - 0.5, color="#ff7f0e", alpha=0.15)
        ax_map.text(p.num_experts * 0.98, num_tokens - padded_rows / 2, f"{padded_rows} rows of -1",
                    ha="right", va="center", fontsize=8, color="#a04000")
    ax_map.set_xlabel(f"expert id (blue band: rank {rank}'s experts {case.start}.."
                      f"{case.start + case.num_local - 1})", fontsize=8)

    colors = ["#1f77b4" if r == rank else "#c7c7c7" for r in range(ep_size)]
    ax_rank.bar(np.arange(ep_size), per_rank, color=colors, width=0.8)
    real_slots = (num_tokens - padded_rows) * p.topk
    ax_rank.axhline(real_slots / ep_size, ls="--", lw=1, color="#555555", label="even share")
    ax_rank.set_xlabel("rank")
    ax_rank.set_ylabel("slots routed to the rank")
    ax_rank.set_title(f"per rank (EP {ep_size}); rank {rank} gets {per_rank[rank]} of "
                      f"{real_slots} real slots", fontsize=9)
    ax_rank.legend(fontsize=8)

    ax_local.bar(np.arange(case.num_local), expert_count, color="#2ca02c", width=0.85)
    for line in range(atomics.COUNTERS_PER_LINE, case.num_local, atomics.COUNTERS_PER_LINE):
        ax_local.axvline(line - 0.5, color="#d62728", lw=0.8)
    ax_local.set_xlabel("local expert (counter); red lines: 128-byte line boundaries")
    ax_local.set_ylabel("expert_count")
    kernel = best.choose(flat.numel(), case.num_local)
    ax_local.set_title(f"rank {rank}'s expert_count from the kernel ({kernel}"
                       f" via best): {int(expert_count.sum())} local slots", fontsize=9)

    _draw_adjusted(ax_adj, adjusted, case.start, case.num_local)

    data = {"preset": p.name, "num_experts": p.num_experts, "topk": p.topk, "ep_size": ep_size,
            "rank": rank, "start": case.start, "num_local": case.num_local,
            "distribution": case.distribution, "skew_label": label, "num_tokens": num_tokens,
            "padded_rows": padded_rows, "per_rank": per_rank, "per_expert": per_expert,
            "expert_count": expert_count, "adjusted": adjusted, "topk_ids": ids}
    return fig, data


def _adjusted_rows(num_tokens: int, head: int = 12, tail: int = 4) -> list[int]:
    if num_tokens <= head + tail:
        return list(range(num_tokens))
    return list(range(head)) + list(range(num_tokens - tail, num_tokens))


def _draw_adjusted(ax, adjusted, start, num_local):
    rows = _adjusted_rows(adjusted.shape[0])
    shown = adjusted[rows].numpy() if rows else np.zeros((0, adjusted.shape[1]), dtype=np.int64)
    image = np.where(shown >= 0, shown, np.nan)
    ax.imshow(image, aspect="auto", cmap=colormaps["viridis"].with_extremes(bad="#e4e4e4"), vmin=0,
              vmax=max(num_local - 1, 1), interpolation="nearest")
    for i, j in zip(*np.nonzero(shown >= 0)):  # grey cells are -1: only local ids get a number
        ax.text(j, i, str(int(shown[i, j])), ha="center", va="center", fontsize=7, color="white")
    ax.set_yticks(range(len(rows)), [str(r) for r in rows], fontsize=7)
    ax.set_xticks(range(shown.shape[1]))
    if len(rows) < adjusted.shape[0]:
        ax.axhline(11.5, color="black", lw=1.5)
    ax.set_xlabel("slot k of the token")
    ax.set_ylabel("token")
    ax.set_title(f"adjusted ids: id - {start} for experts {start}..{start + num_local - 1}, else -1 (grey)"
                 + (f"\nfirst 12 and last 4 of {adjusted.shape[0]} tokens" if len(rows) < adjusted.shape[0]
                    else ""), fontsize=9)


# --------------------------------------------------------------------------------------------
# 2. Programs and atomics
# --------------------------------------------------------------------------------------------

STATE_COLORS = ["#2ca02c", "#d9d9d9", "#fdd0a2", "#d62728"]  # local, remote, padding, masked


def _shown_rows(n: int, max_rows: int) -> list[int]:
    """All rows if they fit, else the first ``max_rows - 1`` and the last one."""
    return list(range(n)) if n <= max_rows else list(range(max_rows - 1)) + [n - 1]


def _cut_marker(ax, rows, n):
    """A dashed line above the last row when rows were left out in between."""
    if len(rows) < n:
        ax.axhline(len(rows) - 1.5, color="black", lw=1.5, ls="--")


def atomics_view(stage="scalar_atomic", preset="deepseek-v3", num_tokens=200, ep_size=8, rank=0,
                 skew=0.0, pad_fraction=0.1, block=None, num_programs=0, seed=0, max_rows=32):
    """Which program covers which slots, and how many atomics hit each counter and line, per program.

    ``stage`` is any stage in :data:`moe_lab.atomics.MODELLED_STAGES`; ``block`` slots per tile
    (``None``: the stage's own rule); ``num_programs`` only matters when the kernel has a persistent
    grid, ``block_histogram`` or ``one_launch`` (``0``: one program per tile, ``None``: the library's
    grid on this machine, ``n``: a grid of ``n`` programs, e.g. ``4 * 132`` on an H100), and is
    ignored otherwise.
    Returns ``(figure, AtomicTraffic)``; the traffic is computed from the inputs
    (:func:`moe_lab.atomics.atomic_traffic`), which the tests check against the real kernels.
    """
    from . import plots

    case = make_case(preset, num_tokens, ep_size, rank, skew, pad_fraction, seed)
    num_total, num_local = case.topk_ids.numel(), case.num_local
    launch = atomics.launch_config(stage, num_tokens, case.preset.topk, num_local, block=block)
    grid_arg = num_programs if launch.kernel in atomics.HISTOGRAM_STAGES else None
    traffic = atomics.atomic_traffic(stage, case.topk_ids, case.start, num_local, block=block,
                                     num_programs=grid_arg)
    launch = traffic.launch
    _, _, label = skew_distribution(skew)

    fig = _figure((11.0, 7.4))
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 1.15])
    ax_cov = top.subplots()
    ax_cnt, ax_line, ax_cmp = bottom.subplots(1, 3, width_ratios=[2.2, 0.9, 1.2])

    # which program covers which slots
    tiles = _shown_rows(launch.num_tiles, max_rows)
    states = traffic.slot_state.reshape(launch.num_tiles, launch.block)[tiles] if tiles \
        else np.zeros((0, launch.block), dtype=np.int8)
    ax_cov.imshow(states, aspect="auto", interpolation="nearest", cmap=ListedColormap(STATE_COLORS),
                  vmin=-0.5, vmax=3.5, extent=(-0.5, launch.block - 0.5, len(tiles) - 0.5, -0.5))
    ax_cov.set_yticks(range(len(tiles)),
                      [f"tile {t} -> prog {traffic.tile_program[t]}" if launch.persistent else f"prog {t}"
                       for t in tiles], fontsize=7 if len(tiles) <= 20 else 5)
    _cut_marker(ax_cov, tiles, launch.num_tiles)
    ax_cov.set_xlabel(f"lane within the tile (slot = tile * {launch.block} + lane)")
    shown_note = "" if len(tiles) == launch.num_tiles else f" (first {len(tiles) - 1} and the last)"
    via = f" (best runs {launch.kernel})" if launch.kernel != launch.stage else ""
    layout = ("persistent: program p takes tiles p, p+N, ..." if launch.persistent and launch.num_programs > 1
              else "one program" if launch.num_programs == 1 else "one tile each")
    ax_cov.set_title(f"{launch.stage}{via}: {launch.num_programs} program(s), {launch.num_tiles} tile(s) of "
                     f"{launch.block} slots ({layout}){shown_note}\n"
                     f"{case.preset.name}, {num_tokens} tokens x top-{case.preset.topk} = {num_total} slots, "
                     f"EP {ep_size} rank {rank} (experts {case.start}..{case.start + num_local - 1}), "
                     f"{label}, {int(num_tokens * pad_fraction)} padded rows", fontsize=9)
    ax_cov.legend(handles=[Patch(color=c, label=n) for c, n in zip(STATE_COLORS, atomics.STATE_NAMES)],
                  loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=4, fontsize=8, frameon=False)

    # atomics per counter per program
    progs = _shown_rows(launch.num_programs, max_rows)
    what = "stores" if launch.writes == "stores" else "atomics"
    per_counter = (traffic.stores if what == "stores" else traffic.atomics)[progs] if progs \
        else np.zeros((0, num_local), dtype=np.int64)
    # colour: how many atomics (or stores); number: for histogram atomics, the value each one adds
    labels = None
    if progs and launch.writes != "per-slot atomics":
        labels = (traffic.stored if launch.writes == "stores" else traffic.values)[progs]
    _heat(ax_cnt, per_counter, annotate=num_local <= 32 and len(progs) <= 24, labels=labels)
    for line in range(atomics.COUNTERS_PER_LINE, num_local, atomics.COUNTERS_PER_LINE):
        ax_cnt.axvline(line - 0.5, color="#d62728", lw=1.2)
    ax_cnt.set_yticks(range(len(progs)), [str(p) for p in progs], fontsize=7 if len(progs) <= 20 else 5)
    _cut_marker(ax_cnt, progs, launch.num_programs)
    ax_cnt.set_xlabel("counter (local expert); red lines: 128-byte line boundaries")
    ax_cnt.set_ylabel("program")
    total = int((traffic.stores if what == "stores" else traffic.atomics).sum())
    sem = f", {launch.sem}" if launch.sem else ""
    note = {"per-slot atomics": f"one per local slot{sem}",
            "per-bin atomics": f"one per expert per program{sem}; numbers: the value each adds",
            "stores": "no atomics; numbers: the value stored",
            atomics.PER_BIN_TICKET: f"to scratch{sem}; numbers: value added\n"
                                    f"+{int(traffic.ticket.sum())} acq_rel ticket atomics; the last program "
                                    f"zeroes the scratch, stores the counts"}
    ax_cnt.set_title(f"{what} per counter per program: {total}, {note[launch.writes]}", fontsize=8)
    # atomics per 128-byte line per program
    per_line = traffic.line_atomics[progs] if progs else np.zeros((0, traffic.num_lines), np.int64)
    _heat(ax_line, per_line, annotate=len(progs) <= 24)
    ax_line.set_yticks(range(len(progs)), [str(p) for p in progs], fontsize=7 if len(progs) <= 20 else 5)
    _cut_marker(ax_line, progs, launch.num_programs)
    ax_line.set_xticks(range(traffic.num_lines))
    ax_line.set_xlabel(f"line ({atomics.COUNTERS_PER_LINE} counters)")
    ax_line.set_title("atomics per line\nper program", fontsize=9)

    # the same input under every way of counting
    names, totals, busiest = [], [], []
    for other in ("scalar_atomic", "block_histogram", "one_launch", "decode"):
        try:
            t = atomics.atomic_traffic(other, case.topk_ids, case.start, num_local,
                                       num_programs=0 if other in atomics.HISTOGRAM_STAGES else None)
        except ValueError:
            continue
        names.append(other.replace("_", "_\n"))
        totals.append(t.total_atomics)
        busiest.append(int(t.line_atomics.sum(axis=0).max()) if t.line_atomics.size else 0)
    x = np.arange(len(names))
    colors = [plots.color(n.replace("\n", "")) for n in names]
    ax_cmp.bar(x - 0.2, totals, 0.4, label="all atomics", color=colors)
    ax_cmp.bar(x + 0.2, busiest, 0.4, label="on the busiest line", color="#555555")
    for xi, (t, b) in enumerate(zip(totals, busiest)):
        ax_cmp.text(xi - 0.2, t, str(t), ha="center", va="bottom", fontsize=7)
        ax_cmp.text(xi + 0.2, b, str(b), ha="center", va="bottom", fontsize=7)
    ax_cmp.set_xticks(x, names, fontsize=7)
    ax_cmp.set_yscale("symlog", linthresh=1)
    ax_cmp.set_ylim(0, max(totals + [1]) * 20)
    ax_cmp.set_title("same input, one program per tile: an atomic\nper slot, per expert per tile, or stores",
                     fontsize=9)
    ax_cmp.legend(fontsize=7)
    return fig, traffic


def _heat(ax, values, annotate, labels=None):
    """Counts as a heatmap (zero cells blank), optionally with a number in every non-zero cell."""
    shown = np.where(values > 0, values, np.nan).astype(float)
    vmax = max(2, int(values.max())) if values.size else 2
    ax.imshow(shown, aspect="auto", interpolation="nearest", cmap="OrRd", vmin=0, vmax=vmax)
    ax.set_facecolor("#f7f7f7")
    if annotate and np.count_nonzero(values) <= 160:  # text is the slow part of drawing
        labels = values if labels is None else labels
        for (i, j), v in np.ndenumerate(values):
            if v:
                ax.text(j, i, str(int(labels[i, j])), ha="center", va="center", fontsize=6,
                        color="white" if v > 0.6 * vmax else "black")


# --------------------------------------------------------------------------------------------
# 3. IR diffs
# --------------------------------------------------------------------------------------------

IR_LEVELS = ("ttir", "ttgir", "llir", "ptx")
IR_STAGES = tuple(s.name for s in STAGES.values() if s.single_kernel)


@functools.lru_cache(maxsize=64)
def _ir_texts(stage_a, stage_b, level, topk, num_local, context):
    """``(diff, atomics of a, atomics of b)``, compiled once per choice (compiling takes seconds)."""
    from . import ir
    ir.prefetch([stage_a, stage_b], topk=topk, num_local=num_local)  # one compile job for both
    diff = ir.ir_diff(stage_a, stage_b, level=level, context=context, topk=topk, num_local=num_local)
    atoms = [ir.atomic_lines(ir.compile_ir(s, level, topk=topk, num_local=num_local))
             for s in (stage_a, stage_b)]
    return diff, atoms[0], atoms[1]


def ir_diff_view(stage_a="scalar_atomic", stage_b="relaxed", level="ptx", topk=8, num_local=32,
                 context=3):
    """A highlighted unified diff of the code ``stage_a`` and ``stage_b`` compile to for an H100.

    Uses :func:`moe_lab.ir.ir_diff` (compiles for sm_90 on this machine; no GPU needed). Comparing
    ``scalar_atomic`` with ``relaxed`` is the comparison of memory orders (acq_rel vs relaxed).
    Returns ``(html, data)``: ``data["diff"]`` the plain diff (``""`` when the code is the same),
    ``added``/``removed`` line counts, and ``atomics_a``/``atomics_b``, the atomic instructions of
    each side (:func:`moe_lab.ir.atomic_lines`).
    """
    from .show import highlight

    level = str(level).lower()
    if level not in IR_LEVELS:
        raise ValueError(f"level must be one of {', '.join(IR_LEVELS)}, got {level!r}")
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
    page = head + f'<div style="max-height:420px;overflow:auto;font-size:85%">{body}</div>'
    return page, {"diff": diff, "added": added, "removed": removed, "atomics_a": atoms_a,
                  "atomics_b": atoms_b, "identical": not diff.strip()}


# --------------------------------------------------------------------------------------------
# 4. Performance
# --------------------------------------------------------------------------------------------

PERF_KINDS = ("time", "bandwidth", "speedup")


def perf_view(df, preset="deepseek-v3", distribution="uniform", stages=("scalar_atomic", "block_histogram"),
              kind="time", mode="eager"):
    """One benchmark plot of ``df`` (recorded or live results, schema of :mod:`moe_lab.results`).

    ``kind``: ``"time"`` (:func:`moe_lab.plots.time_vs_tokens`), ``"bandwidth"``
    (:func:`moe_lab.plots.bandwidth`, as a fraction of a device copy when it was measured) or
    ``"speedup"`` (:func:`moe_lab.plots.speedup`, each stage over the one before). Returns
    ``(figure, rows plotted)``.
    """
    from . import plots, results

    if kind not in PERF_KINDS:
        raise ValueError(f"kind must be one of {PERF_KINDS}, got {kind!r}")
    stages = list(stages)
    if not stages:
        raise ValueError("stages is empty: pick at least one stage to plot")
    if kind == "speedup" and len(stages) < 2:
        raise ValueError("a speed-up needs at least two stages (each over the one before it)")
    if kind == "time":
        fig = plots.time_vs_tokens(df, stages, preset, distribution, mode)
    elif kind == "bandwidth":
        fig = plots.bandwidth(df, stages, preset, distribution, mode,
                              relative="copy" in set(df["stage"]))
    else:
        fig = plots.speedup(df, stages, preset, distribution, mode)
    rows = results.select(df, preset=preset, distribution=distribution, mode=mode,
                          stage=[s for s in stages + ["copy"] if s in set(df["stage"])])
    return fig, rows


def _message_html(text: str, color: str = "#a04000") -> str:
    return f'<div style="color:{color};font-size:95%;padding:4px 0">{html.escape(text)}</div>'


# --------------------------------------------------------------------------------------------
# The widget layer
# --------------------------------------------------------------------------------------------

def _ipython():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def _bundle(shown) -> dict:
    """A display bundle for what a view returned: a Figure (PNG) or an HTML string."""
    if isinstance(shown, Figure):
        return {"image/png": base64.b64encode(png_bytes(shown)).decode("ascii"),
                "text/plain": f"<figure: {shown.get_suptitle() or 'explorer view'}>"}
    return {"text/html": str(shown), "text/plain": "(HTML view)"}


class Explorer(ipywidgets.interactive):
    """``ipywidgets.interactive`` over a view function that returns ``(figure or HTML, data)``.

    ``.result`` is the data of the last view, ``.shown`` its figure (or HTML), ``.error`` the
    message of the last bad input (``None`` when it drew), ``.controls`` the widgets by name and
    ``.renders`` how many views were drawn. Displaying it shows the controls, then a static rendering
    of the default values (``.static_bundle``); moving a control redraws inside the widget and clears
    the static rendering, so a live notebook never shows two figures.
    """

    def __init__(self, view, controls: dict, *, name: str = "explorer", hold=None):
        self._view, self._name, self._live = view, name, False
        self._hold = hold if hold is not None else _Hold()
        self._static_handle = None
        self.shown, self.error, self.renders = None, None, 0
        self.controls = dict(controls)
        super().__init__(self._render, **self.controls)
        self._first = (self.shown, self.error)
        self._static_bundle = None
        self._live = True

    @property
    def static_bundle(self) -> dict:
        """The display bundle of the default values' view: a PNG (or HTML, or the error message)."""
        if self._static_bundle is None:
            shown, error = self._first
            if shown is not None:
                self._static_bundle = _bundle(shown)
            else:
                message = f"cannot draw: {error}"
                self._static_bundle = {"text/html": _message_html(message), "text/plain": message}
        return self._static_bundle

    def _render(self, **kwargs):
        if self._hold.active:  # another control is being adjusted to this one: draw once, after
            return self.result
        try:
            shown, data = self._view(**kwargs)
        except (ValueError, TypeError, FileNotFoundError, RuntimeError) as err:  # say why, no traceback
            self.error, self.shown = str(err), None
            self._show(lambda: {"text/html": _message_html(f"cannot draw: {err}"),
                                "text/plain": f"cannot draw: {err}"})
            return None
        self.error, self.shown = None, shown
        self.renders += 1
        self._show(lambda: _bundle(shown))
        return data

    def _show(self, make_bundle):
        """Draw into the widget's output (live updates only; the first view is the static one)."""
        if not self._live or _ipython() is None:
            return
        from IPython.display import display
        display(make_bundle(), raw=True)
        if self._static_handle is not None:
            self._static_handle.update({"text/plain": "", "text/html": ""}, raw=True)
            self._static_handle = None

    def _ipython_display_(self, **kwargs):
        from IPython.display import display
        display(self._repr_mimebundle_(), raw=True)
        self._static_handle = display(self.static_bundle, raw=True, display_id=True)

    def __repr__(self):
        values = ", ".join(f"{k}={c.value!r}" for k, c in self.controls.items())
        return f"<{self._name}: {values}>"


def _slider(w, **kw):
    kw.setdefault("continuous_update", False)
    kw.setdefault("style", {"description_width": "initial"})
    return kw.pop("cls", w.IntSlider)(**kw)


class _Hold:
    """While active, an :class:`Explorer` does not redraw: for controls that move other controls."""

    def __init__(self):
        self.depth = 0

    def __enter__(self):
        self.depth += 1

    def __exit__(self, *exc):
        self.depth -= 1

    @property
    def active(self) -> bool:
        return self.depth > 0


def _routing_controls(w, hold, preset, num_tokens, ep_size, rank, skew, pad_fraction, seed):
    style = {"description_width": "initial"}
    c = {
        "preset": w.Dropdown(options=list(routing.PRESETS), value=preset, description="preset",
                             style=style),
        "num_tokens": _slider(w, min=1, max=4096, value=num_tokens, description="tokens"),
        "ep_size": w.Dropdown(options=ep_sizes(preset), value=ep_size, description="EP size", style=style),
        "rank": _slider(w, min=0, max=ep_size - 1, value=rank, description="rank"),
        "skew": _slider(w, cls=w.SelectionSlider, options=SKEW_OPTIONS, value=skew, description="skew"),
        "pad_fraction": _slider(w, cls=w.FloatSlider, min=0.0, max=1.0, step=0.05, value=pad_fraction,
                                description="share of -1 rows"),
        "seed": w.BoundedIntText(value=seed, min=0, max=2**31 - 1, description="seed", style=style,
                                 layout={"width": "160px"}),
    }

    # These observers are registered before the explorer's own, so they run first: they fix the
    # dependent controls under `hold` (no redraw), then the explorer draws once, consistently.
    def preset_changed(change):
        with hold:
            sizes = ep_sizes(change["new"])
            old_ep, old_rank = c["ep_size"].value, c["rank"].value
            keep = old_ep if old_ep in sizes else max(s for s in sizes if s <= 8)
            c["ep_size"].options = sizes  # may pass through other values: rank is restored below
            c["ep_size"].value = keep
            c["rank"].max = keep - 1
            c["rank"].value = min(old_rank, keep - 1)

    def ep_changed(change):
        if change["new"] is not None:
            with hold:
                c["rank"].max = change["new"] - 1  # clamps the rank's value as well

    c["preset"].observe(preset_changed, names="value")
    c["ep_size"].observe(ep_changed, names="value")
    return c


def routing_explorer(preset="deepseek-v3", num_tokens=256, ep_size=8, rank=0, skew=0.0,
                     pad_fraction=0.0, seed=0):
    """Routing explorer (:func:`routing_view`): preset, tokens, EP size, rank, skew, padding, seed."""
    w = ipywidgets
    hold = _Hold()
    controls = _routing_controls(w, hold, preset, num_tokens, ep_size, rank, skew, pad_fraction, seed)
    return Explorer(routing_view, controls, name="routing explorer", hold=hold)


BLOCK_OPTIONS = [("stage default", None)] + [(str(2**i), 2**i) for i in range(4, 13)]
GRID_OPTIONS = ([("one per tile", 0), ("the library's, here", None)] + [(str(n), n) for n in (1, 2, 4, 8)]
                + [(f"H100: 4 x {atomics.H100_SMS}", 4 * atomics.H100_SMS)])


def atomics_explorer(stage="scalar_atomic", preset="deepseek-v3", num_tokens=200, ep_size=8, rank=0,
                     skew=0.0, pad_fraction=0.1, block=None, num_programs=0, seed=0):
    """Program / atomic visualiser (:func:`atomics_view`)."""
    w = ipywidgets
    style = {"description_width": "initial"}
    c = {"stage": w.Dropdown(options=list(atomics.MODELLED_STAGES), value=stage, description="stage",
                             style=style),
         "block": w.Dropdown(options=BLOCK_OPTIONS, value=block, description="block (slots per tile)",
                             style=style),
         "num_programs": w.Dropdown(options=GRID_OPTIONS, value=num_programs,
                                    description="programs (block_histogram, one_launch)", style=style)}
    hold = _Hold()
    c.update(_routing_controls(w, hold, preset, num_tokens, ep_size, rank, skew, pad_fraction, seed))
    return Explorer(atomics_view, c, name="atomics explorer", hold=hold)


def ir_explorer(stage_a="scalar_atomic", stage_b="relaxed", level="ptx", topk=8, num_local=32):
    """IR diff viewer (:func:`ir_diff_view`): two stages and a level, compiled for an H100."""
    w = ipywidgets
    style = {"description_width": "initial"}
    c = {"stage_a": w.Dropdown(options=list(IR_STAGES), value=stage_a, description="from", style=style),
         "stage_b": w.Dropdown(options=list(IR_STAGES), value=stage_b, description="to", style=style),
         "level": w.ToggleButtons(options=[(lv.upper(), lv) for lv in IR_LEVELS], value=level,
                                  description="level", style=style),
         "topk": w.Dropdown(options=[2, 6, 8], value=topk, description="topk", style=style),
         "num_local": w.Dropdown(options=[8, 16, 32, 64, 128], value=num_local,
                                 description="local experts", style=style)}
    return Explorer(ir_diff_view, c, name="IR diff viewer")


def perf_explorer(df=None, preset="deepseek-v3", distribution="uniform",
                  stages=("scalar_atomic", "block_histogram", "best"), kind="time", mode="eager"):
    """Performance explorer (:func:`perf_view`) over recorded results, or live ones on a GPU.

    ``df``: results to plot; ``None`` loads the latest recorded run (``moe_lab.results.load``). With
    no recorded run and no GPU it shows a message saying so instead of a plot. On a GPU a "source"
    control appears: "live" measures the selection now with ``moe_lab.bench`` (once per selection).
    """
    from . import backend, results

    w = ipywidgets
    style = {"description_width": "initial"}
    recorded, problem = df, None
    if recorded is None:
        try:
            recorded = results.load()
        except (FileNotFoundError, ValueError) as err:
            problem = str(err)
    live_cache: dict = {}

    def view(preset, distribution, stages, kind, mode, source="recorded"):
        if source == "live":
            key = (preset, distribution, tuple(stages), mode)
            if key not in live_cache:  # time the selection and a device copy (the floor) once
                wanted = list(stages) + ([] if "copy" in stages else ["copy"])
                live_cache[key] = results.measure_or_load(wanted, preset=preset,
                                                          distributions=(distribution,), mode=mode)
            data = live_cache[key]
        elif recorded is None:
            raise FileNotFoundError(problem + (" Pick source=live to measure on this GPU."
                                               if backend.has_gpu() else ""))
        else:
            data = recorded
        return perf_view(data, preset, distribution, stages, kind, mode)

    known = recorded
    presets = sorted(set(known["preset"])) if known is not None else list(routing.PRESETS)
    dists = [d for d in routing.DISTRIBUTIONS if known is None or d in set(known["distribution"])]
    modes = sorted(set(known["mode"])) if known is not None else ["eager", "graph"]
    order = [*moe_stage_names(), "copy", "zeros"]
    if known is None:
        stage_names = order
    else:  # what was measured: the library's stages in teaching order, then the rest
        measured = set(known["stage"])
        stage_names = [s for s in order if s in measured] + sorted(measured - set(order))
    preset = preset if preset in presets else presets[0]
    distribution = distribution if distribution in dists else dists[0]
    mode = mode if mode in modes else modes[0]
    stages = tuple(s for s in stages if s in stage_names) or tuple(stage_names[:2])
    c = {"preset": w.Dropdown(options=presets, value=preset, description="preset", style=style),
         "distribution": w.Dropdown(options=dists, value=distribution, description="distribution",
                                    style=style),
         "stages": w.SelectMultiple(options=stage_names, value=stages, description="stages",
                                    rows=min(len(stage_names), 8), style=style),
         "kind": w.ToggleButtons(options=list(PERF_KINDS), value=kind, description="plot", style=style),
         "mode": w.Dropdown(options=modes, value=mode, description="mode", style=style)}
    if backend.has_gpu():
        c["source"] = w.ToggleButtons(options=["recorded", "live"],
                                      value="recorded" if recorded is not None else "live",
                                      description="source", style=style)
    return Explorer(view, c, name="performance explorer")


def moe_stage_names() -> list[str]:
    from .registry import STAGES
    return list(STAGES)


__all__ = ["Explorer", "SKEW_OPTIONS", "SKEW_HOT", "ZIPF_MAX", "skew_distribution", "make_case", "ep_sizes",
           "routing_view", "atomics_view", "ir_diff_view", "perf_view", "routing_explorer",
           "atomics_explorer", "ir_explorer", "perf_explorer", "png_bytes", "IR_LEVELS", "IR_STAGES",
           "PERF_KINDS"]
