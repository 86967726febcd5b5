"""What every explorer shares: the skew slider's scale, a routing case from the controls, figures.

The skew slider is one number from uniform (0) through Zipf exponents to one hot expert
(:data:`SKEW_HOT`); :func:`make_case` turns the controls into a :class:`moe_lab.routing.RankInput`.
Figures are small (:data:`DPI`) and sized to sit under a row of controls on a 1280x720 screen.
"""

from __future__ import annotations

import html
import io

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from moe_lab import routing
from moe_lab.measure import figure as figure_rule
from moe_lab.measure.figure import DPI

FIG_WIDTH = 11.0
"""Inches: 880 px at :data:`DPI`, the width of a notebook's output area on a 1280 px screen."""
FIG_HEIGHT = 5.6
"""Inches: 448 px at :data:`DPI`, so that two rows of controls and the figure fit a 720 px screen."""

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
              seed=0) -> routing.RankInput:
    """:func:`moe_lab.routing.case` with the skew slider's single number."""
    distribution, zipf_s, _ = skew_distribution(skew)
    return routing.case(preset, num_tokens, distribution=distribution, ep_size=ep_size, rank=rank,
                        pad_fraction=pad_fraction, zipf_s=zipf_s if zipf_s else 1.2, seed=seed)


def ep_sizes(preset: str) -> list[int]:
    """EP group sizes that split ``preset``'s experts evenly (:meth:`moe_lab.routing.Preset.ep_sizes`)."""
    return routing.preset(preset).ep_sizes()


def figure(height: float = FIG_HEIGHT, width: float = FIG_WIDTH) -> Figure:
    """An explorer's figure: constrained layout, the workbook's DPI, text sizes readable at 80 DPI."""
    return figure_rule.figure(width, height)


def integer_axis(ax, axis: str = "x") -> None:
    """Ticks on whole numbers only (one bar at 0 gets the tick 0, not -0.4 .. 0.4)."""
    (ax.xaxis if axis == "x" else ax.yaxis).set_major_locator(MaxNLocator(integer=True))


def bar_axis(ax, n: int) -> None:
    """An x axis for ``n`` bars at 0..n-1: a tick under each of a few bars, room around a single one."""
    pad = 0.6 if n < 4 else 0.1
    ax.set_xlim(-0.5 - pad, n - 0.5 + pad)
    if n <= 16:
        ax.set_xticks(range(n))
    else:
        integer_axis(ax)


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes, at the workbook's small DPI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def message_html(text: str, color: str = "#a04000") -> str:
    """A one-line message in place of a figure (e.g. why it cannot be drawn)."""
    return f'<div style="color:{color};font-size:95%;padding:4px 0">{html.escape(text)}</div>'
