"""moe_lab.inspection.codegen: the version-dependent facts about generated code, read from the installed
Triton.

What every supported release must show (the relations the lessons rest on) is checked on any Triton;
the values each release is known to give are checked where that release is installed, so the readers
of the SASS and PTX are proven on both ends of the supported range (run the suite under each with
``make test-triton TRITON=X.Y.Z``).
"""

from __future__ import annotations

import pytest
import triton

from moe_lab.inspection import codegen, ir

KNOWN = {  # what each release emits for sm_90 (read through moe_lab.inspection.ir on the CPU, torch 2.13)
    "3.6.0": {"barriers": False, "combined": True, "red": False, "shared": 1, "votes": 192,
              "registers": (40, 114)},
    "3.9.0": {"barriers": True, "combined": False, "red": True, "shared": 32, "votes": 0,
              "registers": (32, 72)},
}


@pytest.fixture(scope="module", autouse=True)
def compiled():
    ir.prefetch_variants([("naive", {}), ("relaxed", {}), ("scalar_atomic", {}), ("block_histogram", {}),
                          ("one_launch", {}), ("one_launch", {"TICKET_SEM": "relaxed"}),
                          *[("block_histogram", launch) for launch in codegen.REGISTER_LAUNCHES]])


def test_naive_step_runs_from_the_load_to_the_atomic():
    step = codegen.atomic_step("naive")
    assert step[0].startswith("LDG"), step
    atomics = [line for line in step if "ATOMG.E.ADD" in line]
    assert len(atomics) == 1 and ", RZ," in atomics[0], step  # one atomic, its old value dropped
    assert any("MEMBAR" in line for line in step) and any("CCTL.IVALL" in line for line in step)
    tid, setter = codegen.store_guard("naive")
    assert tid.startswith("S2R") and tid.endswith("SR_TID.X")
    predicate = setter.split()[1].rstrip(",")
    assert any(line.startswith(f"@!{predicate} STG") for line in step), (setter, step)


def test_scalar_atomic_counts_like_naive():
    """Notebook 04 shows scalar_atomic's atomic as "the same sequence as in naive's loop"."""
    assert codegen.barriers_around_atomic("scalar_atomic") == codegen.barriers_around_atomic("naive")
    step = codegen.atomic_step("scalar_atomic")
    assert any("MEMBAR" in line for line in step) and any("CCTL.IVALL" in line for line in step), step


def test_histogram_is_privatised_in_shared_memory_on_every_release():
    hist = codegen.histogram_lowering()
    assert hist.shared_atomics >= 1 and hist.global_atomics == 1, hist


def test_a_larger_tile_needs_more_registers_and_fits_fewer_programs():
    small, large = codegen.registers()
    assert large.registers > small.registers and large.programs_per_sm < small.programs_per_sm
    assert "registers" in large.limited_by and large.spills == 0


def test_the_ticket_is_fenced_only_when_acq_rel():
    assert codegen.ticket_ordering() == (True, True)
    assert codegen.ticket_ordering(TICKET_SEM="relaxed") == (False, False)


def test_describe_states_every_fact_for_the_installed_release():
    text = codegen.describe()
    assert text.startswith(f"Triton {triton.__version__}, sm_90:")
    hist = codegen.histogram_lowering()
    assert f"{hist.shared_atomics} shared-memory atomic(s)" in text
    for r in codegen.registers():
        assert f" {r.registers} ({r.programs_per_sm})" in text
    assert "BAR.SYNC around the atomic: " + ("yes" if codegen.barriers_around_atomic() else "no") in text


@pytest.mark.skipif(triton.__version__ not in KNOWN,
                    reason=f"no recorded facts for Triton {triton.__version__} (supported: {sorted(KNOWN)})")
def test_known_release_gives_its_recorded_facts():
    want = KNOWN[triton.__version__]
    hist = codegen.histogram_lowering()
    got = {"barriers": codegen.barriers_around_atomic(), "combined": codegen.warp_combined(),
           "red": codegen.ptx_reduction(), "shared": hist.shared_atomics, "votes": hist.votes,
           "registers": tuple(r.registers for r in codegen.registers())}
    assert got == want


def test_a_stage_without_a_counting_atomic_is_refused_clearly():
    with pytest.raises(ValueError, match=r"'decode' has no counting atomic"):
        codegen.atomic_step("decode")
