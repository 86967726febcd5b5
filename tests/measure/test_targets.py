"""moe_lab.measure.targets on a synthetic DataFrame built here (made-up numbers, never written under data/).

Each test plants the condition a target checks and asserts the table says so both ways.
"""

from __future__ import annotations

import pandas as pd
import pytest

from moe_lab import paths
from moe_lab.measure import results, targets

TOKENS = [1, 4, 16, 64, 256, 1024, 1 << 20]


def synthetic(overrides=None, correct=True) -> pd.DataFrame:
    """best 20x faster than scalar_atomic at 1M tokens and 2x faster below, copy at 0.9 x best."""
    overrides = overrides or {}
    rows = []
    for mode in ("eager", "graph"):
        for dist in ("uniform", "hot"):
            for n in TOKENS:
                big = n == 1 << 20
                base = {"scalar_atomic": 400.0 if big else 3.0, "best": 20.0 if big else 1.5,
                        "copy": 18.0 if big else 1.1, "zeros": 1.0}
                for stage, us in base.items():
                    us = overrides.get((stage, mode, dist, n), us)
                    rows.append(dict(stage=stage, mode=mode, preset="deepseek-v3", num_experts=256, topk=8,
                                     ep_size=8, num_local=32, distribution=dist, num_tokens=n,
                                     num_slots=8 * n, median_us=us, p20_us=0.9 * us, p80_us=1.1 * us,
                                     bytes=64 * n, gbps=64 * n / us / 1e3,
                                     correct=None if stage in ("copy", "zeros") else correct,
                                     card="Test Card", driver="1", cuda="1", torch="1", triton="1",
                                     python="3", date="2026-01-01", run_id="test"))
    df = pd.DataFrame(rows)
    df["correct"] = df["correct"].astype("boolean")
    return df


def test_paired_speedup_is_baseline_over_stage():
    p = targets.paired(synthetic(), "best", "scalar_atomic")
    row = p[(p["mode"] == "graph") & (p["distribution"] == "hot") & (p["num_tokens"] == 1 << 20)].iloc[0]
    assert row["speedup"] == pytest.approx(20.0)
    assert row["median_stage"] == 20.0 and row["median_over"] == 400.0
    assert len(p) == 2 * 2 * len(TOKENS)


def test_all_targets_met_on_good_data():
    t = targets.targets(synthetic())
    assert t["met"].all(), t
    assert list(t.columns) == targets.TARGET_COLUMNS
    assert set(t["target"].str[:3]) == {"(a)", "(b)", "(c)", "(d)"}
    # (a): 2 modes x 2 distributions x 2 conditions; (b): 2 distributions x 6 small sizes
    assert (t["target"].str.startswith("(a)")).sum() == 8
    assert (t["target"].str.startswith("(b)")).sum() == 12
    assert sorted(t[t["target"].str.startswith("(b)")]["num_slots"].unique()) == [8, 32, 128, 512, 2048, 8192]


def test_large_batch_speedup_below_goal_is_not_met():
    slow = synthetic({("best", "eager", "hot", 1 << 20): 40.0})  # 400 / 40 = 10x < 15x
    t = targets.large_batch(slow)
    row = t[(t["mode"] == "eager") & (t["distribution"] == "hot")
            & t["target"].str.contains("speed-up")].iloc[0]
    assert row["value"] == pytest.approx(10.0) and not row["met"]
    ratio = t[(t["mode"] == "eager") & (t["distribution"] == "hot")
              & t["target"].str.contains("copy")].iloc[0]
    assert ratio["value"] == pytest.approx(40.0 / 18.0) and not ratio["met"]
    assert t[t["mode"] == "graph"]["met"].all()


def test_copy_ratio_goal_boundary():
    t = targets.large_batch(synthetic({("copy", "graph", "uniform", 1 << 20): 20.0 / 1.3}))
    row = t[(t["mode"] == "graph") & (t["distribution"] == "uniform")
            & t["target"].str.contains("copy")].iloc[0]
    assert row["value"] == pytest.approx(1.3) and row["met"]
    t = targets.large_batch(synthetic({("copy", "graph", "uniform", 1 << 20): 15.0}))
    row = t[(t["mode"] == "graph") & (t["distribution"] == "uniform")
            & t["target"].str.contains("copy")].iloc[0]
    assert not row["met"]


def test_small_batch_miss_is_reported_per_size():
    t = targets.small_batch(synthetic({("best", "graph", "uniform", 1024): 2.5}))  # 3.0 / 2.5 = 1.2x
    missed = t[~t["met"]]
    assert len(missed) == 1
    assert missed.iloc[0]["num_slots"] == 8192 and missed.iloc[0]["distribution"] == "uniform"
    assert missed.iloc[0]["value"] == pytest.approx(1.2)
    assert set(t["mode"]) == {"graph"}  # eager rows never count for (b)


def test_small_batch_ignores_eager_and_large_sizes():
    t = targets.small_batch(synthetic({("best", "eager", "uniform", 16): 30.0,
                                      ("best", "graph", "uniform", 1 << 20): 300.0}))
    assert t["met"].all()


def test_slower_rows_finds_planted_row_with_ranges_and_graph_medians():
    df = synthetic({("best", "eager", "hot", 64): 3.2})  # just above scalar_atomic's 3.0
    slow = targets.slower_rows(df)
    assert len(slow) == 1
    row = slow.iloc[0]
    assert (row["mode"], row["distribution"], row["num_tokens"]) == ("eager", "hot", 64)
    assert bool(row["ranges_overlap"])  # 2.88..3.52 against 2.7..3.3
    assert row["graph_median_stage"] == 1.5 and row["graph_median_over"] == 3.0
    far = targets.slower_rows(synthetic({("best", "eager", "hot", 64): 30.0}))
    assert not bool(far.iloc[0]["ranges_overlap"])


def test_never_slower_counts_per_mode():
    t = targets.never_slower(synthetic({("best", "eager", "hot", 64): 3.2,
                                       ("best", "eager", "uniform", 1): 9.0}))
    eager, graph = t[t["mode"] == "eager"].iloc[0], t[t["mode"] == "graph"].iloc[0]
    assert eager["value"] == 2 and not eager["met"] and eager["goal"] == f"0 of {2 * len(TOKENS)}"
    assert graph["value"] == 0 and graph["met"]


def test_correctness_counts_false_and_unchecked_but_not_copy_or_zeros():
    good = targets.correctness(synthetic())
    assert good.iloc[0]["met"] and good.iloc[0]["value"] == 0
    bad = synthetic()
    bad.loc[(bad["stage"] == "best") & (bad["num_tokens"] == 4), "correct"] = False
    bad.loc[(bad["stage"] == "scalar_atomic") & (bad["num_tokens"] == 16), "correct"] = pd.NA
    t = targets.correctness(bad)
    assert not t.iloc[0]["met"]
    assert t.iloc[0]["value"] == 4 + 4  # 2 modes x 2 distributions, for each planted size
    assert t.iloc[0]["goal"] == f"0 of {2 * 2 * len(TOKENS) * 2}"  # best and scalar_atomic rows only


def test_missing_rows_raise_naming_what_is_missing():
    df = synthetic()
    with pytest.raises(ValueError, match="device copy"):
        targets.large_batch(df[df["stage"] != "copy"])
    with pytest.raises(ValueError, match="no rows for stage 'best'"):
        targets.targets(df[df["stage"] != "best"])
    with pytest.raises(ValueError, match="several runs"):
        targets.paired(pd.concat([df, df]))
    with pytest.raises(ValueError, match="lacks the column"):
        targets.paired(df.drop(columns=["p20_us"]))


def test_formatted_prints_ratios_counts_and_met():
    f = targets.formatted(targets.targets(synthetic({("best", "graph", "hot", 256): 2.0})))
    assert f.iloc[0]["value"] == "20.00x" and f.iloc[0]["met"] == "yes"
    assert "NO" in set(f["met"])
    assert f[f["target"].str.startswith("(d)")].iloc[0]["value"] == "0"
    assert f.iloc[0]["num_slots"] == "8,388,608"


def test_targets_run_on_the_recorded_data():
    try:
        df = results.load()
    except FileNotFoundError:
        pytest.skip("no recorded benchmark results in data/bench")
    t = targets.targets(df)
    assert set(t["target"].str[:3]) == {"(a)", "(b)", "(c)", "(d)"}
    assert t["value"].notna().all()


def test_compact_png_is_a_smaller_palette_png_of_the_same_size():
    import io

    pytest.importorskip("IPython", reason="compact_png returns an IPython image ([lab] extra)")
    from matplotlib.figure import Figure
    from PIL import Image as PILImage

    fig = Figure(figsize=(4, 3), dpi=80)
    ax = fig.subplots()
    for k in range(5):
        ax.plot(range(50), [(i * (k + 1)) % 17 for i in range(50)], label=str(k))
    ax.legend()
    full = io.BytesIO()
    fig.savefig(full, format="png", bbox_inches="tight")
    img = targets.compact_png(fig, colors=32)
    small = PILImage.open(io.BytesIO(img.data))
    assert img.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert small.mode == "P" and len(small.getcolors()) <= 32
    assert small.size == PILImage.open(io.BytesIO(full.getvalue())).size
    assert len(img.data) < len(full.getvalue())
    with pytest.raises(ValueError, match="colors"):
        targets.compact_png(fig, colors=1)


def test_markdown_report_has_provenance_table_and_the_slower_rows():
    df = synthetic({("best", "eager", "hot", 64): 4.0})
    text = targets.markdown(df)
    assert text.startswith("# Performance targets\n") and "Test Card" in text
    table = [line for line in text.splitlines() if line.startswith("| (")]
    assert len(table) == len(targets.targets(df))
    assert all(line.count("|") == len(targets.TARGET_COLUMNS) + 1 for line in table)
    assert "| (c) rows where best is slower | eager | all |  | 1 | 0 of 14 | NO |" in text
    assert "## Where `best` is slower" in text and "| eager | hot | 64 | 4.0 |" in text
    assert "## Where" not in targets.markdown(synthetic())


def test_markdown_table_escapes_pipes_and_leaves_missing_cells_empty():
    got = targets.markdown_table(pd.DataFrame({"a": ["x|y", None], "b": [1, pd.NA]}))
    assert got.splitlines() == ["| a | b |", "|---|---|", "| x\\|y | 1 |", "|  |  |"]


def test_command_line_prints_markdown_and_refuses_a_missing_folder(tmp_path, capsys):
    synthetic().to_csv(tmp_path / "run.csv", index=False)
    assert targets.main(["--markdown", "--path", str(tmp_path)]) == 0
    assert capsys.readouterr().out == targets.markdown(results.load(tmp_path))
    assert targets.main(["--path", str(tmp_path)]) == 0
    assert "TARGETS, from Test Card" in capsys.readouterr().out
    assert targets.main(["--path", str(tmp_path / "gone")]) == 2
    assert "gone does not exist" in capsys.readouterr().err


def test_docs_performance_targets_is_the_report_of_the_recorded_run():

    doc = paths.checkout() / "docs" / "performance-targets.md"
    try:
        df = results.load()
    except FileNotFoundError:
        pytest.skip("no recorded benchmark results in data/bench")
    assert doc.read_text() == targets.markdown(df), \
        "regenerate it: python -m moe_lab.measure.targets --markdown > docs/performance-targets.md"
