"""Expert parallelism for real: a group of processes, one per rank, recombining the same gathered ids.

Recombination exists because the experts are spread over ranks. In expert-parallel inference every
rank routes its own batch, the ranks all-gather the router output (``topk_ids``), and then *every*
rank runs the kernel on the whole gathered tensor with its own expert range
``[start, start + num_local)``. Summed over the group, nothing may be lost or counted twice:

* the counts of all ranks, concatenated in rank order, equal the histogram of the non-sentinel ids;
* every non-sentinel slot is local on exactly one rank (and rewritten there to ``id - start``);
* ``-1`` padding is local nowhere.

:func:`run_group` starts such a group with :mod:`torch.distributed` (gloo on CPU, NCCL with one
GPU per rank), checks that conservation law with :func:`check_conservation` and returns an
:class:`EPResult`. :func:`run_sweep` runs several batches in one group (one start-up). A failing
rank never hangs the caller: the parent process watches the group and raises :class:`EPGroupError`
naming the rank that failed, with its traceback, or the rank that stopped making progress.

Choices made here:

* ``world_size`` must divide the preset's expert count (every rank owns as many experts as the
  others, as in rtp-llm); anything else is refused with the EP sizes that work.
* Uneven batches are padded to the largest with whole rows of ``-1`` before the all-gather, as
  routers do (the collective needs equal shapes); the padding must then be counted nowhere.
* Each rank draws its tokens with seed ``seed + rank``; expert popularity (zipf) is one vector for
  the whole group, seeded by ``seed``: it is one model, so its hot experts are the same everywhere.
* Timings are taken only with NCCL on GPUs (never from the interpreter): all-gather time with CUDA
  events between barriers (every rank must run the same number of collectives), kernel time with
  ``triton.testing.do_bench`` (median, 20th and 80th percentiles).

GPU results: ``python -m moe_lab.ep --backend nccl --world-size 2 --tokens-per-rank 1024,4096 --out data/ep/``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import queue as queue_lib
import re
import socket
import sys
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import moe_lab
from moe_lab import backend, bench, routing

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "ep"
"""Where recorded NCCL runs live (one tidy CSV per run)."""

BACKENDS = ("gloo", "nccl")
FAIL_MODES = ("raise", "exit", "hang")
MEASURED_STAGES = ("scalar_atomic", "best")
# Phases a rank reports, in order. In the starred ones a rank waits for its peers, so an error
# there is usually a consequence of another rank's failure, not its cause.
PHASES = ("started", "init*", "joined", "routed", "all_gather*", "recombine", "exchange*", "checked",
          "measure*", "done")
_BACKSTOP_S = 15.0  # the ranks' own collective timeout = timeout_s + this: the parent fires first
_RETURN_IDS_MAX = 1 << 21  # gathered slots sent back to the caller (8 MiB of int32), else None


class EPGroupError(RuntimeError):
    """The EP group failed or stopped making progress; ``rank`` is the rank to blame.

    ``phase`` is where that rank was, ``details`` its traceback text (or what is known about it),
    ``phases`` the last phase of every rank.
    """

    def __init__(self, message: str, *, rank: int | None, phase: str = "", details: str = "",
                 phases: dict | None = None):
        super().__init__(message)
        self.rank, self.phase, self.details, self.phases = rank, phase, details, phases or {}


# ----------------------------------------------------------------------------------------------
# The conservation law
# ----------------------------------------------------------------------------------------------

def _where(flat_positions: torch.Tensor, topk: int, limit: int) -> str:
    pos = flat_positions[:limit].tolist()
    more = f" and {flat_positions.numel() - limit} more" if flat_positions.numel() > limit else ""
    return ", ".join(f"(row {p // topk}, k {p % topk})" for p in pos) + more


def check_conservation(gathered_ids, counts_per_rank, starts, num_local, adjusted_per_rank=None, *,
                       limit: int = 5) -> list[str]:
    """Check the EP conservation law; return the violations as sentences (empty list: it holds).

    * ``gathered_ids``: ``[rows, topk]`` router output of the whole group, ``-1`` for padding;
    * ``counts_per_rank``: ``[world_size, num_local]``, rank ``r``'s ``expert_count``;
    * ``starts``: first global expert id of every rank; ``num_local``: experts per rank;
    * ``adjusted_per_rank`` (optional): ``[world_size, rows, topk]``, every rank's adjusted ids. With it,
      also checked: each non-sentinel slot is local (``!= -1``) on exactly one rank, with the value
      ``id - start`` there; sentinels are local nowhere.

    ``limit`` bounds how many examples each sentence lists. Works on CPU or GPU tensors.
    """
    ids = torch.as_tensor(gathered_ids)
    if ids.dim() != 2:
        raise ValueError(f"gathered_ids must be 2-D [rows, topk], got shape {tuple(ids.shape)}")
    counts = torch.as_tensor(counts_per_rank).to(ids.device).long()
    starts = [int(s) for s in starts]
    num_local = int(num_local)
    world = len(starts)
    if world == 0 or num_local <= 0:
        raise ValueError(f"starts must name at least one rank and num_local must be > 0, got "
                         f"starts={starts}, num_local={num_local}")
    if counts.shape != (world, num_local):
        raise ValueError(f"counts_per_rank must have shape (len(starts), num_local) = ({world}, "
                         f"{num_local}), got {tuple(counts.shape)}")
    topk = ids.shape[1]
    flat = ids.reshape(-1).long()
    problems = []

    negative = torch.nonzero(flat < -1).flatten()
    if negative.numel():
        problems.append(f"{negative.numel()} slots hold a negative id other than the -1 sentinel: "
                        f"{_where(negative, topk, limit)}")
    real = flat >= 0

    # Which rank owns each expert id (-1: nobody); ids at or past `span` are owned by nobody.
    span = max(s + num_local for s in starts)
    owner = torch.full((span,), -1, dtype=torch.long, device=ids.device)
    for rank, start in enumerate(starts):
        if (owner[start:start + num_local] >= 0).any():
            problems.append(f"rank {rank}'s experts [{start}, {start + num_local}) overlap another "
                            f"rank's: every expert must have exactly one owner")
        owner[start:start + num_local] = rank
    in_span = real & (flat < span)
    orphans = torch.nonzero(real & ((flat >= span) | (owner[flat.clamp(0, span - 1)] < 0))).flatten()
    if orphans.numel():
        problems.append(f"{orphans.numel()} slots route to experts that no rank owns (ids "
                        f"{sorted(set(flat[orphans[:limit]].tolist()))}): "
                        f"{_where(orphans, topk, limit)}")

    # Law 1: the counts, rank after rank, are the histogram of the non-sentinel ids.
    histogram = torch.bincount(flat[in_span], minlength=span)
    for rank, start in enumerate(starts):
        expected = histogram[start:start + num_local]
        wrong = torch.nonzero(counts[rank] != expected).flatten()
        if wrong.numel():
            shown = ", ".join(f"local expert {e} (global {start + e}): counted {int(counts[rank, e])}, "
                              f"histogram {int(expected[e])}" for e in wrong[:limit].tolist())
            more = f" and {wrong.numel() - limit} more" if wrong.numel() > limit else ""
            problems.append(f"rank {rank}: {shown}{more}")

    if adjusted_per_rank is None:
        return problems
    adjusted = torch.as_tensor(adjusted_per_rank).to(ids.device)
    if adjusted.shape != (world, *ids.shape):
        raise ValueError(f"adjusted_per_rank must have shape (world_size, *gathered_ids.shape) = "
                         f"({world}, {ids.shape[0]}, {topk}), got {tuple(adjusted.shape)}")
    adjusted = adjusted.reshape(world, -1).long()
    local = adjusted != -1
    owners = local.sum(0)
    # Law 2: each non-sentinel slot is local on exactly one rank; Law 3: sentinels nowhere.
    for mask, what in [(real & (owners == 0), "are local on no rank (lost)"),
                       (real & (owners > 1), "are local on several ranks (counted twice)"),
                       (~real & (owners > 0), "are -1 padding (or invalid ids) but local on some rank")]:
        bad = torch.nonzero(mask).flatten()
        if bad.numel():
            problems.append(f"{bad.numel()} slots {what}: {_where(bad, topk, limit)}")
    for rank, start in enumerate(starts):
        wrong = torch.nonzero(local[rank] & (adjusted[rank] + start != flat)).flatten()
        if wrong.numel():
            problems.append(f"rank {rank}: {wrong.numel()} local slots not rewritten to id - start "
                            f"(start {start}): {_where(wrong, topk, limit)}")
    return problems


# ----------------------------------------------------------------------------------------------
# What a rank does
# ----------------------------------------------------------------------------------------------

def router_output(preset_name: str, num_tokens: int, distribution: str = "uniform", *, seed: int = 0,
                  rank: int = 0, zipf_s: float = 1.2) -> torch.Tensor:
    """Rank ``rank``'s own router output: int32 ``[num_tokens, topk]`` global ids, on the CPU.

    Tokens are drawn with seed ``seed + rank``. The expert popularity is the group's: zipf weights
    come from ``seed`` alone, and ``"hot"`` puts global expert 0 (owned by rank 0) in every top-k.
    """
    p = routing.preset(preset_name)
    token_seed = seed + rank
    if distribution == "uniform":
        return routing.uniform(num_tokens, p.num_experts, p.topk, seed=token_seed)
    if distribution == "zipf":
        weights = routing.zipf_weights(p.num_experts, zipf_s, seed=seed)
        return routing.weighted(num_tokens, weights, p.topk, seed=token_seed)
    if distribution == "hot":
        return routing.hot_expert(num_tokens, p.num_experts, p.topk, hot=0, seed=token_seed)
    raise ValueError(f"distribution={distribution!r} is not one of {routing.DISTRIBUTIONS}")


@dataclass(frozen=True)
class _Job:
    tokens: tuple[int, ...]  # per rank
    distribution: str


@dataclass(frozen=True)
class _Config:
    world_size: int
    backend: str
    preset: str
    variant: str
    seed: int
    jobs: tuple[_Job, ...]
    fail_rank: int | None
    fail_mode: str
    timeout_s: float
    startup_timeout_s: float
    measure: bool
    stages: tuple[str, ...]
    port: int = 0


def _gather_into(out: torch.Tensor, tensor: torch.Tensor) -> None:
    # torch 2.13 renamed all_gather_into_tensor to all_gather_single; the GPU machines run older torch.
    gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
    gather(out, tensor)


def _all_gather_rows(tensor: torch.Tensor, world_size: int) -> torch.Tensor:
    """Every rank's ``tensor`` stacked along dim 0, in rank order (equal shapes on every rank)."""
    tensor = tensor.contiguous()
    out = tensor.new_empty((world_size * tensor.shape[0], *tensor.shape[1:]))
    if tensor.numel():  # all ranks share the shape, so all of them skip an empty gather together
        _gather_into(out, tensor)
    return out


def _inject_failure(mode: str, rank: int, queue) -> None:
    if mode == "raise":
        raise RuntimeError(f"injected failure on rank {rank} (fail_rank={rank}, fail_mode='raise')")
    if mode == "exit":
        queue.close()
        queue.join_thread()  # the parent has our last phase; then die like a segfault would
        os._exit(3)
    time.sleep(10**6)  # "hang": never reach the collective; the others wait for us


def _measure(cfg: _Config, rank: int, padded: torch.Tensor, gathered: torch.Tensor, start: int,
             num_local: int, post) -> list[dict]:
    """GPU timings of this rank (NCCL only): the all-gather and each stage's kernel, in microseconds."""
    import triton.testing

    iters, warmup = 50, 5  # the same fixed count on every rank: collectives must pair up
    out = torch.empty_like(gathered)
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    gather_us = []
    for i in range(warmup + iters):
        dist.barrier(device_ids=[rank])  # start together, so we time the gather, not a late peer
        torch.cuda.synchronize()
        begin.record()
        _gather_into(out, padded)
        end.record()
        end.synchronize()
        if i >= warmup:
            gather_us.append(begin.elapsed_time(end) * 1e3)
    g = torch.tensor(gather_us).quantile(torch.tensor([0.5, 0.2, 0.8])).tolist()
    card = torch.cuda.get_device_name(rank)
    rows = []
    for stage in cfg.stages:
        post("measure*", stage)
        ms = triton.testing.do_bench(lambda: moe_lab.recombine(gathered, start, num_local, variant=stage),
                                     quantiles=[0.5, 0.2, 0.8])
        rows.append(dict(rank=rank, card=card, stage=stage, kernel_us=ms[0] * 1e3,
                         kernel_p20_us=ms[1] * 1e3, kernel_p80_us=ms[2] * 1e3, allgather_us=g[0],
                         allgather_p20_us=g[1], allgather_p80_us=g[2],
                         allgather_bytes=out.numel() * out.element_size()))
    return rows


def _rank_main(rank: int, cfg: _Config, queue) -> None:
    """Body of one rank's process (spawned; importable, so it also works from a notebook)."""
    job_index, phase = 0, "started"

    def post(name, note=""):
        nonlocal phase
        phase = name
        queue.put(("phase", rank, job_index, name, note))

    try:
        post("started")
        nccl = cfg.backend == "nccl"
        if nccl:
            torch.cuda.set_device(rank)
            comm_device = kernel_device = torch.device("cuda", rank)
        else:
            if sys.platform.startswith("linux"):
                os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # loopback only
            comm_device = torch.device("cpu")
            kernel_device = backend.device()
            if kernel_device.type == "cuda":
                kernel_device = torch.device("cuda", rank % torch.cuda.device_count())
        post("init*")
        store = dist.TCPStore("127.0.0.1", cfg.port, is_master=False,
                              timeout=datetime.timedelta(seconds=cfg.startup_timeout_s))
        dist.init_process_group(cfg.backend, store=store, rank=rank, world_size=cfg.world_size,
                                timeout=datetime.timedelta(seconds=cfg.timeout_s + _BACKSTOP_S),
                                **({"device_id": comm_device} if nccl else {}))
        post("joined")
        p = routing.preset(cfg.preset)
        num_local = p.num_local(cfg.world_size)
        starts = [p.start(r, cfg.world_size) for r in range(cfg.world_size)]
        for job_index, job in enumerate(cfg.jobs):
            ids = router_output(cfg.preset, job.tokens[rank], job.distribution, seed=cfg.seed, rank=rank)
            post("routed")
            if cfg.fail_rank == rank and job_index == 0:
                _inject_failure(cfg.fail_mode, rank, queue)
            padded = routing.pad_rows(ids, max(job.tokens) - job.tokens[rank]).to(comm_device)
            post("all_gather*")
            gathered = _all_gather_rows(padded, cfg.world_size)
            post("recombine")
            adjusted, counts = moe_lab.recombine(gathered.to(kernel_device), starts[rank], num_local,
                                                 variant=cfg.variant)
            post("exchange*")
            all_counts = _all_gather_rows(counts.to(comm_device)[None], cfg.world_size)
            all_adjusted = _all_gather_rows(adjusted.to(comm_device)[None], cfg.world_size)
            if rank == 0:
                violations = check_conservation(gathered, all_counts, starts, num_local, all_adjusted)
                small = gathered.numel() <= _RETURN_IDS_MAX
                queue.put(("result", rank, job_index, dict(
                    counts=all_counts.cpu().numpy(), violations=violations,
                    gathered_shape=tuple(gathered.shape),
                    gathered_ids=gathered.cpu().numpy() if small else None)))
            post("checked")
            if cfg.measure:
                rows = _measure(cfg, rank, padded, gathered.to(kernel_device), starts[rank], num_local,
                                post)
                queue.put(("timing", rank, job_index, rows))
        dist.destroy_process_group()
        post("done")
        code = 0
    except BaseException:  # noqa: BLE001  (everything goes back to the parent, then we leave)
        queue.put(("error", rank, job_index, phase, time.time(), traceback.format_exc()))
        code = 1
    queue.close()
    queue.join_thread()  # our messages are in the pipe now
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter shutdown: it costs seconds per rank here, and after a failure it could wait
    # on a collective that never ends.
    os._exit(code)


# ----------------------------------------------------------------------------------------------
# The parent: start the group, watch it, collect the results
# ----------------------------------------------------------------------------------------------

@contextmanager
def _child_environment(cfg: _Config):
    """Environment the ranks inherit at spawn (restored in the parent afterwards)."""
    wanted = {"MOE_LAB_QUIET": "1"}  # one "where kernels run" line per rank is noise
    if cfg.backend == "nccl":  # NVLink multicast stays off on the shared GPU machines
        wanted.update(NCCL_NVLS_ENABLE=os.environ.get("NCCL_NVLS_ENABLE", "0"),
                      TORCH_SYMM_MEM_DISABLE_MULTICAST=os.environ.get("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1"))
    saved = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _phase_key(progress, rank):
    job, name, _ = progress.get(rank, (0, "started", ""))
    return (job, PHASES.index(name))


def _describe_phases(progress, world_size) -> str:
    lines = []
    for r in range(world_size):
        job, name, note = progress.get(r, (0, "(not started)", ""))
        lines.append(f"  rank {r}: job {job}, phase {name.rstrip('*')}{' ' + note if note else ''}")
    return "\n".join(lines)


def _failure(errors, exits, progress, world_size) -> EPGroupError:
    """Blame the rank that failed first outside a collective (others then fail waiting for it)."""
    suspects = []
    for rank, (job, phase, stamp, text) in errors.items():
        suspects.append((phase.endswith("*"), stamp, rank, phase, text))
    for rank, code in exits.items():
        if rank not in errors:
            phase = progress.get(rank, (0, "started", ""))[1]
            how = f"signal {-code}" if code < 0 else f"code {code}"
            text = (f"rank {rank} exited with {how} without a Python traceback (a crash in native "
                    f"code, os._exit, or the out-of-memory killer)")
            suspects.append((phase.endswith("*"), float("-inf"), rank, phase, text))
    _, _, rank, phase, text = min(suspects)
    last = text.strip().splitlines()[-1] if text.strip() else "unknown error"
    message = (f"EP group failed: rank {rank} failed in phase {phase.rstrip('*')!r}: {last}\n"
               f"All ranks were stopped. Last phase of each rank:\n{_describe_phases(progress, world_size)}")
    if "Traceback" in text:
        message += f"\n--- rank {rank}'s traceback ---\n{text.rstrip()}"
    return EPGroupError(message, rank=rank, phase=phase.rstrip("*"), details=text,
                        phases=dict(progress))


def _stall(progress, world_size, joined: bool, limit_s: float) -> EPGroupError:
    keys = {r: _phase_key(progress, r) for r in range(world_size)}
    slowest = min(keys.values())
    behind = [r for r, k in keys.items() if k == slowest]
    phase = progress.get(behind[0], (0, "started", ""))[1].rstrip("*")
    if len(behind) == world_size:
        who = f"every rank is stuck in phase {phase!r}"
    else:
        names = ", ".join(map(str, behind))
        who = (f"rank {names} stopped in phase {phase!r} while the others wait for it in a "
               f"collective")
    when = "after every rank joined" if joined else "while starting (spawn, import, init)"
    message = (f"EP group made no progress for {limit_s:g} s {when}: {who}. All ranks were stopped.\n"
               f"Last phase of each rank:\n{_describe_phases(progress, world_size)}")
    return EPGroupError(message, rank=behind[0], phase=phase, details=message, phases=dict(progress))


def _stop(processes) -> None:
    for p in processes:
        if p.is_alive():
            p.terminate()
    for p in processes:
        p.join(timeout=3)
        if p.is_alive():
            p.kill()
            p.join(timeout=3)


def _master_store(timeout_s: float):
    """The group's rendezvous: a TCPStore on 127.0.0.1 at a free port, held by the parent."""
    timeout = datetime.timedelta(seconds=timeout_s)
    try:  # port 0: the OS picks a free port and the store keeps it, so no other process can take it
        store = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False, timeout=timeout)
        if store.port:
            return store
    except (RuntimeError, ValueError):
        pass
    with socket.socket() as probe:  # older stores: ask the OS for a free port, then bind it ourselves
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return dist.TCPStore("127.0.0.1", port, is_master=True, wait_for_workers=False, timeout=timeout)


def _launch(cfg: _Config) -> tuple[dict, dict]:
    """Run the group; return ``(results by job, timing rows by job)`` or raise :class:`EPGroupError`."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    store = _master_store(cfg.startup_timeout_s)
    cfg = replace(cfg, port=store.port)
    processes = [ctx.Process(target=_rank_main, args=(r, cfg, queue), daemon=True, name=f"ep-rank-{r}")
                 for r in range(cfg.world_size)]
    progress, errors, results, timings = {}, {}, {}, {}

    def drain(wait: float) -> tuple[int, bool]:
        """Read the messages that arrived: (how many, whether any rank made progress)."""
        read, moved = 0, False
        try:
            message = queue.get(timeout=wait)
            while True:
                read += 1
                kind, rank, job = message[:3]
                if kind == "phase":
                    progress[rank] = (job, message[3], message[4])
                    moved = True
                elif kind == "result":
                    results[job] = message[3]
                elif kind == "timing":
                    timings.setdefault(job, []).extend(message[3])
                else:
                    errors[rank] = (job, message[3], message[4], message[5])
                message = queue.get_nowait()
        except queue_lib.Empty:
            pass
        return read, moved

    try:
        with _child_environment(cfg):
            for p in processes:
                p.start()
        last_move, joined = time.monotonic(), False
        while True:
            if drain(0.05)[1]:
                last_move = time.monotonic()
            exits = {r: p.exitcode for r, p in enumerate(processes) if p.exitcode not in (None, 0)}
            if errors or exits:
                grace = time.monotonic() + 0.5  # let the other ranks' reports arrive
                while time.monotonic() < grace:
                    drain(0.05)
                exits = {r: p.exitcode for r, p in enumerate(processes) if p.exitcode not in (None, 0)}
                raise _failure(errors, exits, progress, cfg.world_size)
            if all(p.exitcode == 0 for p in processes):
                while drain(0.1)[0]:  # every rank has exited: the rest is in the pipe
                    pass
                break
            if not joined and all(_phase_key(progress, r)[1] >= PHASES.index("joined")
                                  for r in range(cfg.world_size)):
                joined, last_move = True, time.monotonic()
            limit = cfg.timeout_s if joined else cfg.startup_timeout_s
            if time.monotonic() - last_move > limit:
                raise _stall(progress, cfg.world_size, joined, limit)
    finally:
        _stop(processes)
        queue.close()
        queue.cancel_join_thread()
        del store
    missing = [j for j in range(len(cfg.jobs)) if j not in results]
    if missing:
        raise EPGroupError(f"EP group ended without results for jobs {missing}", rank=0)
    return results, timings


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------

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
    variant: str
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


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return value


def _batch(spec, world_size: int) -> tuple[int, ...]:
    if isinstance(spec, int) and not isinstance(spec, bool):
        spec = [spec] * world_size
    tokens = tuple(spec)
    if len(tokens) != world_size:
        raise ValueError(f"tokens_per_rank={list(tokens)} must be one int, or one int per rank "
                         f"(world_size={world_size} of them)")
    for t in tokens:
        _check_int("tokens_per_rank", t, 0)
    return tokens


def _config(world_size, preset, batches, distributions, backend_name, variant, seed, fail_rank,
            fail_mode, timeout_s, startup_timeout_s, measure, stages) -> _Config:
    world_size = _check_int("world_size", world_size, 1)
    p = routing.preset(preset)
    if p.num_experts % world_size:
        works = [d for d in range(1, p.num_experts + 1) if p.num_experts % d == 0]
        raise ValueError(f"world_size={world_size} does not divide {preset}'s {p.num_experts} experts; "
                         f"each rank must own the same number of experts (uneven ownership is not "
                         f"supported). EP sizes that work for {preset}: {works}")
    if backend_name not in BACKENDS:
        raise ValueError(f"backend={backend_name!r} must be one of {BACKENDS}: gloo on CPU, nccl on GPUs")
    if backend_name == "nccl":
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not dist.is_nccl_available() or gpus < world_size:
            raise ValueError(f"backend='nccl' with world_size={world_size} needs {world_size} CUDA GPUs "
                             f"(one per rank) and a torch built with NCCL; this machine has {gpus} "
                             f"GPU(s). Use backend='gloo' on CPU")
        if backend.INTERPRETER:
            raise ValueError("backend='nccl' needs the kernels compiled for the GPU, but moe_lab runs "
                             "them in the interpreter (TRITON_INTERPRET is set): unset it")
    moe_lab.stage(variant)  # a clear error for an unknown variant
    for d in distributions:
        if d not in routing.DISTRIBUTIONS:
            raise ValueError(f"distribution={d!r} must be one of {routing.DISTRIBUTIONS}")
    if fail_rank is not None:
        _check_int("fail_rank", fail_rank, 0)
        if fail_rank >= world_size:
            raise ValueError(f"fail_rank={fail_rank} must be a rank in [0, world_size={world_size})")
    if fail_mode not in FAIL_MODES:
        raise ValueError(f"fail_mode={fail_mode!r} must be one of {FAIL_MODES}")
    for name, value in [("timeout_s", timeout_s), ("startup_timeout_s", startup_timeout_s)]:
        if not isinstance(value, (int, float)) or value <= 0:
            raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    measure = backend_name == "nccl" if measure is None else bool(measure)
    if measure and backend_name != "nccl":
        raise ValueError("measure=True needs backend='nccl': timings come only from GPUs, never from "
                         "gloo on CPU or the interpreter")
    for s in stages:
        moe_lab.stage(s)
    if not batches or not distributions:
        raise ValueError(f"batches={batches!r} and distributions={distributions!r} must not be empty")
    jobs = tuple(_Job(_batch(b, world_size), d) for b in batches for d in distributions)
    return _Config(world_size, backend_name, preset, variant, seed, jobs, fail_rank, fail_mode,
                   float(timeout_s), float(startup_timeout_s), measure, tuple(stages))


def run_sweep(world_size: int, *, preset: str = "deepseek-v3", batches=(1024,),
              distributions=("uniform",), backend: str = "gloo", variant: str = "best", seed: int = 0,
              fail_rank: int | None = None, fail_mode: str = "raise", timeout_s: float = 60.0,
              startup_timeout_s: float = 120.0, measure: bool | None = None,
              stages=MEASURED_STAGES) -> list[EPResult]:
    """Run every (batch, distribution) pair through one EP group (one start-up); see :func:`run_group`.

    ``batches``: each an int (tokens on every rank) or a list with one int per rank.
    """
    cfg = _config(world_size, preset, list(batches), list(distributions), backend, variant, seed,
                  fail_rank, fail_mode, timeout_s, startup_timeout_s, measure, stages)
    results, timings = _launch(cfg)
    p = routing.preset(preset)
    out = []
    for j, job in enumerate(cfg.jobs):
        r = results[j]
        frame = None
        if j in timings:
            import pandas as pd

            frame = pd.DataFrame(timings[j]).sort_values(["stage", "rank"]).reset_index(drop=True)
        out.append(EPResult(
            world_size=cfg.world_size, backend=cfg.backend, preset=preset, num_experts=p.num_experts,
            topk=p.topk, num_local=p.num_local(cfg.world_size), distribution=job.distribution,
            variant=variant, seed=seed, tokens_per_rank=list(job.tokens),
            padding_rows=[max(job.tokens) - t for t in job.tokens], gathered_shape=r["gathered_shape"],
            starts=[p.start(k, cfg.world_size) for k in range(cfg.world_size)],
            counts=torch.from_numpy(r["counts"]), violations=r["violations"],
            gathered_ids=None if r["gathered_ids"] is None else torch.from_numpy(r["gathered_ids"]),
            timings=frame))
    return out


def run_group(world_size: int, preset: str = "deepseek-v3", tokens_per_rank=1024, *,
              distribution: str = "uniform", backend: str = "gloo", variant: str = "best", seed: int = 0,
              fail_rank: int | None = None, fail_mode: str = "raise", timeout_s: float = 60.0,
              startup_timeout_s: float = 120.0, measure: bool | None = None,
              stages=MEASURED_STAGES) -> EPResult:
    """Start an EP group of ``world_size`` processes and push one batch through it.

    Each rank draws ``tokens_per_rank`` tokens (an int, or one int per rank for uneven batches),
    pads to the largest batch with ``-1`` rows, all-gathers, recombines with ``variant`` on its own
    expert range, and the group gathers every rank's counts and adjusted ids for
    :func:`check_conservation`. ``backend``: ``"gloo"`` (CPU; kernels in the interpreter without a
    GPU) or ``"nccl"`` (one GPU per rank; then ``measure`` defaults to True and per-rank timings of
    the all-gather and of each of ``stages`` land in ``EPResult.timings``).

    Failures: ``fail_rank`` makes that rank fail after routing, before the all-gather, by raising
    (``fail_mode="raise"``), dying without a traceback (``"exit"``) or hanging (``"hang"``). Any
    failure raises :class:`EPGroupError` naming the rank; a group that stops making progress for
    ``timeout_s`` (``startup_timeout_s`` before every rank has joined) is stopped the same way.
    """
    return run_sweep(world_size, preset=preset, batches=[tokens_per_rank], distributions=[distribution],
                     backend=backend, variant=variant, seed=seed, fail_rank=fail_rank,
                     fail_mode=fail_mode, timeout_s=timeout_s, startup_timeout_s=startup_timeout_s,
                     measure=measure, stages=stages)[0]


# ----------------------------------------------------------------------------------------------
# Recorded results: tidy CSV with provenance, and the plots
# ----------------------------------------------------------------------------------------------

TIMING_COLUMNS = ("kernel_us", "kernel_p20_us", "kernel_p80_us", "allgather_us", "allgather_p20_us",
                  "allgather_p80_us", "allgather_bytes")


def results_frame(results) -> "pd.DataFrame":  # noqa: F821
    """One row per (batch, rank, stage): the group's set-up, the rank's share, and its GPU timings.

    Without timings (gloo) there is one row per (batch, rank) with stage = the checked variant and
    empty timing columns.
    """
    import pandas as pd

    rows = []
    for res in results:
        base = dict(world_size=res.world_size, backend=res.backend, preset=res.preset,
                    num_experts=res.num_experts, topk=res.topk, num_local=res.num_local,
                    distribution=res.distribution, gathered_tokens=res.gathered_shape[0],
                    num_slots=res.gathered_shape[0] * res.topk, checks_passed=res.checks_passed)
        for rank in range(res.world_size):
            per_rank = dict(base, rank=rank, start=res.starts[rank],
                            tokens_per_rank=res.tokens_per_rank[rank],
                            padding_rows=res.padding_rows[rank], local_slots=res.local_slots[rank])
            timed = [] if res.timings is None else res.timings[res.timings["rank"] == rank].to_dict("records")
            if not timed:
                timed = [dict(stage=res.variant, **{c: float("nan") for c in TIMING_COLUMNS})]
            for t in timed:
                rows.append(dict(per_rank, **t))
    return pd.DataFrame(rows)


def write_csv(frame, out_dir=DATA_DIR, *, run_id: str | None = None) -> Path:
    """Add provenance columns (card, driver, cuda, torch, triton, python, date, run_id) and write
    ``out_dir/ep_<backend>_ws<world>_<card>_<run_id>.csv``; return its path."""
    import triton

    now = datetime.datetime.now(datetime.timezone.utc)
    run_id = run_id or now.strftime("ep-%Y%m%d-%H%M%S")
    frame = frame.copy()
    if "card" not in frame:
        frame["card"] = "cpu"
    gpu = bool(frame["backend"].eq("nccl").any())
    frame["driver"] = bench.driver_version() if gpu else "n/a"
    frame["cuda"] = torch.version.cuda or "n/a"
    frame["torch"] = torch.__version__
    frame["triton"] = triton.__version__
    frame["python"] = platform.python_version()
    frame["date"] = now.strftime("%Y-%m-%d")
    frame["run_id"] = run_id
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    card = re.sub(r"[^a-z0-9]+", "-", str(frame["card"].iloc[0]).lower()).strip("-") or "unknown"
    path = out_dir / f"ep_{frame['backend'].iloc[0]}_ws{frame['world_size'].iloc[0]}_{card}_{run_id}.csv"
    frame.to_csv(path, index=False)
    return path


def load_recorded(directory=DATA_DIR):
    """Every recorded NCCL run in ``directory`` as one DataFrame, or None when there is none yet."""
    import pandas as pd

    files = sorted(Path(directory).glob("*.csv"))
    frames = [pd.read_csv(f) for f in files]
    frames = [f[f["backend"] == "nccl"] for f in frames if "backend" in f and "kernel_us" in f]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else None


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
    """One recorded NCCL run (default: the latest): all-gather and kernel time of every rank
    against tokens per rank, log-log, with the card, date and versions in the title."""
    import matplotlib.pyplot as plt

    run_id = run_id or sorted(frame["run_id"].unique())[-1]
    run = frame[(frame["run_id"] == run_id) & (frame["distribution"] == distribution)]
    if run.empty:
        raise ValueError(f"no rows for run_id={run_id!r} and distribution={distribution!r}")
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=80)
    for rank, part in run.groupby("rank"):
        g = part.drop_duplicates("tokens_per_rank").sort_values("tokens_per_rank")
        left.plot(g["tokens_per_rank"], g["allgather_us"], "o-", label=f"rank {rank}")
        for stage, s in part.groupby("stage"):
            s = s.sort_values("tokens_per_rank")
            right.plot(s["tokens_per_rank"], s["kernel_us"], "o-", label=f"{stage}, rank {rank}")
    for ax, what in [(left, "all-gather of topk_ids"), (right, "recombination, whole call (eager)")]:
        ax.set(xscale="log", yscale="log", xlabel="tokens per rank", ylabel="median us", title=what)
        ax.legend(fontsize=8)
    first = run.iloc[0]
    fig.suptitle(f"{first['preset']}, {distribution}, EP {first['world_size']} over NCCL on "
                 f"{first['card']} ({first['date']}, torch {first['torch']}, triton {first['triton']}, "
                 f"run {run_id})", fontsize=9)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------
# Command line: the GPU run that fills data/ep/
# ----------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m moe_lab.ep",
        description="Run an expert-parallel group, check conservation, and (NCCL) record timings.")
    parser.add_argument("--backend", choices=BACKENDS, default="nccl")
    parser.add_argument("--world-size", type=int, default=2)
    parser.add_argument("--preset", choices=list(routing.PRESETS), default="deepseek-v3")
    parser.add_argument("--tokens-per-rank", default="1024,4096,16384,65536",
                        help="comma-separated batch sizes, each run on every rank")
    parser.add_argument("--distribution", default="uniform", help="comma-separated: uniform,zipf,hot")
    parser.add_argument("--stages", default=",".join(MEASURED_STAGES))
    parser.add_argument("--variant", default="best", help="stage used for the conservation check")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout-s", type=float, default=300.0)
    parser.add_argument("--out", default=None, help="folder for the CSV (NCCL only), e.g. data/ep/")
    args = parser.parse_args(argv)
    if args.backend == "nccl":
        os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
        os.environ.setdefault("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1")
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if gpus < args.world_size:
            parser.error(f"--backend nccl --world-size {args.world_size} needs {args.world_size} GPUs "
                         f"(one per rank); this machine has {gpus}. Use --backend gloo to check on CPU")
    elif args.out:
        parser.error("--out records GPU timings, which need --backend nccl; gloo runs check only")
    try:
        batches = [int(t) for t in args.tokens_per_rank.split(",") if t.strip()]
    except ValueError:
        parser.error(f"--tokens-per-rank must be comma-separated ints, got {args.tokens_per_rank!r}")
    try:
        results = run_sweep(args.world_size, preset=args.preset, batches=batches,
                            distributions=[d.strip() for d in args.distribution.split(",")],
                            backend=args.backend, variant=args.variant, seed=args.seed,
                            timeout_s=args.timeout_s, stages=[s.strip() for s in args.stages.split(",")])
    except (ValueError, TypeError) as e:
        parser.error(str(e))
    frame = results_frame(results)
    failed = [r for r in results if not r.checks_passed]
    for r in results:
        print(r)
        for v in r.violations:
            print("   ", v)
    if args.out:
        path = write_csv(frame, args.out)
        print(f"wrote {len(frame)} rows to {path}")
    if not args.out or args.backend != "nccl":
        print(frame.drop(columns=[c for c in TIMING_COLUMNS if frame[c].isna().all()]).to_string())
    else:
        cols = ["tokens_per_rank", "rank", "stage", "allgather_us", "kernel_us"]
        print(frame[cols].to_string(index=False))
    return 1 if failed else 0


if __name__ == "__main__":
    # Import the module by its package name, so the spawned ranks pickle moe_lab.ep._rank_main
    # (not __main__._rank_main).
    from moe_lab.ep import main as _main

    sys.exit(_main())
