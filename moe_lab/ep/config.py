"""What a group is asked to do, checked before any process starts.

Every argument of :func:`moe_lab.ep.run_sweep` is validated here, in the parent, so that a bad value
is a clear ``TypeError``/``ValueError`` naming the argument instead of a failure inside a spawned rank
seconds later. The result is a frozen :class:`Config` that the ranks receive (pickled) at spawn.
"""

from __future__ import annotations

import math
import numbers
import operator
from dataclasses import dataclass

import torch
import torch.distributed as dist

from moe_lab import backend, registry, routing
from moe_lab.measure import timing

BACKENDS = ("gloo", "nccl")
FAIL_MODES = ("raise", "exit", "hang")
MEASURED_STAGES = ("scalar_atomic", "best")
KERNEL_MODES = timing.MODES
"""How a rank times each stage: ``do_bench`` of eager calls, or replays of a captured CUDA graph."""
SEED_MAX = 2**31 - 1  # seeds are drawn per rank as seed + rank; keep them in a plain int32 range


@dataclass(frozen=True)
class Job:
    tokens: tuple[int, ...]  # per rank
    distribution: str


@dataclass(frozen=True)
class Config:
    world_size: int
    backend: str
    preset: str
    stage: str
    seed: int
    jobs: tuple[Job, ...]
    fail_rank: int | None
    fail_mode: str
    timeout_s: float
    startup_timeout_s: float
    measure: bool
    stages: tuple[str, ...]
    kernel_mode: str = "eager"
    repeats: int = 1
    port: int = 0
    parent_pid: int = 0


def as_int(name: str, value, low: int, high: int | None = None) -> int:
    """``value`` as a Python int (numpy integers accepted), else a TypeError/ValueError naming ``name``."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got bool ({value!r})")
    try:
        value = operator.index(value)  # int, numpy integer, 0-d integer array; never a float
    except TypeError:
        hint = f": pass a whole number, e.g. {name}={int(value)}" if isinstance(value, float) and \
            math.isfinite(value) and value == int(value) else ""
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r}){hint}") from None
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def as_seconds(name: str, value) -> float:
    """A finite, positive number of seconds (a watchdog that never fires would let a hang live on)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__} ({value!r})")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive, finite number of seconds, got {value!r}: the "
                         f"watchdog stops a group that makes no progress for that long")
    return value


def as_names(name: str, value, allowed, what: str) -> tuple[str, ...]:
    """A non-empty list of names from ``allowed`` (a lone string is refused: it would iterate by letter)."""
    if isinstance(value, str):
        raise TypeError(f"{name} must be a list of {what} names, got the string {value!r}: "
                        f"write {name}=[{value!r}]")
    try:
        names = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be a list of {what} names, got {type(value).__name__} "
                        f"({value!r})") from None
    if not names:
        raise ValueError(f"{name} must name at least one {what}, got {value!r}")
    for n in names:
        if n not in allowed:
            raise ValueError(f"{name} holds {n!r}, which is not a {what}; choose from {list(allowed)}")
    return names


def check_stage(name: str, value) -> str:
    if not isinstance(value, str) or value not in registry.STAGES:
        raise ValueError(f"{name}={value!r} is not a stage; choose one of {list(registry.STAGES)}")
    return value


def batch(spec, world_size: int) -> tuple[int, ...]:
    """One batch: an int (tokens on every rank) or one int per rank."""
    if isinstance(spec, (list, tuple)) or getattr(spec, "ndim", None) == 1:
        tokens = tuple(spec)
        if len(tokens) != world_size:
            raise ValueError(f"tokens_per_rank={list(tokens)} must be one int, or one int per rank "
                             f"(world_size={world_size} of them)")
    else:
        tokens = (spec,) * world_size
    return tuple(as_int("tokens_per_rank", t, 0) for t in tokens)


def _check_backend(backend_name, world_size: int) -> str:
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
    return backend_name


def make_config(world_size, preset, batches, distributions, backend_name, stage, seed, fail_rank,
                fail_mode, timeout_s, startup_timeout_s, measure, stages, kernel_mode="eager",
                repeats=1) -> Config:
    """Validate every argument of a group (in this order) and return its :class:`Config`."""
    world_size = as_int("world_size", world_size, 1)
    if not isinstance(preset, str):
        raise TypeError(f"preset must be a preset name (str), got {type(preset).__name__} ({preset!r}); "
                        f"choose one of {list(routing.PRESETS)}")
    p = routing.preset(preset)
    if p.num_experts % world_size:
        raise ValueError(f"world_size={world_size} does not divide {preset}'s {p.num_experts} experts; "
                         f"each rank must own the same number of experts (uneven ownership is not "
                         f"supported). EP sizes that work for {preset}: {p.ep_sizes()}")
    backend_name = _check_backend(backend_name, world_size)
    stage = check_stage("stage", stage)
    seed = as_int("seed", seed, 0, SEED_MAX - world_size)
    distributions = as_names("distributions", distributions, routing.DISTRIBUTIONS, "distribution")
    if isinstance(batches, (str, bytes)) or not isinstance(batches, (list, tuple)):
        raise TypeError(f"batches must be a list of batches (each an int or one int per rank), got "
                        f"{type(batches).__name__} ({batches!r}): write batches=[{batches!r}]")
    if not batches:
        raise ValueError("batches must hold at least one batch, got []")
    tokens = [batch(b, world_size) for b in batches]
    if fail_rank is not None:
        fail_rank = as_int("fail_rank", fail_rank, 0)
        if fail_rank >= world_size:
            raise ValueError(f"fail_rank={fail_rank} must be a rank in [0, world_size={world_size})")
    if fail_mode not in FAIL_MODES:
        raise ValueError(f"fail_mode={fail_mode!r} must be one of {FAIL_MODES}")
    timeout_s = as_seconds("timeout_s", timeout_s)
    startup_timeout_s = as_seconds("startup_timeout_s", startup_timeout_s)
    if measure is not None and not isinstance(measure, bool):
        raise TypeError(f"measure must be True, False or None (None: time on NCCL only), got {measure!r}")
    measure = backend_name == "nccl" if measure is None else measure
    if measure and backend_name != "nccl":
        raise ValueError("measure=True needs backend='nccl': timings come only from GPUs, never from "
                         "gloo on CPU or the interpreter")
    stages = as_names("stages", stages, registry.STAGES, "stage")
    if kernel_mode not in KERNEL_MODES:
        raise ValueError(f"kernel_mode={kernel_mode!r} must be one of {KERNEL_MODES}")
    repeats = as_int("repeats", repeats, 1)
    jobs = tuple(Job(t, d) for t in tokens for d in distributions)
    twice = [job for i, job in enumerate(jobs) if job in jobs[:i]]
    if twice:  # its rows would be recorded twice
        raise ValueError(f"batches and distributions give batch {list(twice[0].tokens)} with distribution "
                         f"{twice[0].distribution!r} twice; list each batch and distribution once "
                         f"(repeats=N runs the whole sweep N times)")
    return Config(world_size, backend_name, preset, stage, seed, jobs, fail_rank, fail_mode, timeout_s,
                  startup_timeout_s, measure, stages, kernel_mode, repeats)
