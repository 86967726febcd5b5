"""The stress run (moe_lab.measure.stress): its arguments and its refusal to run without a GPU (the runs
themselves need one)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def stress():
    from moe_lab.measure import stress

    return stress


def test_defaults_cover_every_size_with_1000_trials(stress, tmp_path):
    args = stress.parse_args(["--out", str(tmp_path)])
    assert args.trials == 1000 and args.mid_trials == 1000 and args.rounds == 3
    assert args.sizes == ["8M", "mid", "decode"]
    assert stress.SIZES["8M"][0] * stress.SIZES["8M"][1] == 1 << 23
    assert stress.SIZES["decode"] == (256, 8)
    assert set(stress.TESTS) == set(stress.TEST_FUNCTIONS)
    assert set(stress.CONTROL_TESTS) <= set(stress.TESTS)


def test_out_comes_from_the_environment(stress, tmp_path, monkeypatch):
    monkeypatch.setenv("OUT", str(tmp_path))
    assert stress.parse_args([]).out == str(tmp_path)


@pytest.mark.parametrize("argv, message", [
    (["--trials", "0"], r"--trials must be >= 1, got 0"),
    (["--mid-trials", "-2"], r"--mid-trials must be >= 1, got -2"),
    (["--rounds", "-1"], r"--rounds must be >= 0, got -1"),
    (["--sizes", "8M,huge"], r"--sizes: unknown size\(s\) \['huge'\]"),
    (["--trials", "many"], r"invalid int value: 'many'"),
])
def test_bad_arguments_are_refused(stress, tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        stress.parse_args(["--out", str(tmp_path), *argv])
    assert info.value.code == 2
    import re
    assert re.search(message, capsys.readouterr().err)


def test_out_is_required(stress, monkeypatch, capsys):
    monkeypatch.delenv("OUT", raising=False)
    with pytest.raises(SystemExit):
        stress.parse_args([])
    assert "--out is required" in capsys.readouterr().err


def test_refuses_to_run_without_a_gpu(stress, tmp_path, monkeypatch):
    monkeypatch.setattr(stress.torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match=r"python -m moe_lab.measure.stress needs a GPU"):
        stress.main(["--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()  # nothing written


def test_table_reports_the_control_and_the_ratio(stress):
    prov = {"card": "H100", "driver": "1", "torch": "t", "triton": "t", "python": "3", "date": "2026-01-01"}
    rows = [{"test": "two_streams", "stage": "best", "size": "8M", "trials": 10, "results": 20, "wrong": 0,
             **prov},
            {"test": "two_streams", "stage": stress.CONTROL, "size": "8M", "trials": 10, "results": 20,
             "wrong": 3, **prov}]
    timing = [{"stage": s, "mode": m, "tokens": t, "median_us": 2.0 if s == "best" else 4.0}
              for s in stress.RETIME_STAGES for m in ("eager", "graph") for t in stress.RETIME_TOKENS]
    text = stress.table(rows, timing)
    assert "3 / 20  (control)" in text and "0 / 20" in text
    assert "0.500" in text  # best / old_best
