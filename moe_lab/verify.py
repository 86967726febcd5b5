"""Check any recombination function against the PyTorch reference on adversarial inputs.

Used by the tests, the notebooks (a correctness table after each stage) and the exercise checkers.
Outputs are poisoned before every run, so a slot the kernel never wrote shows up as a mismatch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from moe_lab import backend
from moe_lab.stages import _launch, torch_ref

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
POISON = 0x5A5A5A5  # a value no correct kernel writes, in counts or ids


@dataclass
class Case:
    name: str
    topk_ids: torch.Tensor
    start: int
    num_local: int
    why: str = ""

    @property
    def topk(self) -> int:
        return self.topk_ids.shape[1]


def _rand(gen, lo, hi, shape, dtype=torch.int32):
    return torch.randint(lo, hi, shape, generator=gen, dtype=dtype)


def adversarial_cases(*, seed: int = 0, device=None, topks=(1, 2, 6, 8, 9)) -> list[Case]:
    """The inputs that break recombination kernels, each with a reason. Small enough for the CPU."""
    g = torch.Generator().manual_seed(seed)
    cases = []
    for k in topks:
        cases.append(Case(f"random ids, topk={k}", _rand(g, -1, 40, (37, k)), 8, 16,
                          "mix of -1, local and remote ids; 37 tokens is no multiple of any block"))
    cases += [
        Case("start=0, tail block", _rand(g, -1, 12, (45, 6)), 0, 4,
             "expert 0 is local, and 270 slots end inside a block: lanes past the end must count nothing"),
        Case("all padding (-1)", torch.full((33, 8), -1, dtype=torch.int32), 0, 8,
             "every slot is a sentinel: all -1, zero counts"),
        Case("every slot on one expert", torch.full((50, 8), 11, dtype=torch.int32), 8, 16,
             "all atomics hit one counter; not a real top-k but the worst contention"),
        Case("only remote ids", _rand(g, 64, 128, (40, 8)), 0, 32,
             "another rank's experts: all -1, zero counts"),
        Case("ids past the expert range", torch.tensor(
            [[INT32_MAX, INT32_MIN, -7, 300], [16, 15, 8, 7], [-1, 24, 23, 9]], dtype=torch.int32),
            8, 16, "huge, negative and just-outside ids must all become -1"),
        Case("one token", _rand(g, 0, 32, (1, 8)), 0, 32, "a single slot row, grid of one program"),
        Case("empty input", torch.empty((0, 8), dtype=torch.int32), 0, 8,
             "no tokens: empty ids and all-zero counts"),
        Case("one local expert", _rand(g, -1, 8, (29, 2)), 5, 1, "num_local=1"),
        Case("num_local not a power of two", _rand(g, -1, 100, (64, 6)), 24, 24,
             "histogram bins are padded to 32; the extra bins must not leak"),
        Case("256 local experts", _rand(g, -1, 512, (70, 8)), 256, 256,
             "large num_local: many counters, several L2 lines"),
        Case("block boundary +1", _rand(g, -1, 16, (257, 1)), 0, 16,
             "257 slots: one more than a 256 block"),
        Case("int64 ids past int32", torch.tensor(
            [[2**40, 3, -1], [5, 2**31, 4]], dtype=torch.int64), 0, 8,
             "int64 input keeps its dtype; values past int32 are remote, not wrapped"),
    ]
    if device is not None:
        for c in cases:
            c.topk_ids = c.topk_ids.to(device)
    return cases


@dataclass
class Result:
    case: str
    ok: bool
    detail: str = ""
    error: Exception | None = field(default=None, repr=False)


def reference(topk_ids, start, num_local):
    return torch_ref.run(topk_ids, start, num_local)


def compare(fn, case: Case) -> Result:
    """Run ``fn(topk_ids, start, num_local)`` with poisoned outputs and compare with the reference."""
    want_ids, want_counts = reference(case.topk_ids, case.start, case.num_local)
    old = _launch.POISON
    _launch.POISON = POISON
    try:
        got_ids, got_counts = fn(case.topk_ids, case.start, case.num_local)
    except Exception as err:  # reported, not hidden: the table says which case raised and why
        return Result(case.name, False, f"raised {type(err).__name__}: {str(err).splitlines()[0][:160]}", err)
    finally:
        _launch.POISON = old
    problems = []
    if got_ids.shape != want_ids.shape or got_ids.dtype != want_ids.dtype:
        problems.append(f"ids are {got_ids.dtype} {tuple(got_ids.shape)}, expected "
                        f"{want_ids.dtype} {tuple(want_ids.shape)}")
    elif not torch.equal(got_ids.cpu(), want_ids.cpu()):
        bad = (got_ids.cpu() != want_ids.cpu()).nonzero()[0].tolist()
        problems.append(f"adjusted{bad}: got {got_ids[tuple(bad)].item()}, expected "
                        f"{want_ids[tuple(bad)].item()} (input id {case.topk_ids[tuple(bad)].item()})")
    if got_counts.dtype != torch.int32 or got_counts.shape != want_counts.shape:
        problems.append(f"counts are {got_counts.dtype} {tuple(got_counts.shape)}, expected int32 "
                        f"{tuple(want_counts.shape)}")
    elif not torch.equal(got_counts.cpu(), want_counts.cpu()):
        diff = (got_counts.cpu() != want_counts.cpu()).nonzero().flatten().tolist()
        e = diff[0]
        problems.append(f"expert_count[{e}]: got {got_counts[e].item()}, expected {want_counts[e].item()}"
                        + (f" (and {len(diff) - 1} more counters)" if len(diff) > 1 else ""))
    return Result(case.name, not problems, "; ".join(problems))


def verify(fn_or_stage, cases=None):
    """Compare a stage (by name) or any function with the reference on every case: a DataFrame."""
    import pandas as pd

    from moe_lab.registry import stage

    fn = stage(fn_or_stage).run if isinstance(fn_or_stage, str) else fn_or_stage
    cases = adversarial_cases(device=backend.device()) if cases is None else cases
    rows = [compare(fn, c) for c in cases]
    return pd.DataFrame({"case": [r.case for r in rows], "ok": [r.ok for r in rows],
                         "detail": [r.detail for r in rows]}).set_index("case")
