"""The exercises: what each asks for, how its checker launches it, its symptoms, hints and answer marks.

Everything a notebook, the instructor guide or a test needs to know about an exercise lives in its
:class:`Exercise` entry of :data:`EXERCISES` (in the order a learner meets them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from moe_lab.workbook.exercises.hints import DEBUG_HINTS, DECODE_HINTS, HINTS, NAIVE_HINTS, TICKET_HINTS

MARKER = "YOUR CODE HERE"
"""Text that marks the student stub (the student edition puts it in place of every solution)."""

_BLOCK_PARAMS = (("ids_ptr", False), ("adjusted_ptr", False), ("count_ptr", False), ("num_total", False),
                 ("start", False), ("num_local", False), ("BLOCK", True))
_BINS_PARAMS = _BLOCK_PARAMS + (("NUM_BINS", True),)


def _signature(params) -> str:
    return "@triton.jit def kernel(" + ", ".join(f"{n}: tl.constexpr" if c else n for n, c in params) + ")"


@dataclass(frozen=True)
class Exercise:
    """One exercise: what the learner writes, how the checker runs it, how it helps."""

    name: str
    notebook: str
    description: str
    params: tuple[tuple[str, bool], ...]
    """``(name, is constexpr)`` of each kernel parameter, in order (empty for a plain function)."""
    launch: str
    symptoms: tuple[str, ...]
    levels: tuple[str, str, str]
    """Hint levels: 1 a nudge, 2 more specific, 3 nearly the answer."""
    todo: str
    hint_overrides: dict = field(default_factory=dict)
    minutes: int = 15
    """Time a learner needs (see the instructor guide for how it was estimated)."""
    answer_kernels: tuple[str, ...] = ()
    """Library kernels whose source answers the exercise (shown only after its check cell)."""
    answer_formulas: tuple[str, ...] = ()
    """Formulas that answer it (compared without spaces)."""
    runner: str = ""
    """``"module:function"`` of an exercise with its own checker, called as ``function(exercise, obj,
    hint_level) -> bool`` and reporting through :func:`moe_lab.workbook.exercises.report.say` (the stub, the
    signature, helper and host-help checks run first). Empty: the built-in runners."""
    gpu_runner: str = ""
    """``"module:function"`` of such an exercise's GPU pass (same call), run in the notebook's process
    once the runner passed, where there is a GPU. Empty: none."""
    answer: str = ""
    """``"module:attribute"`` of the shipped answer of such an exercise (see :func:`.answers.answer`)."""
    builds_on: tuple[str, ...] = ()
    """``"module:attribute"`` of what its notebook shows on purpose around the exercise: the previous
    stage the lesson builds on (``row_loop`` before ``naive``), the debugging puzzle's own buggy kernel
    (whose loop body is ``naive``'s). Lines the answer shares with it are not the answer: the allowed
    scaffolding of :mod:`moe_lab.workbook.exercises.onscreen`."""

    @property
    def signature(self) -> str:
        if not self.params:
            return "def block_size(topk: int) -> int"
        return _signature(self.params)

    @property
    def is_kernel(self) -> bool:
        return bool(self.params)

    @property
    def hints(self) -> dict[str, str]:
        """The hint table: symptom -> what to do, for the mistakes this exercise can show."""
        return {HINTS[k][0]: self.hint(k) for k in self.symptoms}

    def hint(self, key: str) -> str:
        return self.hint_overrides.get(key, HINTS[key][1])


_COMMON = ("signature", "power_of_two", "compile_error", "timeout", "process_exit", "learner_exit",
           "python_helper", "recursion", "loop_exit", "global_value", "gpu_compile", "compile_slow",
           "source_unreadable",
           "host_help", "unsupported_memory", "wrote_input", "launch_fixed", "not_permitted")
_SLOTS = ("tile_offset", "load_out_of_bounds", "store_out_of_bounds", "padded_as_zero", "poison_left",
          "not_subtracted", "remote_counted", "below_start", "local_missed")
_ATOMIC_COUNTS = ("counted_nonlocal", "counts_out_of_bounds", "counts_rmw", "cas_lost", "counts_race",
                  "atomic_scope", "counts_high", "counts_low", "adjusted_wrong")


_ANSWERS = "moe_lab.workbook.exercises.answers:"


def _todo(what: str, stub: str = "`pass  # YOUR CODE HERE`") -> str:
    return f"write the body of {what} (replace {stub}), run its cell, then run this check again"


EXERCISES: dict[str, Exercise] = {e.name: e for e in [
    Exercise(
        "naive", "02",
        "the naive kernel: loop over a program's tokens and their topk slots one scalar at a time; "
        "store id - start or -1, and atomically count local ids",
        (("ids_ptr", False), ("adjusted_ptr", False), ("count_ptr", False), ("num_tokens", False),
         ("topk", False), ("start", False), ("num_local", False), ("TOKENS_PER_PROGRAM", True)),
        "counts zeroed; grid (cdiv(num_tokens, 4),), TOKENS_PER_PROGRAM=4",
        _COMMON + ("tile_offset", "load_out_of_bounds", "store_out_of_bounds", "poison_left",
                   "not_subtracted", "remote_counted", "below_start", "local_missed") + _ATOMIC_COUNTS,
        ("Program pid owns tokens pid * TOKENS_PER_PROGRAM ... + TOKENS_PER_PROGRAM - 1; each token has "
         "topk slots, one after another in memory.",
         "Two loops: `for i in range(TOKENS_PER_PROGRAM)` over tokens (skip token >= num_tokens) and "
         "`for k in range(topk)` over its slots; slot = token * topk + k.",
         "Per slot: load the id; if start <= id < start + num_local store id - start and "
         "tl.atomic_add(count_ptr + (id - start), 1), else store -1."),
        _todo("your naive kernel"), NAIVE_HINTS, minutes=20, answer_kernels=("naive_kernel",),
        builds_on=("moe_lab.stages.row_loop:row_loop_kernel", _ANSWERS + "DEBUG_SOURCE")),
    Exercise(
        "debug", "02",
        "find the planted bug in debug_kernel() (a scalar loop over flat slots, right on rank 0 only) with "
        "the interpreter (print / tl.device_print inside the kernel), fix it, and check the fixed kernel",
        _BLOCK_PARAMS,
        "counts zeroed; BLOCK = tl_full.block_size(topk), grid (cdiv(num_total, BLOCK),)",
        _COMMON + _SLOTS + _ATOMIC_COUNTS,
        ("Run the buggy kernel for every rank of the worked example (example('debug')): "
         "which ranks are right, and what do they have in common?",
         "On a rank with start > 0, print the slot, the expert and whether the kernel thinks it is local "
         "(a plain print works in the interpreter); look at an expert this rank owns.",
         "A local expert lies in [start, start + num_local): the upper end of the test must move with "
         "start."),
        _todo("the fixed kernel", "the planted bug"), DEBUG_HINTS, minutes=15,
        answer_kernels=("debug_answer",), builds_on=(_ANSWERS + "DEBUG_SOURCE",)),
    Exercise(
        "block_size", "03",
        "the power-of-two fix of the launch rule min(256, 1024 // topk)",
        (),
        "for topk 1..16 a power of two, at most 256 and within a factor of two of min(256, 1024 // topk) "
        "(rule / 2 < block < 2 * rule), written without the library's block_size; then the library's "
        "tl_full_kernel with that BLOCK",
        ("block_not_int", "block_not_power_of_two", "block_out_of_range", "block_not_near",
         "block_from_library", "power_of_two", "compile_error", "timeout", "process_exit", "learner_exit"),
        ("What does 1024 // 6 give, and can tl.arange take it?",
         "Keep the rule min(256, 1024 // topk) and round its result up to the next power of two.",
         "triton has a helper that rounds an int up to a power of two: triton.next_power_of_2(n)."),
        _todo("block_size", "the `raise NotImplementedError`"), minutes=5,
        answer_formulas=("next_power_of_2(min(256, 1024 // topk))",
                         "next_power_of_2(min(256,1024//topk))")),
    Exercise(
        "masked_block", "03",
        "the vectorised kernel: one masked block of BLOCK flat slots per program, the tail loaded as -1",
        _BLOCK_PARAMS,
        "counts zeroed; BLOCK = tl_full.block_size(topk), grid (cdiv(num_total, BLOCK),)",
        _COMMON + _SLOTS + _ATOMIC_COUNTS,
        ("Forget tokens: the ids are num_total flat slots, and program pid owns BLOCK of them in a row.",
         "offs = pid * BLOCK + tl.arange(0, BLOCK); the last block runs past num_total, so every memory "
         "operation needs a mask, and the padding must not look like a local expert.",
         "Load with mask=offs < num_total, other=-1; local = start <= id < start + num_local; store "
         "tl.where(local, id - start, -1) under the in-bounds mask; tl.atomic_add(count_ptr + that, 1, "
         "mask=local)."),
        _todo("your masked block kernel"), minutes=15, answer_kernels=("tl_full_kernel",),
        builds_on=("moe_lab.stages.row_loop:row_loop_kernel",)),
    Exercise(
        "relaxed", "04",
        "the masked block kernel whose counting atomic is relaxed: predict first, then check",
        _BLOCK_PARAMS,
        "counts zeroed; BLOCK = tl_full.block_size(topk), grid (cdiv(num_total, BLOCK),); the counting "
        "atomic must be sem='relaxed'",
        _COMMON + _SLOTS + _ATOMIC_COUNTS + ("not_relaxed",),
        ("Which ordering does a counter need while the kernel runs? Who reads it before the end?",
         "tl.atomic_add takes a sem= argument; its default is acq_rel.",
         "Your masked block kernel with sem=\"relaxed\" on the tl.atomic_add."),
        _todo("your relaxed kernel"), minutes=10, answer_kernels=("relaxed_kernel",),
        builds_on=("moe_lab.stages.scalar_atomic:scalar_atomic_kernel",)),
    Exercise(
        "block_histogram", "05",
        "the block histogram: count a block's local experts with tl.histogram, then one atomic per "
        "expert per program",
        _BINS_PARAMS,
        "counts zeroed; grid (cdiv(num_total, BLOCK),) with BLOCK=256 and BLOCK=64, "
        "NUM_BINS = triton.next_power_of_2(num_local)",
        _COMMON + ("histogram_unmasked", "histogram_values", "bins_unmasked", "zero_adds", "not_aggregated",
                   "wrapped_ids") + _SLOTS + _ATOMIC_COUNTS,
        ("Count in registers first: a block's local experts make one small histogram, added to memory "
         "once per expert instead of once per slot.",
         "tl.histogram(values, NUM_BINS, mask=...) counts values in [0, NUM_BINS); bins = "
         "tl.arange(0, NUM_BINS) names each counter, and only bins < num_local exist.",
         "hist = tl.histogram(local_expert, NUM_BINS, mask=local); "
         "tl.atomic_add(count_ptr + bins, hist, mask=(bins < num_local) & (hist > 0))."),
        _todo("your block histogram kernel"), minutes=20, answer_kernels=("block_histogram_kernel",),
        builds_on=("moe_lab.stages.scalar_atomic:scalar_atomic_kernel",
                   "moe_lab.stages.relaxed:relaxed_kernel")),
    Exercise(
        "decode", "06",
        "one program for the whole input: loop over its tiles, histogram them, and store every counter "
        "(no memset, no atomics)",
        _BINS_PARAMS,
        "counts poisoned (not zeroed); grid (1,), BLOCK=64 (the program loops over tiles), "
        "NUM_BINS = triton.next_power_of_2(num_local)",
        _COMMON + ("histogram_unmasked", "histogram_values", "counts_poison_left", "counts_accumulated",
                   "bins_unmasked")
        + _SLOTS + ("counts_out_of_bounds", "counts_rmw", "counts_high", "counts_low", "adjusted_wrong"),
        ("One program owns every counter, so it can keep the totals in registers and write them once.",
         "Loop `for tile in range(0, (num_total + BLOCK - 1) // BLOCK)` and add each tile's "
         "tl.histogram into a register vector started with tl.full([NUM_BINS], 0, tl.int32).",
         "After the loop, tl.store(count_ptr + bins, counts, mask=bins < num_local): the counters arrive "
         "poisoned, so every one, zeros included, is stored."),
        _todo("your decode kernel"), DECODE_HINTS, minutes=15, answer_kernels=("block_histogram_kernel",),
        builds_on=(_ANSWERS + "block_histogram_answer",)),
    Exercise(
        "ticket", "06",
        "many programs, one launch, no memset: add tile histograms into a zeroed scratch, take a ticket, "
        "and let the last program store the counts and clear the scratch",
        (("ids_ptr", False), ("adjusted_ptr", False), ("count_ptr", False), ("scratch_ptr", False),
         ("num_total", False), ("start", False), ("num_local", False), ("BLOCK", True),
         ("NUM_BINS", True)),
        "counts poisoned; scratch (NUM_BINS accumulators + a ticket at scratch_ptr[NUM_BINS]) zeroed and "
        "checked to be zero again after the launch; grid (cdiv(num_total, BLOCK),), BLOCK=64",
        _COMMON + ("histogram_unmasked", "histogram_values", "counts_poison_left", "counts_not_by_last",
                   "scratch_dirty", "scratch_outside", "ticket_order", "ticket_ordering", "atomic_scope",
                   "bins_unmasked")
        + _SLOTS + ("counts_out_of_bounds", "counts_rmw", "counts_high", "counts_low", "adjusted_wrong"),
        ("Each program adds its histogram into the scratch; only the program that finishes last knows "
         "the totals are complete. How can a program find out it is last?",
         "ticket = tl.atomic_add(scratch_ptr + NUM_BINS, 1) returns how many programs took one before; "
         "the last sees tl.num_programs(0) - 1.",
         "tl.debug_barrier(); ticket = tl.atomic_add(ticket_ptr, 1); if ticket == tl.num_programs(0) - 1: "
         "totals = tl.atomic_xchg(scratch_ptr + bins, zeros, mask=...); tl.store(count_ptr + bins, "
         "totals, mask=...); tl.atomic_xchg(ticket_ptr, 0)."),
        _todo("your ticket kernel"), TICKET_HINTS, minutes=25, answer_kernels=("one_launch_kernel",),
        builds_on=(_ANSWERS + "block_histogram_answer",)),
    Exercise(
        "stable_rank", "10",
        "each local slot's rank among the earlier slots of its expert in its tile, and the tile's "
        "histogram: the first step of the dispatch layout",
        (("adjusted_ptr", False), ("rank_ptr", False), ("tile_count_ptr", False), ("num_total", False),
         ("num_local", False), ("BLOCK", True), ("NUM_BINS", True)),
        "one program per tile of BLOCK slots (16 and 64), the programs in several orders; rank and "
        "tile_count poisoned",
        _COMMON,
        ("A slot's rank counts the earlier slots of its own tile with the same expert. Picture a table "
         "with one row per slot and one column per expert, a 1 where the slot's expert is that column: "
         "what does a running count down a column tell each row?",
         "The table is a one-hot, hit = (expert[:, None] == bins[None, :]) & local[:, None] "
         "([BLOCK, NUM_BINS]); tl.cumsum(hit.to(tl.int32), axis=0) is the running count. A slot's own "
         "column of it, minus one (the slot itself), is its rank; tl.sum(hit, axis=0) is the tile's "
         "histogram.",
         "upto = tl.cumsum(hit.to(tl.int32), axis=0); rank = tl.where(local, tl.sum(tl.where(hit, upto, "
         "0), axis=1) - 1, -1), stored under the in-bounds mask; tl.store(tile_count_ptr + pid * NUM_BINS "
         "+ bins, tl.sum(hit.to(tl.int32), axis=0))."),
        _todo("your stable-rank kernel"), minutes=20, runner="moe_lab.workbook.exercises.stable_rank:run",
        gpu_runner="moe_lab.workbook.exercises.stable_rank:run_gpu",
        answer="moe_lab.workbook.exercises.stable_rank:stable_rank_kernel"),
]}
"""Every exercise, in the order a learner meets them."""


def exercise(name) -> Exercise:
    """The catalogue entry for ``name``; a clear ValueError for anything else."""
    if not isinstance(name, str) or name not in EXERCISES:
        raise ValueError(f"name must be one of {', '.join(map(repr, EXERCISES))}, got {name!r}")
    return EXERCISES[name]


__all__ = ["MARKER", "HINTS", "Exercise", "EXERCISES", "exercise"]
