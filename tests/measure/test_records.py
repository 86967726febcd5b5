"""moe_lab.measure.records (schemas, validated load and write of recorded CSVs), the timer's refusals,
and moe_lab.measure.bench's argument checks. Runs on CPU: nothing here times anything.

The rows are made up in memory or in pytest's tmp_path, never written under data/.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

import moe_lab
from moe_lab import paths
from moe_lab.measure import bench, records, results, timing


def bench_rows(run_id="run-a", date="2026-11-26", n=3) -> pd.DataFrame:
    rows = []
    for i in range(n):
        tokens = 4 ** i
        rows.append(dict(stage="best", mode="eager", preset="deepseek-v3", num_experts=256, topk=8,
                         ep_size=8, num_local=32, distribution="uniform", num_tokens=tokens,
                         num_slots=8 * tokens, median_us=5.0 + i, p20_us=4.5 + i, p80_us=5.5 + i,
                         bytes=64 * tokens + 128, gbps=(64 * tokens + 128) / (5.0 + i) / 1e3, correct=True,
                         card="Test Card",
                         driver="999.1", cuda="12.9", torch="2.11.0", triton="3.6.0", python="3.12.3",
                         date=date, run_id=run_id))
    return pd.DataFrame(rows)


def write_csv(tmp_path, df, name="run.csv"):
    path = tmp_path / name
    df.to_csv(path, index=False)
    return path


# ------------------------------------------------------------------------------------------------
# schemas and the recorded data of the repository
# ------------------------------------------------------------------------------------------------

def test_every_schema_carries_the_provenance_columns():
    for schema in records.SCHEMAS.values():
        assert set(records.PROVENANCE) <= set(schema.provenance), schema.name
    assert records.TUNING["config"].nullable and "variant" not in records.TUNING.names
    assert results.PROVENANCE == list(records.PROVENANCE)
    assert bench.COLUMNS == records.BENCH.names


@pytest.mark.parametrize("folder, schema", [("bench", records.BENCH), ("ep", records.EP),
                                            ("tuning", records.TUNING), ("dispatch", records.DISPATCH),
                                            ("stress", records.STRESS), ("stress", records.RETIME),
                                            ("hostcost", records.HOSTCOST)])
def test_every_recorded_csv_of_the_repository_is_valid(folder, schema):
    files = sorted(paths.data(folder).glob(
        f"{schema.name}_*.csv" if folder == "stress" else "*.csv"))
    if not files:
        pytest.skip(f"no recorded CSV in data/{folder}")
    for path in files:
        df = records.load(path, schema)
        assert len(df) > 0 and set(schema.required) <= set(df.columns)
        timings = [c.name for c in schema.columns if c.kind == "time" and c.name in df.columns]
        for col in timings:
            present = df[col].dropna()
            assert (present > 0).all() and present.map(math.isfinite).all(), (path, col)


def test_load_types_the_columns_and_names_the_source(tmp_path):
    path = write_csv(tmp_path, bench_rows())
    df = records.load(path, records.BENCH)
    assert df["median_us"].dtype == "float64" and df["num_tokens"].dtype == "int64"
    assert df["correct"].dtype == "boolean" and df["correct"].all()
    assert set(df["source"]) == {str(path)}


def test_schema_refuses_an_unknown_kind():
    with pytest.raises(ValueError, match="kind must be one of"):
        records.Column("x", "timestamp")
    with pytest.raises(TypeError, match="records.BENCH"):
        records.validate(bench_rows(), "bench")


# ------------------------------------------------------------------------------------------------
# bad values: each error names the file, the row (line in the file) and the column
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("column, value, expected", [
    ("median_us", "fast", "positive|above 0"),
    ("median_us", -3.0, "above 0"),
    ("p20_us", 0.0, "above 0"),
    ("median_us", float("nan"), "is empty"),
    ("p80_us", float("inf"), "finite"),
    ("median_us", "-inf", "finite"),
    ("num_tokens", 2.5, "whole number"),
    ("num_tokens", 0, "above 0"),
    ("bytes", "1e20", "at most 2**63 - 1"),
    ("bytes", str(2**63), "at most 2**63 - 1"),
    ("correct", "maybe", "True or False"),
    ("date", "26/11/2026", "ISO date"),
    ("date", "2026-11-31", "ISO date"),
    ("date", "2026-9-30", "ISO date"),
])
def test_a_bad_value_is_refused_with_file_row_and_column(tmp_path, column, value, expected):
    df = bench_rows().astype({column: object})
    df.loc[1, column] = value
    path = write_csv(tmp_path, df, "bad.csv")
    with pytest.raises(ValueError) as err:
        records.load(path, records.BENCH)
    text = str(err.value)
    assert "bad.csv" in text and "row 3" in text and repr(column) in text  # row 1 of the frame: line 3
    assert any(word in text for word in expected.split("|")), text


def test_results_load_reports_the_bad_row_instead_of_plotting_it(tmp_path):
    df = bench_rows().astype({"median_us": object})
    df.loc[2, "median_us"] = "n/a"
    write_csv(tmp_path, df, "text-timing.csv")
    with pytest.raises(ValueError, match=r"text-timing\.csv, row 4: column 'median_us' is 'n/a'"):
        results.load(tmp_path)


def test_an_empty_copy_correct_is_allowed_but_an_empty_timing_is_not(tmp_path):
    df = bench_rows().astype({"correct": object})
    df.loc[0, "correct"] = None  # copy and zeros rows: nothing to check
    assert records.load(write_csv(tmp_path, df), records.BENCH)["correct"].isna().sum() == 1
    df = bench_rows()
    df.loc[0, "p80_us"] = None
    with pytest.raises(ValueError, match="row 2: column 'p80_us' is empty"):
        records.load(write_csv(tmp_path, df), records.BENCH)


def test_a_missing_column_names_the_file_and_the_column(tmp_path):
    path = write_csv(tmp_path, bench_rows().drop(columns=["median_us", "run_id"]), "short.csv")
    with pytest.raises(ValueError, match=r"short\.csv is not a moe-lab bench file.*median_us, run_id"):
        records.load(path, records.BENCH)


# ------------------------------------------------------------------------------------------------
# files that are not CSVs at all
# ------------------------------------------------------------------------------------------------

def test_an_empty_file_is_refused_by_name(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.csv is empty"):
        records.load(path, records.BENCH)
    path.write_text("\n\n  \n")
    with pytest.raises(ValueError, match=r"empty\.csv is empty"):
        results.load(path)


def test_a_header_only_file_is_refused_by_name(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text(",".join(records.BENCH.names) + "\n")
    with pytest.raises(ValueError, match=r"header\.csv has a header but no rows"):
        records.load(path, records.BENCH)


@pytest.mark.parametrize("garbage", [bytes(range(256)) * 8, b"\x89PNG\r\n\x1a\n" + b"\x00" * 64,
                                     "stage,mode\n".encode() + b"\xff\xfe\xfa\xfb" * 40])
def test_binary_garbage_is_refused_by_name(tmp_path, garbage):
    path = tmp_path / "garbage.csv"
    path.write_bytes(garbage)
    with pytest.raises(ValueError, match=r"garbage\.csv is not a (UTF-8 )?text CSV"):
        records.load(path, records.BENCH)


def test_whole_numbers_past_2_to_the_53_load_exactly(tmp_path):
    """Digits are read as an integer, not through a float that would round 2**53 + 1 to 2**53."""
    df = bench_rows()
    df.loc[0, "bytes"] = 2**53 + 1
    df.loc[0, "gbps"] = (2**53 + 1) / df.loc[0, "median_us"] / 1e3
    assert records.load(write_csv(tmp_path, df), records.BENCH)["bytes"].iloc[0] == 2**53 + 1


def test_a_byte_that_is_not_utf8_past_the_first_8_kb_is_refused_naming_byte_and_line(tmp_path):
    path = write_csv(tmp_path, bench_rows(n=80), "late.csv")
    data = bytearray(path.read_bytes())
    at = data.index(b"uniform", 9000) + 3  # past the 8 KB read to tell text from binary
    data[at] = 0xE9  # latin-1's e-acute: not UTF-8 there
    path.write_bytes(bytes(data))
    line = data[:at].count(b"\n") + 1
    with pytest.raises(ValueError, match=rf"late\.csv is not UTF-8 text: byte {at} \(line {line}\) is 0xe9"):
        records.load(path, records.BENCH)
    with pytest.raises(ValueError, match=r"late\.csv is not UTF-8 text"):
        results.load(path)


def test_a_row_the_csv_reader_cannot_read_is_refused_naming_its_line(tmp_path):
    """A field past the csv module's limit (131,072 characters) is refused by name, not as a csv.Error."""
    df = bench_rows()
    df.loc[1, "preset"] = "x" * 200_000
    with pytest.raises(ValueError, match=r"run\.csv, line 3: not a readable CSV row \(field larger than"):
        records.load(write_csv(tmp_path, df), records.BENCH)


def test_a_file_past_the_size_limit_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "huge.csv"
    with open(path, "wb") as fh:  # sparse: takes no disk
        fh.truncate(records.MAX_BYTES + 1)
    with pytest.raises(ValueError, match=rf"huge\.csv holds {records.MAX_BYTES + 1} bytes, more than the "
                                         rf"{records.MAX_BYTES} \(64 MiB\) a recorded CSV may"):
        records.load(path, records.BENCH)
    assert records.MAX_BYTES == 64 * 2**20


def test_only_what_is_checked_is_read_from_a_file(tmp_path):
    """A file of zeros under the size limit is refused as binary from its first 8 KB: it is never read
    whole into memory (it used to be, to check those 8 KB)."""
    import tracemalloc

    path = tmp_path / "zeros.csv"
    with open(path, "wb") as fh:
        fh.truncate(48 * 2**20)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"zeros\.csv is not a text CSV \(it holds binary data\)"):
            records.load(path, records.BENCH)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20, f"loading held {peak} bytes at its peak"


def test_a_missing_file_is_a_file_not_found_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        records.load(tmp_path / "nowhere.csv", records.BENCH)


# ------------------------------------------------------------------------------------------------
# latest run by date
# ------------------------------------------------------------------------------------------------

def test_latest_run_is_the_newest_by_date_whatever_the_text_order(tmp_path):
    # The newer run sorts first by file name and by run id; only its date says it is newer.
    write_csv(tmp_path, bench_rows("a-newer", date="2026-12-01"), "a.csv")
    write_csv(tmp_path, bench_rows("z-older", date="2026-11-30"), "z.csv")
    assert set(results.load(tmp_path)["run_id"]) == {"a-newer"}
    assert [r.run_id for r in results.runs(tmp_path)] == ["z-older", "a-newer"]


def test_dates_that_sort_wrong_as_text_are_refused_not_misordered(tmp_path):
    # "2026-9-30" sorts after "2026-10-01" as text but is the older day: refused, with its row.
    write_csv(tmp_path, bench_rows("new", date="2026-10-01"), "a.csv")
    write_csv(tmp_path, bench_rows("old", date="2026-9-30"), "b.csv")
    with pytest.raises(ValueError, match=r"b\.csv, row 2: column 'date' is '2026-9-30'"):
        results.load(tmp_path)


# ------------------------------------------------------------------------------------------------
# write
# ------------------------------------------------------------------------------------------------

def test_write_then_load_round_trips_and_orders_the_schema_columns(tmp_path):
    df = bench_rows()
    shuffled = df[list(reversed(df.columns))].assign(extra="kept")
    path = records.write(shuffled, tmp_path / "sub" / "out.csv", records.BENCH)
    back = records.load(path, records.BENCH)
    assert list(back.columns[:len(records.BENCH.names)]) == records.BENCH.names
    assert back["extra"].eq("kept").all()
    pd.testing.assert_series_equal(back["median_us"], df["median_us"], check_names=False)
    assert not list(path.parent.glob("*.tmp"))


def test_write_refuses_a_bad_frame_and_leaves_the_old_file(tmp_path):
    path = records.write(bench_rows(), tmp_path / "out.csv", records.BENCH)
    before = path.read_bytes()
    bad = bench_rows()
    bad.loc[0, "median_us"] = -1.0
    with pytest.raises(ValueError, match="column 'median_us' is -1.0"):
        records.write(bad, path, records.BENCH)
    assert path.read_bytes() == before and not list(tmp_path.glob("*.tmp"))


def test_provenance_of_this_machine_has_every_field():
    meta = records.provenance()
    assert tuple(meta) == records.PROVENANCE and all(isinstance(v, str) and v for v in meta.values())
    assert records.validate(bench_rows().assign(**meta), records.BENCH)["date"].iloc[0] == meta["date"]
    date, time_of_day, card = meta["run_id"].split("_", 2)
    assert date == meta["date"] and len(time_of_day) == 6 and time_of_day.isdigit()
    assert card == records.slug(meta["card"])
    assert records.provenance(run_id="mine")["run_id"] == "mine"


# ------------------------------------------------------------------------------------------------
# timing and bench refusals (CPU)
# ------------------------------------------------------------------------------------------------

def test_time_us_checks_its_arguments_before_anything_else():
    with pytest.raises(TypeError, match="fn must be a callable"):
        timing.time_us(42)
    with pytest.raises(ValueError, match="mode must be one of"):
        timing.time_us(lambda: None, mode="cudagraph")


@pytest.mark.skipif(moe_lab.backend.has_gpu(), reason="checks the no-GPU path")
def test_without_a_gpu_timing_and_sweep_raise_a_normal_exception():
    with pytest.raises(timing.GPURequiredError, match="needs a CUDA GPU"):
        timing.time_us(lambda: None)
    with pytest.raises(timing.GPURequiredError) as err:
        bench.sweep(["best"], tokens=(16,))
    assert not isinstance(err.value, SystemExit) and isinstance(err.value, RuntimeError)
    assert bench.main(["--quick"]) == 2


@pytest.mark.parametrize("tokens, error, match", [
    ((16, -4), ValueError, "above 0"),
    ((0,), ValueError, "above 0"),
    ((16, 64, 16), ValueError, r"repeats \[16\]"),
    ((), ValueError, "empty"),
    ((16, 2.5), TypeError, "whole numbers"),
    ("16", TypeError, "sequence"),
])
def test_sweep_refuses_bad_tokens_as_a_library_function(tokens, error, match):
    with pytest.raises(error, match=match):
        bench.sweep(["best"], tokens=tokens)


def test_sweep_refuses_unknown_stages_modes_and_distributions():
    with pytest.raises(ValueError, match="stages=.*'fastest'"):
        bench.sweep(["fastest"], tokens=(16,))
    with pytest.raises(ValueError, match="modes="):
        bench.sweep(["best"], tokens=(16,), modes=("eager", "warm"))
    with pytest.raises(ValueError, match="distributions="):
        bench.sweep(["best"], tokens=(16,), distributions=("gaussian",))


@pytest.mark.parametrize("argv, match", [
    (["--tokens", "16", "-4"], "above 0"),
    (["--tokens", "0"], "above 0"),
    (["--tokens", "16", "16"], r"repeats \[16\]"),
])
def test_the_command_line_refuses_bad_tokens_with_its_usage(argv, match, capsys):
    with pytest.raises(SystemExit) as err:
        bench.main(argv)
    assert err.value.code == 2
    assert "--tokens" in capsys.readouterr().err
    with pytest.raises(ValueError, match=match):
        bench.check_tokens([int(a) for a in argv[1:]])


def test_bench_no_longer_imports_results():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(bench))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                for alias in node.names}
    assert "results" not in imported and "records" in imported and "timing" in imported


def test_ep_schema_reads_gloo_rows_without_timings_and_newer_columns(tmp_path):
    row = dict(world_size=2, backend="gloo", preset="mixtral", num_experts=8, topk=2, num_local=4,
               distribution="uniform", gathered_tokens=64, num_slots=128, checks_passed=True, rank=0,
               start=0, tokens_per_rank=32, padding_rows=0, local_slots=60, stage="best",
               kernel_mode="", repeat=0, kernel_us=None, kernel_p20_us=None, kernel_p80_us=None,
               allgather_us=None, allgather_p20_us=None, allgather_p80_us=None, allgather_stream_us=None,
               allgather_bytes=None, card="cpu", driver="n/a", cuda="n/a", torch="2.11.0", triton="3.6.0",
               python="3.12.3", date="2026-11-27", run_id="ep-1")
    df = records.load(write_csv(tmp_path, pd.DataFrame([row, dict(row, rank=1, start=4)])), records.EP)
    assert df["kernel_us"].isna().all() and list(df["rank"]) == [0, 1]
    bad = pd.DataFrame([dict(row, backend="nccl", kernel_us=-2.0)])
    with pytest.raises(ValueError, match="row 2: column 'kernel_us' is '-2.0'"):
        records.load(write_csv(tmp_path, bad, "ep.csv"), records.EP)


def test_quantiles_out_of_order_and_a_measurement_twice_are_refused(tmp_path):
    df = bench_rows()
    df.loc[2, "p20_us"] = 9.0  # above its median of 7
    with pytest.raises(ValueError, match=r"row 4: expected p20_us <= median_us <= p80_us, got p20_us=9"):
        records.load(write_csv(tmp_path, df), records.BENCH)
    twice = pd.concat([bench_rows(), bench_rows().iloc[[1]]], ignore_index=True)
    with pytest.raises(ValueError, match=r"rows 3 and 5: the same measurement twice"):
        records.load(write_csv(tmp_path, twice), records.BENCH)
    other_run = pd.concat([bench_rows("a"), bench_rows("b")], ignore_index=True)
    assert len(records.load(write_csv(tmp_path, other_run), records.BENCH)) == 6


def fake_do_bench(monkeypatch, results_ms):
    """time_us on a pretend GPU whose do_bench returns ``results_ms`` in turn (no GPU needed)."""
    import triton.testing

    calls = iter(results_ms)
    monkeypatch.setattr(moe_lab.backend, "has_gpu", lambda: True)
    monkeypatch.setattr(triton.testing, "do_bench", lambda fn, **kw: next(calls))
    monkeypatch.setattr(triton.testing, "do_bench_cudagraph", lambda fn, **kw: next(calls))


def test_eager_time_is_the_middle_of_the_repeats_and_in_microseconds(monkeypatch):
    assert timing.EAGER_REPEATS == 3
    # one stalled window (0.230 ms) among three runs: the middle run by median is reported
    fake_do_bench(monkeypatch, [[0.005, 0.004, 0.006], [0.230, 0.2, 0.25], [0.006, 0.005, 0.007]])
    assert timing.time_us(lambda: None) == pytest.approx((6.0, 5.0, 7.0))
    fake_do_bench(monkeypatch, [[0.0012, 0.0011, 0.0013]])
    assert timing.time_us(lambda: None, mode="graph") == pytest.approx((1.2, 1.1, 1.3))


def test_a_recorded_file_is_never_written_over(tmp_path):
    path = records.write(bench_rows(), tmp_path / "run-a.csv", records.BENCH)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="run-a.csv exists: a recorded file is never replaced"):
        records.write(bench_rows(n=2), path, records.BENCH)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["run-a.csv"]


def test_runs_sort_by_date_then_time_of_day():
    ids = ["2026-12-03_172056_NVIDIA-H200", "2026-12-03_NVIDIA-H200", "2026-12-02_235959_NVIDIA-H200",
           "2026-12-03_150400_NVIDIA-H200"]
    assert sorted(ids, key=records.run_order) == [
        "2026-12-02_235959_NVIDIA-H200", "2026-12-03_NVIDIA-H200", "2026-12-03_150400_NVIDIA-H200",
        "2026-12-03_172056_NVIDIA-H200"]


def test_dispatch_load_takes_the_run_of_the_latest_time(tmp_path):
    from moe_lab.measure import dispatch_bench

    src = paths.data("dispatch")
    for name in ("dispatch_2026-12-03_NVIDIA-H200.csv", "dispatch_2026-12-03_150400_NVIDIA-H200.csv"):
        (tmp_path / name).write_bytes((src / name).read_bytes())
    assert set(dispatch_bench.load(tmp_path)["run_id"]) == {"2026-12-03_150400_NVIDIA-H200"}
