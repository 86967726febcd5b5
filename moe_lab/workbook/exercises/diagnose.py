"""Diagnosis: from what happened in a launch (error, addresses, values, counters) to the likely mistake."""

from __future__ import annotations

import errno

import torch

from moe_lab import verify
from moe_lab.workbook.exercises import sandbox
from moe_lab.workbook.exercises.address import UnsupportedMemory
from moe_lab.workbook.exercises.catalogue import Exercise
from moe_lab.workbook.exercises.launch import ZEROED_COUNTS, Run, usage_problems


def error_line(err: BaseException) -> str:
    """The first line of Triton's message that says what is wrong (no paths, no source context)."""
    seen = []
    e = err
    while e is not None and e not in seen:
        seen.append(e)
        e = e.__cause__ or e.__context__
    chain = [(type(e).__name__, getattr(e, "error_message", None) or str(e)) for e in reversed(seen)]
    return message_line(chain) or type(err).__name__


def message_line(chain: list[tuple[str, str]]) -> str:
    """``"Type: line"``: the first line that says what is wrong in ``chain`` (``(type name, message)``
    of each exception, the root cause first); "" when none does."""
    for kind, text in chain:
        lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
        carets = [i for i, ln in enumerate(lines) if set(ln) == {"^"}]
        if carets:  # Triton's compile errors quote the source, point at it, then say what is wrong
            lines = lines[carets[-1] + 1:]
        for ln in lines:
            if ln.startswith(("def ", "^", "File ", "at ")) or ln.startswith("CompilationError at"):
                continue
            if "/" in ln and (".py" in ln or "ipykernel" in ln):
                continue
            return f"{kind}: {ln}"[:200]
    return ""


def _diagnose_error(err: BaseException) -> list[tuple[str, str]]:
    if isinstance(err, sandbox.OutOfTime):
        return [("timeout", f"stopped after {sandbox.BUDGET_S:g} s in the interpreter")]
    if isinstance(err, sandbox.LearnerExit):
        return [("learner_exit", f"the kernel raised {type(err.original).__name__} (reported, not obeyed)")]
    line = error_line(err)
    cause, seen = err, set()
    while cause is not None and id(cause) not in seen:  # the interpreter may wrap what the hook raised
        seen.add(id(cause))
        if isinstance(cause, UnsupportedMemory):
            return [("unsupported_memory", f"the kernel called {cause.method}")]
        if isinstance(cause, PermissionError) and cause.errno == errno.EPERM:
            return [("not_permitted", f"your code was refused: {line}")]
        cause = cause.__cause__ or cause.__context__
    if isinstance(err, TypeError) and ("argument" in str(err) or "parameter" in str(err)):
        return [("signature", f"Python said: {line}")]
    if "power of 2" in line or "power of two" in line:
        return [("power_of_two", f"Triton said: {line}")]
    return [("compile_error", f"Triton said: {line}")]


def _span(indices: list[int]) -> str:
    idx = sorted(set(indices))
    if not idx:
        return ""
    if len(idx) <= 4:
        return ", ".join(map(str, idx))
    return f"{idx[0]}..{idx[-1]} ({len(idx)} slots)"


def _classify_counter_indices(case: verify.Case, indices: list[int], num_bins: int,
                              histogram: bool) -> list[str]:
    """Which mistakes predict exactly these out-of-range counter indices (each must show in full)."""
    ids = set(case.topk_ids.flatten().tolist())
    start, n = case.start, case.num_local
    recorded = set(indices)

    def outside(s):
        return {i for i in s if i < 0 or i >= n}

    hypotheses = [
        ("bins_unmasked", set(range(n, num_bins)) if histogram else set()),
        ("not_subtracted", outside({x for x in ids if start <= x < start + n}) if start else set()),
        ("remote_counted", outside({x - start for x in ids if x >= start + n})),
        ("below_start", outside({x - start for x in ids if x < start})),
        ("counted_nonlocal", {-1} if any(not start <= x < start + n for x in ids) else set()),
    ]
    chosen = [key for key, predicted in hypotheses if predicted and predicted <= recorded]
    if "below_start" in chosen and "counted_nonlocal" in chosen:
        chosen.remove("counted_nonlocal")  # x = start - 1 lands on -1 too
    return chosen or ["counts_out_of_bounds"]


def _wrapped(run: Run) -> bool:
    """The outputs are what the reference gives for the ids cast to int32 first (2**40 became 0)."""
    ids = run.case.topk_ids.cpu()
    if ids.dtype != torch.int64 or not bool(((ids < verify.INT32_MIN) | (ids > verify.INT32_MAX)).any()):
        return False
    adjusted, counts = verify.reference(ids.to(torch.int32), run.case.start, run.case.num_local)
    same_ids = torch.equal(run.adjusted, adjusted.to(run.adjusted.dtype))
    same_counts = torch.equal(run.counts, counts)
    return (same_ids and not torch.equal(adjusted.to(run.want_adjusted.dtype), run.want_adjusted)
            or same_counts and not torch.equal(counts, run.want_counts))


def _first_tile_only(run: Run) -> str:
    """What was seen when only the first program's share of slots was written and counted more than once
    (the same share over and over: an offset without ``pid * BLOCK``, or in decode's loop without
    ``tile * BLOCK``); "" else (one share written once: a loop or programs missing, not an offset)."""
    got, want = run.adjusted.reshape(-1), run.want_adjusted.reshape(-1)
    share = run.per_program
    if not share or got.numel() <= share:
        return ""
    counted_again = bool((run.counts.long() > run.want_counts.long()).any())  # the first share, again
    rest_poisoned = bool((got[share:] == verify.POISON).all())
    if counted_again and rest_poisoned and torch.equal(got[:share], want[:share]):
        return (f"only slots 0..{share - 1} (the first {share}, one program's share) were written; slots "
                f"{share}..{got.numel() - 1} still hold the poison")
    return ""


def _diagnose_values(ex: Exercise, run: Run, *, checked: bool) -> list[tuple[str, str]]:
    """Symptoms in the numbers. ``checked``: the address check ran (it sees tl.histogram directly)."""
    out = []
    case = run.case
    start, n = case.start, case.num_local
    ids = case.topk_ids.cpu()
    got, want = run.adjusted, run.want_adjusted
    if _wrapped(run):
        return [("wrapped_ids", "the outputs are those of the ids cast to int32 before the range test")]
    first = _first_tile_only(run)
    if first:
        return [("tile_offset", first)]
    if not torch.equal(got, want):
        bad = (got != want)
        g, x = got[bad], ids[bad]
        if bool((g == verify.POISON).any()):
            out.append(("poison_left", ""))
        local = (x >= start) & (x < start + n)
        if start and bool((local & (g == x)).any()):
            out.append(("not_subtracted", ""))
        if bool(((x >= start + n) & (g == x - start)).any()):
            out.append(("remote_counted", ""))
        if bool(((x < start) & (g == x - start)).any()):
            out.append(("below_start", ""))
        if bool((local & (g == -1)).any()):
            out.append(("local_missed", ""))
        if not out:
            out.append(("adjusted_wrong", ""))
    got_c, want_c = run.counts, run.want_counts
    if not torch.equal(got_c, want_c):
        diff = (got_c - want_c)
        high = (diff > 0).nonzero().flatten().tolist()
        low = (diff < 0).nonzero().flatten().tolist()
        has_outside = bool(((ids < start) | (ids >= start + n)).any())
        if (ex.name == "block_histogram" and not checked and high == [run.num_bins - 1]
                and run.num_bins == n and has_outside):
            out.append(("histogram_unmasked", ""))
        elif ex.name not in ZEROED_COUNTS and bool((got_c == verify.POISON).any()):
            out.append(("counts_poison_left", ""))
        elif ex.name != "naive" and start == 0 and high == [0] and not low and run.padded_slots:
            out.append(("padded_as_zero", ""))
        elif low and "cas" in run.usage.counts_atomic_ops:
            out.append(("cas_lost", "a compare-and-swap found its counter changed and was not tried again"))
        elif not out:
            if high:
                out.append(("counts_high", ""))
            if low:
                out.append(("counts_low", ""))
    return out


def diagnose(ex: Exercise, run: Run) -> list[tuple[str, str]]:
    """``[(symptom key, what was seen), ...]``: the likely mistakes, most telling first (at most 3)."""
    if run.error is not None:
        return _diagnose_error(run.error)
    found: list[tuple[str, str]] = []
    later: list[tuple[str, str]] = []  # less telling than what the values say
    n_total, n_local = run.case.topk_ids.numel(), run.case.num_local
    histogram = run.num_bins > 0
    for ev in run.events:
        where = " far outside the buffer (dropped)" if ev.wild else ""
        if ev.kind == "histogram" and ev.buffer == "unmasked":
            vals = ", ".join(map(str, ev.indices[:4]))
            found.append(("histogram_unmasked",
                          f"tl.histogram without mask= was given values outside [0, {run.num_bins}): {vals}; "
                          f"Triton leaves those unspecified, AMD and older NVIDIA builds count -1 in the "
                          f"last bin, and so does this check"))
        elif ev.kind == "histogram":
            vals = ", ".join(map(str, ev.indices[:4]))
            later.append(("histogram_values",
                          f"tl.histogram's mask let through values outside [0, {run.num_bins}): {vals}"))
        elif ev.buffer == "scratch":
            found.append(("scratch_outside", f"{ev.kind} on scratch[{_span(ev.indices)}] "
                                             f"(valid: 0..{run.num_bins}){where}"))
        elif ev.buffer == "topk_ids" and ev.kind == "load":
            found.append(("load_out_of_bounds",
                          f"read topk_ids slot {_span(ev.indices)} (valid: 0..{n_total - 1}){where}"))
        elif ev.buffer == "topk_ids":
            found.append(("wrote_input", f"wrote topk_ids slot {_span(ev.indices)}{where}"))
        elif ev.kind == "load":
            found.append(("load_out_of_bounds", f"read {ev.buffer}[{_span(ev.indices)}] outside the buffer"))
        elif ev.buffer == "adjusted":
            found.append(("store_out_of_bounds",
                          f"wrote adjusted slot {_span(ev.indices)} (valid: 0..{n_total - 1}){where}"))
        else:
            op = "atomic" if ev.kind == "atomic" else "store"
            for key in _classify_counter_indices(run.case, ev.indices, run.num_bins, histogram):
                found.append((key, f"{op} on expert_count[{_span(ev.indices)}] "
                                   f"(valid: 0..{n_local - 1}){where}"))
    for name, idx in run.guard_problems:
        if name == "topk_ids":
            found.append(("wrote_input", "topk_ids changed"))
        elif name == "adjusted":
            found.append(("store_out_of_bounds",
                          f"wrote adjusted slot {_span(idx)} (valid: 0..{n_total - 1})"))
        elif name == "scratch":
            found.append(("scratch_outside", f"scratch[{_span(idx)}] changed (valid: 0..{run.num_bins})"))
        else:
            for key in _classify_counter_indices(run.case, idx, run.num_bins, histogram):
                found.append((key, f"expert_count[{_span(idx)}] changed (valid: 0..{n_local - 1})"))
    found += usage_problems(ex, run)
    values = _diagnose_values(ex, run, checked=bool(run.events) or run.checked)
    if run.scratch is not None and bool(run.scratch.any()):
        left = (run.scratch != 0).nonzero().flatten().tolist()
        what = ", ".join(("ticket" if i == run.num_bins else f"[{i}]") for i in left[:4])
        values.append(("scratch_dirty", f"scratch not zero after the launch at {what}"))
    if found or later:  # an address problem explains the numbers better than "too high"
        values = [(k, d) for k, d in values if k not in ("counts_high", "counts_low", "adjusted_wrong")]
    if any(k == "counts_rmw" for k, _ in found):  # lost updates: "too low" says less than "use an atomic"
        values = [(k, d) for k, d in values if k not in ("counts_low", "counts_high")]
    seen, unique = set(), []
    for key, detail in found + values + later:
        if key not in seen:
            seen.add(key)
            unique.append((key, detail))
    return unique[:3]


__all__ = ["error_line", "message_line", "diagnose"]
