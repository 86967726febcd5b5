"""The programs-over-tokens picture: one row per token, one cell per top-k slot, banded by program."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.colors import to_hex

from moe_lab.workbook.pictures import tiling as tiling_module
from moe_lab.workbook.pictures.token_loop import programs_over_tokens


def _cells(fig):
    """(token, k, colour) of every slot cell, in reading order (the program bands sit at x < 0)."""
    ax = fig.axes[0]
    cells = [r for r in ax.patches if r.get_x() >= 0]
    cells.sort(key=lambda r: (r.get_y(), r.get_x()))
    return [(int(r.get_y()), int(r.get_x()), to_hex(r.get_facecolor())) for r in cells]


def _texts(fig):
    return [t.get_text() for t in fig.axes[0].texts]


def test_one_band_per_program_and_the_spare_tokens_skipped():
    fig = programs_over_tokens(5, 3, 2)
    cells = _cells(fig)
    assert len(cells) == 6 * 3  # 3 programs x 2 tokens, 3 slots each
    skipped = [(t, k) for t, k, c in cells if c == tiling_module._MASKED]
    assert skipped == [(5, 0), (5, 1), (5, 2)]  # token 5 lies past the end
    bands = [r for r in fig.axes[0].patches if r.get_x() < 0]
    assert [(int(r.get_y()), int(r.get_height())) for r in bands] == [(0, 2), (2, 2), (4, 2)]
    assert [t for t in _texts(fig) if t.startswith("program")] == ["program\n0", "program\n1", "program\n2"]


def test_each_cell_is_its_flat_slot_and_the_programs_step():
    texts = _texts(programs_over_tokens(4, 3, 2))
    # token 3 is program 1's second token: its slot k=2 is flat slot 11, the program's step 5
    assert "slot 11\nstep 5" in texts and "slot 6\nstep 0" in texts
    assert texts.count("skipped") == 0


def test_local_slots_are_the_ids_in_range():
    ids = torch.tensor([[9, 3, -1], [12, 8, 30], [25, 10, 9]], dtype=torch.int32)
    fig = programs_over_tokens(3, 3, 4, ids=ids, start=8, num_local=16)
    local = [(t, k) for t, k, c in _cells(fig) if c == tiling_module._LOCAL]
    expected = [(t, k) for t in range(3) for k in range(3) if 8 <= int(ids[t, k]) < 24]
    assert local == expected
    assert "slot 5  id 30\nstep 5" in _texts(fig)


@pytest.mark.parametrize("kwargs, error, words", [
    ({"num_tokens": 0, "topk": 2, "tokens_per_program": 2}, ValueError,
     "num_tokens must be at least 1, got 0"),
    ({"num_tokens": 4, "topk": 2.0, "tokens_per_program": 2}, TypeError, "topk must be an int, got float"),
    ({"num_tokens": 100, "topk": 8, "tokens_per_program": 32}, ValueError, "draw a smaller example"),
    ({"num_tokens": 3, "topk": 2, "tokens_per_program": 2, "ids": np.zeros((3, 3))}, ValueError,
     r"ids has shape \(3, 3\) but num_tokens and topk give \(3, 2\)"),
    ({"num_tokens": 2, "topk": 2, "tokens_per_program": 2, "ids": np.zeros((2, 2)), "start": 0}, ValueError,
     "pass both start and num_local"),
])
def test_bad_arguments_name_the_argument(kwargs, error, words):
    with pytest.raises(error, match=words):
        programs_over_tokens(**kwargs)
