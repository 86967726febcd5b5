"""Expert parallelism for real: a group of processes, one per rank, recombining the same gathered ids.

Recombination exists because the experts are spread over ranks. In expert-parallel inference every
rank routes its own batch, the ranks all-gather the router output (``topk_ids``), and then *every*
rank runs the kernel on the whole gathered tensor with its own expert range
``[start, start + num_local)``. Summed over the group, nothing may be lost or counted twice
(:func:`check_conservation`).

:func:`run_group` starts such a group with :mod:`torch.distributed` (gloo on CPU, NCCL with one
GPU per rank), checks the conservation law and returns an :class:`EPResult`; :func:`run_sweep` runs
several batches in one group (one start-up). A failing rank never hangs the caller: the parent
watches the group and raises :class:`EPGroupError` naming the rank that failed, with its traceback,
or the rank that stopped making progress; and no rank outlives the caller's process.

Choices made here:

* ``world_size`` must divide the preset's expert count (every rank owns as many experts as the
  others, as in rtp-llm); anything else is refused with the EP sizes that work.
* Uneven batches are padded to the largest with whole rows of ``-1`` before the all-gather, as
  routers do (the collective needs equal shapes); the padding must then be counted nowhere.
* Each rank draws its tokens with seed ``seed + rank``; expert popularity (zipf) is one vector for
  the whole group, seeded by ``seed``: it is one model, so its hot experts are the same everywhere.
* Timings are taken only with NCCL on GPUs (never from the interpreter); see :mod:`moe_lab.ep.measure`.

The modules, in the order a batch meets them:

* :mod:`~moe_lab.ep.config`: every argument checked before a process starts;
* :mod:`~moe_lab.ep.rank`: the body of one rank's process;
* :mod:`~moe_lab.ep.conservation`: the law the group must obey;
* :mod:`~moe_lab.ep.measure`: GPU timings of a rank (NCCL);
* :mod:`~moe_lab.ep.supervisor`: the parent that starts, watches and stops the ranks;
* :mod:`~moe_lab.ep.api`: :func:`run_group`, :func:`run_sweep`, :class:`EPResult`;
* :mod:`~moe_lab.ep.recorded`: writing and checked reading of recorded runs (schema in
  :mod:`moe_lab.measure.records`);
* :mod:`~moe_lab.ep.plots`, :mod:`~moe_lab.ep.cli` (``python -m moe_lab.ep``).

GPU results: ``python -m moe_lab.ep --backend nccl --world-size 2 --out data/ep/`` (see
``docs/expert-parallelism.md``).
"""

from __future__ import annotations

from moe_lab.ep.api import EPResult, run_group, run_sweep
from moe_lab.ep.cli import main
from moe_lab.ep.config import BACKENDS, FAIL_MODES, KERNEL_MODES, MEASURED_STAGES
from moe_lab.ep.conservation import check_conservation
from moe_lab.ep.plots import plot_expert_counts, plot_hot_rank, plot_imbalance, plot_recorded
from moe_lab.ep.rank import PHASES, rank_main, router_output
from moe_lab.ep.recorded import (
           COLUMNS,
           DEFAULTS,
           NEW_COLUMNS,
           SCHEMA,
           TIMINGS,
           latest,
           load_recorded,
           recorded_table,
           results_frame,
           write_csv,
)
from moe_lab.ep.supervisor import EPGroupError

__all__ = ["run_group", "run_sweep", "EPResult", "EPGroupError", "check_conservation", "router_output",
           "rank_main", "results_frame", "write_csv", "load_recorded", "latest", "recorded_table",
           "plot_imbalance", "plot_expert_counts", "plot_recorded", "plot_hot_rank", "main", "BACKENDS",
           "FAIL_MODES", "KERNEL_MODES", "MEASURED_STAGES", "PHASES", "SCHEMA", "COLUMNS",
           "NEW_COLUMNS", "DEFAULTS", "TIMINGS"]
