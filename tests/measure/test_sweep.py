"""The sweep harness of tools/tune_*.py: rows checked against the reference, written with provenance."""

from __future__ import annotations

import py_compile
from pathlib import Path

import pytest
import torch

from moe_lab import verify
from moe_lab.measure import records, sweep

TOOLS = Path(__file__).resolve().parents[2] / "tools"


def test_refuses_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="tools/tune_x.py times kernels on a CUDA GPU"):
        sweep.Sweep("tools/tune_x.py", "/nonexistent")


def test_rows_are_checked_and_written_with_provenance(monkeypatch, tmp_path, capsys):
    with monkeypatch.context() as gpu:  # a GPU for the constructor only: provenance then reads this CPU
        gpu.setattr(torch.cuda, "is_available", lambda: True)
        s = sweep.Sweep("tools/tune_x.py", tmp_path)
    ids = torch.tensor([[3, -1], [9, 4]], dtype=torch.int32)
    adjusted, counts = verify.reference(ids, 2, 4)
    assert s.correct(ids, 2, 4, adjusted, counts)
    assert not s.correct(ids, 2, 4, adjusted, counts + 1)
    s.record(slots=4, config="a", us=1.5, ok=True)
    s.record(slots=4, config="b", us=2.25, ok=False)
    assert "config=b us=2.25 ok=False" in capsys.readouterr().out
    written = records.load(s.write("x.csv"), records.TUNING)
    assert list(written["config"]) == ["a", "b"] and set(written["script"]) == {"tools/tune_x.py"}
    assert set(records.PROVENANCE) <= set(written.columns)


@pytest.mark.parametrize("path", sorted(TOOLS.glob("tune_*.py")), ids=lambda p: p.name)
def test_every_tuning_script_compiles_and_uses_the_harness(path):
    py_compile.compile(str(path), doraise=True)
    text = path.read_text()
    assert f'Sweep("tools/{path.name}")' in text, "a tuning script records through moe_lab.measure.sweep"
    assert "records.write" not in text and "def rec(" not in text
