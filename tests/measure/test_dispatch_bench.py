"""The dispatch benchmark's logic without a GPU: its checks and timed callables run (interpreter,
small sizes), the targets table reads a run right, and the command refuses what it cannot do."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from moe_lab.dispatch import prepare_dispatch_reference
from moe_lab.dispatch.data import make_inputs
from moe_lab.measure import dispatch_bench as bench


@pytest.fixture
def small(monkeypatch, device):
    monkeypatch.setattr(bench, "HIDDEN", 256)
    ids, x, scales = make_inputs(40, bench.TOPK, bench.NUM_EXPERTS, hidden=256, seed=1, device=device)
    # on ids' device, as the bench
    want = prepare_dispatch_reference(ids, bench.START, bench.NUM_LOCAL, x, scales)
    return ids, x, scales, want


def test_every_timed_path_is_checked_and_runs(small):
    ids, x, scales, want = small
    assert bench.check_size(ids, x, scales, want) == []
    timed = bench.paths(ids, x, scales, want)
    assert set(timed) == {"fused", "fused_sync", "chain", "chain_device", "gather", "fused_wide_copy",
                          "fused_launch1", "fused_two_launch"}
    for name, (fn, modes) in timed.items():
        fn()  # each callable runs as the timer will call it
        assert set(modes) <= {"eager", "graph"}, name
    gathered = timed["gather"][0]()
    real = want["real"]
    assert torch.equal(gathered.cpu(), want["rows"].view(torch.uint8)[real].cpu())


def _run(times: dict) -> list[dict]:
    rows = []
    for (path, mode, n), us in times.items():
        rows.append({"path": path, "mode": mode, "num_tokens": n, "median_us": us})
    return rows


def test_targets_table_says_met_and_missed():
    times = {}
    for n, fused, chain, gather in ((64, 3.0, 9.3, 1.8), (4096, 30.0, 32.9, 18.7)):
        times.update({("fused", "graph", n): fused, ("chain_device", "graph", n): chain,
                      ("gather", "graph", n): gather, ("fused_sync", "eager", n): 20.0,
                      ("chain", "eager", n): 90.0})
    lines = bench.targets(_run(times)).splitlines()
    assert lines[1].startswith("64 |") and lines[1].endswith("MISSED")  # 3.0 > 1.5 * 1.8
    assert "3.10x" in lines[1]
    assert lines[2].startswith("4096 |") and lines[2].endswith("MISSED")  # 30 > 1.5 * 18.7
    times[("fused", "graph", 4096)] = 25.0
    assert bench.targets(_run(times)).splitlines()[2].endswith("met")


def test_load_reads_the_newest_run_and_refuses_other_csvs(tmp_path):
    assert bench.load(tmp_path) is None
    row = {c: 1 for c in bench.COLUMNS} | {"path": "fused", "mode": "graph", "date": "2026-01-01"}
    pd.DataFrame([row]).to_csv(tmp_path / "dispatch_2026-01-01_a.csv", index=False)
    pd.DataFrame([{**row, "num_tokens": 2}]).to_csv(tmp_path / "dispatch_2026-02-01_a.csv", index=False)
    assert bench.load(tmp_path)["num_tokens"].tolist() == [2]
    pd.DataFrame([{"x": 1}]).to_csv(tmp_path / "dispatch_2026-03-01_a.csv", index=False)
    with pytest.raises(ValueError, match="dispatch_2026-03-01_a.csv.*(lacks|missing)"):
        bench.load(tmp_path)  # checked by moe_lab.measure.records: the error names the file


def test_command_line(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--tokens", "64", "64"])
    assert "distinct positive" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert bench.main(["--tokens", "64"]) == 2
        assert "needs a CUDA GPU" in capsys.readouterr().err
