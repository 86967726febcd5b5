"""moe_lab.workbook.pictures: the figures draw what their inputs say, and refuse inputs they cannot draw."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from moe_lab.inspection import atomics, tracer
from moe_lab.workbook.pictures import contention, ticket


def hot_ids(num_tokens=64, topk=8, num_local=32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 256, (num_tokens, topk), generator=gen, dtype=torch.int32)
    ids[:, 0] = 0  # expert 0 in every token's top-k: the hot expert
    return ids


def test_side_by_side_shows_each_stage_totals_and_the_hot_counter():
    ids = hot_ids()
    left = tracer.trace("scalar_atomic", ids, 0, 32, block=128)
    right = tracer.trace("block_histogram", ids, 0, 32, block=128, num_programs=2)
    fig = contention.atomics_side_by_side(left, right, suptitle="hot")
    assert isinstance(fig, Figure)
    heat_left, bars_left, heat_right, bars_right = fig.axes[:4]
    programs, total = left.atomics.shape[0], int(left.atomics.sum())
    assert heat_left.get_title() == f"scalar_atomic: {programs} programs, {total:,} atomics"
    assert heat_right.get_title().startswith("block_histogram: 2 programs")
    # every token hits expert 0: one atomic each for scalar_atomic, one per program for block_histogram
    heights_left = [patch.get_height() for patch in bars_left.patches]
    heights_right = [patch.get_height() for patch in bars_right.patches]
    assert heights_left[0] == 64
    assert heights_right[0] == 2
    assert max(heights_right) <= 2
    assert bars_left.get_ylim() == bars_right.get_ylim()  # one scale for both


def test_side_by_side_rejects_mismatched_or_wrong_inputs():
    a = atomics.atomic_traffic("scalar_atomic", hot_ids(), 0, 32)
    b = atomics.atomic_traffic("scalar_atomic", hot_ids(), 0, 16)
    with pytest.raises(ValueError, match="same counters"):
        contention.atomics_side_by_side(a, b)
    with pytest.raises(TypeError, match="left must have an `atomics` array"):
        contention.atomics_side_by_side(np.zeros((2, 2)), a)


def test_ticket_timeline_gives_the_last_ticket_to_the_last_program_to_finish():
    fig = ticket.ticket_timeline((5.0, 3.0, 6.5, 4.0))
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["ticket 2: done, exits", "ticket 0: done, exits", "ticket 3 = last",
                     "ticket 1: done, exits"]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == [label for _, label in ticket.PHASES.values()]


def test_ticket_timeline_rejects_bad_work():
    with pytest.raises(ValueError, match="work must give two or more positive"):
        ticket.ticket_timeline((1.0,))
    with pytest.raises(ValueError, match="got \\[1.0, 0.0\\]"):
        ticket.ticket_timeline((1.0, 0.0))
