"""Compare a dispatch layout with the reference: a list of problems, empty when it matches.

Used by the tests, the benchmark's correctness pass, the chain's check and the exercise checker.
``ordered=False`` accepts any order of rows inside an expert's block (what an atomic scatter gives).
"""

from __future__ import annotations

import torch


def _first_diff(name, got, want):
    bad = (got != want).nonzero()
    where = tuple(bad[0].tolist())
    return (f"{name}{list(where)}: got {got[where].item()}, expected {want[where].item()}"
            + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""))


def problems(layout, want: dict, x, scales, *, ordered: bool = True) -> list[str]:
    """Every mismatch between ``layout`` (a DispatchLayout or anything with its fields) and ``want``."""
    out = []
    for name in ("adjusted_ids", "expert_count", "offsets") + (("output_index",) if ordered else ()):
        got, exp = getattr(layout, name).cpu(), want[name].cpu()
        if got.shape != exp.shape or got.dtype != exp.dtype:
            out.append(f"{name} is {got.dtype} {tuple(got.shape)}, expected {exp.dtype} {tuple(exp.shape)}")
        elif not torch.equal(got, exp):
            out.append(_first_diff(name, got, exp))
    if out:
        return out
    m = want["m_indices"].numel()
    real = want["real"].cpu()
    m_all = layout.m_indices
    if m_all.numel() < m:
        return [f"m_indices has {m_all.numel()} rows, expected at least {m}"]
    m_got = m_all[:m].cpu()
    if not torch.equal(m_got, want["m_indices"].cpu()):
        out.append(_first_diff("m_indices", m_got, want["m_indices"].cpu()))
    if m_all.numel() > m and not bool((m_all[m:] == -1).all()):
        out.append(f"m_indices past row {m} (the worst-case tail) must be -1")
    if layout.rows.shape[0] < m or layout.scales.shape[0] < m:
        short = (f"rows/scales have {layout.rows.shape[0]}/{layout.scales.shape[0]} rows, "
                 f"expected at least {m}")
        return [*out, short]
    rows = layout.rows[:m].cpu().view(torch.uint8)  # only the first M rows travel to the host
    sc = layout.scales[:m].cpu()
    stride = layout.scales.stride()
    if sc.dtype != scales.dtype or sc.shape[1] != want["scales"].shape[1]:
        out.append(f"scales are {sc.dtype} with {sc.shape[1]} columns, expected {scales.dtype} with "
                   f"{want['scales'].shape[1]}")
    elif stride[0] != 1 or stride[1] % 4 or stride[1] < layout.scales.shape[0]:
        out.append(f"scales must be column-major with a column stride that is a multiple of 4, got strides "
                   f"{tuple(stride)} for shape {tuple(layout.scales.shape)}")
    if ordered:
        want_rows = want["rows"].cpu().view(torch.uint8)
        if not torch.equal(rows[real], want_rows[real]):
            out.append(_first_diff("rows (real rows only)", rows[real], want_rows[real]))
        if sc.dtype == scales.dtype and not torch.equal(sc[real], want["scales"].cpu()[real]):
            out.append(_first_diff("scales (real rows only)", sc[real], want["scales"].cpu()[real]))
        return out
    # any order inside a block: each slot's row holds its token, and the rows of a block are a permutation
    index = layout.output_index.cpu().reshape(-1).long()
    local = want["output_index"].cpu().reshape(-1) >= 0
    if not torch.equal(index[~local], torch.full_like(index[~local], -1)):
        out.append("output_index must be -1 for slots that are not local")
    dest = index[local]
    if not torch.equal(torch.sort(dest).values,
                       torch.sort(want["output_index"].cpu().reshape(-1)[local].long()).values):
        return out + ["output_index: the set of destination rows differs from the reference"]
    token = torch.arange(index.numel())[local] // layout.output_index.shape[1]
    adj = want["adjusted_ids"].cpu().reshape(-1)[local].long()
    offs = want["offsets"].cpu().long()
    if not bool(((dest >= offs[adj]) & (dest < offs[adj + 1])).all()):
        out.append("output_index: a slot's row is outside its expert's block")
    if not torch.equal(rows[dest], x.cpu().view(torch.uint8)[token]):
        out.append("rows: a slot's row does not hold its token's bytes")
    if sc.dtype == scales.dtype and not torch.equal(sc[dest], scales.cpu()[token]):
        out.append("scales: a slot's scales do not match its token's")
    return out
