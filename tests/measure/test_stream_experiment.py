"""tools/stream_experiment.py: its streaming kernel is correct, and without a GPU it says so and stops."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

import moe_lab
from moe_lab import verify

TOOL = Path(__file__).resolve().parents[2] / "tools" / "stream_experiment.py"


def load_tool():
    spec = importlib.util.spec_from_file_location("stream_experiment", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not moe_lab.backend.INTERPRETER,
                    reason="runs the kernel in Triton's interpreter on CPU tensors")
@pytest.mark.parametrize("grid, block", [(1, 64), (1, 1024), (3, 64)])
def test_stream_kernel_remaps_every_slot_like_the_reference(grid, block):
    tool = load_tool()
    gen = torch.Generator().manual_seed(0)
    # 296 slots: a tail in every tile size
    ids = torch.randint(-1, 64, (37, 8), generator=gen, dtype=torch.int32)
    adjusted = torch.full_like(ids, verify.POISON)  # a slot never written stays POISON
    tool.stream_kernel[(grid,)](ids, adjusted, ids.numel(), 8, 32, BLOCK=block)
    want, _ = verify.reference(ids, 8, 32)
    assert torch.equal(adjusted, want)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_without_a_gpu_the_tool_refuses_with_a_reason(capsys, monkeypatch):
    monkeypatch.setenv("OUT", "/nonexistent-should-not-be-created")
    assert load_tool().main() == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err
    assert not Path("/nonexistent-should-not-be-created").exists()
