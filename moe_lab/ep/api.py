"""The public entry points: :func:`run_group` (one batch) and :func:`run_sweep` (many, one start-up)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from moe_lab import routing
from moe_lab.ep.config import MEASURED_STAGES, make_config
from moe_lab.ep.supervisor import start_group


@dataclass
class EPResult:
    """One batch through an EP group: what each rank counted, and whether the law held."""
    world_size: int
    backend: str
    preset: str
    num_experts: int
    topk: int
    num_local: int
    distribution: str
    stage: str  # the stage whose output was checked
    seed: int
    tokens_per_rank: list[int]
    padding_rows: list[int]  # -1 rows each rank added before the all-gather
    gathered_shape: tuple[int, int]
    starts: list[int]
    counts: torch.Tensor  # int32 [world_size, num_local]
    violations: list[str]
    gathered_ids: torch.Tensor | None = None  # int32 [rows, topk], None when large
    timings: object = None  # pandas.DataFrame of per-rank GPU timings (NCCL), else None

    @property
    def checks_passed(self) -> bool:
        return not self.violations

    @property
    def local_slots(self) -> list[int]:
        """Slots each rank's experts received (the rank's share of the work)."""
        return self.counts.long().sum(1).tolist()

    @property
    def imbalance(self) -> float:
        """max / mean of :attr:`local_slots`: 1.0 is perfect balance; the slowest rank sets the pace."""
        slots = self.local_slots
        mean = sum(slots) / len(slots)
        return max(slots) / mean if mean else float("nan")

    def table(self):
        """One row per rank: its experts, batch, padding, and what it counted."""
        import pandas as pd

        return pd.DataFrame({
            "rank": range(self.world_size),
            "experts": [f"[{s}, {s + self.num_local})" for s in self.starts],
            "tokens": self.tokens_per_rank,
            "padding_rows": self.padding_rows,
            "local_slots": self.local_slots,
            "busiest_expert": self.counts.long().max(1).values.tolist(),
        }).set_index("rank")

    def __repr__(self):
        verdict = "holds" if self.checks_passed else f"VIOLATED ({len(self.violations)})"
        return (f"EPResult({self.preset}, {self.distribution}, world_size={self.world_size}, "
                f"backend={self.backend}, tokens_per_rank={self.tokens_per_rank}, gathered "
                f"{list(self.gathered_shape)}, local_slots={self.local_slots}, conservation {verdict})")


def run_sweep(world_size: int, *, preset: str = "deepseek-v3", batches=(1024,),
              distributions=("uniform",), backend: str = "gloo", stage: str = "best", seed: int = 0,
              fail_rank: int | None = None, fail_mode: str = "raise", timeout_s: float = 60.0,
              startup_timeout_s: float = 120.0, measure: bool | None = None,
              stages=MEASURED_STAGES, kernel_mode: str = "eager", repeats: int = 1) -> list[EPResult]:
    """Run every (batch, distribution) pair through one EP group (one start-up); see :func:`run_group`.

    ``batches``: a list, each an int (tokens on every rank) or a list with one int per rank.
    ``repeats`` (timed runs): the whole list of pairs is run that many times, one sweep after the other,
    so drift over the run shows up as a difference between repeats (column ``repeat`` of the timings).
    """
    cfg = make_config(world_size, preset, batches, distributions, backend, stage, seed, fail_rank,
                      fail_mode, timeout_s, startup_timeout_s, measure, stages, kernel_mode, repeats)
    results, timings = start_group(cfg)
    p = routing.preset(cfg.preset)
    out = []
    for j, job in enumerate(cfg.jobs):
        r = results[j]
        frame = None
        if j in timings:
            import pandas as pd

            frame = pd.DataFrame(timings[j]).sort_values(["repeat", "stage", "rank"]).reset_index(drop=True)
        out.append(EPResult(
            world_size=cfg.world_size, backend=cfg.backend, preset=cfg.preset, num_experts=p.num_experts,
            topk=p.topk, num_local=p.num_local(cfg.world_size), distribution=job.distribution,
            stage=cfg.stage, seed=cfg.seed, tokens_per_rank=list(job.tokens),
            padding_rows=[max(job.tokens) - t for t in job.tokens], gathered_shape=r["gathered_shape"],
            starts=[p.start(k, cfg.world_size) for k in range(cfg.world_size)],
            counts=torch.from_numpy(r["counts"]), violations=r["violations"],
            gathered_ids=None if r["gathered_ids"] is None else torch.from_numpy(r["gathered_ids"]),
            timings=frame))
    return out


def run_group(world_size: int, preset: str = "deepseek-v3", tokens_per_rank=1024, *,
              distribution: str = "uniform", backend: str = "gloo", stage: str = "best", seed: int = 0,
              fail_rank: int | None = None, fail_mode: str = "raise", timeout_s: float = 60.0,
              startup_timeout_s: float = 120.0, measure: bool | None = None,
              stages=MEASURED_STAGES, kernel_mode: str = "eager", repeats: int = 1) -> EPResult:
    """Start an EP group of ``world_size`` processes and push one batch through it.

    Each rank draws ``tokens_per_rank`` tokens (an int, or one int per rank for uneven batches),
    pads to the largest batch with ``-1`` rows, all-gathers, recombines with ``stage`` on its own
    expert range, and the group gathers every rank's counts and adjusted ids for
    :func:`check_conservation`. ``backend``: ``"gloo"`` (CPU; kernels in the interpreter without a
    GPU) or ``"nccl"`` (one GPU per rank; then ``measure`` defaults to True and per-rank timings of
    the all-gather and of each of ``stages`` land in ``EPResult.timings``, kernels timed as
    ``kernel_mode`` says: ``"eager"`` calls or ``"graph"`` replays).

    Every argument is checked before any process starts (a TypeError/ValueError naming it).
    Failures: ``fail_rank`` makes that rank fail after routing, before the all-gather, by raising
    (``fail_mode="raise"``), dying without a traceback (``"exit"``) or hanging (``"hang"``). Any
    failure raises :class:`EPGroupError` naming the rank; a group that stops making progress for
    ``timeout_s`` (``startup_timeout_s`` before every rank has joined) is stopped the same way. The
    ranks never outlive the caller: if its process dies (a kernel restart, SIGKILL), they exit too.
    """
    if not isinstance(distribution, str) or distribution not in routing.DISTRIBUTIONS:
        raise ValueError(f"distribution={distribution!r} must be one of {routing.DISTRIBUTIONS}")
    return run_sweep(world_size, preset=preset, batches=[tokens_per_rank], distributions=[distribution],
                     backend=backend, stage=stage, seed=seed, fail_rank=fail_rank,
                     fail_mode=fail_mode, timeout_s=timeout_s, startup_timeout_s=startup_timeout_s,
                     measure=measure, stages=stages, kernel_mode=kernel_mode, repeats=repeats)[0]
