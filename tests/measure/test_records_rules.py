"""A recorded CSV loads only when it is whole and every row agrees with its run and with itself: a file
cut short, a run id that disagrees with its file, a row whose numbers contradict each other, an unknown
stage or a date in the future is refused, with the file and the row named. Runs on CPU."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from moe_lab import paths
from moe_lab.measure import records, results


def bench_rows(run_id="2026-11-26_Test-Card", date="2026-11-26", n=3) -> pd.DataFrame:
    rows = []
    for i in range(n):
        tokens, median = 4 ** i, 5.0 + i
        nbytes = 64 * tokens + 128
        rows.append(dict(stage="best", mode="eager", preset="deepseek-v3", num_experts=256, topk=8, ep_size=8,
                         num_local=32, distribution="uniform", num_tokens=tokens, num_slots=8 * tokens,
                         median_us=median, p20_us=median - 0.5, p80_us=median + 0.5, bytes=nbytes,
                         gbps=nbytes / median / 1e3, correct=True, card="Test Card", driver="999.1",
                         cuda="12.9", torch="2.11.0", triton="3.6.0", python="3.12.3", date=date,
                         run_id=run_id))
    return pd.DataFrame(rows)


def written(tmp_path, df, name="2026-11-26_Test-Card.csv"):
    path = tmp_path / name
    df.to_csv(path, index=False)
    return path


def test_a_whole_file_loads(tmp_path):
    assert len(records.load(written(tmp_path, bench_rows()), records.BENCH)) == 3


@pytest.mark.parametrize("cut", [1, 12, 40])
def test_a_file_cut_in_its_last_row_is_refused_not_read_as_a_phantom_run(tmp_path, cut):
    path = written(tmp_path, bench_rows())
    path.write_bytes(path.read_bytes()[:-cut])  # the run id (or more) of the last row cut off
    with pytest.raises(ValueError, match=r"2026-11-26_Test-Card\.csv ends in the middle of its last row "
                                         r"\(line 4.*cut short"):
        records.load(path, records.BENCH)
    with pytest.raises(ValueError, match="cut short"):
        results.runs(tmp_path)


def test_the_recorded_benchmark_cut_short_is_refused(tmp_path):
    """The repository's own run, its last column cut: results.runs() used to list a run '2026-11-26_N'."""
    source = sorted(paths.data("bench").glob("*.csv"))[-1]
    cut = tmp_path / source.name
    shutil.copy(source, cut)
    data = cut.read_bytes()
    cut.write_bytes(data[:len(data) - 1 - len(source.stem) + len(source.stem.split("_")[0]) + 2])
    assert cut.read_bytes().endswith(b"_N")
    with pytest.raises(ValueError, match="cut short"):
        results.runs(tmp_path)


def test_a_row_with_too_few_values_is_refused(tmp_path):
    path = written(tmp_path, bench_rows())
    lines = path.read_text().splitlines()
    lines[2] = ",".join(lines[2].split(",")[:-3])  # a row that lost its last three values
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"row 3: 21 values, but the header names 24 columns"):
        records.load(path, records.BENCH)


def test_a_run_id_that_disagrees_with_its_file_is_refused(tmp_path):
    df = bench_rows()
    df.loc[2, "run_id"] = "2026-11-26_T"
    with pytest.raises(ValueError, match=r"row 4: run_id '2026-11-26_T' does not agree with its file, "
                                         r"which is named after run '2026-11-26_Test-Card'"):
        records.load(written(tmp_path, df), records.BENCH)


def test_one_run_on_two_machines_is_refused(tmp_path):
    df = bench_rows()
    df.loc[1, "card"] = "Other Card"
    with pytest.raises(ValueError, match=r"row 3: column 'card' is 'Other Card', but row 2 of the same run"):
        records.load(written(tmp_path, df, "run.csv"), records.BENCH)


def test_a_run_id_in_two_files_is_refused(tmp_path):
    written(tmp_path, bench_rows(), "a.csv")
    written(tmp_path, bench_rows(), "b.csv")
    with pytest.raises(ValueError, match=r"run_id '2026-11-26_Test-Card' is recorded in two files"):
        results.load(tmp_path)


@pytest.mark.parametrize("column, value, message", [
    ("num_slots", 9,
     r"row 3: num_slots = num_tokens \* topk does not hold: num_slots=9, num_tokens \* topk = 32"),
    ("gbps", 99.0, r"row 2: gbps = bytes / median_us / 1000 does not hold: gbps=99"),
    ("stage", "warp_speed", r"row 2: stage is one the library knows does not hold: stage='warp_speed'"),
    ("date", "9999-12-31", r"row 2: column 'date' is 9999-12-31, a date in the future"),
])
def test_a_row_that_contradicts_itself_or_the_library_is_refused(tmp_path, column, value, message):
    df = bench_rows()
    row = 1 if column == "num_slots" else 0
    df[column] = df[column].astype(object)
    df.loc[row, column] = value
    if column == "date":
        df["date"] = value  # the whole run dated 9999
    with pytest.raises(ValueError, match=message) as info:
        records.load(written(tmp_path, df, "run.csv"), records.BENCH)
    assert "run.csv" in str(info.value)


def test_writing_checks_the_same_rules(tmp_path):
    df = bench_rows()
    df.loc[0, "num_slots"] = 7
    with pytest.raises(ValueError, match="num_slots = num_tokens"):
        records.write(df, tmp_path / "out.csv", records.BENCH)
    assert not (tmp_path / "out.csv").exists()


def test_ep_rows_agree_with_their_gathered_tokens(tmp_path):
    row = dict(world_size=2, backend="gloo", preset="deepseek-v3", num_experts=16, topk=2, num_local=8,
               distribution="uniform", gathered_tokens=8, num_slots=16, checks_passed=True, rank=0, start=0,
               tokens_per_rank=4, padding_rows=0, local_slots=5, stage="best", kernel_us="", kernel_p20_us="",
               kernel_p80_us="", allgather_us="", allgather_p20_us="", allgather_p80_us="",
               allgather_bytes="", card="cpu", driver="n/a", cuda="n/a", torch="2.13.0", triton="3.9.0",
               python="3.11.7", date="2026-11-27", run_id="ep-1")
    path = tmp_path / "ep.csv"
    pd.DataFrame([row, dict(row, rank=1, num_slots=17)]).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"row 3: num_slots = gathered_tokens \* topk does not hold"):
        records.load(path, records.EP)


def _ep_rows():
    row = dict(world_size=2, backend="gloo", preset="mixtral", num_experts=8, topk=2, num_local=4,
               distribution="uniform", gathered_tokens=64, num_slots=128, checks_passed=True, rank=0,
               start=0, tokens_per_rank=32, padding_rows=0, local_slots=60, stage="best", kernel_mode="",
               repeat=0, kernel_us=None, kernel_p20_us=None, kernel_p80_us=None, allgather_us=None,
               allgather_p20_us=None, allgather_p80_us=None, allgather_bytes=None, card="cpu", driver="n/a",
               cuda="n/a", torch="2.11.0", triton="3.6.0", python="3.12.3", date="2026-11-27", run_id="ep-1")
    return pd.DataFrame([row, dict(row, rank=1, start=4, local_slots=68)])


def _tuning_rows():
    base = dict(card="NVIDIA H200", driver="580.159.04", cuda="13.0", torch="2.11.0", triton="3.6.0",
                python="3.12.3", date="2026-11-26", script="tools/tune_gpu.py", run_id="2026-11-26_sweep")
    return pd.DataFrame([dict(base, config="bh b4096 w4", us=21.4, slots=4096),
                         dict(base, config="bh b2048 w4", us=22.9, slots=4096),
                         dict(base, config="copy", us=None, slots=4096)])


@pytest.mark.parametrize("rows, schema", [(_ep_rows, records.EP), (_tuning_rows, records.TUNING),
                                          (bench_rows, records.BENCH)], ids=["ep", "tuning", "bench"])
def test_a_row_recorded_twice_is_refused(tmp_path, rows, schema):
    """EP and tuning files have no key that names one measurement; no row may still appear twice (a file
    whose every row is doubled used to load as a run with twice the rows)."""
    once = rows()
    assert len(records.load(written(tmp_path, once, "once.csv"), schema)) == len(once)
    every_row_twice = pd.concat([once, once], ignore_index=True)
    with pytest.raises(ValueError, match=rf"twice\.csv, rows 2 and {len(once) + 2}: the same "
                                         rf"(row twice \(every value equal\)|measurement twice)"):
        records.load(written(tmp_path, every_row_twice, "twice.csv"), schema)
    last_again = pd.concat([once, once.iloc[[-1]]], ignore_index=True)
    with pytest.raises(ValueError, match=rf"rows {len(once) + 1} and {len(once) + 2}: the same"):
        records.load(written(tmp_path, last_again, "last.csv"), schema)
    with pytest.raises(ValueError, match="the same"):
        records.write(every_row_twice, tmp_path / "written.csv", schema)
