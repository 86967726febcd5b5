"""Plots of a group's load and of recorded NCCL runs (matplotlib, imported on use)."""

from __future__ import annotations

from moe_lab.ep.recorded import latest
from moe_lab.registry import STAGES


def plot_imbalance(results):
    """Left: slots per rank for each routing; right: max/mean, the slowdown of the busiest rank."""
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=80)
    width = 0.8 / len(results)
    for i, res in enumerate(results):
        ranks = np.arange(res.world_size)
        left.bar(ranks + (i - (len(results) - 1) / 2) * width, res.local_slots, width,
                 label=res.distribution)
    left.set(xlabel="rank", ylabel="slots routed to the rank's experts", xticks=range(results[0].world_size),
             title=f"{results[0].preset}, EP {results[0].world_size}")
    left.legend()
    names = [r.distribution for r in results]
    right.bar(names, [r.imbalance for r in results], color=[f"C{i}" for i in range(len(results))])
    right.axhline(1.0, color="k", lw=0.8, ls="--")
    right.set(ylabel="max / mean slots per rank", title="load imbalance")
    fig.tight_layout()
    return fig


def plot_expert_counts(result):
    """The global histogram, coloured by the rank that counted each expert: conservation, drawn."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3), dpi=80)
    width = 0.9 if result.num_experts <= 64 else 1.0
    for rank, start in enumerate(result.starts):
        ax.bar(range(start, start + result.num_local), result.counts[rank].tolist(), width=width,
               color=f"C{rank}", label=f"rank {rank}")
    ax.set(xlabel="global expert id", ylabel="slots (expert_count)",
           title=f"{result.preset}, {result.distribution} routing: each rank counts its own experts")
    ax.legend(ncol=min(result.world_size, 8), fontsize=8, loc="upper left", framealpha=0.9)
    fig.tight_layout()
    return fig


def plot_recorded(frame, run_id: str | None = None, distribution: str = "uniform"):
    """One recorded NCCL run (default: the latest): all-gather and kernel time of every rank against
    tokens per rank, log-log, medians with a bar from the 20th to the 80th percentile, and the card,
    date and versions in the title."""
    import matplotlib.pyplot as plt

    run = latest(frame) if run_id is None else frame[frame["run_id"] == run_id]
    run = run[run["distribution"] == distribution]
    if run.empty:
        raise ValueError(f"no rows for run_id={run_id!r} and distribution={distribution!r}")
    run_id = run["run_id"].iloc[0]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=80)

    def draw(ax, rows, column, label, style, nudge, color=None):
        g = rows.groupby("tokens_per_rank")[[column, column.replace("_us", "_p20_us"),
                                             column.replace("_us", "_p80_us")]].median()
        x = g.index.to_numpy() * nudge  # ranks side by side, so their bars do not hide each other
        ax.errorbar(x, g.iloc[:, 0], yerr=[g.iloc[:, 0] - g.iloc[:, 1], g.iloc[:, 2] - g.iloc[:, 0]],
                    fmt=style, capsize=3, label=label, color=color)

    ranks = sorted(run["rank"].unique())
    for i, rank in enumerate(ranks):
        part = run[run["rank"] == rank]
        nudge = 1.06 ** (i - (len(ranks) - 1) / 2)
        draw(left, part[part["stage"] == part["stage"].iloc[0]], "allgather_us", f"rank {rank}", "o-", nudge)
        for stage, s in part.groupby("stage"):
            color = STAGES[stage].color if stage in STAGES else None  # the stage's colour everywhere
            draw(right, s, "kernel_us", f"{stage}, rank {rank}", "o-" if rank == ranks[0] else "s--", nudge,
                 color)
    for ax, what in [(left, "all-gather of topk_ids (one gather after a barrier)"),
                     (right, "recombination, whole call")]:
        ax.set(xscale="log", yscale="log", xlabel="tokens per rank", ylabel="us (median, p20-p80)",
               title=what)
    left.legend(fontsize=8)
    right.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    first = run.iloc[0]
    fig.suptitle(f"{first['preset']}, {distribution}, EP {first['world_size']} over NCCL on "
                 f"{first['card']} ({first['date']}, torch {first['torch']}, triton {first['triton']}, "
                 f"{first['kernel_mode']} kernels, run {run_id})", fontsize=9)
    fig.tight_layout()
    return fig


def plot_hot_rank(frame, run_id: str | None = None):
    """At the largest recorded batch: each rank's kernel time per stage, uniform next to hot routing.
    Under ``hot`` routing rank 0 owns the expert that is in every token's top-k."""
    import matplotlib.pyplot as plt
    import numpy as np

    run = latest(frame) if run_id is None else frame[frame["run_id"] == run_id]
    run = run[run["tokens_per_rank"] == run["tokens_per_rank"].max()]
    stages = sorted(run["stage"].unique())
    ranks = sorted(run["rank"].unique())
    fig, axes = plt.subplots(1, len(stages), figsize=(4.2 * len(stages), 3.2), dpi=80, sharey=True)
    for ax, stage in zip(np.atleast_1d(axes), stages, strict=True):
        for i, distribution in enumerate(["uniform", "hot"]):
            g = run[(run["stage"] == stage) & (run["distribution"] == distribution)]
            g = g.groupby("rank")["kernel_us"].median().reindex(ranks)
            bars = ax.bar(np.arange(len(ranks)) + (i - 0.5) * 0.38, g.to_numpy(), 0.38, label=distribution,
                          color=["#9ecae1", "#d62728"][i])  # pale: uniform, red: the hot routing
            ax.bar_label(bars, fmt="%.0f", fontsize=8)
        ax.set(xticks=range(len(ranks)), xticklabels=[f"rank {r}" for r in ranks], title=stage,
               ylabel="kernel us (median)")
    np.atleast_1d(axes)[0].legend(fontsize=8, loc="upper right")
    first = run.iloc[0]
    fig.suptitle(f"{first['tokens_per_rank']} tokens per rank, {first['card']}, run {first['run_id']}",
                 fontsize=9)
    fig.tight_layout()
    return fig
