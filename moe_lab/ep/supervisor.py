"""The parent: start the group, watch it, collect the results, and stop every rank whatever happens.

The ranks are spawned (a fresh interpreter each), meet through a ``TCPStore`` the parent holds on
``127.0.0.1`` and report every phase they enter through a queue. The parent raises
:class:`EPGroupError` as soon as a rank fails or dies, or when no rank has moved for ``timeout_s``;
in every case, exceptions and ``KeyboardInterrupt`` included, it stops all ranks before returning.
If the parent itself is killed, the ranks notice and exit (see :func:`moe_lab.ep.rank.follow_parent`).
"""

from __future__ import annotations

import datetime
import os
import queue as queue_lib
import socket
import time
from contextlib import contextmanager
from dataclasses import replace

import torch.distributed as dist
import torch.multiprocessing as mp

from moe_lab.ep.config import Config
from moe_lab.ep.rank import PHASES, rank_main


class EPGroupError(RuntimeError):
    """The EP group failed or stopped making progress; ``rank`` is the rank to blame.

    ``phase`` is where that rank was, ``details`` its traceback text (or what is known about it),
    ``phases`` the last phase of every rank.
    """

    def __init__(self, message: str, *, rank: int | None, phase: str = "", details: str = "",
                 phases: dict | None = None):
        super().__init__(message)
        self.rank, self.phase, self.details, self.phases = rank, phase, details, phases or {}


@contextmanager
def _child_environment(cfg: Config):
    """Environment the ranks inherit at spawn (restored in the parent afterwards)."""
    wanted = {"MOE_LAB_QUIET": "1"}  # one "where kernels run" line per rank is noise
    if cfg.backend == "nccl":  # NVLink multicast stays off on the shared GPU machines
        wanted.update(NCCL_NVLS_ENABLE=os.environ.get("NCCL_NVLS_ENABLE", "0"),
                      TORCH_SYMM_MEM_DISABLE_MULTICAST=os.environ.get(
                          "TORCH_SYMM_MEM_DISABLE_MULTICAST", "1"))
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
        lines.append(f"  rank {r}: step {job}, phase {name.rstrip('*')}{' ' + note if note else ''}")
    return "\n".join(lines)


def failure(errors, exits, progress, world_size) -> EPGroupError:
    """Blame the rank that failed first outside a collective (others then fail waiting for it)."""
    suspects = []
    for rank, (_, phase, stamp, text) in errors.items():
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


def stall(progress, world_size, joined: bool, limit_s: float) -> EPGroupError:
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


def start_group(cfg: Config) -> tuple[dict, dict]:
    """Run the group; return ``(results by job, timing rows by job)`` or raise :class:`EPGroupError`."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    store = _master_store(cfg.startup_timeout_s)
    cfg = replace(cfg, port=store.port, parent_pid=os.getpid())
    processes = [ctx.Process(target=rank_main, args=(r, cfg, queue), daemon=True, name=f"ep-rank-{r}")
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
                raise failure(errors, exits, progress, cfg.world_size)
            if all(p.exitcode == 0 for p in processes):
                while drain(0.1)[0]:  # every rank has exited: the rest is in the pipe
                    pass
                break
            if not joined and all(_phase_key(progress, r)[1] >= PHASES.index("joined")
                                  for r in range(cfg.world_size)):
                joined, last_move = True, time.monotonic()
            limit = cfg.timeout_s if joined else cfg.startup_timeout_s
            if time.monotonic() - last_move > limit:
                raise stall(progress, cfg.world_size, joined, limit)
    finally:
        _stop(processes)
        queue.close()
        queue.cancel_join_thread()
        del store
    missing = [j for j in range(len(cfg.jobs)) if j not in results]
    if missing:
        raise EPGroupError(f"EP group ended without results for jobs {missing}", rank=0)
    return results, timings


