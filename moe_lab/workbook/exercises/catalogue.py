"""The exercises: what each asks for, how its checker launches it, its symptoms, hints and answer marks.

Everything a notebook, the instructor guide or a test needs to know about an exercise lives in its
:class:`Exercise` entry of :data:`EXERCISES` (in the order a learner meets them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

MARKER = "YOUR CODE HERE"
"""Text that marks the student stub (the student edition puts it in place of every solution)."""

# Symptom -> (what was seen, what to do). Each exercise lists the symptoms it can show.
HINTS: dict[str, tuple[str, str]] = {
    "signature": ("the kernel's parameters differ from the exercise's",
                  "keep the parameters exactly as given in the exercise (names, order, and tl.constexpr "
                  "on the constexpr ones)"),
    "power_of_two": ("Triton refused a range that is not a power of two",
                     "tl.arange(0, N) and block shapes need N to be a power of two: round up with "
                     "triton.next_power_of_2 and let the mask switch off the extra lanes"),
    "compile_error": ("the kernel did not compile or raised while running",
                      "read Triton's message above, fix that line and run the kernel's cell again"),
    "timeout": ("the kernel did not finish within the time budget",
                "did not finish: check your loop bounds (a loop whose end never comes, or one that "
                "walks far more slots than the input has)"),
    "python_helper": ("the kernel calls a plain Python function",
                      "a GPU cannot run Python: put @triton.jit on the helper too, or write its body "
                      "inline in the kernel"),
    "host_help": ("the kernel comes with host-side code that runs around the launch",
                  "hand over the bare @triton.jit kernel: no pre-run hooks, autotuner or heuristics; "
                  "the kernel alone must produce the outputs"),
    "unsupported_memory": ("the kernel used block pointers or tensor descriptors",
                           "use plain pointer arithmetic (ptr + offsets) with tl.load / tl.store: the "
                           "checker follows those"),
    "load_out_of_bounds": ("the kernel read topk_ids outside its slots",
                           "mask the load: tl.load(ids_ptr + offs, mask=offs < num_total, other=-1)"),
    "store_out_of_bounds": ("the kernel wrote adjusted outside its slots",
                            "mask the store with the in-bounds mask: tl.store(..., mask=offs < num_total)"),
    "wrote_input": ("the kernel wrote into topk_ids", "topk_ids is the input: store into adjusted_ptr"),
    "poison_left": ("poison left in adjusted: a slot was never stored",
                    "a slot was never stored: check the store mask / loop bounds (every in-bounds slot "
                    "gets a value, -1 when it is not local)"),
    "not_subtracted": ("adjusted values equal to the global ids",
                       "subtract start: a local expert's index is id - start"),
    "remote_counted": ("ids >= start + num_local treated as local (counted or kept)",
                       "upper bound check: this rank owns only start <= id < start + num_local"),
    "below_start": ("ids below start treated as local",
                    "lower bound check: ids < start (and -1 padding) belong to no local expert"),
    "counted_nonlocal": ("the atomic counted slots that are not local (negative counter index)",
                         "mask the atomic with the local mask, so -1 and remote slots add nothing"),
    "counts_out_of_bounds": ("an atomic touched expert_count outside [0, num_local)",
                             "index the counters with id - start and mask the atomic to local slots"),
    "padded_as_zero": ("counts too high on expert 0 where start=0 and the last block has padding",
                       "padded slots loaded as 0? use other=-1 or mask the atomic with the in-bounds mask"),
    "histogram_unmasked": ("last counter too high with -1 inputs: tl.histogram saw values outside "
                           "[0, NUM_BINS)",
                           "tl.histogram needs mask=: tl.histogram(local_expert, NUM_BINS, mask=local)"),
    "histogram_values": ("tl.histogram was given values outside [0, NUM_BINS) under its mask",
                         "histogram the local index id - start under mask=local "
                         "(local = start <= id < start + num_local)"),
    "bins_unmasked": ("the histogram's atomic touched counters >= num_local",
                      "mask bins >= num_local when adding the histogram: "
                      "tl.atomic_add(count_ptr + bins, hist, mask=bins < num_local)"),
    "counts_race": ("expert_count written with a plain tl.store from several programs",
                    "programs run at the same time on a GPU and overwrite each other: add with "
                    "tl.atomic_add"),
    "counts_rmw": ("the counters were read and written back (a read-modify-write)",
                   "use an atomic: tl.atomic_add adds in one indivisible step; a tl.load + tl.store, or "
                   "an atomic_xchg / atomic_cas of a value read earlier, loses every update that lands "
                   "in between (two lanes of one block on the same expert already do)"),
    "counts_high": ("some counters too high",
                    "count each local slot once: mask the atomic to local, in-bounds slots"),
    "counts_low": ("some counters too low",
                   "a local slot was not counted: check the atomic's mask and the loop bounds"),
    "adjusted_wrong": ("adjusted differs from the reference",
                       "adjusted is id - start for start <= id < start + num_local, else -1"),
    "block_not_int": ("block_size returned something that is not an int",
                      "return an int: use // (integer division) and triton.next_power_of_2"),
    "block_not_power_of_two": ("block_size returned a number that is not a power of two",
                               "1024 // 6 = 170 is not a power of two and tl.arange(0, 170) fails: "
                               "round it up to a power of two (Triton has a helper for that)"),
    "block_out_of_range": ("block_size returned a block below 1 or above 1024",
                           "a block is 1 to 1024 slots: stay within 1024 slots and at most 256 tokens' "
                           "worth of work per program"),
    "not_relaxed": ("the counting atomic is not relaxed",
                    "pass sem=\"relaxed\" to the tl.atomic_add that counts: nobody reads a counter "
                    "before the kernel ends, so it needs no ordering"),
    "counts_poison_left": ("poison left in expert_count: a counter was never stored",
                           "every counter must be stored, zeros included: "
                           "tl.store(count_ptr + bins, counts, mask=bins < num_local)"),
    "counts_accumulated": ("an atomic added into expert_count, which arrives poisoned, not zeroed",
                           "nothing zeroes the counters here: one program owns them all, so store its "
                           "final histogram with tl.store"),
    "counts_not_by_last": ("expert_count was not stored by the last program",
                           "take a ticket: ticket = tl.atomic_add(scratch_ptr + NUM_BINS, 1); the program "
                           "with ticket == tl.num_programs(0) - 1 stores the totals into expert_count"),
    "scratch_dirty": ("the scratch was not zero again after the launch",
                      "the last program puts every accumulator and the ticket back to zero "
                      "(tl.atomic_xchg(ptr, 0) reads the total and clears it in one step)"),
    "scratch_outside": ("the kernel touched scratch outside [0, NUM_BINS]",
                        "the accumulators are scratch_ptr[0:NUM_BINS) and the ticket is "
                        "scratch_ptr[NUM_BINS]: mask bins >= num_local"),
    "ticket_ordering": ("the ticket or the final reads can see a stale total on a GPU",
                        "keep the ticket acq_rel (tl.atomic_add's default sem), put tl.debug_barrier() "
                        "before it, and read the totals with an atomic (tl.atomic_xchg), not tl.load"),
}

# The same symptom asks for a different fix in the scalar (naive) kernel.
_NAIVE_HINTS = {
    "load_out_of_bounds": "tokens past the end were read or written: keep `if token < num_tokens:` around "
                          "the token's work",
    "store_out_of_bounds": "tokens past the end were read or written: keep `if token < num_tokens:` around "
                           "the token's work",
    "poison_left": "a slot was never stored: store -1 in the else branch, and loop over all topk slots "
                   "of every token",
    "counted_nonlocal": "only count inside the `if` that tests start <= expert < start + num_local",
}

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


_COMMON = ("signature", "power_of_two", "compile_error", "timeout", "python_helper", "host_help",
           "unsupported_memory", "wrote_input")
_SLOTS = ("load_out_of_bounds", "store_out_of_bounds", "padded_as_zero", "poison_left", "not_subtracted",
          "remote_counted", "below_start")
_ATOMIC_COUNTS = ("counted_nonlocal", "counts_out_of_bounds", "counts_rmw", "counts_race", "counts_high",
                  "counts_low", "adjusted_wrong")


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
        _COMMON + ("load_out_of_bounds", "store_out_of_bounds", "poison_left", "not_subtracted",
                   "remote_counted", "below_start") + _ATOMIC_COUNTS,
        ("Program pid owns tokens pid * TOKENS_PER_PROGRAM ... + TOKENS_PER_PROGRAM - 1; each token has "
         "topk slots, one after another in memory.",
         "Two loops: `for i in range(TOKENS_PER_PROGRAM)` over tokens (skip token >= num_tokens) and "
         "`for k in range(topk)` over its slots; slot = token * topk + k.",
         "Per slot: load the id; if start <= id < start + num_local store id - start and "
         "tl.atomic_add(count_ptr + (id - start), 1), else store -1."),
        _todo("your naive kernel"), _NAIVE_HINTS, minutes=20, answer_kernels=("naive_kernel",),
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
        _todo("the fixed kernel", "the planted bug"), minutes=15, answer_kernels=("debug_answer",),
        builds_on=(_ANSWERS + "DEBUG_SOURCE",)),
    Exercise(
        "block_size", "03",
        "the power-of-two fix of the launch rule min(256, 1024 // topk)",
        (),
        "a power of two in [1, 1024] for topk 1..16, then the library's tl_full_kernel with that BLOCK",
        ("block_not_int", "block_not_power_of_two", "block_out_of_range", "power_of_two", "compile_error",
         "timeout"),
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
        _COMMON + ("histogram_unmasked", "histogram_values", "bins_unmasked") + _SLOTS + _ATOMIC_COUNTS,
        ("Count in registers first: a block's local experts make one small histogram, added to memory "
         "once per expert instead of once per slot.",
         "tl.histogram(values, NUM_BINS, mask=...) counts values in [0, NUM_BINS); bins = "
         "tl.arange(0, NUM_BINS) names each counter, and only bins < num_local exist.",
         "hist = tl.histogram(local_expert, NUM_BINS, mask=local); "
         "tl.atomic_add(count_ptr + bins, hist, mask=bins < num_local)."),
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
        _COMMON + ("histogram_unmasked", "histogram_values", "counts_poison_left", "counts_accumulated")
        + _SLOTS + ("counts_out_of_bounds", "counts_rmw", "counts_high", "counts_low", "adjusted_wrong"),
        ("One program owns every counter, so it can keep the totals in registers and write them once.",
         "Loop `for tile in range(0, (num_total + BLOCK - 1) // BLOCK)` and add each tile's "
         "tl.histogram into a register vector started with tl.full([NUM_BINS], 0, tl.int32).",
         "After the loop, tl.store(count_ptr + bins, counts, mask=bins < num_local): the counters arrive "
         "poisoned, so every one, zeros included, is stored."),
        _todo("your decode kernel"), minutes=15, answer_kernels=("block_histogram_kernel",),
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
                   "scratch_dirty", "scratch_outside", "ticket_ordering") + _SLOTS
        + ("counts_out_of_bounds", "counts_rmw", "counts_high", "counts_low", "adjusted_wrong"),
        ("Each program adds its histogram into the scratch; only the program that finishes last knows "
         "the totals are complete. How can a program find out it is last?",
         "ticket = tl.atomic_add(scratch_ptr + NUM_BINS, 1) returns how many programs took one before; "
         "the last sees tl.num_programs(0) - 1.",
         "tl.debug_barrier(); ticket = tl.atomic_add(ticket_ptr, 1); if ticket == tl.num_programs(0) - 1: "
         "totals = tl.atomic_xchg(scratch_ptr + bins, zeros, mask=...); tl.store(count_ptr + bins, "
         "totals, mask=...); tl.atomic_xchg(ticket_ptr, 0)."),
        _todo("your ticket kernel"), minutes=25, answer_kernels=("one_launch_kernel",),
        builds_on=(_ANSWERS + "block_histogram_answer",)),
    Exercise(
        "stable_rank", "10",
        "each local slot's rank among the earlier slots of its expert in its tile, and the tile's "
        "histogram: the first step of the dispatch layout",
        (("adjusted_ptr", False), ("rank_ptr", False), ("tile_count_ptr", False), ("num_total", False),
         ("num_local", False), ("BLOCK", True), ("NUM_BINS", True)),
        "one program per tile of BLOCK slots (16 and 64); rank and tile_count poisoned",
        _COMMON,
        ("Compare every slot's expert with every bin: hit = (expert[:, None] == bins[None, :]) & "
         "local[:, None] is a [BLOCK, NUM_BINS] one-hot. A prefix sum down the slots "
         "(tl.cumsum(..., axis=0)) counts, for each slot, the slots up to it of each expert.",
         "upto = tl.cumsum(hit.to(tl.int32), axis=0); the slot's own column of upto, minus one (the slot "
         "itself), is its rank: pick it with tl.sum(tl.where(hit, upto, 0), axis=1) - 1. "
         "tl.sum(hit, axis=0) is the tile's histogram.",
         "rank = tl.where(local, tl.sum(tl.where(hit, upto, 0), axis=1) - 1, -1); store it under the "
         "in-bounds mask; tl.store(tile_count_ptr + pid * NUM_BINS + bins, "
         "tl.sum(hit.to(tl.int32), axis=0))."),
        _todo("your stable-rank kernel"), minutes=20, runner="moe_lab.workbook.exercises.stable_rank:run",
        answer="moe_lab.workbook.exercises.stable_rank:stable_rank_kernel"),
]}
"""Every exercise, in the order a learner meets them."""


def exercise(name) -> Exercise:
    """The catalogue entry for ``name``; a clear ValueError for anything else."""
    if not isinstance(name, str) or name not in EXERCISES:
        raise ValueError(f"name must be one of {', '.join(map(repr, EXERCISES))}, got {name!r}")
    return EXERCISES[name]


__all__ = ["MARKER", "HINTS", "Exercise", "EXERCISES", "exercise"]
