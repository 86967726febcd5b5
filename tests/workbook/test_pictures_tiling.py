"""The tiling picture: one row per program, one cell per lane, masked and local lanes marked."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.colors import to_hex

from moe_lab.workbook.pictures import tiling as tiling_module
from moe_lab.workbook.pictures.tiling import tiling


def _cells(fig):
    ax = fig.axes[0]
    cells = sorted(ax.patches, key=lambda r: (r.get_y(), r.get_x()))
    return [(int(r.get_y()), int(r.get_x()), to_hex(r.get_facecolor())) for r in cells]


def test_one_row_per_program_and_masked_tail():
    fig = tiling(21, 8)
    cells = _cells(fig)
    assert len(cells) == 3 * 8
    masked = [(p, lane) for p, lane, c in cells if c == tiling_module._MASKED]
    assert masked == [(2, 5), (2, 6), (2, 7)]  # slots 21, 22, 23 lie past the end
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["pid 0", "pid 1", "pid 2"]


def test_local_lanes_are_the_ids_in_range():
    ids = torch.tensor([0, 5, 2, 3, -1, 7, 2, 6, 3, 4], dtype=torch.int32)
    fig = tiling(10, 4, ids=ids, start=2, num_local=2)
    local = [p * 4 + lane for p, lane, c in _cells(fig) if c == tiling_module._LOCAL]
    expected = [i for i, v in enumerate(ids.tolist()) if 2 <= v < 4]
    assert local == expected
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert "1\nid 5" in texts and "10\nmasked" in texts


def test_exact_fit_has_no_masked_lane():
    cells = _cells(tiling(16, 8))
    assert all(c != tiling_module._MASKED for _, _, c in cells)


@pytest.mark.parametrize("kwargs, error, words", [
    ({"num_total": 0, "block": 8}, ValueError, "num_total must be at least 1, got 0"),
    ({"num_total": 10, "block": 2.5}, TypeError, "block must be an int, got float 2.5"),
    ({"num_total": 4096, "block": 256}, ValueError, "draw a smaller example"),
    ({"num_total": 10, "block": 4, "ids": np.arange(9)}, ValueError,
     "ids has 9 elements but num_total is 10"),
    ({"num_total": 4, "block": 4, "ids": np.arange(4), "start": 0}, ValueError,
     "pass both start and num_local"),
])
def test_bad_arguments_name_the_argument(kwargs, error, words):
    with pytest.raises(error, match=words):
        tiling(**kwargs)
