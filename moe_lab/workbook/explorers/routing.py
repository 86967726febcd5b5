"""The routing explorer: router output for a preset, seen from one rank of an EP group."""

from __future__ import annotations

import ipywidgets
import numpy as np
from matplotlib import colormaps

from moe_lab import routing
from moe_lab.inspection import atomics
from moe_lab.workbook.explorers.cases import (
    SKEW_OPTIONS,
    bar_axis,
    ep_sizes,
    figure,
    integer_axis,
    make_case,
    skew_distribution,
)
from moe_lab.workbook.explorers.explorer import Explorer, Hold, control, slider


def routing_view(preset="deepseek-v3", num_tokens=256, ep_size=8, rank=0, skew=0.0, pad_fraction=0.0,
                 seed=0):
    """Router output for ``preset``, seen from ``rank`` of an EP group of ``ep_size``.

    Returns ``(figure, data)``. The figure: the routing heatmap (tokens x experts, the rank's experts
    framed), slots per rank, slots per local expert as counted by the library's kernel
    (``moe_lab.recompute_topk_ids_sum_expert_count``), and the rank's adjusted ids. ``data`` holds
    the numbers: ``per_rank``, ``expert_count``, ``adjusted``, ``topk_ids``, ``start``, ``num_local``...
    """
    import moe_lab
    from moe_lab import backend
    from moe_lab.measure import plots
    from moe_lab.stages import best

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

    fig = figure()
    (ax_map, ax_rank), (ax_local, ax_adj) = fig.subplots(2, 2, width_ratios=[1.25, 1])
    plots.routing_matrix(ids, p.num_experts, ep_size=ep_size if ep_size > 1 else None, ax=ax_map)
    ax_map.set_title(f"{p.name}: {num_tokens} tokens, top-{p.topk}, {label}", fontsize=10)
    ax_map.axvspan(case.start - 0.5, case.start + case.num_local - 0.5, color="#1f77b4", alpha=0.18)
    if padded_rows:
        ax_map.axhspan(num_tokens - padded_rows - 0.5, num_tokens - 0.5, color="#ff7f0e", alpha=0.15)
        ax_map.text(p.num_experts * 0.98, num_tokens - padded_rows / 2, f"{padded_rows} rows of -1",
                    ha="right", va="center", fontsize=9, color="#a04000")
    ax_map.set_xlabel(f"expert id (blue: rank {rank}'s experts {case.start}.."
                      f"{case.start + case.num_local - 1})", fontsize=9)
    integer_axis(ax_map)

    colors = ["#1f77b4" if r == rank else "#c7c7c7" for r in range(ep_size)]
    ax_rank.bar(np.arange(ep_size), per_rank, color=colors, width=0.8)
    real_slots = (num_tokens - padded_rows) * p.topk
    ax_rank.axhline(real_slots / ep_size, ls="--", lw=1, color="#555555")
    ax_rank.annotate("even share", xy=(0.01, real_slots / ep_size), xycoords=("axes fraction", "data"),
                     xytext=(0, 2), textcoords="offset points", ha="left", va="bottom", fontsize=9,
                     color="#333333", zorder=5,  # a label on the line, over the bars, not a legend box
                     bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1})
    bar_axis(ax_rank, ep_size)
    ax_rank.set_xlabel("rank")
    ax_rank.set_ylabel("slots")
    ax_rank.set_title(f"slots per rank (EP {ep_size}): rank {rank} gets {per_rank[rank]} of "
                      f"{real_slots}", fontsize=10)

    ax_local.bar(np.arange(case.num_local), expert_count, color="#2ca02c", width=0.85)
    for line in range(atomics.COUNTERS_PER_LINE, case.num_local, atomics.COUNTERS_PER_LINE):
        ax_local.axvline(line - 0.5, color="#d62728", lw=0.8)
    bar_axis(ax_local, case.num_local)  # one counter: one bar at 0, not a -0.4..0.4 axis
    ax_local.set_xlabel("local expert (counter)" + ("; red: 128-byte line boundaries"
                                                    if case.num_local > atomics.COUNTERS_PER_LINE else ""))
    ax_local.set_ylabel("expert_count")
    kernel = best.choose(flat.numel(), case.num_local)
    ax_local.set_title(f"rank {rank}'s expert_count ({kernel} via best): "
                       f"{int(expert_count.sum())} local slots", fontsize=10)

    _draw_adjusted(ax_adj, adjusted, case.start, case.num_local)

    data = {"preset": p.name, "num_experts": p.num_experts, "topk": p.topk, "ep_size": ep_size,
            "rank": rank, "start": case.start, "num_local": case.num_local,
            "distribution": case.distribution, "skew_label": label, "num_tokens": num_tokens,
            "padded_rows": padded_rows, "per_rank": per_rank, "per_expert": per_expert,
            "expert_count": expert_count, "adjusted": adjusted, "topk_ids": ids}
    return fig, data


def _adjusted_rows(num_tokens: int, head: int = 8, tail: int = 3) -> list[int]:
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
        ax.text(j, i, str(int(shown[i, j])), ha="center", va="center", fontsize=9, color="white")
    ax.set_yticks(range(len(rows)), [str(r) for r in rows], fontsize=8)
    ax.set_xticks(range(shown.shape[1]))
    cut = len(rows) < adjusted.shape[0]
    if cut:
        ax.axhline(7.5, color="black", lw=1.5)
    ax.set_xlabel("slot k of the token")
    ax.set_ylabel("token")
    ax.set_title(f"adjusted ids (id - {start}; grey: -1)"
                 + (f"\ntokens 0-7 and the last 3 of {adjusted.shape[0]}" if cut else ""), fontsize=10)


def routing_controls(hold, preset, num_tokens, ep_size, rank, skew, pad_fraction, seed) -> dict:
    """The routing controls (shared with the atomics explorer), kept consistent with each other."""
    w = ipywidgets
    c = {
        "preset": control(w.Dropdown, options=list(routing.PRESETS), value=preset, description="preset"),
        "num_tokens": slider(min=1, max=4096, value=num_tokens, description="tokens"),
        "ep_size": control(w.Dropdown, options=ep_sizes(preset), value=ep_size, description="EP size"),
        "rank": slider(min=0, max=ep_size - 1, value=rank, description="rank"),
        "skew": slider(cls=w.SelectionSlider, options=SKEW_OPTIONS, value=skew, description="skew"),
        "pad_fraction": slider(cls=w.FloatSlider, min=0.0, max=1.0, step=0.05, value=pad_fraction,
                               description="-1 rows", readout_format=".2f"),
        "seed": control(w.BoundedIntText, value=seed, min=0, max=2**31 - 1, description="seed"),
    }
    c["pad_fraction"].tooltip = "share of padding (-1) rows"

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
                     pad_fraction=0.0, seed=0) -> Explorer:
    """Routing explorer (:func:`routing_view`): preset, tokens, EP size, rank, skew, padding, seed."""
    hold = Hold()
    controls = routing_controls(hold, preset, num_tokens, ep_size, rank, skew, pad_fraction, seed)
    return Explorer(routing_view, controls, name="routing explorer", hold=hold)
