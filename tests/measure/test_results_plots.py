"""measure.results, measure.plots and workbook.show on a synthetic DataFrame built here.

The numbers below are made up for the tests and live only in memory or in pytest's tmp_path: they
are never written under data/.
"""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

import moe_lab
from moe_lab import paths, routing
from moe_lab.measure import plots, results
from moe_lab.stages import scalar_atomic, tl_full
from moe_lab.workbook import show

STAGES = ["torch", "naive", "tl_full", "scalar_atomic"]
TOKENS = [1, 64, 4096, 262144]
BASE_US = {"torch": 40.0, "naive": 90.0, "tl_full": 8.0, "scalar_atomic": 7.0, "copy": 2.0}


def synthetic(run_id="run-a", date="2026-11-26", card="Test Card 80GB", distributions=("uniform", "hot"),
              stages=STAGES + ["copy"], correct=True) -> pd.DataFrame:
    rows = []
    for dist in distributions:
        for s in stages:
            for n in TOKENS:
                median = BASE_US[s] * (1 + n / 1000) * (1.5 if dist == "hot" and s != "copy" else 1.0)
                nbytes = n * 8 * 4 * 2 + 32 * 4
                rows.append(dict(
                    stage=s, mode="eager", preset="deepseek-v3", num_experts=256, topk=8, ep_size=8,
                    num_local=32, distribution=dist, num_tokens=n, num_slots=n * 8, median_us=median,
                    p20_us=median * 0.95, p80_us=median * 1.05, bytes=nbytes, gbps=nbytes / median / 1e3,
                    correct=correct, card=card, driver="999.1", cuda="12.9", torch="2.11.0",
                    triton="3.6.0", python="3.11.9", date=date, run_id=run_id))
    return pd.DataFrame(rows)


def median(df, stage, n, dist="uniform"):
    row = df[(df.stage == stage) & (df.num_tokens == n) & (df.distribution == dist)]
    assert len(row) == 1
    return float(row.median_us.iloc[0])


# ------------------------------------------------------------------------------------------------
# results
# ------------------------------------------------------------------------------------------------

def test_recorded_results_come_from_the_checkouts_data_bench(monkeypatch):
    monkeypatch.delenv(paths.DATA_ENV, raising=False)
    root = paths.checkout()
    assert root is not None and (root / "moe_lab" / "measure" / "results.py").is_file()
    assert paths.data("bench") == root / "data" / "bench"
    assert set(results.load().run_id) <= {r.run_id for r in results.runs()}


def test_load_latest_run_by_default_and_all_on_request(tmp_path):
    synthetic("old", date="2026-01-02").to_csv(tmp_path / "a.csv", index=False)
    synthetic("new", date="2026-11-26", card="Other Card").to_csv(tmp_path / "b.csv", index=False)
    df = results.load(tmp_path)
    assert set(df.run_id) == {"new"} and set(df.card) == {"Other Card"}
    assert len(df) == len(synthetic())
    assert str(df["correct"].dtype) == "boolean" and df["correct"].all()
    assert set(results.load(tmp_path, run_id="all").run_id) == {"old", "new"}
    assert set(results.load(tmp_path, run_id="old").run_id) == {"old"}
    assert set(results.load(tmp_path / "a.csv").run_id) == {"old"}


def test_load_unknown_run_names_the_known_ones(tmp_path):
    synthetic("r1").to_csv(tmp_path / "a.csv", index=False)
    with pytest.raises(ValueError, match=r"run_id='nope'.*r1 \(Test Card 80GB, 2026-11-26\)"):
        results.load(tmp_path, run_id="nope")


def test_runs_lists_id_card_date_oldest_first(tmp_path):
    synthetic("b", date="2026-11-26").to_csv(tmp_path / "x.csv", index=False)
    synthetic("a", date="2025-05-01", card="Older").to_csv(tmp_path / "y.csv", index=False)
    got = results.runs(tmp_path)
    assert [(r.run_id, r.card, r.date) for r in got] == [("a", "Older", "2025-05-01"),
                                                        ("b", "Test Card 80GB", "2026-11-26")]
    assert got[0].rows == len(synthetic()) and got[0].path.endswith("y.csv")


def test_missing_data_is_a_clear_file_not_found(tmp_path):
    where = tmp_path / "nothing-here"
    with pytest.raises(FileNotFoundError, match="nothing-here does not exist"):
        results.load(where)
    with pytest.raises(FileNotFoundError, match=r"holds no \*\.csv"):
        results.load(tmp_path)


def test_environment_variable_points_load_elsewhere(tmp_path, monkeypatch):
    (tmp_path / "bench").mkdir()
    synthetic("via-env").to_csv(tmp_path / "bench" / "a.csv", index=False)
    monkeypatch.setenv(paths.DATA_ENV, str(tmp_path))
    assert set(results.load().run_id) == {"via-env"}
    monkeypatch.setenv(paths.DATA_ENV, str(tmp_path / "gone"))
    with pytest.raises(FileNotFoundError, match="gone"):
        results.load()


def test_file_without_the_schema_is_rejected(tmp_path):
    synthetic().drop(columns=["median_us", "card"]).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match="bad.csv.*median_us, card"):
        results.load(tmp_path)


def test_provenance_is_one_line_with_card_driver_cuda_torch_triton_date():
    text = results.provenance(synthetic())
    assert text == "Test Card 80GB, driver 999.1, CUDA 12.9, torch 2.11.0, triton 3.6.0, 2026-11-26"
    both = pd.concat([synthetic(), synthetic("x", date="2026-12-01", card="B")])
    assert results.provenance(both).startswith("Test Card 80GB / B, ")
    assert "2026-11-26 / 2026-12-01" in results.provenance(both)
    with pytest.raises(ValueError, match="empty"):
        results.provenance(synthetic().iloc[0:0])


def test_select_filters_by_value_and_list_and_explains_misses():
    df = synthetic()
    one = results.select(df, stage="naive", distribution="hot")
    assert set(one.stage) == {"naive"} and set(one.distribution) == {"hot"} and len(one) == len(TOKENS)
    two = results.select(df, stage=["naive", "copy"], num_tokens=64, mode=None)
    assert sorted(two.stage) == ["copy", "copy", "naive", "naive"]
    with pytest.raises(ValueError, match=r"distribution='zipf'.*present: hot, uniform"):
        results.select(df, distribution="zipf")
    with pytest.raises(ValueError, match="no column 'colour'"):
        results.select(df, colour="red")


@pytest.mark.skipif(moe_lab.backend.has_gpu(), reason="checks the no-GPU path")
def test_measure_or_load_without_gpu_reads_recorded_data(tmp_path, monkeypatch, capsys):
    (tmp_path / "bench").mkdir()
    synthetic().to_csv(tmp_path / "bench" / "a.csv", index=False)
    monkeypatch.setenv(paths.DATA_ENV, str(tmp_path))
    df = results.measure_or_load(["naive", "tl_full"], distributions=["uniform"])
    assert set(df.stage) == {"naive", "tl_full", "copy"} and set(df.distribution) == {"uniform"}
    assert "recorded results from Test Card 80GB" in capsys.readouterr().out
    graph = synthetic().assign(mode="graph", run_id="run-a")
    pd.concat([synthetic(), graph]).to_csv(tmp_path / "bench" / "a.csv", index=False)
    assert set(results.measure_or_load(["naive"], modes=("eager", "graph"))["mode"]) == {"eager", "graph"}
    assert set(results.measure_or_load(["naive"], mode="graph")["mode"]) == {"graph"}
    monkeypatch.setenv(paths.DATA_ENV, str(tmp_path / "none"))
    with pytest.raises(FileNotFoundError):
        results.measure_or_load(["naive"])


@pytest.mark.gpu
def test_measure_or_load_with_a_gpu_measures_live_with_the_copy(capsys):
    df = results.measure_or_load(["tl_full"], distributions=["uniform"], tokens=(16, 1024))
    assert set(df.stage) == {"tl_full", "copy"} and sorted(set(df.num_tokens)) == [16, 1024]
    assert (df.median_us > 0).all() and df.loc[df.stage == "tl_full", "correct"].all()
    assert "measured live now" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------
# plots of results
# ------------------------------------------------------------------------------------------------

def drawn(fig: Figure):
    """Lay ``fig`` out and draw it with Agg; return the renderer (for sizes in pixels)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def lines_by_label(fig: Figure, index=0):
    return {line.get_label(): line for line in fig.axes[index].get_lines()}


def test_time_vs_tokens_draws_every_stage_and_the_copy_floor_log_log():
    df = synthetic()
    fig = plots.time_vs_tokens(df, STAGES, "deepseek-v3", "uniform")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    lines = lines_by_label(fig)
    assert set(lines) == set(STAGES) | {plots.COPY_LABEL}
    np.testing.assert_allclose(lines["naive"].get_xdata(), TOKENS)
    np.testing.assert_allclose(lines["naive"].get_ydata(), [median(df, "naive", n) for n in TOKENS])
    np.testing.assert_allclose(lines[plots.COPY_LABEL].get_ydata(),
                               [median(df, "copy", n) for n in TOKENS])
    assert "Test Card 80GB" in ax.get_title() and "2026-11-26" in ax.get_title()
    assert [t.get_text() for t in ax.get_legend().get_texts()][:len(STAGES)] == STAGES


def test_stage_colours_are_fixed_across_plots():
    df = synthetic()
    a = lines_by_label(plots.time_vs_tokens(df, ["naive", "tl_full"], "deepseek-v3", "uniform"))
    b = lines_by_label(plots.time_vs_tokens(df, ["tl_full", "naive"], "deepseek-v3", "hot"))
    for s in ("naive", "tl_full"):
        assert matplotlib.colors.same_color(a[s].get_color(), b[s].get_color())
        assert matplotlib.colors.same_color(a[s].get_color(), plots.color(s))
    assert len({plots.color(s) for s in moe_lab.STAGES}) == len(moe_lab.STAGES)


def test_plot_into_a_given_axes_and_never_through_pyplot():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    fig = Figure()
    ax = fig.subplots()
    assert plots.time_vs_tokens(synthetic(), STAGES, "deepseek-v3", "uniform", ax=ax) is fig
    plots.speedup(synthetic(), STAGES, "deepseek-v3", "uniform")
    assert plt.get_fignums() == before


def test_bandwidth_absolute_and_relative_to_the_copy():
    df = synthetic()
    fig = plots.bandwidth(df, STAGES, "deepseek-v3", "hot")
    lines = lines_by_label(fig)
    rows = df[(df.stage == "tl_full") & (df.distribution == "hot")].sort_values("num_tokens")
    bound = plots.launch_bound(rows)
    assert list(bound) == [True, True, False, False]  # 1 and 64 tokens: time flat
    np.testing.assert_allclose(lines["tl_full"].get_ydata(), rows.gbps[~bound])
    grey = lines["_tl_full (launch-bound)"]  # the first stage's grey points carry the legend entry
    np.testing.assert_allclose(grey.get_ydata(), rows.gbps[bound])
    assert matplotlib.colors.same_color(grey.get_color(), "#bbbbbb") and grey.get_linestyle() == "None"
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert sum("launch-bound" in t for t in legend) == 1 and "tl_full" in legend
    copy = df[(df.stage == "copy") & (df.distribution == "hot")].sort_values("num_tokens")
    np.testing.assert_allclose(lines[plots.COPY_LABEL].get_ydata(), copy.gbps[~plots.launch_bound(copy)])
    np.testing.assert_allclose(lines[f"_{plots.COPY_LABEL} (launch-bound)"].get_ydata(),
                               copy.gbps[plots.launch_bound(copy)])
    rel = plots.bandwidth_table(df, STAGES, "deepseek-v3", "uniform", relative=True)
    for n in TOKENS:
        assert rel.loc[n, "naive"] == pytest.approx(median(df, "copy", n) / median(df, "naive", n))
    fig = plots.bandwidth(df, STAGES, "deepseek-v3", "uniform", relative=True)
    np.testing.assert_allclose(lines_by_label(fig)["scalar_atomic"].get_ydata(),
                               rel["scalar_atomic"].iloc[2:])  # past the two launch-bound sizes
    with pytest.raises(ValueError, match="'copy' rows"):
        plots.bandwidth_table(synthetic(stages=STAGES), STAGES, "deepseek-v3", "uniform", relative=True)


def test_launch_bound_is_the_flat_prefix_only():
    rows = pd.DataFrame({"median_us": [2.0, 2.2, 9.0, 2.5, 40.0]})
    assert list(plots.launch_bound(rows)) == [True, True, False, False, False]
    assert list(plots.launch_bound(rows.iloc[:0])) == []


def test_graph_mode_time_marks_the_one_graph_node_level():
    df = synthetic().assign(mode="graph")
    lines = lines_by_label(plots.time_vs_tokens(df, STAGES, "deepseek-v3", "uniform", mode="graph"))
    level = lines["one graph node, about 1 us"]
    assert set(level.get_ydata()) == {plots.GRAPH_NODE_US}
    eager = lines_by_label(plots.time_vs_tokens(synthetic(), STAGES, "deepseek-v3", "uniform"))
    assert "one graph node, about 1 us" not in eager


def test_series_that_coincide_still_show_and_colours_and_markers_differ():
    df = synthetic()
    same = df[df.stage == "tl_full"].assign(stage="best")
    lines = lines_by_label(plots.time_vs_tokens(pd.concat([df, same]), ["tl_full", "best"], "deepseek-v3",
                                                "uniform"))
    assert lines["tl_full"].get_marker() != lines["best"].get_marker()
    assert lines["best"].get_markerfacecolor() == "none"  # hollow: the one under it shows through
    names = list(moe_lab.STAGES)
    assert len({plots.marker(s) for s in names}) == len(names)
    rgb = [np.array(matplotlib.colors.to_rgb(plots.color(s))) for s in names + ["copy", "zeros"]]
    gaps = [np.linalg.norm(a - b) for i, a in enumerate(rgb) for b in rgb[i + 1:]]
    assert min(gaps) > 0.2  # no two stages in near-identical colours


def test_speedup_over_previous_is_the_ratio_of_medians_and_named_as_that_ratio():
    df = synthetic()
    table = plots.speedup_table(df, STAGES, "deepseek-v3", "uniform")
    assert list(table.columns) == ["torch time / naive time", "naive time / tl_full time",
                                   "tl_full time / scalar_atomic time"]
    for n in TOKENS:
        assert table.loc[n, "naive time / tl_full time"] == pytest.approx(
            median(df, "naive", n) / median(df, "tl_full", n))
        assert table.loc[n, "torch time / naive time"] == pytest.approx(
            median(df, "torch", n) / median(df, "naive", n))
    assert table["naive time / tl_full time"].iloc[0] == pytest.approx(90 / 8)
    fig = plots.speedup(df, STAGES, "deepseek-v3", "uniform")
    lines = lines_by_label(fig)
    sped_up = lines["tl_full time / scalar_atomic time"]
    np.testing.assert_allclose(sped_up.get_ydata(), table["tl_full time / scalar_atomic time"])
    assert matplotlib.colors.same_color(sped_up.get_color(), plots.color("scalar_atomic"))  # the faster one
    assert "previous stage" in fig.axes[0].get_title()


def test_speedup_over_a_named_stage():
    df = synthetic()
    table = plots.speedup_table(df, ["naive", "tl_full", "scalar_atomic"], "deepseek-v3", "hot",
                                over="torch")
    assert list(table.columns) == ["torch time / naive time", "torch time / tl_full time",
                                   "torch time / scalar_atomic time"]
    n = 4096
    assert table.loc[n, "torch time / tl_full time"] == pytest.approx(
        median(df, "torch", n, "hot") / median(df, "tl_full", n, "hot"))
    with pytest.raises(ValueError, match="over='nope'"):
        plots.speedup_table(df, ["naive"], "deepseek-v3", "hot", over="nope")


def test_absent_stages_are_noted_and_all_absent_is_an_error():
    df = synthetic(stages=["naive", "copy"])
    fig = plots.time_vs_tokens(df, ["row_loop", "naive"], "deepseek-v3", "uniform")
    notes = [t.get_text() for t in fig.axes[0].texts]
    assert "not measured: row_loop" in notes
    with pytest.raises(ValueError, match="none of the stages.*present: copy, naive"):
        plots.time_vs_tokens(df, ["row_loop"], "deepseek-v3", "uniform")


def test_two_runs_mixed_is_an_error_that_says_how_to_pick_one():
    both = pd.concat([synthetic("a"), synthetic("b")])
    with pytest.raises(ValueError, match="run_id"):
        plots.time_vs_tokens(both, STAGES, "deepseek-v3", "uniform")


def test_correct_column_keeps_unchecked_rows_as_missing(tmp_path):
    df = synthetic()
    df["correct"] = df["correct"].astype(object)
    df.loc[df.stage == "copy", "correct"] = None      # the benchmark checks nothing for a copy
    df.loc[(df.stage == "naive") & (df.num_tokens == 64), "correct"] = False
    df.to_csv(tmp_path / "a.csv", index=False)
    got = results.load(tmp_path)
    assert got.loc[got.stage == "copy", "correct"].isna().all()
    assert got.loc[got.stage == "tl_full", "correct"].all()
    assert (~got.loc[(got.stage == "naive") & (got.num_tokens == 64), "correct"]).all()
    lines = lines_by_label(plots.time_vs_tokens(got, ["naive", "tl_full"], "deepseek-v3", "uniform"))
    assert set(lines) == {"naive (INCORRECT)", "tl_full", plots.COPY_LABEL}


def test_incorrect_results_are_labelled():
    fig = plots.time_vs_tokens(synthetic(correct=False), ["naive"], "deepseek-v3", "uniform")
    lines = lines_by_label(fig)
    assert "naive (INCORRECT)" in lines


def test_stage_grid_has_one_column_per_distribution():
    fig = plots.stage_grid(synthetic(), STAGES, "deepseek-v3")
    assert len(fig.axes) == 3 * 2
    titles = [ax.get_title() for ax in fig.axes]
    assert sum("uniform" in t for t in titles) == 3 and sum("hot" in t for t in titles) == 3
    assert "Test Card 80GB, 2026-11-26" in fig._suptitle.get_text()
    assert "fraction of copy speed" in titles[2]  # copy rows present: relative by default
    absolute = plots.stage_grid(synthetic(), STAGES, "deepseek-v3", kinds=("bandwidth",),
                                bandwidth_relative=False)
    assert [a.get_title() for a in absolute.axes] == ["achieved bandwidth: uniform",
                                                      "achieved bandwidth: hot"]
    assert plots.COPY_LABEL in lines_by_label(absolute, 1)
    with pytest.raises(ValueError, match="kinds"):
        plots.stage_grid(synthetic(), STAGES, "deepseek-v3", kinds=("pie",))


def test_stage_grid_has_one_legend_outside_every_panel_and_readable_fonts():
    df = pd.concat([synthetic(), synthetic().assign(mode="graph")])
    fig = plots.stage_grid(df, STAGES, "deepseek-v3", mode="graph", kinds=("time", "bandwidth"))
    assert all(ax.get_legend() is None for ax in fig.axes) and len(fig.legends) == 1
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert len(labels) == len(set(labels)) and set(STAGES) <= set(labels)
    assert "one graph node, about 1 us" in labels and not any(lab.startswith("_") for lab in labels)
    renderer = drawn(fig)
    box = fig.legends[0].get_window_extent(renderer)
    for ax in fig.axes:  # the legend overlaps no panel
        assert not box.overlaps(ax.get_window_extent(renderer))
    texts = [t for t in fig.findobj(matplotlib.text.Text) if t.get_text().strip() and t.get_visible()]
    assert texts and min(t.get_fontsize() for t in texts) >= plots.FONT >= 9


@pytest.mark.parametrize("distributions,kinds", [(["uniform", "hot"], ("time", "bandwidth", "speedup")),
                                                 (["uniform", "hot"], ("time",)), (["hot"], ("time",))])
def test_stage_grid_legend_lists_the_copy_once_and_leaves_the_suptitle_readable(distributions, kinds):
    for relative in (False, True):
        fig = plots.stage_grid(synthetic(), STAGES, "deepseek-v3", distributions=distributions, kinds=kinds,
                               bandwidth_relative=relative)
        labels = [t.get_text() for t in fig.legends[0].get_texts()]
        assert sum("device copy" in lab for lab in labels) == 1, labels  # time and bandwidth panels alike
        renderer = drawn(fig)
        title = fig._suptitle.get_window_extent(renderer)
        assert not fig.legends[0].get_window_extent(renderer).overlaps(title), (distributions, kinds)
        assert "2026-11-26" in fig._suptitle.get_text()


def test_single_plot_legend_sits_beside_the_axes():
    fig = plots.time_vs_tokens(synthetic(), STAGES, "deepseek-v3", "uniform")
    renderer = drawn(fig)
    legend = fig.axes[0].get_legend()
    assert legend.get_window_extent(renderer).x0 >= fig.axes[0].get_window_extent(renderer).x1


# ------------------------------------------------------------------------------------------------
# plots of routing
# ------------------------------------------------------------------------------------------------

def test_routing_matrix_marks_every_routed_slot_and_skips_padding():
    ids = torch.tensor([[0, 3], [2, -1], [-1, -1]], dtype=torch.int32)
    fig = plots.routing_matrix(ids, num_experts=4, ep_size=2)
    grid = fig.axes[0].get_images()[0].get_array()
    np.testing.assert_array_equal(np.asarray(grid), [[1, 0, 0, 1], [0, 0, 1, 0], [0, 0, 0, 0]])
    assert len(fig.axes[0].get_lines()) == 1  # one rank boundary


def test_routing_counts_bars_add_up_to_the_routed_slots():
    cases = {d: routing.case("mixtral", 64, distribution=d, ep_size=4, pad_fraction=0.25)
             for d in ("uniform", "hot")}
    fig = plots.routing_counts(cases)
    ax_rank, ax_expert = fig.axes
    heights = [p.get_height() for p in ax_rank.patches]
    assert len(heights) == 2 * 4
    assert sum(heights) == 2 * 48 * 2  # two cases, 48 real tokens, top-2
    hot = lines_by_label(fig, 1)["hot"].get_ydata()
    assert hot[0] == 48 and list(hot) == sorted(hot, reverse=True)


# ------------------------------------------------------------------------------------------------
# show
# ------------------------------------------------------------------------------------------------

def test_show_source_of_a_triton_kernel_comes_from_the_library_file():
    code = show.show_source(tl_full.tl_full_kernel)
    assert code.header.startswith("moe_lab/stages/tl_full.py, lines ")
    assert "def tl_full_kernel(" in code.text and "tl.full([BLOCK], 1, tl.int32)" in code.text
    assert "@triton.jit" in repr(code)
    page = code._repr_html_()
    assert "<span" in page and "tl_full_kernel" in page and "moe_lab/stages/tl_full.py" in page


def test_show_source_by_stage_name_and_of_plain_functions():
    assert "def run(" in show.show_source("scalar_atomic").text
    assert show.show_source(routing.pad_rows).text.startswith("def pad_rows(")
    with pytest.raises(TypeError, match="cannot find the source"):
        show.show_source(42)


def test_show_diff_and_side_by_side():
    diff = show.show_diff(tl_full.tl_full_kernel, scalar_atomic.scalar_atomic_kernel)
    assert diff.language == "diff"
    assert "+    tl.atomic_add(count_ptr + local_expert, 1, mask=local)" in diff.text
    old_atomic = "tl.atomic_add(count_ptr + adjusted, tl.full([BLOCK], 1, tl.int32), mask=is_local)"
    assert "-    " + old_atomic in diff.text
    assert show.show_diff(tl_full.tl_full_kernel, tl_full.tl_full_kernel).text == "(no difference)"
    both = show.show_side_by_side(tl_full.tl_full_kernel, scalar_atomic.scalar_atomic_kernel)
    assert "tl_full_kernel" in both._repr_html_() and "scalar_atomic_kernel" in repr(both)


def test_show_text_highlights_known_languages_and_falls_back_to_pre():
    assert "<span" in show.show_text("atom.global.gpu.acq_rel.add.u32 %r1, [%rd1], %r2;", "ptx")._repr_html_()
    plain = show.show_text("a < b", "no-such-language")._repr_html_()
    assert plain.startswith("<pre") and plain.endswith(">a &lt; b</pre>") and "<span" not in plain
