"""The dispatch benchmark's logic without a GPU: its checks and timed callables run (interpreter,
small sizes), the targets table reads a run right, and the command refuses what it cannot do."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from moe_lab.dispatch import prepare_dispatch_reference
from moe_lab.dispatch.data import make_inputs
from moe_lab.measure import dispatch_bench as bench
from moe_lab.measure import records


@pytest.fixture
def small(monkeypatch, device):
    monkeypatch.setattr(bench, "HIDDEN", 256)
    ids, x, scales = make_inputs(40, bench.TOPK, bench.NUM_EXPERTS, hidden=256, seed=1, device=device)
    want = prepare_dispatch_reference(ids, bench.START, bench.NUM_LOCAL, x, scales)
    return ids, x, scales, want


def test_every_timed_path_is_checked_and_runs(small):
    ids, x, scales, want = small
    names = ["fused_one_t16", "fused_two_t4", "fused_blocks"]
    assert bench.check_size(ids, x, scales, want, names) == []
    timed = bench.paths(ids, x, scales, want, names)
    assert set(timed) == {"fused", "fused_exact", "dropin", "chain_run", "chain", "chain_transpose",
                          "chain_with_transpose", "gather", *names}
    for name, (fn, modes) in timed.items():
        fn()  # each callable runs as the timer will call it
        assert set(modes) <= {"graph", "host"}, name
    gathered = timed["gather"][0]()
    real = want["real"]
    assert torch.equal(gathered.cpu(), want["rows"].view(torch.uint8)[real].cpu())


def test_a_wrong_variant_is_caught(small, monkeypatch):
    """The check is real: a variant whose layout has one wrong byte fails, and the check names it."""
    ids, x, scales, want = small
    right = bench.fused

    def one_byte_off(ids, x, scales, name=None, graph_safe=True):
        got = right(ids, x, scales, name, graph_safe)
        if name == "fused_two_t4":
            got.rows.view(torch.uint8)[int(got.output_index.max()), 0] ^= 1
        return got
    monkeypatch.setattr(bench, "fused", one_byte_off)
    found = bench.check_size(ids, x, scales, want, ["fused_one_t16", "fused_two_t4"])
    assert found and all(f.startswith("fused_two_t4: rows") for f in found)


def test_variants_and_plans_are_named():
    assert bench.variants_for(64) == ["fused_two_t4", "fused_two_t16", "fused_blocks"]
    assert bench.variants_for(32768) == []
    assert bench.plan_text(64) == "one launch, tile 4 tokens, 1024 columns, 4 warps"
    assert bench.plan_text(512) == "two launches, tile 16 tokens, 1024 columns, 4 warps"
    assert bench.plan_text(4096) == "token blocks, 4 tokens a block, 1024 columns, 4 warps"
    assert bench.plan_text(64, "fused_blocks") == bench.plan_text(4096)


def _rows(times: dict) -> list[dict]:
    return [{"path": p, "mode": m, "num_tokens": n, "median_us": us,
             "plan": bench.plan_text(n) if p == "fused" else ""} for (p, m, n), us in times.items()]


def test_targets_say_met_and_missed():
    times = {}
    for n, fused, chain, gather in ((64, 4.0, 8.3, 1.6), (8192, 35.0, 46.6, 30.9)):
        times.update({("fused", "graph", n): fused, ("chain", "graph", n): chain,
                      ("gather", "graph", n): gather, ("fused", "host", n): 30.0,
                      ("fused_exact", "host", n): 90.0, ("dropin", "host", n): 20.0})
    v = bench.verdicts(_rows(times))
    assert v.loc[64, "vs chain"] == "met"  # 8.3 / 4.0 >= 2
    assert v.loc[64, "vs gather"] == ""  # the gather target counts from 4096 tokens on
    assert v.loc[8192, "vs chain"] == "met" and v.loc[8192, "vs gather"] == "met"  # 1.33x, 1.13x
    assert v.loc[64, "host fused"] == "met" and v.loc[64, "host fused_exact"] == "missed"  # 1.5x, 4.5x
    times[("fused", "graph", 64)] = 4.5  # 8.3 / 4.5 < 2
    times[("fused", "graph", 8192)] = 47.0  # 46.6 / 47 < 1.25 and 47 / 30.9 > 1.5
    v = bench.verdicts(_rows(times))
    assert v.loc[64, "vs chain"] == "missed"
    assert v.loc[8192, "vs chain"] == "missed" and v.loc[8192, "vs gather"] == "missed"
    assert "chain/fused" in bench.targets(_rows(times))


def test_targets_take_the_plan_the_rules_choose_now():
    """Where the rules changed since a run, the shipped plan's time comes from the variant that timed it."""
    times = {("fused", "graph", 64): 9.0, ("chain", "graph", 64): 8.3, ("gather", "graph", 64): 1.6}
    rows = _rows(times)
    rows[0]["plan"] = "an older plan"
    rows.append({"path": "fused_two_t4", "mode": "graph", "num_tokens": 64, "median_us": 3.0,
                 "plan": bench.plan_text(64)})
    v = bench.verdicts(rows)
    assert v.loc[64, "fused"] == 3.0 and v.loc[64, "plan"] == bench.plan_text(64)
    rows.pop()  # without the variant, the run did not time the plan the rules choose now
    v = bench.verdicts(rows)
    assert math.isnan(v.loc[64, "fused"]) and v.loc[64, "vs chain"] == "not timed"


def test_load_reads_the_newest_run_and_refuses_other_csvs(tmp_path):
    assert bench.load(tmp_path) is None
    row = {c.name: 1 for c in records.DISPATCH.columns} | {"path": "fused", "mode": "graph", "plan": "",
                                                            "date": "2026-01-01"}
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
