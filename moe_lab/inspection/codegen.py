"""What the installed Triton emits where the lessons depend on its version, computed, never assumed.

Triton releases lower the same kernel differently for sm_90 (H100, H200). Each claim the workbook makes
about generated code is a function here, read from the installed compiler through
:mod:`moe_lab.inspection.ir`, so a notebook can print "on your Triton X.Y: ..." instead of a listing from
one release:

========================================  ==========================  ==========================
fact (function)                           Triton 3.6.0                Triton 3.9.0
========================================  ==========================  ==========================
``BAR.SYNC`` around naive's atomic        no                          yes, before and after
  (:func:`barriers_around_atomic`)
the warp's lanes combined first           yes (``VOTEU.ANY``,         no
  (:func:`warp_combined`)                 ``POPC``)
relaxed counting atomic in PTX            ``atom`` (result unused)    ``red``
  (:func:`ptx_reduction`); in SASS both
  are a lone ``REDG``
``tl.histogram``'s shared-memory atomics  1, after 192 vote/ballot    32, one per slot of a
  in block_histogram (BLOCK 8192, 8       instructions                thread, no ballots
  warps) (:func:`histogram_lowering`)
block_histogram registers per thread,     40 (12) and 114 (2)         32 (16) and 72 (3)
  programs per SM, BLOCK 1024 / 4 warps
  and 8192 / 8 warps (:func:`registers`)
one_launch's ticket: fence before, L1     both, acq_rel; neither,     the same
  invalidated after (:func:`ticket_ordering`) relaxed
========================================  ==========================  ==========================

(read on the CPU with torch 2.13, compiling for sm_90 through ``moe_lab.inspection.ir``, 2026-12; a GPU with
the same Triton compiles the same code.) What holds on every supported release, and what the lessons rest
on: an ``acq_rel`` atomic is fenced and followed by an L1 invalidation and a ``relaxed`` one is a lone
``REDG``; ``tl.histogram`` counts in shared memory and flushes with one global atomic per bin; a larger
tile needs more registers, so fewer programs fit on an SM.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import triton

from moe_lab.inspection import ir

_ADDRESS = re.compile(r"/\*.*?\*/")
_COUNTING_ATOMIC = re.compile(r"^(@!?U?P\w+ )?(ATOMG|REDG|RED)\.E\.ADD")
_TICKET = re.compile(r"^(@!?U?P\w+ )?ATOMG\.E\.ADD\S*\s+PT,\s+R\d+")  # an add that returns: the ticket
_STEP_TAIL = ("CCTL", "BSYNC", "BAR.SYNC")


def _bare(line: str) -> str:
    """An instruction without its predicate (``@P0 ATOMG...`` -> ``ATOMG...``)."""
    return re.sub(r"^@!?U?P\w+\s+", "", line)


def sass_instructions(text: str) -> list[str]:
    """The instructions of a SASS listing, one per line, without addresses, encodings or the ``;``."""
    out = []
    for line in text.splitlines():
        line = _ADDRESS.sub("", line).strip()
        if line.endswith(";"):
            out.append(line[:-1].strip())
    return out


def atomic_step(stage: str = "naive", **kw) -> list[str]:
    """SASS of one step of ``stage``'s counting: from the load of the id to the end of the counting
    atomic (the L1 invalidation, the reconvergence and any barrier that follow it).

    ``kw`` goes to :func:`moe_lab.inspection.ir.compile_ir` (``topk``, ``num_local``, constexprs).
    """
    lines = sass_instructions(ir.compile_ir(stage, "sass", **kw))
    at = next((i for i, line in enumerate(lines) if _COUNTING_ATOMIC.match(line)), None)
    if at is None:
        raise ValueError(f"{stage!r} has no counting atomic (ATOMG/REDG .E.ADD) in its SASS")
    start = max((i for i in range(at) if _bare(lines[i]).startswith("LDG")), default=0)
    end = at
    while end + 1 < len(lines) and _bare(lines[end + 1]).startswith(_STEP_TAIL):
        end += 1
    return lines[start:end + 1]


def store_guard(stage: str = "naive", **kw) -> list[str]:
    """The SASS that picks the one thread that stores: the read of the thread's index
    (``S2R ..., SR_TID.X``) and the instruction setting the predicate of the step's store (``@!P1 STG``)."""
    lines = sass_instructions(ir.compile_ir(stage, "sass", **kw))
    store = next((line for line in atomic_step(stage, **kw) if re.match(r"@!?P\d+ STG", line)), None)
    if store is None:
        raise ValueError(f"{stage!r}: no predicated store in the atomic's step")
    predicate = re.match(r"@!?(P\d+)", store).group(1)
    tid = next(line for line in lines if "SR_TID.X" in line)
    setter = next(line for line in lines if re.match(rf"\S+ {predicate},", _bare(line)))
    return [tid, setter]


def barriers_around_atomic(stage: str = "naive", **kw) -> bool:
    """True when the program's threads wait for each other (``BAR.SYNC``) in the atomic's step."""
    return any(_bare(line).startswith("BAR.SYNC") for line in atomic_step(stage, **kw))


def warp_combined(stage: str = "naive", **kw) -> bool:
    """True when the compiler combines a warp's active lanes into one atomic first: a vote over the
    warp (``VOTEU.ANY``) and a population count (``POPC``) that becomes the atomic's operand."""
    step = [_bare(line) for line in atomic_step(stage, **kw)]
    return any(line.startswith("VOTE") for line in step) and any(line.startswith("POPC") for line in step)


def ptx_reduction(stage: str = "relaxed", **kw) -> bool:
    """True when the counting atomic is a ``red`` in PTX (returns nothing), False for an ``atom``
    whose result goes unused (``ptxas`` makes a ``REDG`` of it all the same)."""
    atoms = [line for line in ir.atomic_lines(ir.compile_ir(stage, "ptx", **kw)) if ".global." in line]
    if not atoms:
        raise ValueError(f"{stage!r} has no global atomic in its PTX")
    return re.search(r"\bred\.", atoms[0]) is not None


@dataclass(frozen=True)
class HistogramLowering:
    """How ``tl.histogram`` became PTX in block_histogram (static instruction counts, not executions)."""
    shared_atomics: int   # atomics on shared memory: the per-program histogram
    global_atomics: int   # atomics on global memory: the flush of each bin into expert_count
    votes: int            # vote/ballot instructions (a warp counting its lanes per bin before an atomic)


def histogram_lowering(**kw) -> HistogramLowering:
    """Count the atomics and votes in block_histogram's PTX (library launch unless ``kw`` overrides)."""
    ptx = ir.compile_ir("block_histogram", "ptx", **kw)
    found = ir.atomic_lines(ptx)
    return HistogramLowering(shared_atomics=sum(".shared." in line for line in found),
                             global_atomics=sum(".global." in line for line in found),
                             votes=sum("vote." in line for line in ptx.splitlines()))


REGISTER_LAUNCHES = ({"BLOCK": 1024, "num_warps": 4}, {"BLOCK": 8192, "num_warps": 8})
"""The two block_histogram launches notebook 05 compares (the second is the library's)."""


def registers(stage: str = "block_histogram", launches=REGISTER_LAUNCHES) -> list[ir.Resources]:
    """:func:`moe_lab.inspection.ir.resources` of ``stage`` for each launch (registers, programs per SM)."""
    ir.prefetch_variants([(stage, launch) for launch in launches])
    return [ir.resources(stage, **launch) for launch in launches]


def ticket_ordering(**sems) -> tuple[bool, bool]:
    """``(fence before, L1 invalidated after)`` around one_launch's ticket in SASS, with ``sems``
    (``TICKET_SEM="relaxed"``...) overriding the shipped orders."""
    lines = sass_instructions(ir.compile_ir("one_launch", "sass", **sems))
    at = next((i for i, line in enumerate(lines) if _TICKET.match(line)), None)
    if at is None:
        raise ValueError("one_launch's SASS has no returning ATOMG.E.ADD (the ticket)")
    before = [_bare(line) for line in lines[max(0, at - 4):at]]
    after = [_bare(line) for line in lines[at + 1:at + 3]]
    return any(line.startswith("MEMBAR") for line in before), any(line.startswith("CCTL") for line in after)


def describe() -> str:
    """Each version-dependent fact for the installed Triton, one line each: what a lesson prints."""
    ir.prefetch_variants([("naive", {}), ("relaxed", {}), ("block_histogram", {}), ("one_launch", {}),
                          ("one_launch", {"TICKET_SEM": "relaxed"}),
                          *[("block_histogram", launch) for launch in REGISTER_LAUNCHES]])
    hist = histogram_lowering()
    regs = registers()
    acq_rel, relaxed = ticket_ordering(), ticket_ordering(TICKET_SEM="relaxed")
    yes = {True: "yes", False: "no"}
    return "\n".join([
        f"Triton {triton.__version__}, sm_90:",
        f"  naive: BAR.SYNC around the atomic: {yes[barriers_around_atomic()]}; the warp's lanes combined "
        f"first (VOTEU.ANY + POPC): {yes[warp_combined()]}",
        f"  relaxed: the counting atomic in PTX is {'red' if ptx_reduction() else 'atom (result unused)'}",
        f"  block_histogram: tl.histogram -> {hist.shared_atomics} shared-memory atomic(s), "
        f"{hist.global_atomics} global, {hist.votes} vote instruction(s)",
        "  block_histogram registers per thread (programs per SM): " + ", ".join(
            f"BLOCK={launch['BLOCK']}/{launch['num_warps']} warps {r.registers} ({r.programs_per_sm})"
            for launch, r in zip(REGISTER_LAUNCHES, regs)),
        f"  one_launch ticket: acq_rel fence before {yes[acq_rel[0]]}, L1 invalidated after "
        f"{yes[acq_rel[1]]}; relaxed fence before {yes[relaxed[0]]}, invalidated after {yes[relaxed[1]]}",
    ])


__all__ = ["sass_instructions", "atomic_step", "store_guard", "barriers_around_atomic", "warp_combined",
           "ptx_reduction", "HistogramLowering", "histogram_lowering", "REGISTER_LAUNCHES", "registers",
           "ticket_ordering", "describe"]
