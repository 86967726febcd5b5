"""The cases a check runs, in groups, and the orders its programs run in.

The adversarial cases of :func:`moe_lab.verify.adversarial_cases` come first, safest first, so a kernel
with a wild index fails on small random ids before it meets INT32_MAX. Then the cases that reach where
a shortcut hides, sized per exercise (:data:`SIZES`) so a passing check stays a few seconds in the
interpreter:

* **large sizes**: hundreds of programs and tens of thousands of slots (a scalar exercise: thousands)
  with ``start`` past a million, a rank whose experts end at INT32_MAX, and ``topk`` 20;
* **tails at every power of two**: ``2**k - 1`` and ``2**k + 1`` slots for every ``k`` up to the
  exercise's largest, so the last block ends at every offset a mask can get wrong.

A GPU runs programs in any order; the interpreter runs them one after another. Every launch of more
than one program runs them in one of :data:`ORDERS` (the ticket exercise: in each of them), so a kernel
that relies on which program comes first or last fails here as it could there.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from moe_lab import verify

# Groups of adversarial cases, in the order they run. Case names not listed here (added to
# moe_lab.verify later) run after them, in a group of their own; "empty input" launches nothing and is
# skipped.
CASE_GROUPS: list[tuple[str, tuple[str, ...]]] = [
    ("random ids", ("random ids, topk=",)),
    ("padding and tails", ("start=0, tail block", "all padding (-1)", "one token", "block boundary +1")),
    ("expert ranges", ("only remote ids", "one local expert", "num_local not a power of two",
                       "256 local experts", "ids past the expert range")),
    ("contention and int64", ("every slot on one expert", "int64 ids past int32")),
]
SKIPPED_CASES = ("empty input",)
LARGE = "large sizes"
TAILS = "tails at every power of two"


@dataclass(frozen=True)
class Size:
    """How far an exercise's extra cases reach: the many-programs case has ``slots`` slots of top-``topk``;
    the tails go up to ``2**max_power + 1`` slots."""
    slots: int
    topk: int
    max_power: int


SIZES = {
    # scalar kernels (one slot at a time, about half a millisecond per slot in the interpreter)
    "naive": Size(1024, 2, 6),       # 512 tokens: 128 programs of TOKENS_PER_PROGRAM=4
    "debug": Size(2048, 32, 6),      # BLOCK = block_size(32) = 32: 64 programs
    # block kernels (about a millisecond per program)
    "masked_block": Size(32768, 8, 12),     # BLOCK 128: 256 programs
    "relaxed": Size(32768, 8, 12),
    "block_size": Size(32768, 8, 12),
    "block_histogram": Size(16384, 8, 11),  # BLOCK 256 and 64: 64 and 256 programs
    "decode": Size(16384, 8, 11),           # one program, 256 tiles of 64
    "ticket": Size(8192, 8, 10),            # BLOCK 64: 128 programs, in each of the three orders
    "stable_rank": Size(2048, 1, 9),        # BLOCK 16 and 64: 128 and 32 tiles
}

LAUNCHES = {"naive": (4, None, 3), "decode": (64, 256, None), "ticket": (64, None, 32)}
"""Launches that go round the cases in turn, so that a kernel right for one launch only fails: naive's
TOKENS_PER_PROGRAM, decode's and the ticket's BLOCK; ``None`` is the library's own launch for the case
(``naive.TOKENS_PER_PROGRAM``, ``decode.tile_size``, ``one_launch.tile_size`` of its size)."""

SCALAR_TOKENS = {"naive": 13, "debug": 16}
"""The scalar exercises run each adversarial case on its first tokens only (naive: three full programs
of 4 tokens and a tail program with one); their large sizes and tails are their own."""

ORDERS = ("highest id first", "program 0 first", "shuffled")
"""How the programs of one launch are ordered: highest id first, program 0 first, a seeded shuffle."""

WIDE_TOPK = 20
"""topk of the widest case: past the 16 slots per token a shortcut might assume."""

START = 1 << 20
"""``start`` of the many-programs case: past any small-number shortcut."""
INT32_MAX = verify.INT32_MAX


def order(kind: str, programs: int, seed: int = 0) -> list[int] | None:
    """The program ids in the order they run (``None``: the interpreter's own, 0 first)."""
    if programs <= 1 or kind == "program 0 first":
        return None
    ids = list(range(programs))
    if kind == "highest id first":
        return ids[::-1]
    random.Random(seed).shuffle(ids)
    return ids


CONTENTION = (3, 17, 64, 7, 40)
"""How many times another program's add lands before a program's compare-and-swaps of one counter, a run
at a time in turn, in launches of at most :data:`CONTENDED_PROGRAMS` programs (:func:`contention`): a
retry loop with a small fixed cap gives up too soon somewhere. Larger launches get one (each extra
try is one more pass of every program's loop in the interpreter)."""
CONTENDED_PROGRAMS = 4


def contention(seed: int, programs: int) -> int:
    """Adds that land before each program's first compare-and-swaps of a counter in run ``seed``."""
    return CONTENTION[seed % len(CONTENTION)] if programs <= CONTENDED_PROGRAMS else 1


def describe_order(kind: str) -> str:
    return f"programs ran {kind}" if kind != "shuffled" else "programs ran in a shuffled order"


def _ids(gen, lo, hi, shape, sentinels=0.1):
    ids = torch.randint(lo, hi, shape, generator=gen, dtype=torch.int64)
    pad = torch.rand(shape, generator=gen) < sentinels
    return torch.where(pad, torch.full_like(ids, -1), ids).to(torch.int32)


def large_cases(name: str) -> list[verify.Case]:
    """The many-programs case, the int32-limit case and (but for block_size, whose spec stops at topk 16)
    the topk-20 case of exercise ``name``."""
    size = SIZES[name]
    g = torch.Generator().manual_seed(1)
    tokens = size.slots // size.topk
    num_local = 32
    ids = _ids(g, START - 40, START + num_local + 40, (tokens, size.topk))
    many = verify.Case(f"{size.slots} slots, start={START}", ids, START, num_local,
                       "many programs, thousands of slots and a large start: past every small-number "
                       "shortcut (a fixed number of programs, tiles or slots, a small start)")
    top = INT32_MAX - 64  # this rank's experts end exactly at INT32_MAX
    edge = _ids(g, top - 64, INT32_MAX, (min(200, size.slots // 48), 6))
    edge.view(-1)[::7] = INT32_MAX  # the first id past the range
    edge.view(-1)[3::11] = verify.INT32_MIN
    limit = verify.Case(f"start={top}, experts up to INT32_MAX", edge, top, 64,
                        "the last rank of the int32 range: start + num_local = INT32_MAX, ids beyond it "
                        "and INT32_MIN must not wrap into the range")
    if name == "block_size":  # its spec asks for topk 1 to 16 only
        return [many, limit]
    wide = verify.Case(f"topk={WIDE_TOPK}", _ids(g, -1, 40, (max(6, min(200, size.slots // 80)), WIDE_TOPK)),
                       8, 16, f"{WIDE_TOPK} slots per token, more than any model above: a loop over a fixed "
                              f"number of slots per token misses the rest")
    return [many, limit, wide]


def tail_cases(name: str) -> list[verify.Case]:
    """``2**k - 1`` and ``2**k + 1`` slots of top-1 for ``k = 1 .. max_power``."""
    g = torch.Generator().manual_seed(2)
    return [verify.Case(f"{n} slots", _ids(g, -1, 24, (n, 1), sentinels=0.2), 0, 16,
                        "one slot more or less than a power of two: the last block ends at another "
                        "offset") for n in tail_sizes(name)]


def tail_sizes(name: str) -> list[int]:
    """``2**k - 1`` and ``2**k + 1`` for ``k = 1 .. max_power`` of exercise ``name``, each once."""
    return sorted({n for k in range(1, SIZES[name].max_power + 1) for n in (2**k - 1, 2**k + 1)})


def grouped_cases(name: str | None = None,
                  max_tokens: int | None = None) -> list[tuple[str, list[verify.Case]]]:
    """The cases in CASE_GROUPS order; with ``max_tokens``, each adversarial case cut to its first rows;
    with an exercise ``name``, its large sizes and tails after them."""
    cases = [c for c in verify.adversarial_cases() if c.name not in SKIPPED_CASES]
    if max_tokens:
        cases = [c if c.topk_ids.shape[0] <= max_tokens else
                 verify.Case(c.name, c.topk_ids[:max_tokens].contiguous(), c.start, c.num_local,
                             f"{c.why} (here its first {max_tokens} of {c.topk_ids.shape[0]} tokens)")
                 for c in cases]
    groups, used = [], set()
    for title, patterns in CASE_GROUPS:
        members = []
        for p in patterns:
            for c in cases:
                if c.name not in used and (c.name == p or (p.endswith("=") and c.name.startswith(p))):
                    members.append(c)
                    used.add(c.name)
        if members:
            groups.append((title, members))
    rest = [c for c in cases if c.name not in used]
    if rest:
        groups.append(("more cases", rest))
    if name in SIZES:
        groups += [(LARGE, large_cases(name)), (TAILS, tail_cases(name))]
    return groups


__all__ = ["CASE_GROUPS", "SKIPPED_CASES", "LARGE", "TAILS", "Size", "SIZES", "LAUNCHES", "SCALAR_TOKENS",
           "ORDERS", "WIDE_TOPK", "START", "CONTENTION", "CONTENDED_PROGRAMS", "contention", "order",
           "describe_order", "large_cases", "tail_cases", "tail_sizes", "grouped_cases"]
