"""Adding a stage is one module and one registry line: a toy stage registered at test time is seen
by every part of the library that lists, runs, checks, models, traces, compiles or colours stages."""

from __future__ import annotations

import importlib
import sys
import textwrap

import numpy as np
import pytest
import torch

import moe_lab
from moe_lab import registry, verify
from moe_lab.inspection import atomics, tracer
from moe_lab.registry import STAGES, Stage

TOY_MODULE = textwrap.dedent('''
    """``toy_relaxed``: a copy of ``relaxed`` under another name, to show what adding a stage takes."""
    import dataclasses

    from moe_lab.stages import relaxed
    from moe_lab.stages._launch import prepare

    KERNEL = dataclasses.replace(relaxed.KERNEL)


    def run(topk_ids, start, num_local):
        start, num_local, adjusted, counts = prepare(topk_ids, start, num_local, stage="toy")
        if topk_ids.numel():
            relaxed.launch(topk_ids, adjusted, counts, start, num_local)
        return adjusted, counts
''')


@pytest.fixture
def toy(tmp_path, monkeypatch):
    package = tmp_path / "toy_stages"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "toy_relaxed.py").write_text(TOY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}:{__import__('os').environ.get('PYTHONPATH', '')}")
    entry = registry.register(Stage("toy", "toy_stages.toy_relaxed", "a copy of relaxed", "#123456"))
    yield entry
    registry.unregister("toy")
    for name in [m for m in sys.modules if m.startswith("toy_stages")]:
        del sys.modules[name]


def ids_for(seed, shape=(40, 6), high=48):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-1, high, shape, generator=g, dtype=torch.int32)


def test_toy_stage_is_listed_and_runs(toy, device):
    assert ("toy", "a copy of relaxed") in moe_lab.list_stages()
    assert list(STAGES)[-1] == "toy"  # registered at the end of the teaching order
    ids = ids_for(0).to(device)
    got = moe_lab.recombine(ids, 8, 16, stage="toy")
    want = verify.reference(ids, 8, 16)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    table = verify.verify("toy")
    assert table["ok"].all(), table[~table["ok"]]


def test_toy_stage_is_modelled_and_traced(toy):
    assert "toy" in atomics.MODELLED_STAGES and "toy" in atomics.PER_SLOT_STAGES
    assert "toy" not in atomics.HISTOGRAM_STAGES
    ids = ids_for(1)
    launch = atomics.launch_config("toy", 40, 6, 16)
    assert (launch.kernel, launch.sem, launch.writes) == ("toy", "relaxed", "per-slot atomics")
    model = atomics.atomic_traffic("toy", ids, 8, 16)
    trace = tracer.trace("toy", ids, 8, 16)
    assert np.array_equal(model.atomics, trace.atomics) and np.array_equal(model.values, trace.values)
    assert trace.sems == {"relaxed"}
    assert trace.counts.tolist() == verify.reference(ids, 8, 16)[1].tolist()


def test_toy_stage_compiles_and_has_its_colour(toy):
    from moe_lab.inspection import ir
    from moe_lab.measure import plots

    ptx = ir.compile_ir("toy", "ptx")  # in a compile subprocess that imports the toy module itself
    assert any("relaxed" in line for line in ir.atomic_lines(ptx))
    assert plots.color("toy") == "#123456"


def test_toy_stage_is_in_the_widgets_ir_list(toy):
    pytest.importorskip("ipywidgets", reason="the explorers are part of the workbook ([lab] extra)")
    widgets = importlib.import_module("moe_lab.workbook.explorers")
    assert "toy" in widgets.ir_stages()


def test_register_refuses_duplicates_and_non_stages():
    with pytest.raises(ValueError, match=r"stage 'relaxed' is already registered"):
        registry.register(Stage("relaxed", "relaxed", "again", "#000000"))
    with pytest.raises(TypeError, match=r"register takes a registry.Stage, got dict"):
        registry.register({"name": "x"})
    with pytest.raises(ValueError, match=r"unknown stage 'nope'"):
        registry.unregister("nope")


@pytest.mark.parametrize("name", list(STAGES))
def test_every_stage_describes_its_kernel_where_the_registry_says_it_has_one(name):
    entry = STAGES[name]
    module = entry.load()
    assert callable(module.run)
    if entry.single_kernel:
        assert entry.kernel is not None, f"{name}: single_kernel but no KERNEL in its module"
        assert entry.kernel_for(4096, 32) == name
    else:
        assert entry.kernel is None
    if hasattr(module, "choose"):
        assert STAGES[entry.kernel_for(4096, 32)].kernel is not None
