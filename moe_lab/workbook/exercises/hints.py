"""The symptoms a check can name and what each asks the learner to do (the hint table).

:data:`HINTS` maps a symptom to ``(what was seen, what to do)``; an exercise whose kernel is built
differently (a scalar loop, a single program, a ticket) says the same thing its own way in one of the
override tables, which its :class:`~moe_lab.workbook.exercises.catalogue.Exercise` entry names.
"""

from __future__ import annotations

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
                "walks far more slots than the input has), and that nothing waits or sleeps"),
    "process_exit": ("the learner's code ended the Python process it ran in",
                     "your code ended the process it ran in (os._exit, a crash): remove whatever stops "
                     "Python there. The check runs your code in a process of its own, so this notebook "
                     "is still alive"),
    "python_helper": ("the kernel calls a plain Python function",
                      "a GPU cannot run plain Python: remove the call (to look inside a kernel, use print or "
                      "tl.device_print), or make the helper a @triton.jit function too"),
    "learner_exit": ("the kernel raised SystemExit or KeyboardInterrupt itself",
                     "your code asked Python to stop (sys.exit, exit(), quit(), or raising SystemExit or "
                     "KeyboardInterrupt): remove that call; a kernel ends when its last line has run"),
    "not_permitted": ("the kernel's code did something the check does not permit",
                      "your code asked the operating system for something the check forbids (signalling "
                      "another process with os.kill, leaving the process group with os.setsid): a kernel "
                      "only computes on its buffers, so remove that call"),
    "recursion": ("the kernel calls itself",
                  "a Triton kernel cannot call itself, directly or through a helper: write the repetition as "
                  "a loop (for i in range(...)) instead"),
    "loop_exit": ("the kernel leaves a loop with break, continue or return, which Triton cannot compile",
                  "a GPU kernel cannot leave a loop early (no break, continue, or return inside a loop): "
                  "keep the loop and put its work under an `if` instead, e.g. `if token < num_tokens:`"),
    "global_value": ("the kernel reads a global that is not a tl.constexpr",
                     "a kernel can read only tl.constexpr globals: define it as NAME = tl.constexpr(value), "
                     "or pass the value in as an argument"),
    "gpu_compile": ("the kernel runs in the interpreter but Triton cannot compile it for a GPU",
                    "the interpreter runs the kernel as Python, which accepts more than Triton's compiler: "
                    "change the line named above so that Triton compiles it, and run its cell again"),
    "compile_slow": ("compiling the kernel for a GPU did not finish in time",
                     "Triton unrolls tl.static_range loops and loops over constexpr bounds while it "
                     "compiles: a very long one never finishes; loop with range() over a runtime bound"),
    "source_unreadable": ("the kernel's source could not be read, so it could not be compiled",
                          "define the kernel (and the @triton.jit helpers it calls) in a notebook cell or a "
                          ".py file, not through exec or an interactive prompt, then check again"),
    "host_help": ("the kernel comes with host-side code that runs around the launch",
                  "hand over the bare @triton.jit kernel: no pre-run hooks, autotuner or heuristics; "
                  "the kernel alone must produce the outputs"),
    "unsupported_memory": ("the kernel used block pointers or tensor descriptors",
                           "use plain pointer arithmetic (ptr + offsets) with tl.load / tl.store: the "
                           "checker follows those"),
    "load_out_of_bounds": ("the kernel read topk_ids outside its slots",
                           "mask the load (mask=offs < num_total), so lanes past the end read nothing; "
                           "then choose the value they get instead (other=...): one never counted as local"),
    "store_out_of_bounds": ("the kernel wrote adjusted outside its slots",
                            "mask the store with the in-bounds mask: tl.store(..., mask=offs < num_total)"),
    "wrote_input": ("the kernel wrote into topk_ids", "topk_ids is the input: store into adjusted_ptr"),
    "launch_fixed": ("the kernel holds for one launch configuration only",
                     "write the constexpr the launch passes (BLOCK, TOKENS_PER_PROGRAM) wherever its value "
                     "is meant, never the number itself: the check, like the library, launches with "
                     "several values"),
    "tile_offset": ("only the first tile was written: every program worked on slots 0..BLOCK-1",
                    "each program owns its own tile: offs = pid * BLOCK + tl.arange(0, BLOCK), with "
                    "pid = tl.program_id(0); without pid * BLOCK every program works on the first tile"),
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
                      "tl.atomic_add(count_ptr + bins, hist, mask=(bins < num_local) & (hist > 0))"),
    "zero_adds": ("the histogram's atomic added counts of zero",
                  "add only the non-zero counts, so an expert absent from the block costs no atomic: "
                  "tl.atomic_add(count_ptr + bins, hist, mask=(bins < num_local) & (hist > 0))"),
    "not_aggregated": ("a program added to one counter more than once",
                       "count the block in registers first, tl.histogram(local_expert, NUM_BINS, "
                       "mask=local), then add each counter once with one vector tl.atomic_add over bins"),
    "wrapped_ids": ("ids outside int32 were treated as local: they were cast to int32 before the range "
                    "test",
                    "test the range on the ids as loaded (an int64 id stays int64: a cast first turns "
                    "2**40 into 0) and cast only the local index, local_expert.to(tl.int32), for "
                    "tl.histogram"),
    "counts_race": ("expert_count written with a plain tl.store from several programs",
                    "programs run at the same time on a GPU and overwrite each other: add with "
                    "tl.atomic_add"),
    "counts_rmw": ("the counters were read and written back (a read-modify-write)",
                   "use an atomic: tl.atomic_add adds in one indivisible step; a tl.load + tl.store, or "
                   "an atomic_xchg of a value read earlier, loses every update that lands in between "
                   "(two lanes of one block on the same expert already do)"),
    "cas_lost": ("a compare-and-swap failed and its update was lost",
                 "tl.atomic_cas fails when another program changed the counter since you read it (the "
                 "check makes that happen, several times in a row, on every counter a program swaps): "
                 "retry until the swap succeeds, with no cap on the tries (on a GPU a swap can fail any "
                 "number of times), or use an atomic add (tl.atomic_add), which cannot lose an update"),
    "atomic_scope": ("an atomic was CTA-scoped",
                     "keep the atomic's default scope=\"gpu\": scope=\"cta\" makes it atomic and ordered "
                     "only among the threads of one program, and the programs of a launch run on "
                     "different SMs"),
    "counts_high": ("some counters too high",
                    "count each local slot once: mask the atomic to local, in-bounds slots"),
    "counts_low": ("some counters too low",
                   "a local slot was not counted: check the atomic's mask and the loop bounds"),
    "local_missed": ("local ids stored as -1: the kernel did not treat them as local",
                     "a local id became -1: the local test is start <= id < start + num_local, for every "
                     "start (this case's may be large) and every slot of every program"),
    "adjusted_wrong": ("adjusted differs from the reference",
                       "adjusted is id - start for start <= id < start + num_local, else -1"),
    "block_not_int": ("block_size returned something that is not an int",
                      "return an int: use // (integer division) and triton.next_power_of_2"),
    "block_not_power_of_two": ("block_size returned a number that is not a power of two",
                               "1024 // 6 = 170 is not a power of two and tl.arange(0, 170) fails: "
                               "round it up to a power of two (Triton has a helper for that)"),
    "block_out_of_range": ("block_size returned a block below 1 or above 256",
                           "a block is at most 256 slots: keep the rule's min(256, ...), then round"),
    "block_not_near": ("block_size returned a block far from the rule",
                       "keep the rule min(256, 1024 // topk) and only round it to a power of two: the block "
                       "must lie within a factor of two of the rule (rule / 2 < block < 2 * rule)"),
    "block_from_library": ("block_size called the library's own block_size",
                           "write the rule yourself: the library's block_size is this exercise's answer "
                           "(solution(\"block_size\") shows it when you want it)"),
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
    "ticket_order": ("a program took its ticket before its adds into the scratch were done",
                     "in every program: first every tl.atomic_add into the scratch's accumulators, then "
                     "tl.debug_barrier() (the program's threads wait for each other), then the ticket; the "
                     "ticket says \"my adds are in\", so nothing may be added after it"),
    "ticket_ordering": ("the ticket or the final reads can see a stale total on a GPU",
                        "keep the ticket acq_rel (tl.atomic_add's default sem), put tl.debug_barrier() "
                        "before it, and read the totals with an atomic (tl.atomic_xchg), not tl.load"),
}

# The same symptom asks for a different fix in the scalar (naive) kernel.
NAIVE_HINTS = {
    "load_out_of_bounds": "tokens past the end were read or written: keep `if token < num_tokens:` around "
                          "the token's work",
    "store_out_of_bounds": "tokens past the end were read or written: keep `if token < num_tokens:` around "
                           "the token's work",
    "poison_left": "a slot was never stored: store -1 in the else branch, and loop over all topk slots "
                   "of every token",
    "counted_nonlocal": "only count inside the `if` that tests start <= expert < start + num_local",
    "tile_offset": "program pid owns tokens pid * TOKENS_PER_PROGRAM + i: without pid * TOKENS_PER_PROGRAM "
                   "every program works on the first tokens",
}

# The debugging puzzle's kernel loops over flat slots one at a time (a vector of slots is fine too).
DEBUG_HINTS = {
    "load_out_of_bounds": "a slot past the end was read: test `slot < num_total` before the load (the last "
                          "slot is num_total - 1); with a vector of slots, mask the load with that test",
    "store_out_of_bounds": "a slot past the end was written: test `slot < num_total` before the store (the "
                           "last slot is num_total - 1); with a vector of slots, mask the store with it",
    "counted_nonlocal": "only count inside the `if` that tests start <= expert < start + num_local",
}

# decode stores its counters once, with no atomic at all.
DECODE_HINTS = {
    "tile_offset": "each step of the loop owns its own tile: offs = tile * BLOCK + tl.arange(0, BLOCK); "
                   "without tile * BLOCK every step works on the first tile again",
    "bins_unmasked": "mask bins >= num_local in the final store: "
                     "tl.store(count_ptr + bins, counts, mask=bins < num_local)",
    "counts_out_of_bounds": "only counters 0 .. num_local - 1 exist: "
                            "tl.store(count_ptr + bins, counts, mask=bins < num_local)",
}

TICKET_HINTS = {
    "bins_unmasked": "mask bins >= num_local in the scratch adds, the swap and the final store "
                     "(only num_local counters and accumulators exist)",
}


__all__ = ["HINTS", "NAIVE_HINTS", "DEBUG_HINTS", "DECODE_HINTS", "TICKET_HINTS"]
