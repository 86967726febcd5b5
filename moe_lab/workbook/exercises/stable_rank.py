"""The dispatch exercise, ``stable_rank``: each local slot's rank among the earlier slots of its expert.

Spec, per tile of ``BLOCK`` slots (program ``p`` owns slots ``p*BLOCK`` to ``p*BLOCK + BLOCK - 1``)::

    rank[s]      = number of slots t < s in the same tile with adjusted[t] == adjusted[s] >= 0;
                   -1 if adjusted[s] < 0
    tile_count[p, e] = number of slots of tile p with adjusted == e, for e < num_local (all NUM_BINS stored)

Kernel signature: ``(adjusted_ptr, rank_ptr, tile_count_ptr, num_total, num_local, BLOCK: tl.constexpr,
NUM_BINS: tl.constexpr)``, launched with one program per tile; ``tile_count`` is ``[programs, NUM_BINS]``.
The checker poisons both outputs, runs the kernel in the interpreter (and compiled, with a GPU) on
cases that break rank kernels, and reports the first mismatch with a hint.
"""

from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl

from moe_lab import backend, interp
from moe_lab.workbook.exercises import CheckResult, say
from moe_lab.workbook.exercises.catalogue import EXERCISES
from moe_lab.workbook.exercises.learn import Text, hint_level

NAME = "stable_rank"
SIGNATURE = [name for name, _ in EXERCISES[NAME].params]
POISON = 0x5A5A5A5

HINTS = dict(enumerate(EXERCISES[NAME].levels, 1))  # the catalogue holds the exercise's hints
SYMPTOMS = {
    "poison_rank": "a slot's rank was never stored: store every in-bounds slot, "
                   "-1 for the slots that are not local",
    "counts_self": "every rank is one too high: the inclusive prefix counts the slot itself; subtract 1",
    "not_local": "slots with adjusted == -1 need rank -1 (they get no row)",
    "across_tiles": "ranks restart at 0 in every tile: count only the slots of the program's own tile",
    "fixed_bins": "the experts from one number up came out wrong: give every expert a column, bins = "
                  "tl.arange(0, NUM_BINS) (NUM_BINS = next_power_of_2(num_local)), never a fixed number",
    "rank": "a rank differs: compare only slots of the same expert, and only earlier ones (a prefix sum)",
    "tile_count": "tile_count[p, e] is the number of the tile's slots of expert e; store all NUM_BINS "
                  "entries (zeros too) at tile_count_ptr + pid * NUM_BINS + bins",
    "error": "the kernel raised: read the message above, fix the line and run the cell again",
    "timeout": "did not finish: check your loop bounds (a loop whose end never comes)",
    "padded_as_zero": "the last tile's padding was counted as expert 0: load with other=-1 (never a local "
                      "expert), or test local together with the in-bounds mask",
    "outside": "a load or store went outside its buffer: mask every lane past num_total, and store "
               "tile_count at tile_count_ptr + pid * NUM_BINS + bins",
}


@triton.jit
def stable_rank_kernel(adjusted_ptr, rank_ptr, tile_count_ptr, num_total, num_local,
                       BLOCK: tl.constexpr, NUM_BINS: tl.constexpr):
    pid = tl.program_id(0)
    slot = pid * BLOCK + tl.arange(0, BLOCK)
    inside = slot < num_total                                   # guard the last tile
    expert = tl.load(adjusted_ptr + slot, mask=inside, other=-1)
    local = (expert >= 0) & inside
    bins = tl.arange(0, NUM_BINS)
    hit = (expert[:, None] == bins[None, :]) & local[:, None]  # one-hot [slot, expert]
    upto = tl.cumsum(hit.to(tl.int32), axis=0)                  # slots of each expert up to this one
    rank = tl.sum(tl.where(hit, upto, 0), axis=1) - 1           # my column, minus myself
    tl.store(rank_ptr + slot, tl.where(local, rank, -1), mask=inside)
    tl.store(tile_count_ptr + pid * NUM_BINS + bins, tl.sum(hit.to(tl.int32), axis=0))



def spec(adjusted: torch.Tensor, block: int, num_local: int):
    """``(rank, tile_count)`` of the flat ``adjusted`` ids in tiles of ``block`` slots (plain PyTorch)."""
    flat = adjusted.reshape(-1).long()
    tiles = triton.cdiv(flat.numel(), block)
    bins = triton.next_power_of_2(num_local)
    rank = torch.full_like(flat, -1)
    count = torch.zeros(tiles, bins, dtype=torch.int64)
    for t in range(tiles):
        seen = [0] * bins
        for s in range(t * block, min(flat.numel(), (t + 1) * block)):
            e = int(flat[s])
            if e >= 0:
                rank[s] = seen[e]
                seen[e] += 1
        count[t] = torch.tensor(seen)
    return rank.to(torch.int32), count.to(torch.int32)


def cases():
    """``(name, adjusted ids, num_local)``: the inputs that break rank kernels, then many tiles and tails at
    every power of two (:data:`moe_lab.workbook.exercises.cases.SIZES`). Fixed seed."""
    from moe_lab.workbook.exercises.cases import SIZES, tail_sizes

    g = torch.Generator().manual_seed(0)

    def ids(n, lo, hi):
        return torch.randint(lo, hi, (n,), generator=g, dtype=torch.int32)
    size = SIZES[NAME]
    out = [
        ("worked example", torch.tensor([1, -1, 1, 0, 1, 0], dtype=torch.int32), 2),
        ("random, with -1", ids(100, -1, 8), 8),
        ("every slot on one expert", torch.full((70,), 3, dtype=torch.int32), 4),
        ("all -1", torch.full((40,), -1, dtype=torch.int32), 8),
        ("num_local not a power of two", ids(90, -1, 20), 20),
        ("64 local experts", ids(300, -1, 64), 64),
        ("one slot", torch.tensor([0], dtype=torch.int32), 1),
        (f"{size.slots} slots, many tiles", ids(size.slots, -1, 8), 8),
    ]
    return out + [(f"{n} slots", ids(n, -1, 6), 6) for n in tail_sizes(NAME)]


def example() -> Text:
    """The worked example of the spec."""
    return Text("stable_rank: one tile, num_local = 2\n"
                "adjusted   = [ 1, -1,  1,  0,  1,  0]\n"
                "rank       = [ 0, -1,  1,  0,  2,  1]   (earlier slots of the same expert)\n"
                "tile_count = [[2, 3]]                    (expert 0 twice, expert 1 three times)")


def picture(adjusted, num_local: int) -> Text:
    """One tile as a table: each slot's expert, its one-hot row, the running count down each column
    (the prefix sum, inclusive) and the rank the spec asks for."""
    flat = [int(v) for v in adjusted]
    rank, _ = spec(torch.tensor(flat, dtype=torch.int32), max(1, len(flat)), num_local)
    running = [0] * num_local
    lines = ["slot  expert  one-hot" + " " * max(0, 3 * num_local - 7) + "  running count  rank"]
    for s, e in enumerate(flat):
        hot = [int(e == b) for b in range(num_local)]
        running = [r + h for r, h in zip(running, hot)]
        lines.append(f"{s:4}  {e:6}  {hot!s:{max(7, 3 * num_local)}}  {running!s:13}  {int(rank[s]):4}")
    return Text("\n".join(lines))


def hint(level: int = 1) -> Text:
    return Text(HINTS[hint_level(level, 1, "level must be 1, 2 or 3")])


def solution():
    """The shipped answer, as source (only when asked)."""
    from moe_lab.workbook.show import show_source

    return show_source(stable_rank_kernel)


def _symptom(got, want, adjusted, block) -> str:
    if bool((got == POISON).any()):
        return "poison_rank"
    local = adjusted >= 0
    if not torch.equal(got[~local], want[~local]):
        return "not_local"
    if torch.equal(got[local], want[local] + 1):
        return "counts_self"
    if adjusted.numel() > block and torch.equal(got[local][:block], want[local][:block]):
        return "across_tiles"
    wrong = (got != want) & local
    low = int(adjusted[wrong].min())
    if low > 0 and bool(wrong[local & (adjusted >= low)].all()):  # right below one expert, wrong from it up
        return "fixed_bins"
    return "rank"


def _count_symptom(got, want, num_total, block) -> str:
    """``padded_as_zero`` when the only extra counts are on expert 0 of a last, partial tile."""
    diff = got.long() - want.long()
    last = diff.shape[0] - 1
    if num_total % block and bool((diff[last, 0] > 0).item()):
        rest = diff.clone()
        rest[last, 0] = 0
        if not bool(rest.any()):
            return "padded_as_zero"
    return "tile_count"


def _launch(kernel, adjusted, num_local, block, device, order_kind=None, seed=0):
    """One launch with poisoned outputs: ``(rank, tile_count, problems)``; in the interpreter under the
    address check (programs in ``order_kind``'s order, wild lanes dropped)."""
    from moe_lab.workbook.exercises import cases, sandbox
    from moe_lab.workbook.exercises.address import AddressCheck, Buffer

    bins = triton.next_power_of_2(num_local)
    tiles = triton.cdiv(adjusted.numel(), block)
    ids = adjusted.to(device)
    rank = torch.full((adjusted.numel(),), POISON, dtype=torch.int32, device=device)
    count = torch.full((tiles, bins), POISON, dtype=torch.int32, device=device)
    checked = device.type == "cpu"
    watch = AddressCheck([Buffer("adjusted", ids, False), Buffer("rank", rank, True),
                          Buffer("tile_count", count, True)], cases.order(order_kind or "", tiles, seed))
    with watch.installed() if checked else contextlib.nullcontext():
        sandbox.call(lambda: kernel[(tiles,)](ids, rank, count, adjusted.numel(), num_local, BLOCK=block,
                                              NUM_BINS=bins), timed=checked)
    problems = [f"{ev.kind} on {ev.buffer}[{', '.join(map(str, ev.indices[:4]))}] outside it"
                + (" (far outside: dropped)" if ev.wild else "") for ev in watch.events]
    return rank.cpu(), count.cpu(), problems


def _runs(places):
    from moe_lab.workbook.exercises.cases import ORDERS

    out, turn = [], 0
    for name, adjusted, num_local in cases():
        for block in (16, 64):
            for where, k, device in places:
                kind = ORDERS[turn % len(ORDERS)]
                out.append((name, adjusted, num_local, block, where, k, device, kind, turn))
                turn += 1
    return out


def _check(kernel, level, places) -> str:
    from moe_lab.workbook.exercises import isolate, sandbox
    from moe_lab.workbook.exercises.diagnose import error_line

    runs = _runs(places)
    for i, (name, adjusted, num_local, block, where, k, device, kind, seed) in enumerate(runs):
        isolate.step(i, len(runs), [f"  FAIL  {name}, BLOCK={block} ({where})"])
        want_rank, want_count = spec(adjusted, block, num_local)
        try:
            got_rank, got_count, problems = _launch(k, adjusted, num_local, block, device, kind, seed)
        except (Exception, sandbox.OutOfTime) as err:  # the learner's code: reported, never raised
            say(f"  FAIL  {name}, BLOCK={block} ({where}): {error_line(err)}")
            say(f"  hint: {SYMPTOMS['timeout' if isinstance(err, sandbox.OutOfTime) else 'error']}")
            return "FAIL"
        key = None
        if problems:
            key, detail = "outside", "; ".join(problems[:2])
        elif not torch.equal(got_rank, want_rank):
            key = _symptom(got_rank, want_rank, adjusted, block)
            bad = int((got_rank != want_rank).nonzero()[0])
            detail = f"rank[{bad}] = {int(got_rank[bad])}, expected {int(want_rank[bad])}"
        elif not torch.equal(got_count, want_count):
            key = _count_symptom(got_count, want_count, adjusted.numel(), block)
            bad = tuple((got_count != want_count).nonzero()[0].tolist())
            detail = f"tile_count{list(bad)} = {int(got_count[bad])}, expected {int(want_count[bad])}"
        if key:
            say(f"  FAIL  {name}, BLOCK={block} ({where})")
            say(f"    input adjusted = {adjusted.tolist()[:24]}{' ...' if adjusted.numel() > 24 else ''}"
                + (f" ({adjusted.numel()} slots)" if adjusted.numel() > 24 else ""))
            say(f"    found: {detail}")
            say(f"  hint: {SYMPTOMS[key]}")
            if level:
                say(f"  hint {level}: {HINTS[level]}")
            return "FAIL"
        group = _group(name)
        if where != "GPU" and (i + 1 == len(runs) or _group(runs[i + 1][0]) != group):
            count = len({r[0] for r in runs if _group(r[0]) == group})
            say(f"  ok    {group} ({count} case{'s' if count > 1 else ''})")
    return "PASS"


def _group(case_name: str) -> str:
    from moe_lab.workbook.exercises.cases import LARGE, TAILS

    if case_name.endswith("many tiles"):
        return LARGE
    if case_name.endswith(" slots") and case_name.split()[0].isdigit():
        return TAILS
    return "inputs that break rank kernels"


def run(exercise, kernel, level: int) -> bool:
    """The catalogue's runner (the interpreter pass): ``check("stable_rank", kernel)`` comes here."""
    say(f"{NAME}: {len(cases())} cases, BLOCK = 16 and 64, programs in several orders, poisoned rank and "
        f"tile_count")
    return _check(kernel, level, [("interpreter", interp.interpreted(kernel), torch.device("cpu"))]) == "PASS"


def run_gpu(exercise, kernel, level: int) -> bool:
    """The GPU pass, in the notebook's process, once the interpreter pass passed."""
    if not backend.has_gpu():
        return True
    failed = _check(kernel, level, [("GPU", kernel, torch.device("cuda"))]) != "PASS"
    return not failed


def check(name: str, kernel, *, hint: int = 0) -> CheckResult:
    """``check("stable_rank", kernel)``: one PASS/FAIL block, truthy when the kernel passed; the same
    check as :func:`moe_lab.workbook.exercises.check`, which it calls."""
    from moe_lab.workbook import exercises

    if name != NAME:
        raise ValueError(f"this checker runs the {NAME!r} exercise, got {name!r}; other exercises are "
                         f"checked with moe_lab.workbook.exercises.check")
    return exercises.check(NAME, kernel, hint=hint)
