"""Interactive explorers for the notebooks: routing, atomics per program, IR diffs, performance.

Each explorer is a thin ipywidgets layer over a plain function that returns a figure (or HTML) and
the data behind it; the functions are what the tests check, and you can call them yourself:

* :func:`routing_view`: router output for a preset, seen from one rank: heatmap, slots per rank and
  per local expert (counted by the library's kernel), the rank's adjusted ids;
* :func:`atomics_view`: which program covers which slots, which lanes are masked, and how many
  atomics each counter and each 128-byte line of counters receives per program
  (:mod:`moe_lab.inspection.atomics`, checked against the real kernels);
* :func:`ir_diff_view`: a highlighted diff of the code two stages compile to for an H100
  (TTIR, TTGIR, LLVM IR or PTX), compiled on this machine, no GPU needed;
* :func:`perf_view`: recorded GPU timings (``data/bench``), or live ones on a GPU.

``routing_explorer()``, ``atomics_explorer()``, ``ir_explorer()`` and ``perf_explorer()`` return an
:class:`Explorer`: its controls in a compact grid above one figure, sized so that both fit a
1280x720 screen. Displayed in a notebook it also shows a static rendering of the default values, so
that a viewer without widgets (nbval, ``make book``, GitHub) still sees a figure; once you move a
control the live view takes over and the static one is cleared.

Modules: :mod:`.cases` (skew scale, routing case, figure helpers), :mod:`.explorer` (the widget
layer), :mod:`.routing`, :mod:`.atomics`, :mod:`.ir`, :mod:`.perf` (one explorer each).
"""

from __future__ import annotations

from moe_lab.workbook.explorers.atomics import BLOCK_DEFAULT, GRID_LIBRARY, atomics_explorer, atomics_view
from moe_lab.workbook.explorers.cases import (
           DPI,
           SKEW_HOT,
           SKEW_OPTIONS,
           ZIPF_MAX,
           ep_sizes,
           make_case,
           png_bytes,
           skew_distribution,
)
from moe_lab.workbook.explorers.explorer import Explorer
from moe_lab.workbook.explorers.ir import ir_diff_view, ir_explorer, ir_stages
from moe_lab.workbook.explorers.perf import PERF_KINDS, perf_explorer, perf_view
from moe_lab.workbook.explorers.routing import routing_explorer, routing_view

__all__ = ["Explorer", "SKEW_OPTIONS", "SKEW_HOT", "ZIPF_MAX", "DPI", "skew_distribution", "make_case",
           "ep_sizes", "routing_view", "atomics_view", "ir_diff_view", "perf_view", "routing_explorer",
           "atomics_explorer", "ir_explorer", "perf_explorer", "png_bytes", "ir_stages",
           "PERF_KINDS", "BLOCK_DEFAULT", "GRID_LIBRARY"]
