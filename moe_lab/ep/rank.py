"""What one rank does: route its own batch, pad, all-gather, recombine its experts, report.

:func:`rank_main` is the body of each rank's process (spawned by :mod:`moe_lab.ep.supervisor`). A
rank never outlives the process that started it: :func:`follow_parent` makes the kernel kill it when
the parent dies (Linux), and a watchdog thread exits it as soon as its parent is gone (everywhere),
even while it hangs in a collective or a failure injected with ``fail_mode="hang"``.
"""

from __future__ import annotations

import datetime
import os
import signal
import sys
import threading
import time
import traceback

import torch
import torch.distributed as dist

from moe_lab import backend, registry, routing
from moe_lab.ep.conservation import check_conservation
from moe_lab.ep.measure import gather_into, measure

BACKSTOP_S = 15.0  # the ranks' own collective timeout = timeout_s + this: the parent fires first
RETURN_IDS_MAX = 1 << 21  # gathered slots sent back to the caller (8 MiB of int32), else None
PARENT_POLL_S = 0.5  # how often the watchdog thread looks for the parent
# Phases a rank reports, in order. In the starred ones a rank waits for its peers, so an error
# there is usually a consequence of another rank's failure, not its cause.
PHASES = ("started", "init*", "joined", "routed", "all_gather*", "recombine", "exchange*", "checked",
          "measure*", "done")


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


def follow_parent(parent_pid: int, *, use_prctl: bool = True) -> None:
    """Exit this process when ``parent_pid`` dies, by any signal, SIGKILL included.

    Two ways, so that either is enough: on Linux the kernel sends us SIGKILL when our parent exits
    (``PR_SET_PDEATHSIG``; ``use_prctl=False`` skips it, to test the other way), and everywhere a
    daemon thread polls our parent's pid every ``PARENT_POLL_S`` seconds.
    """
    if use_prctl and sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            PR_SET_PDEATHSIG = 1
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the kernel kills us when our parent exits
        except (OSError, AttributeError):
            pass  # no prctl: the watchdog thread below still works
    if os.getppid() != parent_pid:  # the parent died before we got here (reparented already)
        os._exit(4)

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_S)
        os._exit(4)  # orphaned: skip cleanup, which could wait on a collective that never ends

    threading.Thread(target=watch, name="ep-parent-watch", daemon=True).start()


def all_gather_rows(tensor: torch.Tensor, world_size: int) -> torch.Tensor:
    """Every rank's ``tensor`` stacked along dim 0, in rank order (equal shapes on every rank)."""
    tensor = tensor.contiguous()
    out = tensor.new_empty((world_size * tensor.shape[0], *tensor.shape[1:]))
    if tensor.numel():  # all ranks share the shape, so all of them skip an empty gather together
        gather_into(out, tensor)
    return out


def inject_failure(mode: str, rank: int, queue) -> None:
    if mode == "raise":
        raise RuntimeError(f"injected failure on rank {rank} (fail_rank={rank}, fail_mode='raise')")
    if mode == "exit":
        queue.close()
        queue.join_thread()  # the parent has our last phase; then die like a segfault would
        os._exit(3)
    time.sleep(10**6)  # "hang": never reach the collective; the others wait for us


def devices(cfg, rank: int) -> tuple[torch.device, torch.device]:
    """(where collectives run, where the kernels run) for this rank."""
    if cfg.backend == "nccl":
        torch.cuda.set_device(rank)
        return torch.device("cuda", rank), torch.device("cuda", rank)
    if sys.platform.startswith("linux"):
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # loopback only
    kernel_device = backend.device()
    if kernel_device.type == "cuda":
        kernel_device = torch.device("cuda", rank % torch.cuda.device_count())
    return torch.device("cpu"), kernel_device


def rank_main(rank: int, cfg, queue) -> None:
    """Body of one rank's process (spawned; importable, so it also works from a notebook)."""
    follow_parent(cfg.parent_pid)
    step, phase = 0, "started"  # step: which (repeat, job) this rank is on, for the parent's watchdog

    def post(name, note=""):
        nonlocal phase
        phase = name
        queue.put(("phase", rank, step, name, note))

    try:
        post("started")
        comm_device, kernel_device = devices(cfg, rank)
        post("init*")
        store = dist.TCPStore("127.0.0.1", cfg.port, is_master=False,
                              timeout=datetime.timedelta(seconds=cfg.startup_timeout_s))
        dist.init_process_group(cfg.backend, store=store, rank=rank, world_size=cfg.world_size,
                                timeout=datetime.timedelta(seconds=cfg.timeout_s + BACKSTOP_S),
                                **({"device_id": comm_device} if cfg.backend == "nccl" else {}))
        post("joined")
        p = routing.preset(cfg.preset)
        num_local = p.num_local(cfg.world_size)
        start = p.start(rank, cfg.world_size)
        starts = [p.start(r, cfg.world_size) for r in range(cfg.world_size)]
        stage = registry.STAGES[cfg.stage]
        for step in range(cfg.repeats * len(cfg.jobs)):
            repeat, job_index = divmod(step, len(cfg.jobs))  # whole sweeps, one after another
            job = cfg.jobs[job_index]
            ids = router_output(cfg.preset, job.tokens[rank], job.distribution, seed=cfg.seed, rank=rank)
            post("routed")
            if cfg.fail_rank == rank and step == 0:
                inject_failure(cfg.fail_mode, rank, queue)
            padded = routing.pad_rows(ids, max(job.tokens) - job.tokens[rank]).to(comm_device)
            post("all_gather*")
            gathered = all_gather_rows(padded, cfg.world_size)  # the same tensor on every rank
            post("recombine")
            adjusted, counts = stage.run(gathered.to(kernel_device), start, num_local)
            post("exchange*")
            all_counts = all_gather_rows(counts.to(comm_device)[None], cfg.world_size)
            all_adjusted = all_gather_rows(adjusted.to(comm_device)[None], cfg.world_size)
            if rank == 0:
                violations = check_conservation(gathered, all_counts, starts, num_local, all_adjusted)
                small = gathered.numel() <= RETURN_IDS_MAX
                queue.put(("result", rank, job_index, dict(
                    counts=all_counts.cpu().numpy(), violations=violations,
                    gathered_shape=tuple(gathered.shape),
                    gathered_ids=gathered.cpu().numpy() if small else None)))
            post("checked")
            if cfg.measure:
                rows = measure(cfg, rank, padded, gathered.to(kernel_device), start, num_local, post,
                               repeat)
                queue.put(("timing", rank, job_index, rows))
        dist.destroy_process_group()
        post("done")
        code = 0
    except BaseException:  # noqa: BLE001  (everything goes back to the parent, then we leave)
        queue.put(("error", rank, step, phase, time.time(), traceback.format_exc()))
        code = 1
    queue.close()
    queue.join_thread()  # our messages are in the pipe now
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter shutdown: it costs seconds per rank here, and after a failure it could wait
    # on a collective that never ends.
    os._exit(code)
