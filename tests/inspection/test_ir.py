"""The IR and machine code of the stages, compiled for sm_90 on the CPU: SASS, resources, atomics."""

from __future__ import annotations

import re

import pytest

from moe_lab.inspection import ir


@pytest.fixture(scope="module")
def sass():
    ir.prefetch(["naive", "scalar_atomic", "relaxed"])  # one compile subprocess for all three
    return {name: ir.compile_ir(name, "sass") for name in ("naive", "scalar_atomic", "relaxed")}


def test_sass_has_the_expected_instruction_families(sass):
    for name, text in sass.items():
        assert f"Function : {name}_kernel" in text
        assert re.search(r"\bLDG\.E", text), f"{name}: no global load"
        assert re.search(r"\bSTG\.E", text), f"{name}: no global store"
        assert re.search(r"\bEXIT\b", text), f"{name}: no EXIT"
        assert ir.atomic_lines(text), f"{name}: no atomic instruction"
    assert re.search(r"\bS2R R\d+, SR_CTAID\.X", sass["relaxed"]), "program id read from SR_CTAID.X"


def test_acq_rel_atomic_is_fenced_and_relaxed_is_a_lone_reduction(sass):
    [acq_rel] = ir.atomic_context(sass["scalar_atomic"], before=3, after=1)
    assert re.search(r"MEMBAR\.\w*\.?GPU", acq_rel), acq_rel  # release: a fence before the atomic
    assert ">> " in acq_rel and "ATOMG.E.ADD" in acq_rel
    assert "CCTL.IVALL" in acq_rel  # acquire: L1 invalidated after it
    [relaxed] = ir.atomic_context(sass["relaxed"], before=3, after=1)
    assert re.search(r">> \S+ REDG?\.E\.ADD", relaxed), relaxed
    assert "MEMBAR" not in sass["relaxed"] and "CCTL" not in sass["relaxed"]


def test_sass_diff_ignores_addresses(sass):
    diff = ir.ir_diff("scalar_atomic", "relaxed", level="sass", context=0)
    assert "MEMBAR" in diff and "REDG" in diff
    assert not re.search(r"^[-+]/\*[0-9a-f]+\*/", diff, re.M)


def test_resources_of_relaxed():
    res = ir.resources("relaxed")
    assert 0 < res.registers <= 255 and res.num_warps == 4 and res.threads == 128 and res.spills == 0
    assert res.programs_per_sm == min(res.limits.values()) == 16  # 2048 threads / 128
    assert "threads" in res.limited_by
    text = res.explain()
    assert f"{res.registers} registers per thread" in text and "16 programs run at once" in text


def test_occupancy_arithmetic_on_sm90():
    limits, programs, limited_by = ir.occupancy(registers=72, shared_bytes=128, num_warps=8)
    # 72 registers x 32 threads = 2304 per warp (a multiple of 256); 65536 // 2304 = 28 warps -> 3 programs
    assert limits["registers"] == 3 and limits["threads"] == 8 and limits["programs"] == 32
    assert limits["shared memory"] == (228 * 1024) // (128 + 1024)
    assert (programs, limited_by) == (3, "registers")
    limits, programs, limited_by = ir.occupancy(registers=32, shared_bytes=100 * 1024, num_warps=4)
    assert (programs, limited_by) == (2, "shared memory")
    _, programs, limited_by = ir.occupancy(registers=32, shared_bytes=0, num_warps=4)
    assert (programs, limited_by) == (16, "registers and threads")


def test_atomic_context_merges_neighbours_and_checks_arguments():
    text = "\n".join(["a", "b", "ATOMG.E.ADD x", "c", "RED.E.ADD y", "d", "e", "f", "g", "h", "REDG.E.ADD z"])
    snippets = ir.atomic_context(text, before=1, after=1)
    assert len(snippets) == 2
    assert snippets[0].splitlines() == ["   b", ">> ATOMG.E.ADD x", "   c", ">> RED.E.ADD y", "   d"]
    assert snippets[1].splitlines() == ["   h", ">> REDG.E.ADD z"]
    with pytest.raises(ValueError, match=r"before must be an int >= 0.*got -1"):
        ir.atomic_context(text, before=-1)


def test_missing_tool_gives_a_clear_error():
    with pytest.raises(RuntimeError, match=r"no-such-tool not found: it ships inside the triton wheel"):
        ir.tool("no-such-tool")


def test_unknown_level_names_the_choices():
    with pytest.raises(ValueError, match=r"level must be one of .*'sass'.*got 'cubin'"):
        ir.compile_ir("relaxed", "cubin")
